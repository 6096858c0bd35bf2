package xgbrt_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"
	"testing/fstest"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/runtime/runtimetest"
	"github.com/forge-mlops/forge/internal/runtime/xgbrt"
)

// TestConformance runs the forge.Runtime suite on the binary classifier
// fixture, checking predictions against xgboost 1.7.4's.
func TestConformance(t *testing.T) {
	model, err := os.ReadFile("../../../testdata/models/xgb_binary.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../../testdata/models/xgb_binary.reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Inputs  [][]*float64
		Outputs [][]float64
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	rows := func(n int) []float32 {
		var out []float32
		for _, r := range ref.Inputs[:n] {
			for _, v := range r {
				x := float32(math.NaN()) // null: a missing value
				if v != nil {
					x = float32(*v)
				}
				out = append(out, x)
			}
		}
		return out
	}
	// The names the registry records for an XGBoost file (Triton FIL's),
	// which serving from a folder must give too.
	want := forge.Signature{
		Inputs:   []forge.TensorSpec{{Name: "input__0", Datatype: "FP32", Shape: []int64{-1, 30}}},
		Outputs:  []forge.TensorSpec{{Name: "output__0", Datatype: "FP32", Shape: []int64{-1}}},
		AllowNaN: true,
	}
	recorded := want
	runtimetest.Run(t, runtimetest.Case{
		Runtime:  xgbrt.Runtime{},
		Platform: "xgboost",
		Source:   forge.ModelSource{Name: "cancer", Version: "1", Files: fstest.MapFS{xgbrt.FileName: {Data: model}}},
		Recorded: &recorded,
		Want:     want,
		Inputs: func(n int) []forge.Tensor {
			return []forge.Tensor{{Name: "input__0", Datatype: "FP32", Shape: []int64{int64(n), 30}, Data: rows(n)}}
		},
		Check: func(t *testing.T, n int, outs []forge.Tensor) {
			got := outs[0].Data.([]float32)
			for i := range n {
				if math.Abs(float64(got[i])-ref.Outputs[i][0]) > 1e-6 {
					t.Errorf("row %d: %v, xgboost gives %v", i, got[i], ref.Outputs[i][0])
				}
			}
		},
	})
}
