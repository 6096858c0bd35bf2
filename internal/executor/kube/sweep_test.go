package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/kubetest"
	"github.com/forge-mlops/forge/internal/server"
)

// sweepTrial logs (x - 0.3)^2 as its loss.
const sweepTrial = `
import json, os, sys, urllib.request
x = float(sys.argv[1])
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": (x - 0.3) ** 2, "timestamp": 1, "step": 0}
urllib.request.urlopen(urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})).read()
`

// A grid sweep whose trials are Kubernetes Jobs on the test cluster (a real
// kube-apiserver, kubetest's kubelet running the pods here, this binary as
// the pods' forge), driven by an in-process server configured with a
// kubernetes executor through a kubeconfig file: every trial is a succeeded
// job on that executor, logs its loss, and the best is the least.
func TestSweepOnKubernetes(t *testing.T) {
	rc := kubetest.Config(t)
	ns := kubetest.Namespace(t, rc)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kubetest.StartKubelet(t, rc, kubetest.KubeletConfig{Namespace: ns, Commands: map[string]string{"forge": self},
		Env: []string{"FORGE_KUBETEST_FORGE=1"}})
	dir, err := os.MkdirTemp("", "forge-sweep-kube-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: t, user: {token: %q}}]
contexts: [{name: t, context: {cluster: t, user: t, namespace: %q}}]
current-context: t
`, rc.Host, rc.BearerToken, ns)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	// The pods reach the server at its address, known before it starts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := config.Default()
	cfg.DataDir, cfg.Addr, cfg.GRPCAddr, cfg.HTTP.DrainDelay = filepath.Join(dir, "data"), addr, "", 0
	cfg.Executors = []config.Executor{{Name: "k8s", Kind: config.KindKubernetes, Kubernetes: &config.Kubernetes{
		Kubeconfig: kubeconfig, Namespace: ns, Image: "busybox", ForgeImage: "forge:test", ServerURL: "http://" + addr}}}
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
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	cl := api.NewClient("http://"+addr, "")
	spec := api.SweepSpec{Name: "kube-grid", Command: []string{"/usr/bin/python3", "-c", sweepTrial, "${x}"},
		Objective: api.SweepObjective{Metric: "loss"}, Algorithm: "grid", Parallel: 2, Executor: "k8s",
		Parameters: map[string]*api.SweepParam{"x": {Values: []any{0, 0.3, 1}}}}
	if _, err := cl.CreateSweep(ctx, spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var sw api.Sweep
	for {
		if sw, err = cl.Sweep(ctx, "kube-grid"); err != nil {
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
		for _, tr := range sw.Trials {
			j, _ := cl.Job(ctx, tr.JobID)
			t.Logf("trial %d: %s %q; job %s %s %q", tr.Number, tr.State, tr.Message, j.State, j.Reason, j.Message)
		}
		t.Fatalf("sweep: %s %q, %d trials, best %+v", sw.State, sw.Message, len(sw.Trials), sw.Best)
	}
	for _, tr := range sw.Trials {
		j, err := cl.Job(ctx, tr.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if tr.State != "complete" || j.Executor != "k8s" || j.State != "succeeded" {
			t.Errorf("trial %d: %s, job on %q %s; want complete, a succeeded Kubernetes job", tr.Number, tr.State, j.Executor, j.State)
		}
	}
}
