package deploy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func errorAs(err error, target any) bool { return err != nil && errors.As(err, target) }

// replica runs a stateless inference server that follows p over HTTP, as
// `forge serve --server` does.
func replica(t *testing.T, p *plane) (string, *Controller) {
	t.Helper()
	return replicaOf(t, &Remote{Client: api.NewClient(p.url, ""), CacheDir: t.TempDir(), Log: discard()})
}

// replicaOf runs a replica over src.
func replicaOf(t *testing.T, src *Remote) (string, *Controller) {
	t.Helper()
	srv := newServer()
	c := NewController(src, srv, discard())
	mux := http.NewServeMux()
	httpapi.Mount(mux, srv.Routes())
	hs := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; hs.Close(); srv.Close() })
	return hs.URL, c
}

// TestReplicasFollowServer: two replicas give the same answers as the
// server, follow an alias move, and drop a deleted deployment.
func TestReplicasFollowServer(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		p.register(t, "reg", "xgb_regression.json", shift, "")
		ctx := context.Background()
		if err := p.reg.SetAlias(ctx, "reg", "prod", 1); err != nil {
			t.Fatal(err)
		}
		p.deploy(t, "live", api.DeploymentSpec{Model: "reg", Ref: "prod"})
		r1, c1 := replica(t, p)
		r2, _ := replica(t, p)
		eventually(t, "replica readiness", c1.Ready)
		for _, base := range []string{p.url, r1, r2} {
			eventually(t, "replica serving live", func() bool { _, err := infer(http.DefaultClient, base, "live"); return err == nil })
		}
		want, _ := infer(http.DefaultClient, p.url, "live")
		for _, base := range []string{r1, r2} {
			got, err := infer(http.DefaultClient, base, "live")
			if err != nil || got != want {
				t.Fatalf("replica %s answered %v (%v), server %v", base, got, err, want)
			}
		}
		if err := p.reg.SetAlias(ctx, "reg", "prod", 2); err != nil {
			t.Fatal(err)
		}
		for _, base := range []string{r1, r2} {
			eventually(t, "replica to follow the alias", func() bool {
				y, err := infer(http.DefaultClient, base, "live")
				return err == nil && version(y) == 2
			})
		}
		p.deploy(t, "pinned", api.DeploymentSpec{Model: "reg", Ref: "1"})
		eventually(t, "replica to serve a new deployment", func() bool {
			y, err := infer(http.DefaultClient, r1, "pinned")
			return err == nil && version(y) == 1
		})
		if err := p.api.DeleteDeployment(ctx, "pinned"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "replica to drop a deleted deployment", func() bool {
			_, err := infer(http.DefaultClient, r1, "pinned")
			return err != nil
		})
	})
}

// TestPythonClient calls a deployment with a standard-library Python client.
func TestPythonClient(t *testing.T) {
	p := start(t, nil, nil)
	p.register(t, "reg", "xgb_regression.json", 0, "")
	p.deploy(t, "py", api.DeploymentSpec{Model: "reg"})
	out, err := exec.Command("/usr/bin/python3", "testdata/infer_client.py", p.url, "py",
		"../../testdata/models/xgb_regression.reference.json").CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestServeBinary builds forge and runs `forge serve --server` as its own
// process against the in-process server: not ready until it has loaded the
// deployments, then answering as the server does.
func TestServeBinary(t *testing.T) {
	p := start(t, nil, nil)
	p.register(t, "reg", "xgb_regression.json", 0, "")
	p.deploy(t, "live", api.DeploymentSpec{Model: "reg", MaxBatchSize: 4})
	bin := filepath.Join(t.TempDir(), "forge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/forge-mlops/forge/cmd/forge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "--server", p.url, "--addr", addr, "--grpc-addr", "", "--cache-dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	base := "http://" + addr
	eventually(t, "forge serve --server to be ready", func() bool {
		resp, err := http.Get(base + "/v2/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	want, err := infer(http.DefaultClient, p.url, "live")
	if err != nil {
		t.Fatal(err)
	}
	got, err := infer(http.DefaultClient, base, "live")
	if err != nil || got != want || version(got) != 1 {
		t.Fatalf("forge serve --server answered %v (%v), the server %v\n%s", got, err, want, logs.String())
	}
}
