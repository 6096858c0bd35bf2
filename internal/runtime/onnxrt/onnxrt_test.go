package onnxrt_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"
	"testing/fstest"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/ort"
	"github.com/forge-mlops/forge/internal/runtime/onnxrt"
	"github.com/forge-mlops/forge/internal/runtime/runtimetest"
)

// TestConformance runs the forge.Runtime suite on the iris MLP fixture,
// checking predictions against torch's. It needs ONNX Runtime
// (FORGE_ONNXRUNTIME_LIB, as `make setup-test` installs it).
func TestConformance(t *testing.T) {
	lib := os.Getenv("FORGE_ONNXRUNTIME_LIB")
	if lib == "" {
		t.Fatal("FORGE_ONNXRUNTIME_LIB is not set; run `make setup-test` and use the Makefile (or export it)")
	}
	model, err := os.ReadFile("../../../testdata/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../../testdata/models/mlp.reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Inputs  [][]float32
		Outputs [][]float64
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	want := forge.Signature{
		Inputs:  []forge.TensorSpec{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}}},
		Outputs: []forge.TensorSpec{{Name: "output", Datatype: "FP32", Shape: []int64{-1, 3}}},
	}
	recorded := want
	runtimetest.Run(t, runtimetest.Case{
		Runtime:  onnxrt.New(lib, ort.Options{}),
		Platform: "onnxruntime_onnx",
		Source:   forge.ModelSource{Name: "iris", Version: "1", Files: fstest.MapFS{onnxrt.FileName: {Data: model}}},
		Recorded: &recorded,
		Want:     want,
		Inputs: func(n int) []forge.Tensor {
			var rows []float32
			for _, r := range ref.Inputs[:n] {
				rows = append(rows, r...)
			}
			return []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{int64(n), 4}, Data: rows}}
		},
		Check: func(t *testing.T, n int, outs []forge.Tensor) {
			got := outs[0].Data.([]float32)
			for i := range n * 3 {
				if math.Abs(float64(got[i])-ref.Outputs[i/3][i%3]) > 1e-5 {
					t.Errorf("element %d: %v, torch gives %v", i, got[i], ref.Outputs[i/3][i%3])
				}
			}
		},
	})
}
