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
	return StartEnv(ctx, bin, nil, extra...)
}

// StartEnv is Start with env added to this process's environment (e.g. a
// TeamState's).
func StartEnv(ctx context.Context, bin string, env []string, extra ...string) (*Proc, error) {
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
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &Proc{URL: "http://" + addr, cmd: cmd, dir: dir, waitc: exited}
	switch err := WaitReady(ctx, p.URL+"/readyz", exited, 30*time.Second, 20*time.Millisecond); {
	case errors.Is(err, ErrExited):
		os.RemoveAll(dir)
		return nil, fmt.Errorf("forge server %w", err)
	case err != nil:
		p.Stop()
		return nil, fmt.Errorf("forge server: %w", err)
	}
	return p, nil
}

// ErrExited is WaitReady's error for a process that ended before it was ready.
var ErrExited = errors.New("exited before it was ready")

// WaitReady polls url every poll until it answers 200, the process whose
// Wait result arrives on exited ends (ErrExited, with its exit error), ctx
// ends, or timeout passes.
func WaitReady(ctx context.Context, url string, exited <-chan error, timeout, poll time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", ErrExited, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("not ready after %s", timeout)
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
