package serve

import (
	"context"
	"encoding/binary"
	"math"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/forge-mlops/forge/api/oip"
)

func grpcClient(t *testing.T, e *env) oip.GRPCInferenceServiceClient { return grpcClientB(t, e) }

func grpcClientB(t testing.TB, e *env) oip.GRPCInferenceServiceClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	e.s.RegisterGRPC(g)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return oip.NewGRPCInferenceServiceClient(conn)
}

func TestGRPC(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx", "wine/1": "xgb_multiclass.json"}, BatchOptions{})
	c := grpcClient(t, e)
	ctx := context.Background()

	if r, err := c.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive = %v, %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &oip.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("ServerReady = %v, %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &oip.ModelReadyRequest{Name: "mlp", Version: "1"}); err != nil || !r.Ready {
		t.Errorf("ModelReady = %v, %v", r, err)
	}
	sm, err := c.ServerMetadata(ctx, &oip.ServerMetadataRequest{})
	if err != nil || !slices.Contains(sm.Extensions, "binary_tensor_data") {
		t.Errorf("ServerMetadata = %v, %v", sm, err)
	}
	md, err := c.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: "mlp"})
	if err != nil || md.Platform != "onnxruntime_onnx" || md.Inputs[0].Name != "input" || !slices.Equal(md.Inputs[0].Shape, []int64{-1, 4}) {
		t.Errorf("ModelMetadata = %v, %v", md, err)
	}

	ref := readReference(t, "mlp.reference.json")
	rows := ref.rows(0, 10)
	var flat []float32
	var raw []byte
	for _, r := range rows {
		flat = append(flat, r...)
		for _, v := range r {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	}
	in := &oip.ModelInferRequest_InferInputTensor{Name: "input", Datatype: "FP32", Shape: []int64{10, 4}}

	// Typed contents.
	in.Contents = &oip.InferTensorContents{Fp32Contents: flat}
	resp, err := c.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "mlp", Id: "g1", Inputs: []*oip.ModelInferRequest_InferInputTensor{in}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Id != "g1" || resp.ModelVersion != "1" || !slices.Equal(resp.Outputs[0].Shape, []int64{10, 3}) {
		t.Errorf("response = %v", resp)
	}
	var got []float64
	for _, v := range resp.Outputs[0].Contents.Fp32Contents {
		got = append(got, float64(v))
	}
	checkClose(t, "contents", got, ref.Outputs[:10], 1e-6)

	// Raw contents both ways.
	in.Contents = nil
	resp, err = c.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "mlp", ModelVersion: "1", Inputs: []*oip.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{raw}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.RawOutputContents) != 1 || resp.Outputs[0].Contents != nil {
		t.Fatalf("raw response = %v", resp)
	}
	checkClose(t, "raw", float32s(resp.RawOutputContents[0]), ref.Outputs[:10], 1e-6)

	// XGBoost through gRPC.
	wine := readReference(t, "xgb_multiclass.reference.json")
	wrows := wine.rows(0, len(wine.Inputs))
	flat = nil
	for _, r := range wrows {
		flat = append(flat, r...)
	}
	resp, err = c.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "wine", Inputs: []*oip.ModelInferRequest_InferInputTensor{{
		Name: "input__0", Datatype: "FP32", Shape: []int64{int64(len(wrows)), 13}, Contents: &oip.InferTensorContents{Fp32Contents: flat}}}})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, v := range resp.Outputs[0].Contents.Fp32Contents {
		got = append(got, float64(v))
	}
	checkClose(t, "xgboost", got, wine.Outputs, 1e-6)

	// Errors map to gRPC codes.
	for _, tt := range []struct {
		req  *oip.ModelInferRequest
		code codes.Code
	}{
		{&oip.ModelInferRequest{ModelName: "nope"}, codes.NotFound},
		{&oip.ModelInferRequest{ModelName: "mlp", Inputs: []*oip.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}, Contents: &oip.InferTensorContents{Fp32Contents: []float32{1, 2}}}}}, codes.InvalidArgument},
		{&oip.ModelInferRequest{ModelName: "mlp", Inputs: []*oip.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}}}, RawInputContents: [][]byte{raw[:8]}}, codes.InvalidArgument},
	} {
		if _, err := c.ModelInfer(ctx, tt.req); status.Code(err) != tt.code {
			t.Errorf("ModelInfer(%v): %v, want code %v", tt.req, err, tt.code)
		}
	}
}
