// Package runtimetest is the conformance suite of the forge.Runtime
// contract. Every runtime (onnxrt, xgbrt, process) runs Run from its own
// tests; a new runtime is done when it passes the same suite.
package runtimetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge"
)

// Case is one runtime with one model it can load.
type Case struct {
	Runtime forge.Runtime
	// Platform is what Runtime.Platform must say.
	Platform string
	// Source is a loadable version without a recorded signature, as
	// `forge serve --model-repo` loads it.
	Source forge.ModelSource
	// Recorded is the signature the registry records for the same files
	// (nil when it records none): loaded with it, the model must report
	// the same signature as without, so a model has the same tensor names
	// whichever way it is served.
	Recorded *forge.Signature
	// Want is the signature the loaded model reports.
	Want forge.Signature
	// Inputs returns a valid request of n rows.
	Inputs func(n int) []forge.Tensor
	// Check, if set, verifies the outputs for Inputs(n).
	Check func(t *testing.T, n int, outs []forge.Tensor)
}

// Run checks the contract: platform, refusal of a version without its
// model file, metadata and naming, outputs in signature order, Invalid on
// bad input, concurrent use, and close.
func Run(t *testing.T, c Case) {
	ctx := context.Background()
	load := func(t *testing.T, src forge.ModelSource) forge.Model {
		t.Helper()
		m, err := c.Runtime.Load(ctx, src)
		if err != nil {
			t.Fatalf("load %s/%s: %v", src.Name, src.Version, err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}

	t.Run("Platform", func(t *testing.T) {
		if got := c.Runtime.Platform(); got != c.Platform {
			t.Errorf("platform %q, want %q", got, c.Platform)
		}
	})

	t.Run("NoModelFile", func(t *testing.T) {
		src := forge.ModelSource{Name: c.Source.Name, Version: "9", Files: fstest.MapFS{"README": {Data: []byte("no model here")}}}
		m, err := c.Runtime.Load(ctx, src)
		if err == nil {
			m.Close()
			t.Fatal("a version without its model file loaded")
		}
		if !forge.IsKind(err, forge.Invalid) {
			t.Errorf("error %v, want Invalid", err)
		}
	})

	t.Run("Metadata", func(t *testing.T) {
		m := load(t, c.Source)
		if d := cmp.Diff(c.Want, m.Signature()); d != "" {
			t.Errorf("signature without a recorded one (-want +got):\n%s", d)
		}
		for _, ts := range append(m.Signature().Inputs, m.Signature().Outputs...) {
			if ts.Name == "" || ts.Datatype == "" {
				t.Errorf("tensor %+v lacks a name or datatype", ts)
			}
		}
		if c.Recorded == nil {
			return
		}
		src := c.Source
		src.Version += "-recorded"
		src.Signature = c.Recorded
		if d := cmp.Diff(c.Want, load(t, src).Signature()); d != "" {
			t.Errorf("signature with the registry's (-want +got):\n%s", d)
		}
	})

	t.Run("Infer", func(t *testing.T) {
		m := load(t, c.Source)
		for _, n := range []int{1, 3} {
			outs, err := m.Infer(ctx, c.Inputs(n))
			if err != nil {
				t.Fatalf("infer %d rows: %v", n, err)
			}
			checkOutputs(t, m.Signature(), n, outs)
			if c.Check != nil {
				c.Check(t, n, outs)
			}
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		m := load(t, c.Source)
		good := c.Inputs(2)
		bad := map[string][]forge.Tensor{
			"no inputs":     nil,
			"unknown name":  with(good, func(x *forge.Tensor) { x.Name = "no_such_input" }),
			"given twice":   append(clone(good), clone(good)[0]),
			"wrong rank":    with(good, func(x *forge.Tensor) { x.Shape = []int64{int64(dataLenOf(x.Data))} }),
			"wrong width":   with(good, func(x *forge.Tensor) { x.Shape = append([]int64{1}, x.Shape[1:]...); x.Shape[len(x.Shape)-1]++ }),
			"short data":    with(good, func(x *forge.Tensor) { x.Shape = append([]int64{3}, x.Shape[1:]...) }),
			"wrong type":    with(good, func(x *forge.Tensor) { x.Datatype, x.Data = "INT8", make([]int8, dataLenOf(x.Data)) }),
			"negative rows": with(good, func(x *forge.Tensor) { x.Shape = append([]int64{-2}, x.Shape[1:]...) }),
		}
		for what, in := range bad {
			if _, err := m.Infer(ctx, in); !forge.IsKind(err, forge.Invalid) {
				t.Errorf("%s: error %v, want Invalid", what, err)
			}
		}
		// A refusal leaves the model working.
		if _, err := m.Infer(ctx, good); err != nil {
			t.Errorf("infer after refusals: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		m := load(t, c.Source)
		want, err := m.Infer(ctx, c.Inputs(4))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 8 {
			wg.Go(func() {
				for range 8 {
					got, err := m.Infer(ctx, c.Inputs(4))
					if err != nil {
						errs <- fmt.Errorf("goroutine %d: %w", g, err)
						return
					}
					if d := cmp.Diff(want, got); d != "" {
						errs <- fmt.Errorf("goroutine %d: outputs differ (-first +this):\n%s", g, d)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Close", func(t *testing.T) {
		m, err := c.Runtime.Load(ctx, c.Source)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		// The same version loads again once closed: close frees whatever
		// the first load held (ports, sessions, working folders).
		again := load(t, c.Source)
		if _, err := again.Infer(ctx, c.Inputs(1)); err != nil {
			t.Errorf("infer after reload: %v", err)
		}
	})
}

// checkOutputs: every output, in signature order, with its datatype, n rows
// where the signature has a batch dimension, and data matching the shape.
func checkOutputs(t *testing.T, sig forge.Signature, n int, outs []forge.Tensor) {
	t.Helper()
	if len(outs) != len(sig.Outputs) {
		t.Fatalf("%d outputs, signature has %d", len(outs), len(sig.Outputs))
	}
	for i, o := range outs {
		want := sig.Outputs[i]
		if o.Name != want.Name || o.Datatype != want.Datatype {
			t.Errorf("output %d is %q %s, want %q %s", i, o.Name, o.Datatype, want.Name, want.Datatype)
		}
		if len(want.Shape) > 0 && want.Shape[0] == -1 && (len(o.Shape) == 0 || o.Shape[0] != int64(n)) {
			t.Errorf("output %q has shape %v for %d rows", o.Name, o.Shape, n)
		}
		size := int64(1)
		for _, d := range o.Shape {
			size *= d
		}
		if int64(dataLenOf(o.Data)) != size {
			t.Errorf("output %q has shape %v and %d elements", o.Name, o.Shape, dataLenOf(o.Data))
		}
	}
}

func clone(ts []forge.Tensor) []forge.Tensor {
	out := make([]forge.Tensor, len(ts))
	for i, x := range ts {
		x.Shape = append([]int64(nil), x.Shape...)
		out[i] = x
	}
	return out
}

// with returns a copy of ts whose first tensor is changed by f.
func with(ts []forge.Tensor, f func(*forge.Tensor)) []forge.Tensor {
	out := clone(ts)
	f(&out[0])
	return out
}

func dataLenOf(data any) int {
	switch d := data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []bool:
		return len(d)
	case []string:
		return len(d)
	}
	return -1
}
