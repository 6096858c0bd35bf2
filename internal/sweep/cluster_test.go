package sweep_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
	"github.com/forge-mlops/forge/internal/slurmtest"
)

func TestMain(m *testing.M) { os.Exit(slurmtest.Main(m)) }

// gridTrial logs (x - 0.3)^2 as its loss.
const gridTrial = `
import json, os, sys, urllib.request
x = float(sys.argv[1])
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": (x - 0.3) ** 2, "timestamp": 1, "step": 0}
urllib.request.urlopen(urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})).read()
`

// A grid sweep whose trials are Slurm jobs on a real one-node cluster
// (slurmctld and slurmd from Debian), driven by an in-process server: every
// trial runs as a Slurm job, logs its loss to its own run, and the best is
// the point of least loss.
func TestSweepOnSlurm(t *testing.T) {
	c := slurmtest.Start(t)
	dir, err := os.MkdirTemp("", "forge-sweep-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Addr, cfg.GRPCAddr, cfg.HTTP.DrainDelay = filepath.Join(dir, "data"), "127.0.0.1:0", "", 0
	cfg.Executors = []config.Executor{{Name: "hpc", Kind: config.KindSlurm, Slurm: &config.Slurm{
		SharedDir: filepath.Join(dir, "shared"), Partition: c.Partition, SlurmConf: c.Conf, Poll: 200 * time.Millisecond}}}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- srv.Run(ctx, ready) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	if !strings.HasPrefix(url, "http") {
		url = "http://" + url
	}
	cl := api.NewClient(url, "")
	spec := api.SweepSpec{Name: "slurm-grid", Command: []string{"/usr/bin/python3", "-c", gridTrial, "${x}"},
		Objective: api.SweepObjective{Metric: "loss"}, Algorithm: "grid", Parallel: 2, Executor: "hpc",
		Parameters: map[string]*api.SweepParam{"x": {Values: []any{0, 0.3, 1}}}}
	if _, err := cl.CreateSweep(ctx, spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var sw api.Sweep
	for {
		if sw, err = cl.Sweep(ctx, "slurm-grid"); err != nil {
			t.Fatal(err)
		}
		if sw.State != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweep still running: %+v", sw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sw.State != "finished" || len(sw.Trials) != 3 || sw.Best == nil || sw.Best.Params["x"] != "0.3" || *sw.Best.Value != 0 {
		t.Fatalf("sweep: %+v", sw)
	}
	for _, tr := range sw.Trials {
		j, err := cl.Job(ctx, tr.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if tr.State != "complete" || j.Executor != "hpc" || j.State != "succeeded" {
			t.Errorf("trial %d: %s, job on %q %s; want complete, a succeeded Slurm job", tr.Number, tr.State, j.Executor, j.State)
		}
	}
}
