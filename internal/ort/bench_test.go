package ort

import (
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"
)

// BenchmarkRunBatch1 measures what the wrapper adds to a call: "wrapper" is
// Session.Run, "direct" is onnxruntime_go's Run on the same C session with the
// tensor creation and cleanup any caller needs. The difference is the
// wrapper's overhead (validation, reordering, output conversion).
func BenchmarkRunBatch1(b *testing.B) {
	s := loadFile(b, mlpPath, Options{IntraOpThreads: 1})
	x := []float32{5.1, 3.5, 1.4, 0.2}

	b.Run("wrapper", func(b *testing.B) {
		in := []Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4}, Data: x}}
		b.ReportAllocs()
		for b.Loop() {
			out, err := s.Run(in)
			if err != nil {
				b.Fatal(err)
			}
			if len(out[0].Data.([]float32)) != 3 {
				b.Fatal("wrong output size")
			}
		}
	})

	b.Run("direct", func(b *testing.B) {
		shape := ortgo.NewShape(1, 4)
		b.ReportAllocs()
		for b.Loop() {
			in, err := ortgo.NewTensor(shape, x)
			if err != nil {
				b.Fatal(err)
			}
			outs := []ortgo.Value{nil}
			if err := s.ortSes.Run([]ortgo.Value{in}, outs); err != nil {
				b.Fatal(err)
			}
			if len(outs[0].(*ortgo.Tensor[float32]).GetData()) != 3 {
				b.Fatal("wrong output size")
			}
			outs[0].Destroy()
			in.Destroy()
		}
	})

	// The floor: tensors made once and reused, as only a caller with fixed
	// shapes can.
	b.Run("direct-preallocated", func(b *testing.B) {
		in, err := ortgo.NewTensor(ortgo.NewShape(1, 4), x)
		if err != nil {
			b.Fatal(err)
		}
		defer in.Destroy()
		out, err := ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, 3))
		if err != nil {
			b.Fatal(err)
		}
		defer out.Destroy()
		ins, outs := []ortgo.Value{in}, []ortgo.Value{out}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.ortSes.Run(ins, outs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
