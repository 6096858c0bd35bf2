package serve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
)

// Request is one inference request as both transports decode it.
type Request struct {
	ID     string
	Inputs []forge.Tensor
	// Outputs names the outputs wanted; empty: all of them.
	Outputs []OutputRequest
	// BinaryOutput asks for every output in binary form (REST only).
	BinaryOutput bool
}

// OutputRequest names one wanted output.
type OutputRequest struct {
	Name string
	// Binary, when set, overrides Request.BinaryOutput for this output.
	Binary *bool
}

// Response is the result of a request.
type Response struct {
	Model, Version, ID string
	Outputs            []forge.Tensor
	// Binary says, per output, whether to send it in binary form.
	Binary []bool
}

// Infer resolves name (and version), checks the inputs against the model's
// signature, runs the model (through its batcher, if it has one), and
// returns the outputs asked for. The response's model is name, the endpoint
// called (a deployment's name, not the registered model behind it), as OIP
// clients check; its version is the version that answered.
func (s *Server) Infer(ctx context.Context, name, ver string, req *Request) (*Response, error) {
	start := time.Now()
	v, m, err := s.acquire(name, ver)
	if err != nil {
		return nil, err
	}
	defer v.release()
	resp, queued, computed, err := s.run(ctx, v, req)
	if resp != nil {
		resp.Model = name
	}
	m.done(start, queued, computed, len(req.Inputs), rows(req), err)
	if err == nil && s.payload != nil {
		if rp, ok := s.routePayloads.Load(name); ok {
			s.payload.offerRoute(rp.(*RoutePayloads), name, v, req, resp)
		} else {
			s.payload.offer(v.payloadRate, v, req, resp)
		}
	}
	return resp, err
}

func rows(req *Request) int {
	if len(req.Inputs) == 0 || len(req.Inputs[0].Shape) == 0 {
		return 1
	}
	return int(req.Inputs[0].Shape[0])
}

func (s *Server) run(ctx context.Context, v *version, req *Request) (*Response, time.Duration, time.Duration, error) {
	inputs, err := v.check(req.Inputs)
	if err != nil {
		return nil, 0, 0, err
	}
	resp := &Response{Model: v.name, Version: v.version, ID: req.ID}
	// Outputs are chosen before the run so a bad name costs no compute.
	// Without a choice (pick nil) the response has every output as the
	// model returns them.
	var pick []int
	if len(req.Outputs) == 0 {
		resp.Binary = v.allBinary[0]
		if req.BinaryOutput {
			resp.Binary = v.allBinary[1]
		}
	} else {
		pick = make([]int, 0, len(req.Outputs))
		for _, o := range req.Outputs {
			i, ok := v.outputAt[o.Name]
			if !ok {
				return nil, 0, 0, forge.Errorf(forge.Invalid, "unknown output %q; the model's outputs are %s", o.Name, describe(v.sig.Outputs))
			}
			pick = append(pick, i)
			b := req.BinaryOutput
			if o.Binary != nil {
				b = *o.Binary
			}
			resp.Binary = append(resp.Binary, b)
		}
	}
	var outs []forge.Tensor
	var queued, computed time.Duration
	if v.batch != nil {
		outs, queued, computed, err = v.batch.submit(ctx, inputs)
	} else {
		t := time.Now()
		outs, err = v.model.Infer(ctx, inputs)
		computed = time.Since(t)
		v.m.exec(1)
	}
	if err != nil {
		return nil, queued, computed, err
	}
	if len(outs) != len(v.sig.Outputs) {
		return nil, queued, computed, fmt.Errorf("model %s version %s returned %d outputs, its signature has %d", v.name, v.version, len(outs), len(v.sig.Outputs))
	}
	resp.Outputs = outs
	if pick != nil {
		resp.Outputs = make([]forge.Tensor, len(pick))
		for j, i := range pick {
			resp.Outputs[j] = outs[i]
		}
	}
	return resp, queued, computed, nil
}

// check validates inputs against the signature and returns them in
// signature order, so batches can be concatenated input by input.
func (v *version) check(inputs []forge.Tensor) ([]forge.Tensor, error) {
	sig := v.sig.Inputs
	out := make([]forge.Tensor, len(sig))
	for _, in := range inputs {
		i, ok := v.inputAt[in.Name]
		if !ok {
			return nil, forge.Errorf(forge.Invalid, "unknown input %q; the model's inputs are %s", in.Name, describe(sig))
		}
		if out[i].Name != "" {
			return nil, forge.Errorf(forge.Invalid, "input %q is given twice", in.Name)
		}
		want := sig[i]
		if in.Datatype != want.Datatype && !(v.fp64AsFP32 && in.Datatype == "FP64" && want.Datatype == "FP32") {
			return nil, forge.Errorf(forge.Invalid, "input %q has datatype %s, want %s", in.Name, in.Datatype, want.Datatype)
		}
		if want.Shape != nil {
			ok := len(in.Shape) == len(want.Shape)
			for j := 0; ok && j < len(in.Shape); j++ {
				ok = in.Shape[j] >= 0 && (want.Shape[j] < 0 || want.Shape[j] == in.Shape[j])
			}
			if !ok {
				return nil, forge.Errorf(forge.Invalid, "input %q has shape %s, want %s (-1: any size)", in.Name, shapeString(in.Shape), shapeString(want.Shape))
			}
		}
		n, ok := elements(in.Shape)
		if !ok || n != dataLen(in.Data) {
			return nil, forge.Errorf(forge.Invalid, "input %q has shape %s but %d elements", in.Name, shapeString(in.Shape), dataLen(in.Data))
		}
		if !v.sig.AllowNaN && hasNaN(in.Data) {
			return nil, forge.Errorf(forge.Invalid, "input %q holds NaN, which model %s cannot take", in.Name, v.name)
		}
		out[i] = in
	}
	for i, t := range out {
		if t.Name == "" {
			return nil, forge.Errorf(forge.Invalid, "missing input %s", describe(sig[i:i+1]))
		}
	}
	return out, nil
}

// describe lists tensors as `"input" FP32 [-1,4]`.
func describe(ts []forge.TensorSpec) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q %s %s", t.Name, t.Datatype, shapeString(t.Shape))
	}
	return b.String()
}

func shapeString(shape []int64) string {
	if shape == nil {
		return "[any rank]"
	}
	return string(appendShape(nil, shape))
}

// failureReason maps an error to Triton's failure reasons.
func failureReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "CANCELED"
	case forge.IsKind(err, forge.Unavailable):
		return "REJECTED"
	case forge.IsKind(err, forge.Invalid):
		return "OTHER"
	}
	return "BACKEND"
}
