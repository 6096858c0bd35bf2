package process_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/runtime/process"
	"github.com/forge-mlops/forge/internal/runtime/runtimetest"
)

// TestConformance runs the forge.Runtime suite on the test predictor (y =
// 2x): the checks on input are the runtime's, not the user's code's.
func TestConformance(t *testing.T) {
	want := forge.Signature{
		Inputs:  []forge.TensorSpec{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 3}}},
		Outputs: []forge.TensorSpec{{Name: "y", Datatype: "FP32", Shape: []int64{-1, 3}}},
	}
	recorded := want
	rows := func(n int) []float32 {
		var out []float32
		for i := range n * 3 {
			out = append(out, float32(i)-2.5)
		}
		return out
	}
	runtimetest.Run(t, runtimetest.Case{
		Runtime:  &process.Runtime{WorkDir: t.TempDir(), ReadyTimeout: 20 * time.Second, Grace: time.Second},
		Platform: "process",
		Source:   forge.ModelSource{Name: "double", Version: "1", Files: os.DirFS(Version(t, nil))},
		Recorded: &recorded,
		Want:     want,
		Inputs: func(n int) []forge.Tensor {
			return []forge.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{int64(n), 3}, Data: rows(n)}}
		},
		Check: func(t *testing.T, n int, outs []forge.Tensor) {
			in, got := rows(n), outs[0].Data.([]float32)
			for i := range in {
				in[i] *= 2
			}
			if !slices.Equal(got, in) {
				t.Errorf("y = %v, want %v", got, in)
			}
		},
	})
}
