package onnx

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/google/go-cmp/cmp"
)

const mlpPath = "../../testdata/models/mlp.onnx"

// python is Debian's interpreter, the one with the onnx package.
const python = "/usr/bin/python3"

// referenceSignature reads the model at path with the onnx Python package and
// returns the signature it sees, for comparison with ours.
func referenceSignature(t *testing.T, path string) Signature {
	t.Helper()
	const script = `
import json, sys, onnx
names = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
         8: "BYTES", 9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64"}
m = onnx.load(sys.argv[1])
inits = {i.name for i in m.graph.initializer} | {s.values.name for s in m.graph.sparse_initializer}
def tensor(v):
    tt = v.type.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    return {"Name": v.name, "Datatype": names[tt.elem_type], "Shape": shape}
opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
print(json.dumps({
    "Inputs": [tensor(v) for v in m.graph.input if v.name not in inits],
    "Outputs": [tensor(v) for v in m.graph.output],
    "IRVersion": m.ir_version,
    "Opset": opset[0] if opset else 0,
    "Producer": m.producer_name,
}))
`
	out, err := exec.Command(python, "-c", script, path).Output()
	if err != nil {
		t.Fatalf("onnx reference for %s: %v (%s)", path, err, stderrOf(err))
	}
	var sig Signature
	if err := json.Unmarshal(out, &sig); err != nil {
		t.Fatalf("decode reference %s: %v", out, err)
	}
	return sig
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// buildModel runs a Python snippet that builds a model with onnx.helper and
// saves it as m, and returns the file's path.
func buildModel(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	script := "import sys, onnx\nfrom onnx import helper, TensorProto as T\n" + body +
		"\nonnx.save(m, sys.argv[1])\n"
	if out, err := exec.Command(python, "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("build model: %v\n%s", err, out)
	}
	return path
}

func parseFile(t *testing.T, path string) Signature {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseSignature(b)
	if err != nil {
		t.Fatalf("ParseSignature(%s): %v", path, err)
	}
	return sig
}

func TestParseSignatureMLP(t *testing.T) {
	got := parseFile(t, mlpPath)
	if diff := cmp.Diff(referenceSignature(t, mlpPath), got); diff != "" {
		t.Errorf("signature differs from onnx.load (-onnx +ours):\n%s", diff)
	}
	// The fixture is documented as input [-1,4] -> output [-1,3]; say so
	// plainly if it is regenerated into something else.
	want := []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}}}
	if diff := cmp.Diff(want, got.Inputs); diff != "" {
		t.Errorf("inputs (-want +got):\n%s", diff)
	}
}

// TestParseSignatureShapesAndTypes covers what the MLP does not: an
// initializer that is also a graph input, several element types, symbolic and
// missing dimensions, an unknown rank and a scalar.
func TestParseSignatureShapesAndTypes(t *testing.T) {
	path := buildModel(t, `
w = helper.make_tensor("w", T.FLOAT, [3], [1.0, 2.0, 3.0])
inputs = [
    helper.make_tensor_value_info("x", T.FLOAT, ["batch", 3]),
    helper.make_tensor_value_info("w", T.FLOAT, [3]),
    helper.make_tensor_value_info("ids", T.INT64, [None, 2]),
    helper.make_tensor_value_info("flag", T.BOOL, []),
    helper.make_tensor_value_info("text", T.STRING, None),
    helper.make_tensor_value_info("d", T.DOUBLE, [2, 5, 7]),
    helper.make_tensor_value_info("h", T.FLOAT16, [1]),
    helper.make_tensor_value_info("u", T.UINT8, [4]),
    helper.make_tensor_value_info("i32", T.INT32, [4]),
]
outputs = [helper.make_tensor_value_info("y", T.FLOAT, ["batch", 3])]
nodes = [helper.make_node("Mul", ["x", "w"], ["y"])]
g = helper.make_graph(nodes, "g", inputs, outputs, initializer=[w])
m = helper.make_model(g, producer_name="forge-test",
                      opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
`)
	got := parseFile(t, path)
	if diff := cmp.Diff(referenceSignature(t, path), got); diff != "" {
		t.Errorf("signature differs from onnx.load (-onnx +ours):\n%s", diff)
	}
	for _, in := range got.Inputs {
		if in.Name == "w" {
			t.Errorf("initializer w listed as an input")
		}
	}
	if got.Opset != 17 {
		t.Errorf("opset = %d, want the default domain's 17, not ai.onnx.ml's", got.Opset)
	}
}

func TestParseSignatureUnsupported(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{
			name: "sequence output",
			body: `
x = helper.make_tensor_value_info("x", T.FLOAT, [2])
s = helper.make_tensor_sequence_value_info("s", T.FLOAT, [2])
g = helper.make_graph([helper.make_node("SequenceConstruct", ["x"], ["s"])], "g", [x], [s])
m = helper.make_model(g)
`,
			want: `"s" is not a tensor`,
		},
		{
			name: "complex input",
			body: `
x = helper.make_tensor_value_info("x", T.COMPLEX64, [2])
y = helper.make_tensor_value_info("y", T.COMPLEX64, [2])
m = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]))
`,
			want: "COMPLEX64",
		},
		{
			name: "no outputs",
			body: `
x = helper.make_tensor_value_info("x", T.FLOAT, [2])
m = helper.make_model(helper.make_graph([], "g", [x], []))
`,
			want: "no outputs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(buildModel(t, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseSignature(b)
			if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want Invalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParseSignatureNotONNX(t *testing.T) {
	mlp, err := os.ReadFile(mlpPath)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 4096)
	rng.Read(random)
	flipped := append([]byte(nil), mlp...)
	// The first byte is the ir_version tag; a wire type of 7 is never valid.
	flipped[0] |= 0x07

	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"random bytes", random},
		{"json", []byte(`{"learner": {"gradient_booster": {}}, "version": [1, 7, 4]}`)},
		{"text", []byte("hello, this is not a model\n")},
		{"truncated to a quarter", mlp[:len(mlp)/4]},
		{"truncated to a half", mlp[:len(mlp)/2]},
		{"truncated by one byte", mlp[:len(mlp)-1]},
		{"corrupt first tag", flipped},
		{"zero bytes", make([]byte, 64)},
		{"length past the end", []byte{0x08, 0x07, 0x3a, 0xff, 0xff, 0x03}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignature(tt.b)
			if !forge.IsKind(err, forge.Invalid) {
				t.Fatalf("err = %v, want a forge.Invalid error", err)
			}
			if !strings.HasPrefix(forge.Message(err), "not a valid ONNX model") {
				t.Errorf("message %q does not say the file is not a valid ONNX model", forge.Message(err))
			}
		})
	}
}

// TestParseSignatureCorrupted flips bytes all over the model: each result must
// be either a clean error or a signature, never a panic.
func TestParseSignatureCorrupted(t *testing.T) {
	mlp, err := os.ReadFile(mlpPath)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	b := make([]byte, len(mlp))
	for i := 0; i < 2000; i++ {
		copy(b, mlp)
		for j := 0; j < 1+i%4; j++ {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		checkParse(t, b)
		checkParse(t, mlp[:rng.Intn(len(mlp))])
	}
}

func checkParse(t *testing.T, b []byte) {
	t.Helper()
	sig, err := ParseSignature(b)
	if err != nil {
		if !forge.IsKind(err, forge.Invalid) {
			t.Fatalf("ParseSignature(%x): error of kind %v, want Invalid: %v", b, forge.KindOf(err), err)
		}
		return
	}
	if len(sig.Outputs) == 0 || sig.IRVersion <= 0 {
		t.Fatalf("ParseSignature(%x) accepted a model with no outputs or IR version: %+v", b, sig)
	}
}

func FuzzParseSignature(f *testing.F) {
	mlp, err := os.ReadFile(mlpPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mlp)
	f.Add([]byte{})
	f.Add([]byte(`{"a": 1}`))
	f.Add(mlp[:len(mlp)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}
