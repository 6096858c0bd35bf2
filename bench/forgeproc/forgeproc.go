// Package forgeproc starts a `forge server` for a benchmark: a built binary
// on a free loopback port and a temp data dir, stopped and removed after.
package forgeproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is a running `forge server`.
type Proc struct {
	URL   string
	cmd   *exec.Cmd
	dir   string
	waitc <-chan error
}

// Start runs `bin server` with extra flags added (e.g. --db) and waits until
// /readyz answers.
func Start(ctx context.Context, bin string, extra ...string) (*Proc, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("-forge %s: %w (build it: go build -o /tmp/forge-bench ./cmd/forge)", bin, err)
	}
	dir, err := os.MkdirTemp("", "forge-bench-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"server", "--data-dir", filepath.Join(dir, "data"), "--addr", addr, "--grpc-addr", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &Proc{URL: "http://" + addr, cmd: cmd, dir: dir, waitc: exited}
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("forge server exited before it was ready: %v", err)
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if resp, err := hc.Get(p.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
	}
	p.Stop()
	return nil, errors.New("forge server not ready after 30s")
}

// DataDir is the server's temp data dir.
func (p *Proc) DataDir() string { return filepath.Join(p.dir, "data") }

// Stop sends SIGTERM, waits for the drain (bounded), and removes the data dir.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.waitc:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.waitc
	}
	os.RemoveAll(p.dir)
}
