package serve

import (
	"context"
	"math"

	"google.golang.org/grpc"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api/oip"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// RegisterGRPC adds inference.GRPCInferenceService to g, answered by the same
// code as the REST API.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	oip.RegisterGRPCInferenceServiceServer(g, grpcService{s: s})
}

// GRPCAccess is what each gRPC method needs, as its REST twin does:
// health answers anyone, the rest needs read access.
func (s *Server) GRPCAccess() map[string]httpapi.Access {
	return map[string]httpapi.Access{
		oip.GRPCInferenceService_ServerLive_FullMethodName:     httpapi.Public,
		oip.GRPCInferenceService_ServerReady_FullMethodName:    httpapi.Public,
		oip.GRPCInferenceService_ModelReady_FullMethodName:     httpapi.Read,
		oip.GRPCInferenceService_ServerMetadata_FullMethodName: httpapi.Read,
		oip.GRPCInferenceService_ModelMetadata_FullMethodName:  httpapi.Read,
		oip.GRPCInferenceService_ModelInfer_FullMethodName:     httpapi.Read,
	}
}

type grpcService struct {
	oip.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// grpcError is err as a gRPC status, with the code of its kind (httpapi's
// table); an internal error shows no cause.
func grpcError(err error) error { return httpapi.GRPCError(err) }

func (g grpcService) ServerLive(context.Context, *oip.ServerLiveRequest) (*oip.ServerLiveResponse, error) {
	return &oip.ServerLiveResponse{Live: true}, nil
}

func (g grpcService) ServerReady(context.Context, *oip.ServerReadyRequest) (*oip.ServerReadyResponse, error) {
	return &oip.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g grpcService) ModelReady(_ context.Context, r *oip.ModelReadyRequest) (*oip.ModelReadyResponse, error) {
	ok, err := g.s.ModelReady(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	return &oip.ModelReadyResponse{Ready: ok}, nil
}

func (g grpcService) ServerMetadata(context.Context, *oip.ServerMetadataRequest) (*oip.ServerMetadataResponse, error) {
	md := g.s.ServerMetadata()
	return &oip.ServerMetadataResponse{Name: md.Name, Version: md.Version, Extensions: md.Extensions}, nil
}

func (g grpcService) ModelMetadata(_ context.Context, r *oip.ModelMetadataRequest) (*oip.ModelMetadataResponse, error) {
	md, err := g.s.ModelMetadata(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	if md.State != "" {
		return nil, grpcError(forge.Errorf(forge.Unavailable, "model %s is %s: %s", md.Name, md.State, md.Reason))
	}
	conv := func(ts []forge.TensorSpec) []*oip.ModelMetadataResponse_TensorMetadata {
		out := make([]*oip.ModelMetadataResponse_TensorMetadata, len(ts))
		for i, t := range ts {
			out[i] = &oip.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	return &oip.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform, Inputs: conv(md.Inputs), Outputs: conv(md.Outputs)}, nil
}

// ModelInfer answers in raw_output_contents when the request came with
// raw_input_contents, as Triton's clients expect, and in typed contents
// otherwise.
func (g grpcService) ModelInfer(ctx context.Context, r *oip.ModelInferRequest) (*oip.ModelInferResponse, error) {
	req := &Request{ID: r.GetId(), Inputs: make([]forge.Tensor, len(r.GetInputs()))}
	raw := r.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(r.GetInputs()) {
		return nil, grpcError(forge.Errorf(forge.Invalid, "%d raw_input_contents for %d inputs", len(raw), len(r.GetInputs())))
	}
	for i, in := range r.GetInputs() {
		if !knownDatatype(in.GetDatatype()) {
			return nil, grpcError(forge.Errorf(forge.Invalid, "input %q has datatype %q; Forge takes FP32, FP64, INT8-64, UINT8-64, BOOL and BYTES", in.GetName(), in.GetDatatype()))
		}
		n, ok := elements(in.GetShape())
		if !ok {
			return nil, grpcError(forge.Errorf(forge.Invalid, "input %q has shape %s; give non-negative dimensions", in.GetName(), shapeString(in.GetShape())))
		}
		var data any
		var err error
		if len(raw) > 0 {
			if in.GetContents() != nil {
				return nil, grpcError(forge.Errorf(forge.Invalid, "input %q has contents and raw_input_contents", in.GetName()))
			}
			data, err = decodeBinary(in.GetName(), in.GetDatatype(), n, raw[i])
		} else {
			data, err = fromContents(in.GetName(), in.GetDatatype(), n, in.GetContents())
		}
		if err != nil {
			return nil, grpcError(err)
		}
		req.Inputs[i] = forge.Tensor{Name: in.GetName(), Datatype: in.GetDatatype(), Shape: in.GetShape(), Data: data}
	}
	for _, o := range r.GetOutputs() {
		req.Outputs = append(req.Outputs, OutputRequest{Name: o.GetName()})
	}
	resp, err := g.s.Infer(ctx, r.GetModelName(), r.GetModelVersion(), req)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &oip.ModelInferResponse{ModelName: resp.Model, ModelVersion: resp.Version, Id: resp.ID}
	for _, o := range resp.Outputs {
		t := &oip.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape}
		if len(raw) > 0 {
			out.RawOutputContents = append(out.RawOutputContents, appendBinary(nil, o.Data))
		} else {
			t.Contents = toContents(o.Data)
		}
		out.Outputs = append(out.Outputs, t)
	}
	return out, nil
}

// fromContents converts typed contents into a tensor's data, checking the
// count and, for narrow integer types, the range.
func fromContents(name, dt string, n int, c *oip.InferTensorContents) (any, error) {
	if c == nil {
		return nil, forge.Errorf(forge.Invalid, "input %q has no contents", name)
	}
	var got int
	var data any
	var rangeErr error
	switch dt {
	case "FP32":
		got, data = len(c.Fp32Contents), c.Fp32Contents
	case "FP64":
		got, data = len(c.Fp64Contents), c.Fp64Contents
	case "INT64":
		got, data = len(c.Int64Contents), c.Int64Contents
	case "UINT64":
		got, data = len(c.Uint64Contents), c.Uint64Contents
	case "BOOL":
		got, data = len(c.BoolContents), c.BoolContents
	case "BYTES":
		s := make([]string, len(c.BytesContents))
		for i, b := range c.BytesContents {
			s[i] = string(b)
		}
		got, data = len(s), s
	case "INT8", "INT16", "INT32":
		got = len(c.IntContents)
		lim := map[string]int64{"INT8": math.MaxInt8, "INT16": math.MaxInt16, "INT32": math.MaxInt32}[dt]
		d := makeData(dt, got)
		for i, v := range c.IntContents {
			if int64(v) > lim || int64(v) < -lim-1 {
				rangeErr = forge.Errorf(forge.Invalid, "input %q: %d is out of range for %s", name, v, dt)
			}
			switch d := d.(type) {
			case []int8:
				d[i] = int8(v)
			case []int16:
				d[i] = int16(v)
			case []int32:
				d[i] = v
			}
		}
		data = d
	case "UINT8", "UINT16", "UINT32":
		got = len(c.UintContents)
		lim := map[string]uint64{"UINT8": math.MaxUint8, "UINT16": math.MaxUint16, "UINT32": math.MaxUint32}[dt]
		d := makeData(dt, got)
		for i, v := range c.UintContents {
			if uint64(v) > lim {
				rangeErr = forge.Errorf(forge.Invalid, "input %q: %d is out of range for %s", name, v, dt)
			}
			switch d := d.(type) {
			case []uint8:
				d[i] = uint8(v)
			case []uint16:
				d[i] = uint16(v)
			case []uint32:
				d[i] = v
			}
		}
		data = d
	}
	if rangeErr != nil {
		return nil, rangeErr
	}
	if got != n {
		return nil, forge.Errorf(forge.Invalid, "input %q has %d elements in its %s contents, its shape needs %d", name, got, dt, n)
	}
	return data, nil
}

func toContents(data any) *oip.InferTensorContents {
	c := &oip.InferTensorContents{}
	switch d := data.(type) {
	case []float32:
		c.Fp32Contents = d
	case []float64:
		c.Fp64Contents = d
	case []int64:
		c.Int64Contents = d
	case []uint64:
		c.Uint64Contents = d
	case []bool:
		c.BoolContents = d
	case []int32:
		c.IntContents = d
	case []int8:
		c.IntContents = widen[int8, int32](d)
	case []int16:
		c.IntContents = widen[int16, int32](d)
	case []uint8:
		c.UintContents = widen[uint8, uint32](d)
	case []uint16:
		c.UintContents = widen[uint16, uint32](d)
	case []uint32:
		c.UintContents = d
	case []string:
		for _, s := range d {
			c.BytesContents = append(c.BytesContents, []byte(s))
		}
	}
	return c
}

func widen[S int8 | int16 | uint8 | uint16, D int32 | uint32](s []S) []D {
	out := make([]D, len(s))
	for i, v := range s {
		out[i] = D(v)
	}
	return out
}
