package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
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
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("MLflow's server exited before it was ready: %v (are its Debian packages installed? see its README)", err)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := hc.Get(p.URL + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
	}
	p.stop()
	return nil, errors.New("MLflow's server not ready after 2 minutes")
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
