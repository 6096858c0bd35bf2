package ort

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge"
)

// TestRunPooled checks that runs on kept values (the MLP qualifies: one
// FP32 input [-1,4], one output [-1,3]) give exactly what the general path
// gives, for several batch sizes in turn, and that values are kept.
func TestRunPooled(t *testing.T) {
	ref := readMLPReference(t)
	s := loadFile(t, mlpPath, Options{})
	if !s.poolable {
		t.Fatal("the MLP's signature should allow pooled runs")
	}
	for _, n := range []int{1, 3, 1, len(ref.Inputs), 3} {
		in := []Tensor{batch(ref.Inputs[:n])}
		got, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.run(in)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("batch %d: pooled run differs from the general one (-general +pooled):\n%s", n, diff)
		}
		// The result must not alias the kept output: a later run would overwrite it.
		before := append([]float32(nil), got[0].Data.([]float32)...)
		if _, err := s.Run([]Tensor{batch(ref.Inputs[len(ref.Inputs)-n:])}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, got[0].Data.([]float32)); diff != "" {
			t.Errorf("batch %d: a later run changed an earlier result:\n%s", n, diff)
		}
	}
	s.pools.mu.Lock()
	kept := len(s.pools.sizes[1]) + len(s.pools.sizes[3])
	s.pools.mu.Unlock()
	if kept == 0 || s.unpooled.Load() {
		t.Errorf("no values kept for batch sizes 1 and 3 (unpooled: %v)", s.unpooled.Load())
	}

	// Close frees the kept values; a run after it is refused.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(s.pools.sizes) != 0 {
		t.Errorf("Close left %d pools", len(s.pools.sizes))
	}
	if _, err := s.Run([]Tensor{batch(ref.Inputs[:1])}); !forge.IsKind(err, forge.Unavailable) {
		t.Errorf("Run after Close: err = %v, want Unavailable", err)
	}
}

// TestRunPooledManySizes: past the 16 batch sizes a session keeps values
// for, runs take the general path, correctly, and the others stay pooled
// (a batcher's batches come in every size).
func TestRunPooledManySizes(t *testing.T) {
	s := loadFile(t, mlpPath, Options{})
	for n := 1; n <= poolMaxSizes+8; n++ {
		rows := make([][]float32, n)
		for i := range rows {
			rows[i] = []float32{float32(i), 1, float32(n), -2}
		}
		in := []Tensor{batch(rows)}
		got, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.run(in)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("batch %d differs from the general path:\n%s", n, diff)
		}
	}
	s.pools.mu.Lock()
	sizes := len(s.pools.sizes)
	s.pools.mu.Unlock()
	if s.unpooled.Load() || sizes != poolMaxSizes {
		t.Errorf("after %d batch sizes: unpooled %v, %d sizes kept (want false, %d)", poolMaxSizes+8, s.unpooled.Load(), sizes, poolMaxSizes)
	}
}

// TestRunPooledFallsBack: a model whose output's dynamic first dimension is
// not the batch (a sum over the rows: always one row) fails on kept values;
// the run must still answer right, and the session stop trying the pool.
func TestRunPooledFallsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sum.onnx")
	const script = `
import sys, onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, ["n", 2])
y = helper.make_tensor_value_info("y", T.FLOAT, ["m", 2])
node = helper.make_node("ReduceSum", ["x"], ["y"], keepdims=1, axes=[0])
m = helper.make_model(helper.make_graph([node], "sum", [x], [y]), opset_imports=[helper.make_opsetid("", 12)])
m.ir_version = 7
onnx.checker.check_model(m)
onnx.save(m, sys.argv[1])
`
	if out, err := exec.Command("/usr/bin/python3", "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("build model: %v\n%s", err, out)
	}
	s := loadFile(t, path, Options{})
	if !s.poolable {
		t.Fatal("the signature ([-1,2] in, [-1,2] out) should look poolable")
	}
	out, err := s.Run([]Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{3, 2}, Data: []float32{1, 2, 3, 4, 5, 6.5}}})
	if err != nil {
		t.Fatal(err)
	}
	want := Tensor{Name: "y", Datatype: "FP32", Shape: []int64{1, 2}, Data: []float32{9, 12.5}}
	if diff := cmp.Diff(want, out[0]); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if !s.unpooled.Load() {
		t.Error("the session still tries pooled runs after one failed where the general run worked")
	}
}

// TestRunPooledSkipsOddInputs: inputs a pooled run must not take (a shape
// whose element count overflows to the data's length) go the general way
// and get its error.
func TestRunPooledSkipsOddInputs(t *testing.T) {
	s := loadFile(t, mlpPath, Options{})
	four := []float32{1, 2, 3, 4}
	if _, ok := s.batchOf([]Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1<<62 + 1, 4}, Data: four}}); ok {
		t.Error("batchOf took a shape whose element count overflows")
	}
	_, err := s.Run([]Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1<<62 + 1, 4}, Data: four}})
	if !forge.IsKind(err, forge.Invalid) {
		t.Errorf("err = %v, want Invalid", err)
	}
	if n, ok := s.batchOf([]Tensor{batch([][]float32{four, four})}); !ok || n != 2 {
		t.Errorf("batchOf(2 rows) = %d, %v; want 2, true", n, ok)
	}
}
