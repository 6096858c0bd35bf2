package serve

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// TestPayloadLog: with a sample rate of 1, every request row lands in the
// model's dataset (one version per flush), one column per tensor element;
// a version loaded with rate 0 logs nothing. On SQLite and PostgreSQL.
// TestMain stops the PostgreSQL cluster the payload tests start.
func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

func TestPayloadLog(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		blobs, err := blob.NewLocal(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1, MemoryLimit: "512MB"})
		if err != nil {
			t.Fatal(err)
		}
		svc := datasets.New(db, blobs, eng, datasets.Options{TempDir: t.TempDir()}, nil)
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		s := New(Options{Runtimes: runtimes(t), Payload: PayloadOptions{Datasets: svc, Engine: eng, SampleRate: 1, TempDir: t.TempDir()}}, log, prometheus.NewRegistry())
		t.Cleanup(func() { s.Close() })
		ctx := context.Background()
		dir := repo(t, map[string]string{"mlp/1": "mlp.onnx", "quiet/1": "mlp.onnx"})
		if err := s.Load(ctx, src(dir, "mlp", "1"), LoadOptions{}); err != nil {
			t.Fatal(err)
		}
		zero := 0.0
		if err := s.Load(ctx, src(dir, "quiet", "1"), LoadOptions{PayloadSampleRate: &zero}); err != nil {
			t.Fatal(err)
		}
		two := []float32{5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3}
		for _, name := range []string{"mlp", "quiet"} {
			for _, rows := range []int64{2, 1} {
				req := &Request{ID: "r", Inputs: []forge.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{rows, 4}, Data: two[:rows*4]}}}
				if _, err := s.Infer(ctx, name, "", req); err != nil {
					t.Fatal(err)
				}
			}
		}
		s.FlushPayloads()
		vs, err := svc.Versions(ctx, "payloads.mlp")
		if err != nil || len(vs) != 1 {
			t.Fatalf("payload dataset versions %+v, %v", vs, err)
		}
		if vs[0].Rows != 3 {
			t.Errorf("logged %d rows, want 3 (a 2-row and a 1-row request)", vs[0].Rows)
		}
		var cols []string
		for _, c := range vs[0].Columns {
			cols = append(cols, c.Name)
		}
		want := []string{"timestamp", "model", "version", "request_id", "in_input_0", "in_input_1", "in_input_2", "in_input_3", "out_output_0", "out_output_1", "out_output_2"}
		if !slices.Equal(cols, want) {
			t.Errorf("columns %v, want %v", cols, want)
		}
		if vs, err := svc.Versions(ctx, "payloads.quiet"); err == nil && len(vs) > 0 {
			t.Errorf("the version with sample rate 0 logged %d versions", len(vs))
		}
	})
}

func src(dir, name, ver string) forge.ModelSource {
	return forge.ModelSource{Name: name, Version: ver, Files: os.DirFS(filepath.Join(dir, name, ver))}
}
