package xgboost

import (
	"path/filepath"
	"slices"
	"testing"
)

// BenchmarkPredict100Trees measures one core on a binary:logistic model of
// 100 trees of depth 6, on rows with a few NaNs, in batches of 1000 rows.
func BenchmarkPredict100Trees(b *testing.B) {
	ref := loadReference(b, filepath.Join(modelDir, "xgb_bench_100x6.reference.json"))
	m := loadModel(b, ref.Model)
	if n, d := m.Info().NumTrees, slices.Max(m.depths); n != 100 || d != 6 {
		b.Fatalf("%d trees of depth up to %d, want 100 of depth 6", n, d)
	}
	const batch = 1000
	var rows []float32
	for len(rows) < batch*m.Info().NumFeature {
		rows = append(rows, flatten(ref.Inputs)...)
	}
	rows = rows[:batch*m.Info().NumFeature]
	out := make([]float32, batch)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Predict(rows, batch, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkLoad100Trees(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		loadModel(b, "xgb_bench_100x6.json")
	}
}
