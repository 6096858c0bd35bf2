package ort

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Options tunes a Session. Zero values leave ONNX Runtime's defaults.
type Options struct {
	// IntraOpThreads is the size of the thread pool that parallelizes one
	// operator (ONNX Runtime's default: one thread per physical core).
	IntraOpThreads int
	// InterOpThreads is the size of the pool that runs independent
	// operators in parallel; it matters only in parallel execution mode.
	InterOpThreads int
}

// Session is one loaded model. Its methods are safe for concurrent use: all
// goroutines share one ONNX Runtime session, whose Run is thread-safe, rather
// than a session each, which would multiply the model's memory.
type Session struct {
	sig     onnx.Signature
	inputAt map[string]int // index of each input in sig.Inputs

	// mu keeps Close from freeing the C session under a running Run.
	mu     sync.RWMutex
	ortSes *ortgo.DynamicAdvancedSession // nil once closed

	// Kept input and output values by batch size (pool.go): poolable when
	// the signature allows it, unpooled once a run showed this model's
	// outputs do not follow the batch size after all.
	poolable bool
	unpooled atomic.Bool
	pools    pools
}

// Load creates a session for the ONNX model in model, whose signature (from
// onnx.ParseSignature) says what Run accepts and returns. Init must have
// succeeded first.
func Load(model []byte, sig onnx.Signature, opts Options) (*Session, error) {
	if !ortgo.IsInitialized() {
		return nil, errors.New("load ONNX model: ONNX Runtime is not initialized (call ort.Init first)")
	}
	// onnxruntime_go indexes the first input and output name unconditionally.
	if len(sig.Inputs) == 0 {
		return nil, forge.Errorf(forge.Invalid, "the model has no inputs; Forge serves models that take at least one")
	}
	if len(sig.Outputs) == 0 {
		return nil, forge.Errorf(forge.Invalid, "the model has no outputs")
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create ONNX Runtime session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("set intra-op threads: %w", err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, fmt.Errorf("set inter-op threads: %w", err)
		}
	}

	s := &Session{sig: sig, inputAt: make(map[string]int, len(sig.Inputs)), poolable: poolable(sig)}
	inNames := make([]string, len(sig.Inputs))
	for i, t := range sig.Inputs {
		inNames[i] = t.Name
		s.inputAt[t.Name] = i
	}
	outNames := make([]string, len(sig.Outputs))
	for i, t := range sig.Outputs {
		outNames[i] = t.Name
	}
	s.ortSes, err = ortgo.NewDynamicAdvancedSessionWithONNXData(model, inNames, outNames, so)
	if err != nil {
		// The model is what the user uploaded, and ONNX Runtime's reason (an
		// unsupported operator, a bad opset) is what they need to see.
		return nil, forge.Errorf(forge.Invalid, "ONNX Runtime cannot load the model: %v", err)
	}
	return s, nil
}

// Signature returns the signature the session was loaded with.
func (s *Session) Signature() onnx.Signature { return s.sig }

// Close frees the model. It waits for Runs in progress; later Runs fail.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ortSes == nil {
		return nil
	}
	s.pools.drain()
	err := s.ortSes.Destroy()
	s.ortSes = nil
	if err != nil {
		return fmt.Errorf("destroy ONNX Runtime session: %w", err)
	}
	return nil
}

// Run evaluates the model on inputs, one per model input in any order, and
// returns every model output in signature order. Inputs that do not match the
// signature give a forge.Invalid error saying what was expected. The input
// slices are read, never kept or modified.
func (s *Session) Run(inputs []Tensor) ([]Tensor, error) {
	refused := false
	if n, ok := s.batchOf(inputs); ok {
		out, ran, r := s.runPooled(n, inputs)
		if ran {
			return out, nil
		}
		refused = r
	}
	out, err := s.run(inputs)
	if refused && err == nil {
		// The pooled run failed where the general one did not: the outputs
		// do not follow the batch size; stop trying.
		s.unpooled.Store(true)
	}
	return out, err
}

// run is Run with values made for this call and outputs allocated by ONNX
// Runtime.
func (s *Session) run(inputs []Tensor) ([]Tensor, error) {
	values := make([]ortgo.Value, len(s.sig.Inputs))
	defer func() {
		for _, v := range values {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for _, in := range inputs {
		i, ok := s.inputAt[in.Name]
		if !ok {
			return nil, forge.Errorf(forge.Invalid, "unknown input %q; the model's inputs are %s", in.Name, describe(s.sig.Inputs))
		}
		if values[i] != nil {
			return nil, forge.Errorf(forge.Invalid, "input %q is given twice", in.Name)
		}
		v, err := newValue(s.sig.Inputs[i], in)
		if err != nil {
			return nil, err
		}
		values[i] = v
	}
	for i, v := range values {
		if v == nil {
			return nil, forge.Errorf(forge.Invalid, "missing input %s", describe(s.sig.Inputs[i:i+1]))
		}
	}

	outs := make([]ortgo.Value, len(s.sig.Outputs))
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	s.mu.RLock()
	if s.ortSes == nil {
		s.mu.RUnlock()
		return nil, forge.Errorf(forge.Unavailable, "the model has been unloaded")
	}
	err := s.ortSes.Run(values, outs)
	s.mu.RUnlock()
	if err != nil {
		// Inputs have passed every check the signature allows, so what is
		// left is mostly about their values (an index out of range, dynamic
		// dimensions that disagree) and the caller is the one to see it.
		return nil, forge.Errorf(forge.Invalid, "model run failed: %v", err)
	}

	results := make([]Tensor, len(outs))
	for i, v := range outs {
		t, err := fromValue(s.sig.Outputs[i].Name, v)
		if err != nil {
			return nil, err
		}
		results[i] = t
	}
	return results, nil
}

// describe lists tensors as `"input" FP32 [-1,4]`, the form error messages use.
func describe(ts []onnx.Tensor) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q %s %s", t.Name, t.Datatype, shapeString(t.Shape))
	}
	return b.String()
}

func shapeString(shape []int64) string {
	if shape == nil {
		return "[any rank]"
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, d)
	}
	b.WriteByte(']')
	return b.String()
}
