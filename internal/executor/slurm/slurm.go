// Package slurm is the executor that runs jobs on a Slurm cluster through
// its commands: sbatch, squeue, scontrol, scancel and sacct.
//
// Forge stays the control plane; Slurm places and runs the processes. Each
// attempt gets a folder on a file system the nodes share: the code, a
// generated batch script, the log the tasks write (stamped, as the local
// executor writes it) and the files that record exits. The folder and the
// Slurm job id are the handle, so a restarted server re-attaches by reading
// them. One squeue call per poll reports on every attempt being waited for.
package slurm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/procenv"
)

var (
	_ forge.Executor = (*Executor)(nil)
	_ forge.Attacher = (*Executor)(nil)

	_ forge.ProcessReporter = (*Executor)(nil)
)

// Runner runs a Slurm command and returns its standard output; an error
// carries the command's standard error. It is the executor's only way to
// reach Slurm.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Config configures a Slurm executor.
type Config struct {
	// SharedDir is a folder every node reads and writes at the same path
	// (NFS, Lustre, or any folder on a one-node cluster). Attempts are
	// staged there.
	SharedDir string
	// Partition, Account and QOS go to sbatch when set.
	Partition, Account, QOS string
	// TimeLimit, when set, is every job's --time: Slurm stops jobs past it
	// even while Forge is down.
	TimeLimit time.Duration
	// ExtraArgs are more #SBATCH lines, such as "--constraint=a100".
	ExtraArgs []string
	// PortBase and PortRange: MASTER_PORT is PortBase + job id % PortRange.
	PortBase, PortRange int
	// Env is added to the environment of the Slurm commands (SLURM_CONF).
	Env []string
	// Poll is how often the waiters' jobs are looked at; default 2s.
	Poll time.Duration
	// Run runs the Slurm commands; default: exec with Env.
	Run    Runner
	Logger *slog.Logger
}

// Executor runs attempts as Slurm batch jobs.
type Executor struct {
	cfg Config
	log *slog.Logger
	w   watcher
}

// handle is what forge.Handle holds, as JSON.
type handle struct {
	Job string `json:"slurm_job"` // the Slurm job id
	Dir string `json:"dir"`       // the attempt's folder on the shared file system
}

// New makes an executor, creating SharedDir.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.SharedDir == "" {
		return nil, errors.New("slurm executor: shared_dir not set")
	}
	if !filepath.IsAbs(cfg.SharedDir) {
		return nil, fmt.Errorf("slurm executor: shared_dir %q is not an absolute path", cfg.SharedDir)
	}
	if err := os.MkdirAll(cfg.SharedDir, 0o755); err != nil {
		return nil, fmt.Errorf("slurm executor: %w", err)
	}
	if cfg.PortBase <= 0 {
		cfg.PortBase = 20000
	}
	if cfg.PortRange <= 0 {
		cfg.PortRange = 20000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Run == nil {
		cfg.Run = ExecRunner(cfg.Env)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{cfg: cfg, log: cfg.Logger}
	e.w.e = e
	return e, nil
}

// ExecRunner runs the commands as processes, with env added to a clean
// environment: sbatch hands its environment to the job, so the server's
// own (its database URL, its tokens) must not be in it; only the
// variables procenv keeps and the Slurm client's SLURM_* settings.
func ExecRunner(env []string) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(procenv.Base("SLURM_"), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return out, fmt.Errorf("%s: %w: %s", name, err, msg)
			}
			return out, fmt.Errorf("%s: %w", name, err)
		}
		return out, nil
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Start implements forge.Starter: it stages the code, writes the batch
// script and submits it. It returns once sbatch accepted the job; Slurm
// starts all its tasks together or none.
func (e *Executor) Start(ctx context.Context, l *forge.Launch) (forge.Handle, error) {
	if len(l.Command) == 0 {
		return "", forge.Errorf(forge.Invalid, "job %s has no command", l.JobID)
	}
	for k := range l.Env {
		if !envName.MatchString(k) {
			return "", forge.Errorf(forge.Invalid, "environment variable name %q is not valid in a shell", k)
		}
	}
	for _, in := range l.Inputs {
		if !envName.MatchString(in.EnvName()) {
			return "", forge.Errorf(forge.Invalid, "input name %q is not valid in a shell variable", in.Name)
		}
	}
	dir := filepath.Join(e.cfg.SharedDir, fmt.Sprintf("%s.%d", l.JobID, l.Attempt))
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clear attempt folder: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create attempt folder: %w", err)
	}
	code := l.Dir
	if rel, err := filepath.Rel(e.cfg.SharedDir, l.Dir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		// The code is on this machine only: copy it where the nodes read.
		code = filepath.Join(dir, "code")
		if err := copyTree(l.Dir, code); err != nil {
			return "", fmt.Errorf("stage code of job %s: %w", l.JobID, err)
		}
	}
	path := filepath.Join(dir, "job.sh")
	body := batchScript(script{Launch: l, Dir: dir, CodeDir: code, Cfg: &e.cfg})
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		return "", fmt.Errorf("write batch script: %w", err)
	}
	// The log exists from the start, so a reader can follow it at once.
	if err := os.WriteFile(filepath.Join(dir, "output.log"), nil, 0o644); err != nil {
		return "", fmt.Errorf("create log: %w", err)
	}
	out, err := e.cfg.Run(ctx, "sbatch", "--parsable", path)
	if err != nil {
		return "", submitError(l.JobID, err)
	}
	// --parsable prints "jobid" or "jobid;cluster".
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", fmt.Errorf("sbatch printed %q, not a job id", out)
	}
	e.log.Info("submitted", "job", l.JobID, "attempt", l.Attempt, "slurm_job", id)
	b, err := json.Marshal(handle{Job: id, Dir: dir})
	if err != nil {
		return "", err
	}
	return forge.Handle(b), nil
}

// submitError sorts sbatch's refusals: a request the cluster can never
// satisfy is the user's to fix; a controller that does not answer is
// unavailable, so the job goes back to the queue.
func submitError(jobID string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Unable to contact slurm controller"),
		strings.Contains(msg, "Socket timed out"),
		strings.Contains(msg, "Slurm temporarily unable"),
		strings.Contains(msg, "QOSMaxSubmitJob"),
		strings.Contains(msg, "AssocMaxSubmitJob"):
		return forge.Errorf(forge.Unavailable, "slurm is not accepting job %s now: %v", jobID, err)
	case strings.Contains(msg, "Batch job submission failed"):
		_, why, _ := strings.Cut(msg, "Batch job submission failed: ")
		return forge.Errorf(forge.Invalid, "slurm refused job %s: %s", jobID, why)
	}
	return fmt.Errorf("submit job %s: %w", jobID, err)
}

func parseHandle(h forge.Handle) (*handle, error) {
	var v handle
	if err := json.Unmarshal([]byte(h), &v); err != nil || v.Job == "" || v.Dir == "" {
		return nil, fmt.Errorf("slurm executor: malformed handle %q", h)
	}
	return &v, nil
}

// Attach implements forge.Attacher. Slurm keeps the jobs and the shared
// folder keeps their files, so there is nothing to adopt: it checks the
// handle, and Wait follows the job.
func (e *Executor) Attach(ctx context.Context, fh forge.Handle) error {
	_, err := parseHandle(fh)
	return err
}

// Cancel implements forge.Canceller with scancel, which sends SIGTERM to
// every task and SIGKILL after the cluster's KillWait.
func (e *Executor) Cancel(ctx context.Context, fh forge.Handle, reason forge.Reason) error {
	h, err := parseHandle(fh)
	if err != nil {
		return err
	}
	// A cancel after the job ended changes nothing: the batch script's exit
	// file says it is over, and its outcome stands.
	if _, err := os.Stat(filepath.Join(h.Dir, "exit")); err == nil {
		return nil
	}
	// The first reason wins: a timeout during a cancel stays a cancel.
	f, err := os.OpenFile(filepath.Join(h.Dir, "stop-reason"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		f.WriteString(string(reason))
		f.Sync()
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("record stop reason: %w", err)
	}
	if _, err := e.cfg.Run(ctx, "scancel", h.Job); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "already completing or completed") || strings.Contains(msg, "Invalid job id") {
			return nil
		}
		return fmt.Errorf("scancel %s: %w", h.Job, err)
	}
	return nil
}

// Logs implements forge.LogReader over the log the tasks append to. The
// file grows while the job runs, so a caller following from its last
// offset streams the output.
func (e *Executor) Logs(ctx context.Context, fh forge.Handle, offset int64) (io.ReadCloser, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(h.Dir, "output.log"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, forge.Errorf(forge.NotFound, "no log for this attempt in %s", e.cfg.SharedDir)
		}
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Lookup finds the Slurm job of an attempt by its name, for an attempt whose
// handle was never recorded (the server stopped right after sbatch). It
// returns a NotFound error when Slurm has no such job.
func (e *Executor) Lookup(ctx context.Context, jobID string, attempt int) (forge.Handle, error) {
	out, err := e.cfg.Run(ctx, "squeue", "--me", "--noheader", "--states=all", "--name="+jobName(jobID, attempt), "--format=%i")
	if err != nil {
		return "", fmt.Errorf("squeue: %w", err)
	}
	id := strings.TrimSpace(string(out))
	if i := strings.IndexByte(id, '\n'); i >= 0 {
		id = id[:i] // resubmitted by hand: the first will do
	}
	if id == "" {
		return "", forge.Errorf(forge.NotFound, "slurm has no job for attempt %d of job %s", attempt, jobID)
	}
	b, _ := json.Marshal(handle{Job: id, Dir: filepath.Join(e.cfg.SharedDir, fmt.Sprintf("%s.%d", jobID, attempt))})
	return forge.Handle(b), nil
}

// Info is what `forge executors ls` shows of a cluster.
type Info struct {
	Nodes int
	// Total is what the nodes in the partition have together.
	Total forge.Resources
}

// Describe asks sinfo what the cluster (or the configured partition) has.
// An error means the controller cannot be reached.
func (e *Executor) Describe(ctx context.Context) (Info, error) {
	args := []string{"--noheader", "--Node", "--format=%N|%c|%m|%G"}
	if e.cfg.Partition != "" {
		args = append(args, "--partition="+e.cfg.Partition)
	}
	out, err := e.cfg.Run(ctx, "sinfo", args...)
	if err != nil {
		return Info{}, fmt.Errorf("sinfo: %w", err)
	}
	return parseSinfo(string(out)), nil
}

// parseSinfo sums sinfo's per-node lines (a node in several partitions is
// listed once per partition).
func parseSinfo(out string) Info {
	var info Info
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 || seen[f[0]] {
			continue
		}
		seen[f[0]] = true
		info.Nodes++
		cpus, _ := strconv.ParseFloat(f[1], 64)
		mem, _ := strconv.ParseInt(f[2], 10, 64)
		info.Total.CPUs += cpus
		info.Total.MemoryBytes += mem << 20
		// Gres looks like "gpu:2", "gpu:a100:4(S:0-1)" or "(null)".
		for _, g := range strings.Split(f[3], ",") {
			if !strings.HasPrefix(g, "gpu:") {
				continue
			}
			g, _, _ = strings.Cut(g, "(")
			parts := strings.Split(g, ":")
			n, _ := strconv.Atoi(parts[len(parts)-1])
			info.Total.GPUs += n
		}
	}
	return info
}

// copyTree copies the folder src to dst (files, folders, symlinks, modes).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(path, to, info.Mode().Perm())
		}
		return nil // sockets, devices: not code
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
