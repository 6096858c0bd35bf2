package forge

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Tensor is one named input or output of a model. Data is a flat, row-major
// Go slice whose element type follows Datatype (Open Inference Protocol names):
//
//	FP32 []float32   FP64 []float64
//	INT8 []int8      INT16 []int16    INT32 []int32    INT64 []int64
//	UINT8 []uint8    UINT16 []uint16  UINT32 []uint32  UINT64 []uint64
//	BOOL []bool      BYTES []string
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	Data     any
}

// TensorSpec declares one input or output of a model. Shape has -1 for a
// dynamic dimension; it is nil when the rank is unknown.
type TensorSpec struct {
	Name     string
	Datatype string
	Shape    []int64
}

// Signature is what a model takes and returns.
type Signature struct {
	Inputs  []TensorSpec
	Outputs []TensorSpec
	// AllowNaN says whether floating-point inputs may hold NaN: true where the
	// runtime gives NaN a meaning (XGBoost: a missing value), false where it
	// would only propagate into the outputs.
	AllowNaN bool
}

// ModelSource is one version of a model to load: its files and, when the
// registry knows it, its signature.
type ModelSource struct {
	Name    string
	Version string
	// Files holds the version's files; the model file sits at its root
	// (model.onnx, model.json).
	Files fs.FS
	// Signature, if not nil, is the signature recorded with the version. A
	// runtime that can read the signature from the model itself checks that
	// the two agree; one that cannot uses it for tensor names.
	Signature *Signature
}

// Runtime loads models of one format. Implementations live in
// internal/runtime/*.
type Runtime interface {
	// Platform names the runtime the way Triton's model metadata does,
	// e.g. "onnxruntime_onnx".
	Platform() string
	// Load reads and prepares a model; a model the runtime cannot take is
	// an Invalid error saying why.
	Load(ctx context.Context, src ModelSource) (Model, error)
}

// Model is one loaded model version. Infer is safe for concurrent use.
type Model interface {
	Signature() Signature
	// Infer runs the model on inputs (one per model input, any order) and
	// returns every output in signature order. Inputs that break the
	// signature give an Invalid error. Inputs are read, never kept.
	Infer(ctx context.Context, inputs []Tensor) ([]Tensor, error)
	// Close frees the model after the calls in progress finish.
	Close() error
}

// CheckInputs reports, as an Invalid error, the first way inputs break the
// signature: an unknown, repeated or missing input, another datatype, a
// shape that does not fit (a -1 dimension takes any size), or data whose
// length is not the shape's. A runtime that cannot rely on its engine to
// refuse bad inputs (a predictor process may not check) calls it first.
func (s Signature) CheckInputs(inputs []Tensor) error {
	seen := make(map[string]bool, len(inputs))
	for _, in := range inputs {
		i := slices.IndexFunc(s.Inputs, func(t TensorSpec) bool { return t.Name == in.Name })
		if i < 0 {
			return Errorf(Invalid, "unknown input %q; the model's inputs are %s", in.Name, specList(s.Inputs))
		}
		if seen[in.Name] {
			return Errorf(Invalid, "input %q is given twice", in.Name)
		}
		seen[in.Name] = true
		want := s.Inputs[i]
		if in.Datatype != want.Datatype {
			return Errorf(Invalid, "input %q has datatype %s, want %s", in.Name, in.Datatype, want.Datatype)
		}
		n := int64(1)
		ok := want.Shape == nil || len(in.Shape) == len(want.Shape)
		for j := 0; ok && j < len(in.Shape); j++ {
			ok = in.Shape[j] >= 0 && (want.Shape == nil || want.Shape[j] < 0 || want.Shape[j] == in.Shape[j])
			n *= in.Shape[j]
		}
		if !ok {
			return Errorf(Invalid, "input %q has shape %v, want %v (-1: any size)", in.Name, in.Shape, want.Shape)
		}
		if l := DataLen(in.Data); int64(l) != n {
			return Errorf(Invalid, "input %q has shape %v but %d elements", in.Name, in.Shape, l)
		}
	}
	for _, t := range s.Inputs {
		if !seen[t.Name] {
			return Errorf(Invalid, "missing input %q %s %v", t.Name, t.Datatype, t.Shape)
		}
	}
	return nil
}

func specList(ts []TensorSpec) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q %s %v", t.Name, t.Datatype, t.Shape)
	}
	return b.String()
}

// DataLen is the number of elements of a Tensor's Data, -1 for a type
// Tensor does not allow.
func DataLen(data any) int {
	switch d := data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []int16:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []uint8:
		return len(d)
	case []uint16:
		return len(d)
	case []uint32:
		return len(d)
	case []uint64:
		return len(d)
	case []bool:
		return len(d)
	case []string:
		return len(d)
	}
	return -1
}
