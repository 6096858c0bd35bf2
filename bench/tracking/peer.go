package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/forge-mlops/forge/bench/forgeproc"
)

// peer is the real MLflow 2.12.2 server (../shared/peers/mlflow-2.12.2,
// server.sh: SQLite backend, artifact proxy, gunicorn), run beside Forge so
// that the ratios are measured in the same run, never recorded ones.
type peer struct {
	URL    string
	cmd    *exec.Cmd
	dir    string
	exited <-chan error
}

func startPeer(ctx context.Context, peerDir string, workers int) (*peer, error) {
	script := filepath.Join(peerDir, "server.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("-mlflow %s: %w (the MLflow 2.12.2 peer; see its README)", peerDir, err)
	}
	dir, err := os.MkdirTemp("", "mlflow-bench-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(script, strconv.Itoa(port), filepath.Join(dir, "data"), strconv.Itoa(workers))
	cmd.Stdout, cmd.Stderr = nil, nil // gunicorn's access log is noise here
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := &peer{URL: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd, dir: dir, exited: exited}
	switch err := forgeproc.WaitReady(ctx, p.URL+"/health", exited, 2*time.Minute, 100*time.Millisecond); {
	case errors.Is(err, forgeproc.ErrExited):
		os.RemoveAll(dir)
		return nil, fmt.Errorf("MLflow's server %w (are its Debian packages installed? see its README)", err)
	case err != nil:
		p.stop()
		return nil, fmt.Errorf("MLflow's server: %w", err)
	}
	return p, nil
}

// stop sends SIGTERM to server.sh, which stops its gunicorn workers, then
// removes the data dir.
func (p *peer) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	os.RemoveAll(p.dir)
}
