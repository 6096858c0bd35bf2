package duckq

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/forge-mlops/forge"
)

// workerHeadroom is what a worker may hold beyond its DuckDB memory_limit
// before the operating system refuses it more: the Go runtime, DuckDB's
// code and thread stacks, and what DuckDB allocates outside its buffer
// manager for a chunk of work.
const workerHeadroom = 512 << 20

// workerStartTimeout bounds how long a new worker may take to say hello.
const workerStartTimeout = 30 * time.Second

// workerPool starts the workers of an isolating Engine and keeps the idle
// ones, at most one per slot of the engine's budget.
type workerPool struct {
	setup   workerSetup
	maxIdle int
	started func(pid int) // for tests: told of each new worker

	mu   sync.Mutex
	idle []*worker
}

func newWorkerPool(b *budget, tempDir string) (*workerPool, error) {
	setup := workerSetup{Memory: b.memory, TempDir: tempDir}
	if b.memory != "" {
		share, err := parseBytes(b.memory)
		if err != nil {
			return nil, err
		}
		setup.DataLimit = uint64(share) + workerHeadroom
	}
	return &workerPool{setup: setup, maxIdle: cap(b.slots)}, nil
}

// get returns an idle worker or starts one.
func (p *workerPool) get(ctx context.Context) (*worker, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	w, err := startWorker(ctx, p.setup)
	if err == nil && p.started != nil {
		p.started(w.cmd.Process.Pid)
	}
	return w, err
}

// put keeps w for the next query, or stops it when enough are idle.
func (p *workerPool) put(w *worker) {
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	w.stop()
}

// close stops the idle workers.
func (p *workerPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		w.stop()
	}
}

// worker is one worker process and its end of the pipes.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	bw     *bufio.Writer
	enc    *gob.Encoder
	dec    *gob.Decoder
	stderr *tailWriter
	exited chan struct{} // closed once the process is reaped
	killed atomic.Bool
}

func startWorker(ctx context.Context, setup workerSetup) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start duckdb worker: %w", err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start duckdb worker: %w", err)
	}
	defer stdoutW.Close()
	w := &worker{cmd: exec.Command(exe), stderr: &tailWriter{max: 4 << 10}, exited: make(chan struct{})}
	w.cmd.Env = append(os.Environ(), workerEnv+"=1")
	w.cmd.Stdout = stdoutW
	w.cmd.Stderr = w.stderr
	// The worker dies with the server; it also stops when its stdin closes.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		stdoutR.Close()
		return nil, fmt.Errorf("start duckdb worker: %w", err)
	}
	if err := w.cmd.Start(); err != nil {
		stdoutR.Close()
		return nil, fmt.Errorf("start duckdb worker: %w", err)
	}
	go func() {
		w.cmd.Wait()
		stdoutR.Close()
		close(w.exited)
	}()
	w.bw = bufio.NewWriter(w.stdin)
	w.enc = gob.NewEncoder(w.bw)
	w.dec = gob.NewDecoder(bufio.NewReader(stdoutR))

	ctx, cancel := context.WithTimeout(ctx, workerStartTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, w.kill)
	var hello workerReply
	err = w.dec.Decode(&hello)
	if !stop() || err != nil || hello.Hello != workerHello {
		w.kill()
		<-w.exited
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("start duckdb worker: %w", ctx.Err())
		}
		return nil, fmt.Errorf("start duckdb worker %s: no greeting (%v)%s", exe, err, w.stderr.suffix())
	}
	if err := w.send(setup); err != nil {
		w.kill()
		<-w.exited
		return nil, fmt.Errorf("start duckdb worker: %w%s", err, w.stderr.suffix())
	}
	return w, nil
}

func (w *worker) send(v any) error {
	if err := w.enc.Encode(v); err != nil {
		return err
	}
	return w.bw.Flush()
}

// kill ends the process at once; the query it ran, if any, is lost.
func (w *worker) kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	w.killed.Store(true)
	w.cmd.Process.Kill()
}

// stop ends an idle worker: closing its stdin makes it exit.
func (w *worker) stop() {
	w.stdin.Close()
	go func() {
		select {
		case <-w.exited:
		case <-time.After(5 * time.Second):
			w.kill()
		}
	}()
}

// death explains why a worker's pipe broke while it ran a query.
func (w *worker) death(doing, memory string) error {
	<-w.exited
	state := w.cmd.ProcessState.String() + w.stderr.suffix()
	ws, _ := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if memory == "" || !(ws.Signaled() || strings.Contains(state, "out of memory")) {
		return forge.Errorf(forge.Unavailable, "%s: the query's worker process stopped (%s)", doing, state)
	}
	return forge.Errorf(forge.Unavailable,
		"%s: the query's worker process stopped (%s): the query may need more memory than its share (%s)",
		doing, state, memory)
}

// remoteRows is the state of Rows whose query runs in a worker.
type remoteRows struct {
	pool    *workerPool
	w       *worker
	stop    func() bool // stops the kill on the query's deadline
	release func()      // gives the budget's slot back
	batch   [][]any
	next    int
	done    bool
	// spent is set when the query ran out of memory: the worker's heap may
	// be left fragmented or still held, so the next query gets a new one.
	spent bool
}

// queryIsolated is Query with the query run in a worker process.
func (e *Engine) queryIsolated(ctx context.Context, cancel context.CancelFunc, query string, tables map[string]string, limit int) (*Rows, error) {
	r := &Rows{cancel: cancel, ctxErr: ctx.Err, limit: limit}
	sl, err := e.budget.acquire(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	w, err := e.workers.get(ctx)
	if err != nil {
		sl.release()
		cancel()
		return nil, err
	}
	rr := &remoteRows{pool: e.workers, w: w, release: sl.release, stop: context.AfterFunc(ctx, w.kill)}
	r.remote = rr
	if err := w.send(workerRequest{Query: query, Tables: tables, Limit: limit, Threads: sl.threads}); err != nil {
		r.Close()
		return nil, r.remoteError(err)
	}
	var head workerReply
	if err := w.dec.Decode(&head); err != nil {
		r.Close()
		return nil, r.remoteError(err)
	}
	if head.Err != nil {
		rr.done = true // the worker has finished with this query
		rr.spent = forge.IsKind(head.Err.err(), forge.Unavailable)
		r.Close()
		return nil, head.Err.err()
	}
	r.Columns = head.Columns
	return r, nil
}

// nextRemote is Next for a query run in a worker.
func (r *Rows) nextRemote() bool {
	rr := r.remote
	for rr.next == len(rr.batch) {
		if rr.done {
			return false
		}
		var msg workerReply
		if err := rr.w.dec.Decode(&msg); err != nil {
			r.err = r.remoteError(err)
			return false
		}
		rr.batch, rr.next = msg.Rows, 0
		if msg.Done {
			rr.done = true
			r.truncated = msg.Truncated
			if msg.Err != nil {
				r.err = msg.Err.err()
				rr.spent = forge.IsKind(r.err, forge.Unavailable)
			}
		}
	}
	r.vals = rr.batch[rr.next]
	rr.batch[rr.next] = nil
	rr.next++
	r.n++
	return true
}

// remoteError is what a broken pipe to the worker means: the query's
// deadline or cancellation killed it, or it died on its own.
func (r *Rows) remoteError(err error) error {
	r.remote.done = false
	if ctxErr := r.ctxErr(); ctxErr != nil {
		return fmt.Errorf("query: %w", ctxErr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) {
		return r.remote.w.death("query", r.remote.pool.setup.Memory)
	}
	return fmt.Errorf("query: read from the duckdb worker: %w", err)
}

// closeRemote gives the worker back when it answered the whole query, and
// kills it otherwise (the caller stopped early, or the deadline passed);
// the budget's slot is given back once the worker's memory is free.
func (r *Rows) closeRemote() {
	rr := r.remote
	if rr.w == nil {
		return
	}
	deadline := !rr.stop()
	if rr.done && !rr.spent && !deadline && !rr.w.killed.Load() {
		rr.pool.put(rr.w)
	} else {
		rr.w.kill()
		<-rr.w.exited
	}
	rr.w = nil
	rr.release()
}

// tailWriter keeps the last max bytes written to it: a worker's stderr,
// shown when it dies.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// suffix is the tail as a clause to add to an error, or "".
func (t *tailWriter) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return ""
	}
	return ": " + s
}
