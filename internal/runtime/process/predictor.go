package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/procenv"
)

// Restart backoff: the first restart comes quickly, a predictor that keeps
// dying is retried less and less often, and one that ran for a while
// starts from the short delay again.
const (
	minBackoff  = 200 * time.Millisecond
	maxBackoff  = 10 * time.Second
	stableAfter = 30 * time.Second
)

// predictor is one running version: a supervised child process and the
// HTTP client that talks to it.
type predictor struct {
	man           Manifest
	dir           string
	name, version string
	timeout       time.Duration
	grace         time.Duration
	log           *slog.Logger
	sig           forge.Signature
	client        *http.Client

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	sup    chan struct{} // closed when supervise returns; nil until it runs

	mu     sync.Mutex
	base   string // "http://127.0.0.1:PORT" while ready, "" otherwise
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exits
	tail   *tail
	closed bool
}

func (p *predictor) init() {
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.client = &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback only; a proxy from the environment must not apply
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
}

// start runs the command on a fresh port and waits until it answers ready.
func (p *predictor) start(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	prog := p.man.Command[0]
	if strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		prog = filepath.Join(p.dir, prog)
	}
	cmd := exec.Command(prog, p.man.Command[1:]...)
	cmd.Dir = p.dir
	cmd.Env = append(procenv.Base(), // never the server's own environment
		p.man.PortEnv+"="+strconv.Itoa(port),
		"FORGE_MODEL_NAME="+p.name,
		"FORGE_MODEL_VERSION="+p.version)
	for k, v := range p.man.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	t := &tail{}
	cmd.Stdout, cmd.Stderr = t, t
	// Its own process group, so stopping it also stops the workers it forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return forge.WrapError(forge.Invalid, err, "start predictor %q of model %s version %s", p.man.Command[0], p.name, p.version)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		stop(cmd, exited, 0)
		return forge.Errorf(forge.Unavailable, "predictor of model %s version %s was closed while starting", p.name, p.version)
	}
	p.cmd, p.exited, p.tail = cmd, exited, t
	p.mu.Unlock()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.NewTimer(p.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.healthy(ctx, base) {
			p.mu.Lock()
			p.base = base
			p.mu.Unlock()
			p.log.Info("predictor ready", "pid", cmd.Process.Pid, "port", port)
			return nil
		}
		select {
		case <-exited:
			return forge.Errorf(forge.Invalid, "predictor of model %s version %s exited before it was ready (%s); its output ends:\n%s",
				p.name, p.version, cmd.ProcessState, t.String())
		case <-deadline.C:
			stop(cmd, exited, p.grace)
			return forge.Errorf(forge.Invalid, "predictor of model %s version %s was not ready on port %d after %s; its output ends:\n%s",
				p.name, p.version, port, p.timeout, t.String())
		case <-ctx.Done():
			stop(cmd, exited, p.grace)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (p *predictor) healthy(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v2/health/ready", nil)
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	// Read to the end so the connection is reused, not reset.
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200
}

// supervise restarts the predictor each time it exits, until Close.
func (p *predictor) supervise() {
	defer close(p.sup)
	backoff := minBackoff
	p.mu.Lock()
	exited, startedAt := p.exited, time.Now()
	p.mu.Unlock()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-exited:
		}
		p.mu.Lock()
		p.base = ""
		state, out := p.cmd.ProcessState, p.tail.String()
		p.mu.Unlock()
		if time.Since(startedAt) > stableAfter {
			backoff = minBackoff
		}
		p.log.Warn("predictor exited; restarting", "state", state, "in", backoff, "output", out)
		for {
			t := time.NewTimer(backoff)
			select {
			case <-p.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			err := p.start(p.ctx)
			if err == nil {
				break
			}
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("predictor restart failed", "err", err, "next_in", backoff)
		}
		p.mu.Lock()
		exited, startedAt = p.exited, time.Now()
		p.mu.Unlock()
	}
}

// url is the predictor's address, or "" while it is down.
func (p *predictor) url() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base
}

// Close stops the predictor (SIGTERM, then SIGKILL after the grace
// period) and removes its working folder.
func (p *predictor) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.base = ""
	p.mu.Unlock()
	p.cancel()
	if p.sup != nil {
		<-p.sup // after this no start runs, so cmd is the last one
	}
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd != nil {
		stop(cmd, exited, p.grace)
	}
	p.client.CloseIdleConnections()
	return os.RemoveAll(p.dir)
}

// stop asks the process group to exit and kills it after grace.
func stop(cmd *exec.Cmd, exited chan struct{}, grace time.Duration) {
	pid := cmd.Process.Pid
	select {
	case <-exited:
		syscall.Kill(-pid, syscall.SIGKILL) // workers it left behind
		return
	default:
	}
	if grace > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
			syscall.Kill(-pid, syscall.SIGKILL)
			return
		case <-t.C:
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-exited
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last bytes a predictor wrote, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4096

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// modelURL is the predictor's address for this model, plus suffix.
func (p *predictor) modelURL(base, suffix string) string {
	return base + "/v2/models/" + url.PathEscape(p.man.Model) + suffix
}

var errDown = errors.New("predictor is restarting")
