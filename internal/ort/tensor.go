package ort

import (
	"fmt"
	"math/bits"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Tensor is one input or output of Run: forge.Tensor, so the runtime
// adapter passes tensors through as they are. Data is a flat, row-major Go
// slice whose element type follows Datatype:
//
//	FP32 []float32   FP64 []float64
//	INT8 []int8      INT16 []int16    INT32 []int32    INT64 []int64
//	UINT8 []uint8    UINT16 []uint16  UINT32 []uint32  UINT64 []uint64
//	BOOL []bool      BYTES []string
//
// FP16 is not supported: onnxruntime_go v1.27.0 copies only half of an FP16
// output's bytes.
type Tensor = forge.Tensor

// Input and Output name Tensor at each end of Run.
type (
	Input  = Tensor
	Output = Tensor
)

// dtype knows the Go slice type of one datatype and how to hand it to ONNX
// Runtime.
type dtype struct {
	goType string
	// length returns the slice's length, and false if data is another type.
	length   func(data any) (int, bool)
	newValue func(shape ortgo.Shape, data any) (ortgo.Value, error)
	// make, copy and clone serve pooled runs (numeric types only).
	make  func(n int) any
	copy  func(dst, src any)
	clone func(src any) any
}

var dtypes = map[string]dtype{
	"FP32":   numeric[float32](),
	"FP64":   numeric[float64](),
	"INT8":   numeric[int8](),
	"INT16":  numeric[int16](),
	"INT32":  numeric[int32](),
	"INT64":  numeric[int64](),
	"UINT8":  numeric[uint8](),
	"UINT16": numeric[uint16](),
	"UINT32": numeric[uint32](),
	"UINT64": numeric[uint64](),
	"BOOL":   numeric[bool](),
	"BYTES": {
		goType: "[]string",
		length: func(data any) (int, bool) { d, ok := data.([]string); return len(d), ok },
		newValue: func(shape ortgo.Shape, data any) (ortgo.Value, error) {
			t, err := ortgo.NewStringTensor(shape)
			if err != nil {
				return nil, err
			}
			if err := t.SetContents(data.([]string)); err != nil {
				t.Destroy()
				return nil, err
			}
			return t, nil
		},
	},
}

func numeric[T ortgo.TensorData]() dtype {
	return dtype{
		goType: fmt.Sprintf("%T", []T(nil)),
		length: func(data any) (int, bool) { d, ok := data.([]T); return len(d), ok },
		newValue: func(shape ortgo.Shape, data any) (ortgo.Value, error) {
			d := data.([]T)
			if len(shape) == 0 {
				// NewTensor rejects rank 0; a scalar has its own type.
				return ortgo.NewScalar(d[0])
			}
			// No copy: ONNX Runtime reads the Go slice in place.
			return ortgo.NewTensor(shape, d)
		},
		make:  func(n int) any { return make([]T, n) },
		copy:  func(dst, src any) { copy(dst.([]T), src.([]T)) },
		clone: func(src any) any { return append([]T(nil), src.([]T)...) },
	}
}

// newValue checks in against the model's declaration of it and wraps its data
// for ONNX Runtime.
func newValue(want onnx.Tensor, in Tensor) (ortgo.Value, error) {
	if in.Datatype != want.Datatype {
		return nil, forge.Errorf(forge.Invalid, "input %q has datatype %q, want %s", in.Name, in.Datatype, want.Datatype)
	}
	dt, ok := dtypes[in.Datatype]
	if !ok {
		return nil, forge.Errorf(forge.Invalid, "input %q has datatype %s, which Forge's ONNX runtime does not support", in.Name, in.Datatype)
	}
	n, ok := dt.length(in.Data)
	if !ok {
		// A bug in the caller's conversion, not in the request; say both types.
		return nil, fmt.Errorf("input %q: datatype %s needs data of type %s, got %T", in.Name, in.Datatype, dt.goType, in.Data)
	}
	if err := checkShape(want, in.Shape); err != nil {
		return nil, err
	}
	size, ok := elements(in.Shape)
	if !ok || size != uint64(n) {
		return nil, forge.Errorf(forge.Invalid, "input %q has shape %s but %d elements", in.Name, shapeString(in.Shape), n)
	}
	if n == 0 && len(in.Shape) > 0 && in.Datatype == "BYTES" {
		// NewStringTensor does not take a zero dimension.
		return nil, forge.Errorf(forge.Invalid, "input %q is empty; BYTES inputs need at least one element", in.Name)
	}
	v, err := dt.newValue(ortgo.Shape(in.Shape), in.Data)
	if err != nil {
		return nil, fmt.Errorf("create ONNX Runtime tensor for input %q: %w", in.Name, err)
	}
	return v, nil
}

func checkShape(want onnx.Tensor, got []int64) error {
	for _, d := range got {
		if d < 0 {
			return forge.Errorf(forge.Invalid, "input %q has shape %s; dimensions cannot be negative", want.Name, shapeString(got))
		}
	}
	if want.Shape == nil {
		return nil
	}
	ok := len(got) == len(want.Shape)
	for i := 0; ok && i < len(got); i++ {
		ok = want.Shape[i] < 0 || want.Shape[i] == got[i]
	}
	if !ok {
		return forge.Errorf(forge.Invalid, "input %q has shape %s, want %s (-1: any size)", want.Name, shapeString(got), shapeString(want.Shape))
	}
	return nil
}

// elements is the number of elements of a tensor of the given non-negative
// shape, and false if that overflows.
func elements(shape []int64) (uint64, bool) {
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

// fromValue copies an output of ONNX Runtime into a Tensor.
func fromValue(name string, v ortgo.Value) (Tensor, error) {
	t := Tensor{Name: name, Shape: []int64(v.GetShape().Clone())}
	// onnxruntime_go has already copied numeric outputs into Go memory,
	// which stays valid after the value is destroyed.
	switch v := v.(type) {
	case *ortgo.Tensor[float32]:
		t.Datatype, t.Data = "FP32", v.GetData()
	case *ortgo.Tensor[float64]:
		t.Datatype, t.Data = "FP64", v.GetData()
	case *ortgo.Tensor[int8]:
		t.Datatype, t.Data = "INT8", v.GetData()
	case *ortgo.Tensor[int16]:
		t.Datatype, t.Data = "INT16", v.GetData()
	case *ortgo.Tensor[int32]:
		t.Datatype, t.Data = "INT32", v.GetData()
	case *ortgo.Tensor[int64]:
		t.Datatype, t.Data = "INT64", v.GetData()
	case *ortgo.Tensor[uint8]:
		t.Datatype, t.Data = "UINT8", v.GetData()
	case *ortgo.Tensor[uint16]:
		t.Datatype, t.Data = "UINT16", v.GetData()
	case *ortgo.Tensor[uint32]:
		t.Datatype, t.Data = "UINT32", v.GetData()
	case *ortgo.Tensor[uint64]:
		t.Datatype, t.Data = "UINT64", v.GetData()
	case *ortgo.Tensor[bool]:
		t.Datatype, t.Data = "BOOL", v.GetData()
	case *ortgo.StringTensor:
		s, err := v.GetContents()
		if err != nil {
			return Tensor{}, fmt.Errorf("read output %q: %w", name, err)
		}
		t.Datatype, t.Data = "BYTES", s
	default:
		return Tensor{}, forge.Errorf(forge.Invalid, "output %q is a %s value of a type Forge's ONNX runtime does not support", name, v.GetONNXType())
	}
	return t, nil
}
