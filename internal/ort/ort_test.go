package ort

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/onnx"
	"github.com/google/go-cmp/cmp"
)

const (
	mlpPath          = "../../testdata/models/mlp.onnx"
	mlpReferencePath = "../../testdata/models/mlp.reference.json"
)

// testLibrary finds the library the way a developer's machine has it: the
// env var if set, else where scripts/fetch-onnxruntime.sh caches it. A
// missing library fails the test: ONNX serving is not optional.
func testLibrary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("FORGE_ONNXRUNTIME_LIB")
	if path == "" {
		cache := os.Getenv("FORGE_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			cache = filepath.Join(home, ".cache", "forge")
		}
		path = CachedLibraryPath(cache)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ONNX Runtime library not found at %s: run scripts/fetch-onnxruntime.sh (or set FORGE_ONNXRUNTIME_LIB)", path)
	}
	if err := Init(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadFile(t testing.TB, path string, opts Options) *Session {
	t.Helper()
	testLibrary(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := onnx.ParseSignature(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(b, sig, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type mlpReference struct {
	Inputs  [][]float32 `json:"inputs"`
	Outputs [][]float64 `json:"outputs"`
}

func readMLPReference(t *testing.T) mlpReference {
	t.Helper()
	b, err := os.ReadFile(mlpReferencePath)
	if err != nil {
		t.Fatal(err)
	}
	var ref mlpReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Inputs) == 0 || len(ref.Inputs) != len(ref.Outputs) {
		t.Fatalf("reference has %d inputs and %d outputs", len(ref.Inputs), len(ref.Outputs))
	}
	return ref
}

func batch(rows [][]float32) Tensor {
	var data []float32
	for _, r := range rows {
		data = append(data, r...)
	}
	return Tensor{Name: "input", Datatype: "FP32", Shape: []int64{int64(len(rows)), 4}, Data: data}
}

func TestLibraryPath(t *testing.T) {
	lib := testLibrary(t)
	if got, err := LibraryPath(lib); err != nil || got != lib {
		t.Errorf("LibraryPath(%q) = %q, %v", lib, got, err)
	}
	for _, p := range []string{"", filepath.Join(t.TempDir(), "missing.so"), t.TempDir()} {
		_, err := LibraryPath(p)
		if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "scripts/fetch-onnxruntime.sh") {
			t.Errorf("LibraryPath(%q) = %v, want Invalid naming the fetch script", p, err)
		}
	}
	if err := Init(lib + ".other"); err == nil {
		t.Errorf("Init with a second library path succeeded")
	}
}

func TestRunMLPMatchesTorch(t *testing.T) {
	ref := readMLPReference(t)
	s := loadFile(t, mlpPath, Options{})
	out, err := s.Run([]Tensor{batch(ref.Inputs)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != "output" || out[0].Datatype != "FP32" {
		t.Fatalf("outputs = %+v", out)
	}
	if diff := cmp.Diff([]int64{int64(len(ref.Inputs)), 3}, out[0].Shape); diff != "" {
		t.Fatalf("output shape (-want +got):\n%s", diff)
	}
	got := out[0].Data.([]float32)
	for i, row := range ref.Outputs {
		for j, want := range row {
			if g := float64(got[i*3+j]); math.Abs(g-want) > 1e-6 {
				t.Errorf("row %d col %d: got %v, torch %v", i, j, g, want)
			}
		}
	}
}

// TestRunConcurrent has 16 goroutines share one session, each with its own
// batch, and checks every result is bit-identical to a sequential run.
func TestRunConcurrent(t *testing.T) {
	ref := readMLPReference(t)
	s := loadFile(t, mlpPath, Options{})
	const workers, rounds = 16, 20
	inputs := make([]Tensor, workers)
	want := make([][]float32, workers)
	for w := range inputs {
		lo := (w * 17) % len(ref.Inputs)
		hi := min(lo+1+w, len(ref.Inputs))
		inputs[w] = batch(ref.Inputs[lo:hi])
		out, err := s.Run([]Tensor{inputs[w]})
		if err != nil {
			t.Fatal(err)
		}
		want[w] = out[0].Data.([]float32)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				out, err := s.Run([]Tensor{inputs[w]})
				if err != nil {
					errs <- err
					return
				}
				if diff := cmp.Diff(want[w], out[0].Data.([]float32)); diff != "" {
					t.Errorf("worker %d: result differs from the sequential run:\n%s", w, diff)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRunRejects(t *testing.T) {
	s := loadFile(t, mlpPath, Options{IntraOpThreads: 1})
	four := []float32{1, 2, 3, 4}
	tests := []struct {
		name   string
		inputs []Tensor
		want   string
	}{
		{"unknown name", []Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, Data: four}}, `unknown input "x"; the model's inputs are "input" FP32 [-1,4]`},
		{"missing input", nil, `missing input "input" FP32 [-1,4]`},
		{"given twice", []Tensor{batch([][]float32{four}), batch([][]float32{four})}, `input "input" is given twice`},
		{"wrong datatype", []Tensor{{Name: "input", Datatype: "FP64", Shape: []int64{1, 4}, Data: []float64{1, 2, 3, 4}}}, `datatype "FP64", want FP32`},
		{"wrong width", []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 2}, Data: four}}, "shape [2,2], want [-1,4]"},
		{"wrong rank", []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{4}, Data: four}}, "shape [4], want [-1,4]"},
		{"negative dimension", []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}, Data: four}}, "cannot be negative"},
		{"too few elements", []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 4}, Data: four}}, "shape [2,4] but 4 elements"},
		{"overflowing shape", []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1 << 62, 4}, Data: four}}, "elements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(tt.inputs)
			if !forge.IsKind(err, forge.Invalid) || !strings.Contains(forge.Message(err), tt.want) {
				t.Fatalf("err = %v, want Invalid containing %q", err, tt.want)
			}
		})
	}

	// Data of the wrong Go type is a bug in the caller, not bad input.
	_, err := s.Run([]Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}, Data: []float64{1, 2, 3, 4}}})
	if err == nil || forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "[]float32") {
		t.Errorf("wrong Go type: err = %v, want an internal error naming []float32", err)
	}
}

func TestRunEmptyBatch(t *testing.T) {
	s := loadFile(t, mlpPath, Options{})
	out, err := s.Run([]Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{0, 4}, Data: []float32{}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{0, 3}, out[0].Shape); diff != "" {
		t.Errorf("shape (-want +got):\n%s", diff)
	}
}

func TestClose(t *testing.T) {
	s := loadFile(t, mlpPath, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := s.Run([]Tensor{batch([][]float32{{1, 2, 3, 4}})})
	if !forge.IsKind(err, forge.Unavailable) {
		t.Errorf("Run after Close: err = %v, want Unavailable", err)
	}
}

func TestLoadRejects(t *testing.T) {
	testLibrary(t)
	mlp, err := os.ReadFile(mlpPath)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := onnx.ParseSignature(mlp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(mlp[:len(mlp)/2], sig, Options{})
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "cannot load the model") {
		t.Errorf("truncated model: err = %v, want Invalid", err)
	}
	_, err = Load(mlp, onnx.Signature{Outputs: sig.Outputs}, Options{})
	if !forge.IsKind(err, forge.Invalid) {
		t.Errorf("no inputs: err = %v, want Invalid", err)
	}
}

// TestRunDatatypes round-trips every supported datatype through Identity
// nodes, and feeds a scalar to an Add.
func TestRunDatatypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "types.onnx")
	const script = `
import sys, onnx
from onnx import helper, TensorProto as T
types = {"FP32": T.FLOAT, "FP64": T.DOUBLE, "INT8": T.INT8, "INT16": T.INT16, "INT32": T.INT32,
         "INT64": T.INT64, "UINT8": T.UINT8, "UINT16": T.UINT16, "UINT32": T.UINT32,
         "UINT64": T.UINT64, "BOOL": T.BOOL, "BYTES": T.STRING}
inputs, outputs, nodes = [], [], []
for name, ty in types.items():
    inputs.append(helper.make_tensor_value_info("in_" + name, ty, ["n", 2]))
    outputs.append(helper.make_tensor_value_info("out_" + name, ty, ["n", 2]))
    nodes.append(helper.make_node("Identity", ["in_" + name], ["out_" + name]))
inputs.append(helper.make_tensor_value_info("scalar", T.FLOAT, []))
outputs.append(helper.make_tensor_value_info("sum", T.FLOAT, ["n", 2]))
nodes.append(helper.make_node("Add", ["in_FP32", "scalar"], ["sum"]))
m = helper.make_model(helper.make_graph(nodes, "types", inputs, outputs),
                      opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, sys.argv[1])
`
	if out, err := exec.Command("/usr/bin/python3", "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("build model: %v\n%s", err, out)
	}
	s := loadFile(t, path, Options{})

	shape := []int64{2, 2}
	data := map[string]any{
		"FP32":   []float32{1.5, -2, 3.25, math.MaxFloat32},
		"FP64":   []float64{1e300, -2, 0.1, math.SmallestNonzeroFloat64},
		"INT8":   []int8{-128, 127, 0, 1},
		"INT16":  []int16{-32768, 32767, 0, 1},
		"INT32":  []int32{math.MinInt32, math.MaxInt32, 0, 1},
		"INT64":  []int64{math.MinInt64, math.MaxInt64, 0, 1},
		"UINT8":  []uint8{0, 255, 1, 2},
		"UINT16": []uint16{0, 65535, 1, 2},
		"UINT32": []uint32{0, math.MaxUint32, 1, 2},
		"UINT64": []uint64{0, math.MaxUint64, 1, 2},
		"BOOL":   []bool{true, false, false, true},
		"BYTES":  []string{"a", "", "héllo", "x y"},
	}
	var inputs []Tensor
	want := map[string]Tensor{}
	for dt, d := range data {
		inputs = append(inputs, Tensor{Name: "in_" + dt, Datatype: dt, Shape: shape, Data: d})
		want["out_"+dt] = Tensor{Name: "out_" + dt, Datatype: dt, Shape: shape, Data: d}
	}
	inputs = append(inputs, Tensor{Name: "scalar", Datatype: "FP32", Shape: []int64{}, Data: []float32{0.5}})
	var sum []float32
	for _, x := range data["FP32"].([]float32) {
		sum = append(sum, x+0.5)
	}
	want["sum"] = Tensor{Name: "sum", Datatype: "FP32", Shape: shape, Data: sum}

	out, err := s.Run(inputs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(want) {
		t.Fatalf("%d outputs, want %d", len(out), len(want))
	}
	for _, o := range out {
		if diff := cmp.Diff(want[o.Name], o); diff != "" {
			t.Errorf("output %s (-want +got):\n%s", o.Name, diff)
		}
	}
}
