// Package local is the executor that runs jobs on the machine Forge runs on.
//
// Every process of a job runs under a shim (the forge binary re-executed as
// `forge job-shim`), which leads the process's group, writes its output with
// timestamps to the attempt's log file, and records its exit in a file. So
// the processes and their logs do not depend on the server: a restarted
// server re-attaches from the handle (pids with their /proc start times, and
// the attempt's folder) and reads the exit files; processes that are gone
// without an exit file were lost.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/procenv"
)

var (
	_ forge.Executor         = (*Executor)(nil)
	_ forge.CapacityReporter = (*Executor)(nil)
	_ forge.Attacher         = (*Executor)(nil)
	_ forge.Sampler          = (*Executor)(nil)
	_ forge.ProcessReporter  = (*Executor)(nil)
)

// Config configures the local executor. Zero fields take the machine's values.
type Config struct {
	// Root holds one folder per attempt: its log and exit files.
	Root string
	// Shim is the command prefix that runs a shim; default: this binary
	// followed by ShimCommand.
	Shim []string
	// CPUs, MemoryBytes: the capacity offered to jobs; default: the machine's.
	CPUs        float64
	MemoryBytes int64
	// GPUs are the device indices offered to jobs; nil: ask nvidia-smi.
	GPUs []int
	// Grace is how long a process has between SIGTERM and SIGKILL.
	Grace time.Duration
	// Poll is how often a waiter looks at the processes.
	Poll time.Duration
	// RunAs is the user (a name or a uid) every job process runs as, in a
	// job folder handed to it; empty: the server's own user. Another user
	// than the server's needs the server to run as root.
	RunAs  string
	Logger *slog.Logger
}

// Executor runs attempts as local processes.
type Executor struct {
	cfg   Config
	total forge.Resources
	log   *slog.Logger
	// user is who jobs run as; nil: the server's user. userErr says why
	// jobs cannot start when run_as names no usable user.
	user    *jobUser
	userErr error

	spares spareShims

	mu       sync.Mutex
	attempts map[string]*handle // by folder: attempts started or adopted, not yet ended
}

// handle is what forge.Handle holds, as JSON.
type handle struct {
	Dir   string          `json:"dir"`
	Procs []procRef       `json:"procs"`
	Res   forge.Resources `json:"res"`           // reserved for the whole attempt
	PPN   int             `json:"ppn,omitempty"` // processes a node (0 in handles made before it was kept)
	GPUs  []int           `json:"gpus,omitempty"`
}

type procRef struct {
	Rank  int    `json:"rank"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // /proc start time, against pid reuse
}

// New makes an executor, creating Root.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.Root == "" {
		return nil, errors.New("local executor: root folder not set")
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("local executor: %w", err)
	}
	if len(cfg.Shim) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local executor: find own binary for the shim: %w", err)
		}
		cfg.Shim = []string{self, ShimCommand}
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = float64(runtime.NumCPU())
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = memTotal()
	}
	if cfg.GPUs == nil {
		cfg.GPUs = DetectGPUs(ctx)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{
		cfg:      cfg,
		total:    forge.Resources{CPUs: cfg.CPUs, MemoryBytes: cfg.MemoryBytes, GPUs: len(cfg.GPUs)},
		log:      cfg.Logger,
		attempts: map[string]*handle{},
	}
	if cfg.RunAs != "" {
		// A missing user does not stop the server (its other parts work):
		// every job is refused, saying which setting to fix.
		e.user, e.userErr = lookupJobUser(cfg.RunAs)
		if e.userErr != nil {
			e.log.Error("local jobs cannot start", "err", e.userErr)
		}
	}
	if e.user == nil && e.userErr == nil && os.Geteuid() == 0 {
		e.log.Warn("local jobs run as root, as the server does: they can read its data dir (set run_as)")
	}
	e.spares.shim, e.spares.env = cfg.Shim, procenv.Base()
	e.spares.refill()
	return e, nil
}

// Close ends the spare shim (jobs that run are not affected); a Start after
// it starts its shim itself.
func (e *Executor) Close() error {
	e.spares.close()
	return nil
}

// Capacity implements forge.CapacityReporter.
func (e *Executor) Capacity(ctx context.Context) (total, free forge.Resources, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total, e.freeLocked(), nil
}

func (e *Executor) freeLocked() forge.Resources {
	free := e.total
	for _, h := range e.attempts {
		free = free.Sub(h.Res)
	}
	return free
}

func (e *Executor) freeGPUsLocked() []int {
	used := map[int]bool{}
	for _, h := range e.attempts {
		for _, g := range h.GPUs {
			used[g] = true
		}
	}
	var free []int
	for _, g := range e.cfg.GPUs {
		if !used[g] {
			free = append(free, g)
		}
	}
	return free
}

// Start implements forge.Starter: it starts every process or none.
func (e *Executor) Start(ctx context.Context, l *forge.Launch) (forge.Handle, error) {
	if e.userErr != nil {
		return "", forge.Errorf(forge.Invalid, "local executor: %v", e.userErr)
	}
	nodes, ppn := max(l.Nodes, 1), max(l.ProcsPerNode, 1)
	world := nodes * ppn
	res := l.Resources.Times(nodes)
	dir := filepath.Join(e.cfg.Root, fmt.Sprintf("%s.%d", l.JobID, l.Attempt))

	e.mu.Lock()
	if !res.Fits(e.freeLocked()) {
		e.mu.Unlock()
		return "", forge.Errorf(forge.Unavailable, "not enough free resources for job %s", l.JobID)
	}
	gpus := e.freeGPUsLocked()[:res.GPUs]
	h := &handle{Dir: dir, Res: res, GPUs: gpus, PPN: ppn}
	e.attempts[dir] = h // reserve now; released if the start fails
	e.mu.Unlock()

	started, err := e.start(l, h, nodes, ppn, world)
	if err != nil {
		e.killAll(started)
		e.release(dir)
		return "", err
	}
	h.Procs = started
	b, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	return forge.Handle(b), nil
}

func (e *Executor) start(l *forge.Launch, h *handle, nodes, ppn, world int) ([]procRef, error) {
	if err := os.RemoveAll(h.Dir); err != nil {
		return nil, fmt.Errorf("clear attempt folder: %w", err)
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create attempt folder: %w", err)
	}
	logPath := filepath.Join(h.Dir, "output.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	defer logf.Close()
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("pick MASTER_PORT: %w", err)
	}
	base := procenv.Base() // never the server's own environment
	var runAs []string
	if e.user != nil {
		if err := e.user.prepare(l.Dir); err != nil {
			return nil, err
		}
		base = append(base, "HOME="+e.user.jobHome(l.Dir), "USER="+e.user.name, "LOGNAME="+e.user.name)
		runAs = []string{"--run-as", e.user.credential()}
	}
	for k, v := range l.Env {
		base = append(base, k+"="+v)
	}
	for k, v := range l.InputEnv(l.Dir) {
		base = append(base, k+"="+v)
	}
	perProc := 0
	if len(h.GPUs) >= world {
		perProc = len(h.GPUs) / world
	}
	var started []procRef
	for rank := range world {
		node, local := rank/ppn, rank%ppn
		env := append([]string(nil), base...)
		for k, v := range map[string]string{
			"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": strconv.Itoa(port),
			"WORLD_SIZE": strconv.Itoa(world), "RANK": strconv.Itoa(rank),
			"LOCAL_RANK": strconv.Itoa(local), "NODE_RANK": strconv.Itoa(node),
			"NNODES": strconv.Itoa(nodes), "NPROC_PER_NODE": strconv.Itoa(ppn),
			"LOCAL_WORLD_SIZE": strconv.Itoa(ppn),
		} {
			env = append(env, k+"="+v, "PET_"+k+"="+v)
		}
		if len(h.GPUs) > 0 {
			devs := h.GPUs // fewer GPUs than processes: they share them all
			if perProc > 0 {
				devs = h.GPUs[local*perProc : (local+1)*perProc]
			}
			env = append(env, "CUDA_VISIBLE_DEVICES="+joinInts(devs))
		}
		args := append([]string(nil), runAs...)
		if l.Resources.MemoryBytes > 0 {
			// Each process gets its share of the job's memory per node.
			args = append(args, "--memory-max", strconv.FormatInt(l.Resources.MemoryBytes/int64(ppn), 10))
		}
		args = append(args, logPath, exitPath(h.Dir, rank), "["+strconv.Itoa(rank)+"]", "--")
		args = append(args, l.Command...)
		cmd, err := e.spares.hand(warmSpec{Args: args, Env: env, Dir: l.Dir, Log: logPath})
		if errors.Is(err, errNoSpare) {
			argv := append(append([]string(nil), e.cfg.Shim...), args...)
			cmd = exec.Command(argv[0], argv[1:]...)
			cmd.Dir = l.Dir
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = logf, logf
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			err = cmd.Start()
		}
		if err != nil {
			return started, fmt.Errorf("start process %d of job %s: %w", rank, l.JobID, err)
		}
		st, _ := startTime(cmd.Process.Pid)
		started = append(started, procRef{Rank: rank, PID: cmd.Process.Pid, Start: st})
		go cmd.Wait() // reap; the exit file says how it ended
	}
	return started, nil
}

func (e *Executor) killAll(ps []procRef) {
	for _, p := range ps {
		if alive(p.PID, p.Start) {
			syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
}

func (e *Executor) release(dir string) {
	e.mu.Lock()
	delete(e.attempts, dir)
	e.mu.Unlock()
}

func parseHandle(h forge.Handle) (*handle, error) {
	var v handle
	if err := json.Unmarshal([]byte(h), &v); err != nil || v.Dir == "" {
		return nil, fmt.Errorf("local executor: malformed handle %q", h)
	}
	return &v, nil
}

// Attach implements forge.Attacher: it counts an attempt of an earlier
// server process against the capacity until Wait sees it end.
func (e *Executor) Attach(ctx context.Context, fh forge.Handle) error {
	h, err := parseHandle(fh)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if _, ok := e.attempts[h.Dir]; !ok {
		e.attempts[h.Dir] = h
	}
	e.mu.Unlock()
	return nil
}

// Wait implements forge.Waiter. When one process fails, the others are
// stopped, and the attempt ends with the reason of the first that failed.
func (e *Executor) Wait(ctx context.Context, fh forge.Handle) (forge.Exit, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return forge.Exit{}, err
	}
	e.Attach(ctx, fh)
	done := map[int]exitRecord{}
	stopping := false
	tick := time.NewTicker(e.cfg.Poll)
	defer tick.Stop()
	for {
		for _, p := range h.Procs {
			if _, ok := done[p.Rank]; ok {
				continue
			}
			if rec, ok := readExit(exitPath(h.Dir, p.Rank)); ok {
				done[p.Rank] = rec
			} else if !alive(p.PID, p.Start) {
				// The exit file is written just before the shim exits.
				if rec, ok := readExit(exitPath(h.Dir, p.Rank)); ok {
					done[p.Rank] = rec
				} else {
					done[p.Rank] = exitRecord{Code: -1, At: time.Now().UnixNano(), Msg: "lost", Signal: -1}
				}
			}
			if rec, ok := done[p.Rank]; ok && (rec.Code != 0 || rec.Signal != 0) && !stopping && len(done) < len(h.Procs) {
				stopping = true
				e.log.Info("a process failed: stopping the others", "dir", h.Dir, "rank", p.Rank, "code", rec.Code)
				e.stop(h)
			}
		}
		if len(done) == len(h.Procs) {
			e.release(h.Dir)
			return e.verdict(h, done), nil
		}
		select {
		case <-ctx.Done():
			return forge.Exit{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// verdict makes the attempt's exit from its processes' exits.
func (e *Executor) verdict(h *handle, done map[int]exitRecord) forge.Exit {
	var ranks []int
	for r, rec := range done {
		if rec.Code != 0 || rec.Signal != 0 {
			ranks = append(ranks, r)
		}
	}
	if len(ranks) == 0 {
		return forge.Exit{Code: 0, Reason: forge.ReasonExited}
	}
	sort.Slice(ranks, func(i, j int) bool {
		a, b := done[ranks[i]], done[ranks[j]]
		return a.At < b.At || a.At == b.At && ranks[i] < ranks[j]
	})
	first := done[ranks[0]]
	exit := forge.Exit{Code: first.Code, Reason: forge.ReasonExited, Message: first.Msg}
	switch {
	case first.OOM:
		exit.Reason = forge.ReasonOOM
	case first.Signal == -1:
		exit.Reason, exit.Message = forge.ReasonLost, "the process is gone and left no exit status"
	case first.Signal != 0:
		exit.Reason = forge.ReasonSignal
	}
	if reason, at, ok := readStopReason(h.Dir); ok && at <= first.At {
		// Forge stopped it: that is why it failed, whatever the signal. A
		// stop recorded after the first failure (a cancel racing the end)
		// changes nothing: the process had already ended on its own.
		exit.Reason = reason
		exit.Message = "stopped by forge (" + string(reason) + ")"
	}
	if len(h.Procs) > 1 {
		if exit.Message == "" {
			exit.Message = fmt.Sprintf("rank %d", ranks[0])
		} else {
			exit.Message = fmt.Sprintf("rank %d: %s", ranks[0], exit.Message)
		}
	}
	return exit
}

// Cancel implements forge.Canceller.
func (e *Executor) Cancel(ctx context.Context, fh forge.Handle, reason forge.Reason) error {
	h, err := parseHandle(fh)
	if err != nil {
		return err
	}
	if ended(h) {
		return nil // its outcome is recorded: a late cancel must not change it
	}
	// The first reason wins: a timeout during a cancel stays a cancel.
	path := filepath.Join(h.Dir, "stop-reason")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		f.WriteString(string(reason))
		f.Sync()
		f.Close()
		// The kernel's file times are coarse (a clock tick); verdict compares
		// this one with exit times taken by time.Now.
		now := time.Now()
		os.Chtimes(path, now, now)
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("record stop reason: %w", err)
	}
	e.stop(h)
	return nil
}

// ended reports whether every process of the attempt has ended: with an
// exit file, or gone without one (lost).
func ended(h *handle) bool {
	for _, p := range h.Procs {
		if !exists(exitPath(h.Dir, p.Rank)) && alive(p.PID, p.Start) {
			return false
		}
	}
	return true
}

// readStopReason returns why Forge stopped the attempt, and when (unix
// nanoseconds), if it did.
func readStopReason(dir string) (forge.Reason, int64, bool) {
	path := filepath.Join(dir, "stop-reason")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, false
	}
	return forge.Reason(b), fi.ModTime().UnixNano(), true
}

// stop sends SIGTERM to every process group, and SIGKILL to those still
// there after the grace period.
func (e *Executor) stop(h *handle) {
	for _, p := range h.Procs {
		if alive(p.PID, p.Start) {
			syscall.Kill(-p.PID, syscall.SIGTERM)
		}
	}
	time.AfterFunc(e.cfg.Grace, func() { e.killAll(h.Procs) })
}

// Logs implements forge.LogReader.
func (e *Executor) Logs(ctx context.Context, fh forge.Handle, offset int64) (io.ReadCloser, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(h.Dir, "output.log"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, forge.Errorf(forge.NotFound, "no log for this attempt on this machine")
		}
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Usage implements forge.Sampler over the attempt's process groups (so
// children a process forks are counted too).
func (e *Executor) Usage(ctx context.Context, fh forge.Handle) (forge.Usage, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return forge.Usage{}, err
	}
	groups := map[int]bool{}
	for _, p := range h.Procs {
		if alive(p.PID, p.Start) {
			groups[p.PID] = true
		}
	}
	cpu, rss := groupUsage(groups)
	return forge.Usage{CPUSeconds: cpu, MemoryBytes: rss, At: time.Now()}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func joinInts(xs []int) string {
	b := make([]byte, 0, 4*len(xs))
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(x), 10)
	}
	return string(b)
}
