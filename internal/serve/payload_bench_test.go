package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
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

// payloadBench is the serving benchmark's server with the mlp model on
// route mlp-api, its payload log writing real dataset versions (SQLite,
// local blobs, DuckDB).
func payloadBench(b *testing.B) (*Server, string) {
	blobs, err := blob.NewLocal(filepath.Join(b.TempDir(), "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1, MemoryLimit: "512MB"})
	if err != nil {
		b.Fatal(err)
	}
	svc := datasets.New(sqlstoretest.OpenSQLite(b), blobs, eng, datasets.Options{TempDir: b.TempDir()}, nil)
	// Flushes come every 10,000 rows, never from the clock, so that each
	// one falls in a logging segment.
	s := New(Options{Runtimes: runtimes(b), Payload: PayloadOptions{Datasets: svc, Engine: eng, TempDir: b.TempDir(), FlushInterval: time.Hour}},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	b.Cleanup(func() { s.Close() })
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
	b.Cleanup(hs.Close)
	return s, hs.URL + "/v2/models/mlp-api/infer"
}

// BenchmarkPayloadLog is the serving benchmark's single-row REST request
// to a deployment's route, with its payload log off and at 10%. Besides
// req/s it reports the process's CPU per request (the log's writer and
// DuckDB included), the figure that bounds throughput on a busy machine.
func BenchmarkPayloadLog(b *testing.B) {
	s, url := payloadBench(b)
	for _, rate := range []float64{0, 0.1} {
		b.Run(fmt.Sprintf("rate%g", rate), func(b *testing.B) {
			setRate(s, rate)
			c0 := cpuTime()
			load(b, url, singleRow, 16)
			s.FlushPayloads() // the log's work is part of the cost
			b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu_us/req")
		})
	}
}

func setRate(s *Server, rate float64) {
	if rate > 0 {
		s.SetRoutePayloads("mlp-api", &RoutePayloads{Rate: rate, Dataset: "payloads.mlp-api", Columns: []string{"a", "b", "c", "d"}})
	} else {
		s.SetRoutePayloads("mlp-api", nil)
	}
}

// BenchmarkPayloadLogRounds measures the log's cost on a noisy machine:
// rounds of two segments of 100,000 requests (16 connections), one with
// the log off and one at 10% (about one 10,000-row flush, written before
// the segment ends), in alternating order (off-on, on-off, ...), in one
// run. Each round's overhead is its logging segment's CPU per request
// over its other segment's, and its throughput loss likewise; the
// benchmark reports their medians and ranges over the rounds.
// Run with -benchtime 1x (-rounds: FORGE_PAYLOAD_ROUNDS, default 6).
func BenchmarkPayloadLogRounds(b *testing.B) {
	s, url := payloadBench(b)
	rounds := 6
	if v, err := strconv.Atoi(os.Getenv("FORGE_PAYLOAD_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	const n, conns = 100_000, 16
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	segment := func(rate float64) (cpuPerReq, rps float64) {
		setRate(s, rate)
		c0, t0 := cpuTime(), time.Now()
		var wg sync.WaitGroup
		for c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < n; i += conns {
					resp, err := client.Post(url, "application/json", bytes.NewReader(singleRow))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		s.FlushPayloads() // the log's work is part of the cost
		return float64((cpuTime() - c0).Microseconds()) / n, n / time.Since(t0).Seconds()
	}
	segment(0) // warm up
	var cpuOver, rpsLoss []float64
	for r := range rounds {
		var off, on [2]float64
		if r%2 == 0 {
			off[0], off[1] = segment(0)
			on[0], on[1] = segment(0.1)
		} else {
			on[0], on[1] = segment(0.1)
			off[0], off[1] = segment(0)
		}
		cpuOver = append(cpuOver, 100*(on[0]/off[0]-1))
		rpsLoss = append(rpsLoss, 100*(1-on[1]/off[1]))
		b.Logf("round %d: off %.1f us CPU/req %.0f req/s; 10%% %.1f us CPU/req %.0f req/s", r+1, off[0], off[1], on[0], on[1])
	}
	slices.Sort(cpuOver)
	slices.Sort(rpsLoss)
	med := func(x []float64) float64 {
		if len(x)%2 == 1 {
			return x[len(x)/2]
		}
		return (x[len(x)/2-1] + x[len(x)/2]) / 2
	}
	b.ReportMetric(med(cpuOver), "cpu_over_%_median")
	b.ReportMetric(cpuOver[0], "cpu_over_%_min")
	b.ReportMetric(cpuOver[len(cpuOver)-1], "cpu_over_%_max")
	b.ReportMetric(med(rpsLoss), "rps_loss_%_median")
	b.ReportMetric(rpsLoss[0], "rps_loss_%_min")
	b.ReportMetric(rpsLoss[len(rpsLoss)-1], "rps_loss_%_max")
}
