package forge

import (
	"context"
	"io/fs"
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
