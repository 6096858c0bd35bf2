package serve

import (
	"context"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
)

// ScoreRows gives what Infer gives, laid out as the payload log lays it
// out (out_output_J per row), and refuses a row of the wrong width.
func TestScoreRows(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{})
	ctx := context.Background()
	rows := [][]float64{{5.1, 3.5, 1.4, 0.2}, {6.3, 3.3, 6.0, 2.5}}
	cols, out, err := e.s.ScoreRows(ctx, "mlp", "1", rows)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cols, ",") != "out_output_0,out_output_1,out_output_2" || len(out) != 2 {
		t.Fatalf("columns %v, %d rows; want out_output_0..2, 2 rows", cols, len(out))
	}
	resp, err := e.s.Infer(ctx, "mlp", "1", &Request{Inputs: []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 4},
		Data: []float32{5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6.0, 2.5}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := resp.Outputs[0].Data.([]float32)
	for r := range out {
		for j := range 3 {
			if out[r][j] != want[r*3+j] {
				t.Errorf("row %d output %d: %v, Infer gives %v", r, j, out[r][j], want[r*3+j])
			}
		}
	}
	if _, _, err := e.s.ScoreRows(ctx, "mlp", "1", [][]float64{{1, 2, 3}}); forge.KindOf(err) != forge.Invalid || !strings.Contains(err.Error(), "row 0 has 3 values") {
		t.Errorf("a row of 3 values: %v, want invalid saying so", err)
	}
}
