package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Runs is the tracking store, as jobs use it: one run per job.
type Runs interface {
	CreateRun(ctx context.Context, experimentName, runName string, tags map[string]string) (runID, experimentID string, err error)
	// SetRunStatus sets RUNNING, FINISHED, FAILED or KILLED.
	SetRunStatus(ctx context.Context, runID, status string) error
	LogSystemMetrics(ctx context.Context, runID string, metrics map[string]float64, step int64) error
	// LogInput records a dataset version the run reads (MLflow's log-inputs).
	LogInput(ctx context.Context, runID, name, ref, digest string) error
}

// Datasets materialises dataset versions as files for a job's inputs.
type Datasets interface {
	// Resolve says which version ref (name or name@version) names, or
	// NotFound: Submit refuses a job whose inputs do not exist.
	Resolve(ctx context.Context, ref string) (resolvedRef string, err error)
	// Materialize writes the dataset ref (name or name@version) as a Parquet
	// file at dstPath.
	Materialize(ctx context.Context, ref, dstPath string) (resolvedRef, digest string, err error)
}

// Tokens mints each attempt's token, given to its processes as
// MLFLOW_TRACKING_TOKEN and FORGE_TOKEN: the write role on the job's own
// run only, read elsewhere (auth.Tokens).
type Tokens interface {
	CreateJobToken(ctx context.Context, name, runID string, ttl time.Duration) (secret string, err error)
	// DeleteJobToken ends the token at the attempt's end.
	DeleteJobToken(ctx context.Context, name string) error
}

// Config configures the jobs service.
type Config struct {
	// WorkDir holds each attempt's folder: the extracted code and inputs.
	WorkDir string
	// TrackingURI is the server's own URL, given to processes as MLFLOW_TRACKING_URI.
	TrackingURI string
	// SampleEvery is how often system metrics go to the run; default 5s.
	SampleEvery time.Duration
	// Tick is how often the scheduler looks at the queue without being
	// woken (a safety net: submits and ends wake it); default 2s.
	Tick time.Duration
	// MaxBundleBytes caps an uploaded code bundle; default bundle.DefaultMaxBytes.
	MaxBundleBytes int64
	// TempDir is where an uploaded bundle is spooled while it is checked
	// (the server's data_dir/tmp, swept after a crash); "": the OS's.
	TempDir string
	// PythonPath, if set, is put first on every process's PYTHONPATH (the
	// server installs its Python client there, so jobs can `import forge`).
	PythonPath string
	// DefaultExecutor names the executor of jobs that name none; it may be
	// empty when there is only one executor.
	DefaultExecutor string
	// Kinds says what each executor is (local, slurm, kubernetes), for
	// listings.
	Kinds map[string]string
	// Probes check the cluster behind an executor, for listings; an
	// executor without one counts as reachable.
	Probes map[string]Probe
	// Tokens, if set (the server runs with access control), gives every
	// attempt a token of its own for its run, ended when it ends.
	Tokens Tokens
	// OnEnd, if set, is called after a job has ended and its end is
	// stored (the sweeps controller starts the next trial at once).
	OnEnd func()
}

// Probe reports whether an executor reaches its cluster, and what the
// cluster has in all when it knows (nil otherwise).
type Probe func(ctx context.Context) (total *forge.Resources, err error)

// lookuper is a cluster executor that finds an attempt by the job's id
// (the Slurm executor, by job name), for an attempt whose start was cut
// short before its handle was recorded.
type lookuper interface {
	Lookup(ctx context.Context, jobID string, attempt int) (forge.Handle, error)
}

// Service is the queue, the scheduler and the supervisor of jobs.
type Service struct {
	cfg      Config
	st       store
	execs    map[string]forge.Executor // by name
	blobs    forge.BlobStore
	runs     Runs     // may be nil
	datasets Datasets // may be nil
	log      *slog.Logger
	wake     chan struct{}

	mu       sync.Mutex
	pending  map[string]forge.Resources // by executor: admitted, not yet started
	watching map[string]struct{}        // job ids followed by a supervisor goroutine
	wg       sync.WaitGroup
}

// New makes the service over the executors, by name; runs and datasets may
// be nil (no tracking link, no dataset inputs).
func New(db *sqlstore.DB, execs map[string]forge.Executor, blobs forge.BlobStore, runs Runs, datasets Datasets, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.WorkDir == "" {
		return nil, errors.New("jobs: work dir not set")
	}
	if len(execs) == 0 {
		return nil, errors.New("jobs: no executor")
	}
	if cfg.DefaultExecutor == "" && len(execs) == 1 {
		for name := range execs {
			cfg.DefaultExecutor = name
		}
	}
	if _, ok := execs[cfg.DefaultExecutor]; !ok {
		return nil, fmt.Errorf("jobs: default executor %q is not one of the executors", cfg.DefaultExecutor)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 5 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 2 * time.Second
	}
	if cfg.MaxBundleBytes <= 0 {
		cfg.MaxBundleBytes = bundle.DefaultMaxBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		cfg: cfg, st: store{db}, execs: execs, blobs: blobs, runs: runs, datasets: datasets,
		log: log, wake: make(chan struct{}, 1), watching: map[string]struct{}{}, pending: map[string]forge.Resources{},
	}, nil
}

// Submit validates spec and queues it.
func (s *Service) Submit(ctx context.Context, spec Spec) (Job, error) {
	if err := spec.Normalize(); err != nil {
		return Job{}, err
	}
	if spec.Executor == "" {
		spec.Executor = s.cfg.DefaultExecutor
	}
	exec, ok := s.execs[spec.Executor]
	if !ok {
		return Job{}, forge.Errorf(forge.Invalid, "executor: %q is not one of this server's executors (%s)", spec.Executor, strings.Join(s.names(), ", "))
	}
	if len(spec.Inputs) > 0 && s.datasets == nil {
		return Job{}, forge.Errorf(forge.Invalid, "inputs: this server has no datasets")
	}
	// An input that does not exist now would fail the job at its start,
	// after a wait in the queue: refuse it here, with the reason.
	for _, name := range slices.Sorted(maps.Keys(spec.Inputs)) {
		ref := spec.Inputs[name]
		if _, err := s.datasets.Resolve(ctx, ref); err != nil {
			if forge.IsKind(err, forge.NotFound) || forge.IsKind(err, forge.Invalid) {
				return Job{}, forge.Errorf(forge.Invalid, "input %s=%s: %s (see forge data ls)", name, ref, forge.Message(err))
			}
			return Job{}, fmt.Errorf("check input %s=%s: %w", name, ref, err)
		}
	}
	if spec.Code != "" {
		// A client skips the upload of a bundle the server has; the job
		// will refer to it without storing it: renew it for a blob sweep
		// running now (see blobgc). Stat then finds it, or says it is gone.
		if t, ok := s.blobs.(interface{ Touch(forge.Digest) error }); ok {
			t.Touch(forge.Digest(spec.Code))
		}
		if _, err := s.blobs.Stat(ctx, forge.Digest(spec.Code)); err != nil {
			if forge.IsKind(err, forge.NotFound) {
				return Job{}, forge.Errorf(forge.Invalid, "code: no bundle %s on the server (upload it first)", spec.Code)
			}
			return Job{}, err
		}
	}
	if cr, ok := exec.(forge.CapacityReporter); ok {
		total, _, err := cr.Capacity(ctx)
		if err == nil && !spec.Resources().Times(spec.Nodes).Fits(total) {
			return Job{}, forge.Errorf(forge.Invalid, "the job asks for more than executor %s has in all (%s)", spec.Executor, describe(total))
		}
	}
	j := Job{ID: newID(), Name: spec.Name, State: Queued, Priority: spec.Priority, SubmittedAt: sqlstore.Now(), Spec: spec, Executor: spec.Executor}
	if err := s.st.insert(ctx, &j); err != nil {
		return Job{}, err
	}
	s.poke()
	return j, nil
}

// Get returns a job with its attempts.
func (s *Service) Get(ctx context.Context, id string) (Job, error) { return s.st.get(ctx, id) }

// List returns jobs newest first, in one state if state is not empty.
func (s *Service) List(ctx context.Context, state State, limit int) ([]Job, error) {
	switch state {
	case "", Queued, Running, Succeeded, Failed, Cancelled:
	default:
		return nil, forge.Errorf(forge.Invalid, "state %q: want queued, running, succeeded, failed or cancelled", state)
	}
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	return s.st.list(ctx, state, limit)
}

// Cancel cancels a queued job, or stops a running one (its supervisor
// records the end).
func (s *Service) Cancel(ctx context.Context, id string) (Job, error) {
	return s.CancelFor(ctx, id, forge.ReasonCancelled)
}

// CancelFor is Cancel, with the reason the executor is given and a
// running job ends with: ReasonCancelled, or ReasonPruned for a sweep's
// early stopping.
func (s *Service) CancelFor(ctx context.Context, id string, reason forge.Reason) (Job, error) {
	j, err := s.st.requestCancel(ctx, id)
	if err != nil {
		return j, err
	}
	if exec := s.execs[j.Executor]; j.State == Running && j.Handle != "" && exec != nil {
		if err := exec.Cancel(ctx, j.Handle, reason); err != nil {
			return j, fmt.Errorf("cancel job %s: %w", id, err)
		}
	}
	if j.State == Cancelled && s.runs != nil && j.RunID != "" {
		s.runs.SetRunStatus(ctx, j.RunID, "KILLED")
	}
	return j, nil
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
