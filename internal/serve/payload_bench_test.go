package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func cpuTime() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// BenchmarkPayloadLog is the serving benchmark's single-row REST request
// to a deployment's route, with its payload log off and at 10%, the log
// writing real dataset versions (SQLite, local blobs, DuckDB). Besides
// req/s it reports the process's CPU per request (the log's writer and
// DuckDB included), the figure that bounds throughput on a busy machine.
func BenchmarkPayloadLog(b *testing.B) {
	blobs, err := blob.NewLocal(filepath.Join(b.TempDir(), "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1, MemoryLimit: "512MB"})
	if err != nil {
		b.Fatal(err)
	}
	svc := datasets.New(sqlstoretest.OpenSQLite(b), blobs, eng, datasets.Options{TempDir: b.TempDir()}, nil)
	s := New(Options{Runtimes: runtimes(b), Payload: PayloadOptions{Datasets: svc, Engine: eng, TempDir: b.TempDir()}},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	defer s.Close()
	dir := repo(b, map[string]string{"mlp/1": "mlp.onnx"})
	if err := s.Load(context.Background(), src(dir, "mlp", "1"), LoadOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := s.Route("mlp-api", []Target{{Model: "mlp", Version: "1", Weight: 100}}); err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	httpapi.Mount(mux, s.Routes())
	hs := httptest.NewServer(mux)
	defer hs.Close()
	for _, rate := range []float64{0, 0.1} {
		b.Run(fmt.Sprintf("rate%g", rate), func(b *testing.B) {
			if rate > 0 {
				s.SetRoutePayloads("mlp-api", &RoutePayloads{Rate: rate, Dataset: "payloads.mlp-api", Columns: []string{"a", "b", "c", "d"}})
			} else {
				s.SetRoutePayloads("mlp-api", nil)
			}
			c0 := cpuTime()
			load(b, hs.URL+"/v2/models/mlp-api/infer", singleRow, 16)
			s.FlushPayloads() // the log's work is part of the cost
			b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu_us/req")
		})
	}
}
