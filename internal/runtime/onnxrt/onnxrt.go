// Package onnxrt adapts ONNX Runtime sessions (internal/ort) to the
// forge.Runtime contract: a version's model.onnx becomes a forge.Model.
package onnxrt

import (
	"context"
	"fmt"
	"io/fs"
	"slices"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/onnx"
	"github.com/forge-mlops/forge/internal/ort"
)

// FileName is the model file a version holds.
const FileName = "model.onnx"

// Runtime loads ONNX models. The ONNX Runtime library is opened on the first
// Load, so a server without ONNX models never needs it, and a missing
// library fails only the ONNX models, with a message saying how to fetch it.
type Runtime struct {
	lib  string
	opts ort.Options
}

var _ forge.Runtime = (*Runtime)(nil)

// New returns a runtime that uses the ONNX Runtime library at lib.
func New(lib string, opts ort.Options) *Runtime { return &Runtime{lib: lib, opts: opts} }

// Platform is Triton's name for ONNX Runtime models.
func (*Runtime) Platform() string { return "onnxruntime_onnx" }

// Load reads model.onnx, checks it against the recorded signature if any,
// and creates its session.
func (r *Runtime) Load(ctx context.Context, src forge.ModelSource) (forge.Model, error) {
	if err := ort.Init(r.lib); err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(src.Files, FileName)
	if err != nil {
		return nil, forge.WrapError(forge.Invalid, err, "model %s version %s has no readable %s", src.Name, src.Version, FileName)
	}
	sig, err := onnx.ParseSignature(b)
	if err != nil {
		return nil, err
	}
	fsig := convertSignature(sig)
	if src.Signature != nil {
		if err := agree(*src.Signature, fsig); err != nil {
			return nil, err
		}
	}
	s, err := ort.Load(b, sig, r.opts)
	if err != nil {
		return nil, err
	}
	return &Model{s: s, sig: fsig}, nil
}

func convertSignature(sig onnx.Signature) forge.Signature {
	conv := func(ts []onnx.Tensor) []forge.TensorSpec {
		out := make([]forge.TensorSpec, len(ts))
		for i, t := range ts {
			out[i] = forge.TensorSpec{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	return forge.Signature{Inputs: conv(sig.Inputs), Outputs: conv(sig.Outputs)}
}

// agree checks that the signature recorded in the registry names the same
// tensors as the graph: a mismatch means the wrong file was registered.
func agree(recorded, graph forge.Signature) error {
	names := func(ts []forge.TensorSpec) []string {
		var n []string
		for _, t := range ts {
			n = append(n, t.Name+":"+t.Datatype)
		}
		slices.Sort(n)
		return n
	}
	if len(recorded.Inputs) > 0 && !slices.Equal(names(recorded.Inputs), names(graph.Inputs)) {
		return forge.Errorf(forge.Invalid, "the recorded signature's inputs %v differ from the model's %v", names(recorded.Inputs), names(graph.Inputs))
	}
	if len(recorded.Outputs) > 0 && !slices.Equal(names(recorded.Outputs), names(graph.Outputs)) {
		return forge.Errorf(forge.Invalid, "the recorded signature's outputs %v differ from the model's %v", names(recorded.Outputs), names(graph.Outputs))
	}
	return nil
}

// Model is a loaded ONNX model.
type Model struct {
	s   *ort.Session
	sig forge.Signature
}

// Signature returns the graph's inputs and outputs.
func (m *Model) Signature() forge.Signature { return m.sig }

// Infer runs the session. ONNX Runtime's Run cannot be interrupted, so ctx
// is only checked before it starts.
func (m *Model) Infer(ctx context.Context, inputs []forge.Tensor) ([]forge.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.s.Run(inputs)
}

// Close frees the session once Runs in progress finish.
func (m *Model) Close() error {
	if err := m.s.Close(); err != nil {
		return fmt.Errorf("close ONNX model: %w", err)
	}
	return nil
}
