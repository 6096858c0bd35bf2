package forge

import (
	"context"
	"io"
	"path"
	"strings"
	"time"
)

// Reason says why a job attempt ended.
type Reason string

const (
	ReasonExited    Reason = "exited"    // the processes exited by themselves (any exit code)
	ReasonSignal    Reason = "signal"    // a process was killed by a signal nobody in Forge sent
	ReasonTimeout   Reason = "timeout"   // stopped by Forge past the job's timeout
	ReasonCancelled Reason = "cancelled" // stopped by Forge on a user's request
	ReasonPruned    Reason = "pruned"    // stopped by a sweep's early stopping
	ReasonOOM       Reason = "oom"       // killed for using too much memory
	ReasonLost      Reason = "lost"      // the processes are gone and nobody saw how they ended
	ReasonInvalid   Reason = "invalid"   // never started: what it was given (its code bundle) is not valid
)

// Resources is what one node of a job asks for, or what an executor has.
type Resources struct {
	CPUs        float64 `json:"cpus,omitempty"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	GPUs        int     `json:"gpus,omitempty"`
}

// Fits reports whether r fits in free.
func (r Resources) Fits(free Resources) bool {
	return r.CPUs <= free.CPUs+1e-9 && r.MemoryBytes <= free.MemoryBytes && r.GPUs <= free.GPUs
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.CPUs + o.CPUs, r.MemoryBytes + o.MemoryBytes, r.GPUs + o.GPUs}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.CPUs - o.CPUs, r.MemoryBytes - o.MemoryBytes, r.GPUs - o.GPUs}
}

// Times returns r multiplied by n (a job's nodes).
func (r Resources) Times(n int) Resources {
	return Resources{r.CPUs * float64(n), r.MemoryBytes * int64(n), r.GPUs * n}
}

// Launch is one attempt of a job, as an executor needs it: everything is
// resolved (code extracted, inputs materialised, tracking run created).
type Launch struct {
	JobID   string
	Attempt int
	// Dir is the processes' working directory (the extracted code bundle).
	Dir     string
	Command []string
	// Env is added to every process's environment, before the rank
	// contract (MASTER_ADDR, RANK, ...) that the executor sets itself.
	Env map[string]string
	// Resources is per node; an executor that runs all nodes on one
	// machine reserves Nodes times as much.
	Resources    Resources
	Nodes        int
	ProcsPerNode int
	// Image is the container image the job asked for; empty: the
	// executor's default. Executors that run no containers ignore it.
	Image string
	// Code is the sha256 of the code bundle that Dir was extracted from
	// (empty: no code), for executors whose nodes fetch it themselves.
	Code string
	// Timeout is how long the attempt may run; zero: no limit. Forge stops
	// it past that; a cluster executor may also give its scheduler the
	// limit, so the job stops while Forge is down too.
	Timeout time.Duration
	// Inputs are the dataset versions the job reads, each already written
	// under Dir. The executor sets FORGE_INPUT_<NAME> (Input.EnvName) in
	// every process to the file's path where the processes run: under Dir
	// on this machine, under the staged copy of Dir on a cluster. Executors
	// whose nodes fetch the code themselves fetch the inputs the same way.
	Inputs []Input
}

// Input is a dataset version materialised as a file for a job.
type Input struct {
	Name   string // the job's name for it: train in `-i train=sales@3`
	Ref    string // the resolved dataset version, "name@version"
	Digest string // sha256 of the version's Parquet file
	// Path is where the file is, relative to Launch.Dir, slash-separated.
	Path   string
	Format string // "parquet" or "csv"
}

// EnvName is the variable that carries the input's path to the processes.
func (in Input) EnvName() string { return "FORGE_INPUT_" + strings.ToUpper(in.Name) }

// InputEnv returns FORGE_INPUT_<NAME> of each input as a path under root,
// the folder where the processes find Launch.Dir.
func (l *Launch) InputEnv(root string) map[string]string {
	env := make(map[string]string, len(l.Inputs))
	for _, in := range l.Inputs {
		env[in.EnvName()] = path.Join(root, in.Path)
	}
	return env
}

// Handle is an executor's opaque, serialisable reference to a started
// attempt. It is stored with the job so a restarted server can re-attach.
type Handle string

// Exit is how an attempt ended. For a multi-process job it is the first
// process that failed, or success when all exited 0.
type Exit struct {
	Code    int
	Reason  Reason
	Message string
}

// Failed reports whether the attempt did not succeed.
func (e Exit) Failed() bool { return e.Code != 0 || e.Reason != ReasonExited }

// Starter starts all the processes of an attempt, or none.
type Starter interface {
	// Start returns once the processes run (or are accepted by the cluster).
	// It returns an Unavailable error when the resources are not free now.
	Start(ctx context.Context, l *Launch) (Handle, error)
}

// Waiter follows an attempt to its end.
type Waiter interface {
	// Wait blocks until every process of the attempt has ended and says how
	// it ended. It works on handles made by an earlier server process (it
	// re-attaches) and returns ReasonLost when the processes are gone
	// without a trace. It returns ctx's error if ctx ends first; the
	// processes keep running. Executors that poll a cluster share one poll
	// among all waiters.
	Wait(ctx context.Context, h Handle) (Exit, error)
}

// Canceller stops an attempt.
type Canceller interface {
	// Cancel asks the processes to stop (SIGTERM or the cluster's
	// equivalent), then forces them after a grace period; Wait then reports
	// reason (ReasonCancelled, ReasonPruned or ReasonTimeout). Cancelling an attempt that
	// has ended is not an error.
	Cancel(ctx context.Context, h Handle, reason Reason) error
}

// LogReader reads an attempt's combined output: one line per output line,
// "RFC3339-timestamp [rank] text", all processes interleaved.
type LogReader interface {
	// Logs returns the output from byte offset to what is written so far.
	// Following is the caller's loop: call again from the new offset.
	Logs(ctx context.Context, h Handle, offset int64) (io.ReadCloser, error)
}

// Executor runs job attempts: on this machine, on Slurm, on Kubernetes.
type Executor interface {
	Starter
	Waiter
	Canceller
	LogReader
}

// The interfaces below are optional: the scheduler and supervisor use them
// when an executor implements them.

// CapacityReporter is an executor with a known, fixed capacity (the local
// machine). The scheduler admits a job only when it fits in what is free,
// and fails at once a job that could never fit in total. Cluster executors
// leave placement to the cluster and do not implement it.
type CapacityReporter interface {
	Capacity(ctx context.Context) (total, free Resources, err error)
}

// Attacher re-adopts an attempt started by an earlier server process, before
// anything new is started (so it can account for its resources).
type Attacher interface {
	Attach(ctx context.Context, h Handle) error
}

// Process is one process of an attempt as its executor knows it.
type Process struct {
	Rank    int
	Node    string // where it runs: the node's index or host name
	PID     int    // 0 when the executor does not know it
	State   string // "running", "exited" or "lost" (gone without an exit status)
	Code    int    // the exit code, when exited
	Signal  int    // the signal that ended it, when one did
	Message string // how it ended, in words
}

// ProcessReporter lists the processes of an attempt, running or ended, for
// as long as the executor keeps their traces.
type ProcessReporter interface {
	Processes(ctx context.Context, h Handle) ([]Process, error)
}

// Usage is what an attempt's processes use now, summed over them.
type Usage struct {
	CPUSeconds  float64 // cumulative CPU time; the caller derives a percentage
	MemoryBytes int64   // resident memory now
	At          time.Time
}

// Sampler reports resource usage of a running attempt.
type Sampler interface {
	Usage(ctx context.Context, h Handle) (Usage, error)
}
