// Package xgbrt adapts the pure-Go XGBoost evaluator (internal/xgboost) to
// the forge.Runtime contract. A model takes one FP32 input [N, num_feature]
// (FP64 is converted; NaN is a missing value) and returns one FP32 output:
// [N] for one value per row, [N, num_class] for multi:softprob.
package xgbrt

import (
	"bytes"
	"context"
	"io/fs"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/xgboost"
)

// FileName is the model file a version holds.
const FileName = "model.json"

// Default tensor names, used when the registry records none: the same as
// the registry records (Triton FIL's), so a model has one input name
// whichever way it is served.
const (
	InputName  = xgboost.InputName
	OutputName = xgboost.OutputName
)

// Runtime loads XGBoost JSON models.
type Runtime struct{}

var _ forge.Runtime = Runtime{}

// Platform is the name KServe's XGBoost server reports for these models.
func (Runtime) Platform() string { return "xgboost" }

// Load parses model.json. Tensor names come from the recorded signature when
// it has exactly one input and one output, else they are InputName/OutputName.
func (Runtime) Load(ctx context.Context, src forge.ModelSource) (forge.Model, error) {
	b, err := fs.ReadFile(src.Files, FileName)
	if err != nil {
		return nil, forge.WrapError(forge.Invalid, err, "model %s version %s has no readable %s", src.Name, src.Version, FileName)
	}
	m, err := xgboost.Load(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	in, out := InputName, OutputName
	if s := src.Signature; s != nil && len(s.Inputs) == 1 && len(s.Outputs) == 1 {
		in, out = s.Inputs[0].Name, s.Outputs[0].Name
	}
	k := m.OutputsPerRow()
	outShape := []int64{-1}
	if k > 1 {
		outShape = []int64{-1, int64(k)}
	}
	sig := forge.Signature{
		Inputs:   []forge.TensorSpec{{Name: in, Datatype: "FP32", Shape: []int64{-1, int64(m.Info().NumFeature)}}},
		Outputs:  []forge.TensorSpec{{Name: out, Datatype: "FP32", Shape: outShape}},
		AllowNaN: true,
	}
	return &Model{m: m, sig: sig}, nil
}

// Model is a loaded XGBoost model; it holds no resources.
type Model struct {
	m   *xgboost.Model
	sig forge.Signature
}

// Signature returns the model's one input and one output.
func (m *Model) Signature() forge.Signature { return m.sig }

// Infer predicts every row of the input.
func (m *Model) Infer(ctx context.Context, inputs []forge.Tensor) ([]forge.Tensor, error) {
	want := m.sig.Inputs[0]
	if len(inputs) != 1 || inputs[0].Name != want.Name {
		return nil, forge.Errorf(forge.Invalid, "the model takes one input %q %s [-1,%d]", want.Name, want.Datatype, want.Shape[1])
	}
	in := inputs[0]
	nf := want.Shape[1]
	if len(in.Shape) != 2 || in.Shape[1] != nf || in.Shape[0] < 0 {
		return nil, forge.Errorf(forge.Invalid, "input %q has shape %v, want [-1,%d] (-1: any size)", in.Name, in.Shape, nf)
	}
	var rows []float32
	switch d := in.Data.(type) {
	case []float32:
		rows = d
	case []float64:
		// XGBoost itself converts to float32 before walking the trees.
		rows = make([]float32, len(d))
		for i, v := range d {
			rows[i] = float32(v)
		}
	default:
		return nil, forge.Errorf(forge.Invalid, "input %q has datatype %s, want FP32 (or FP64)", in.Name, in.Datatype)
	}
	n := int(in.Shape[0])
	if int64(len(rows)) != in.Shape[0]*nf {
		return nil, forge.Errorf(forge.Invalid, "input %q has shape %v but %d elements", in.Name, in.Shape, len(rows))
	}
	k := m.m.OutputsPerRow()
	out := make([]float32, n*k)
	if err := m.m.Predict(rows, n, out); err != nil {
		return nil, err
	}
	shape := []int64{int64(n)}
	if k > 1 {
		shape = append(shape, int64(k))
	}
	return []forge.Tensor{{Name: m.sig.Outputs[0].Name, Datatype: "FP32", Shape: shape, Data: out}}, nil
}

// Close does nothing: the model is plain Go memory.
func (m *Model) Close() error { return nil }
