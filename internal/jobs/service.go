package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	// Materialize writes the dataset ref (name or name@version) as a Parquet
	// file at dstPath.
	Materialize(ctx context.Context, ref, dstPath string) (resolvedRef, digest string, err error)
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
	j, err := s.st.requestCancel(ctx, id)
	if err != nil {
		return j, err
	}
	if exec := s.execs[j.Executor]; j.State == Running && j.Handle != "" && exec != nil {
		if err := exec.Cancel(ctx, j.Handle, forge.ReasonCancelled); err != nil {
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

// Run re-attaches to the attempts that were running when the server last
// stopped, then schedules until ctx ends. Processes keep running when it
// returns; the next Run re-attaches to them.
func (s *Service) Run(ctx context.Context) error {
	if err := s.reconcile(ctx); err != nil {
		return err
	}
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case <-s.wake:
		case <-t.C:
		}
	}
}

func (s *Service) reconcile(ctx context.Context) error {
	running, err := s.st.list(ctx, Running, 1<<30)
	if err != nil {
		return err
	}
	for _, j := range running {
		exec := s.execs[j.Executor]
		if exec == nil {
			s.log.Warn("job ran on an executor that is not configured any more: lost", "job", j.ID, "executor", j.Executor)
			s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: fmt.Sprintf("executor %q is not configured any more", j.Executor)})
			continue
		}
		if j.Handle == "" {
			h, err := s.lookup(ctx, exec, j)
			if err != nil {
				// The cluster does not answer: whether the attempt runs is
				// unknown, so it is left as it is for the next start.
				s.log.Error("look up job started before the restart", "job", j.ID, "executor", j.Executor, "err", err)
				continue
			}
			if h == "" {
				// The server stopped between admitting and starting: whatever it
				// started is unknown.
				s.log.Warn("job was being started when the server stopped: lost", "job", j.ID)
				s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: "the server stopped while starting it"})
				continue
			}
			if err := s.st.setHandle(ctx, j.ID, j.Attempt, h); err != nil {
				return err
			}
			s.log.Info("found the attempt started before the restart", "job", j.ID, "executor", j.Executor)
			j.Handle = h
		}
		if attacher, ok := exec.(forge.Attacher); ok {
			if err := attacher.Attach(ctx, j.Handle); err != nil {
				s.log.Error("re-attach failed", "job", j.ID, "err", err)
			}
		}
		s.log.Info("re-attaching to running job", "job", j.ID, "attempt", j.Attempt, "executor", j.Executor)
		s.follow(ctx, j, j.Attempt, j.Handle)
	}
	return nil
}

// lookup finds an attempt whose handle was never recorded, on executors
// that can (Slurm knows its jobs by name); "" when there is none.
func (s *Service) lookup(ctx context.Context, exec forge.Executor, j Job) (forge.Handle, error) {
	lk, ok := exec.(lookuper)
	if !ok {
		return "", nil
	}
	h, err := lk.Lookup(ctx, j.ID, j.Attempt)
	if forge.IsKind(err, forge.NotFound) {
		return "", nil
	}
	return h, err
}

// Pass admits the queued jobs that fit, in priority then submission order,
// and returns how many. A job that does not fit now is passed over, so
// smaller jobs behind it may start (a job that can never fit is refused at
// submission).
func (s *Service) Pass(ctx context.Context) (int, error) {
	// Only executors that report a capacity limit admission; clusters queue
	// what they are given.
	type room struct {
		free forge.Resources
		full bool // nothing more fits
	}
	rooms := map[string]*room{}
	unlimited := false
	for name, exec := range s.execs {
		cr, ok := exec.(forge.CapacityReporter)
		if !ok {
			unlimited = true
			continue
		}
		_, f, err := cr.Capacity(ctx)
		if err != nil {
			s.log.Error("executor capacity", "executor", name, "err", err)
			rooms[name] = &room{full: true}
			continue
		}
		s.mu.Lock()
		rooms[name] = &room{free: f.Sub(s.pending[name])}
		s.mu.Unlock()
	}
	allFull := func() bool {
		if unlimited {
			return false
		}
		for _, r := range rooms {
			if !r.full {
				return false
			}
		}
		return true
	}
	var admit []queued
	err := s.st.eachQueued(ctx, func(q queued) bool {
		if _, ok := s.execs[q.executor]; !ok {
			return true // its executor was removed from the config: it waits
		}
		need := q.res.Times(q.nodes)
		if r := rooms[q.executor]; r != nil {
			if r.full || !need.Fits(r.free) {
				r.full = r.full || !(r.free.CPUs > 0 || r.free.GPUs > 0)
				return !allFull()
			}
			r.free = r.free.Sub(need)
		}
		admit = append(admit, q)
		return true
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range admit {
		j, ok, err := s.st.admit(ctx, q.id)
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		n++
		need := q.res.Times(q.nodes)
		s.mu.Lock()
		s.pending[j.Executor] = s.pending[j.Executor].Add(need)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.launch(ctx, j, need)
		}()
	}
	return n, nil
}

// launch prepares and starts an admitted attempt, then follows it.
func (s *Service) launch(ctx context.Context, j Job, need forge.Resources) {
	h, err := s.start(ctx, j)
	s.mu.Lock()
	s.pending[j.Executor] = s.pending[j.Executor].Sub(need)
	s.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: reconcile marks it lost on the next start
		}
		if forge.IsKind(err, forge.Unavailable) {
			s.log.Info("executor has no room yet: job back in the queue", "job", j.ID)
			if err := s.st.requeue(ctx, j.ID, j.Attempt); err != nil {
				s.log.Error("requeue failed", "job", j.ID, "err", err)
			}
			return
		}
		s.log.Error("job did not start", "job", j.ID, "err", err)
		s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: "could not start: " + forge.Message(err) + ": " + err.Error()})
		return
	}
	if err := s.st.setHandle(ctx, j.ID, j.Attempt, h); err != nil {
		s.log.Error("record handle failed: stopping the job", "job", j.ID, "err", err)
		s.execs[j.Executor].Cancel(context.WithoutCancel(ctx), h, forge.ReasonLost)
	}
	s.follow(ctx, j, j.Attempt, h)
}

func (s *Service) attemptDir(id string, attempt int) string {
	return filepath.Join(s.cfg.WorkDir, id, strconv.Itoa(attempt))
}

func (s *Service) start(ctx context.Context, j Job) (forge.Handle, error) {
	dir := s.attemptDir(j.ID, j.Attempt)
	code := filepath.Join(dir, "code")
	os.RemoveAll(dir)
	if err := os.MkdirAll(code, 0o755); err != nil {
		return "", fmt.Errorf("create job folder: %w", err)
	}
	if j.Spec.Code != "" {
		r, err := s.blobs.Open(ctx, forge.Digest(j.Spec.Code))
		if err != nil {
			return "", fmt.Errorf("open code bundle: %w", err)
		}
		err = bundle.Extract(r, code)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("extract code bundle: %w", err)
		}
	}
	env := map[string]string{}
	for k, v := range j.Spec.Env {
		env[k] = v
	}
	tags := map[string]string{"forge.job_id": j.ID}
	inputs, err := s.materialize(ctx, j, code)
	if err != nil {
		return "", err
	}
	for _, in := range inputs {
		tags["forge.input."+in.Name] = in.Ref + " sha256:" + in.Digest
	}
	if s.runs != nil {
		if j.RunID == "" {
			runID, expID, err := s.runs.CreateRun(ctx, j.Spec.Experiment, j.Name, tags)
			if err != nil {
				return "", fmt.Errorf("create tracking run: %w", err)
			}
			if err := s.st.setRun(ctx, j.ID, runID, expID); err != nil {
				return "", err
			}
			j.RunID, j.ExperimentID = runID, expID
		}
		for _, in := range inputs {
			if err := s.runs.LogInput(ctx, j.RunID, in.Name, in.Ref, in.Digest); err != nil {
				return "", fmt.Errorf("record input %s: %w", in.Name, err)
			}
		}
		if err := s.runs.SetRunStatus(ctx, j.RunID, "RUNNING"); err != nil {
			s.log.Warn("set run status", "job", j.ID, "err", err)
		}
		env["MLFLOW_RUN_ID"], env["MLFLOW_EXPERIMENT_ID"] = j.RunID, j.ExperimentID
		if s.cfg.TrackingURI != "" {
			env["MLFLOW_TRACKING_URI"] = s.cfg.TrackingURI
		}
	}
	if s.cfg.TrackingURI != "" {
		env["FORGE_SERVER"] = s.cfg.TrackingURI
	}
	if s.cfg.PythonPath != "" {
		env["PYTHONPATH"] = strings.TrimSuffix(s.cfg.PythonPath+":"+env["PYTHONPATH"], ":")
	}
	env["FORGE_JOB_ID"] = j.ID
	env["FORGE_ATTEMPT"] = strconv.Itoa(j.Attempt)
	timeout, _ := j.Spec.TimeoutDuration()
	return s.execs[j.Executor].Start(ctx, &forge.Launch{
		JobID: j.ID, Attempt: j.Attempt, Dir: code, Command: j.Spec.Command, Env: env,
		Resources: j.Spec.Resources(), Nodes: j.Spec.Nodes, ProcsPerNode: j.Spec.ProcsPerNode,
		Image: j.Spec.Image, Code: j.Spec.Code, Timeout: timeout, Inputs: inputs,
	})
}

// inputsDir is where a job's inputs are written, relative to its code
// folder. Inside the code folder, the inputs travel with the code wherever
// an executor stages it (Slurm's shared folder), and have a path that is
// the same relative to the working directory on every executor.
const inputsDir = ".forge/inputs"

// materialize writes each input of j under code/inputsDir. The executor
// tells the processes where they are (FORGE_INPUT_<NAME>).
func (s *Service) materialize(ctx context.Context, j Job, code string) ([]forge.Input, error) {
	var inputs []forge.Input
	for _, name := range slices.Sorted(maps.Keys(j.Spec.Inputs)) {
		ref := j.Spec.Inputs[name]
		format := "parquet"
		if strings.HasSuffix(ref, ":csv") {
			format = "csv" // for code without a Parquet reader
		}
		rel := inputsDir + "/" + name + "." + format
		path := filepath.Join(code, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create inputs folder: %w", err)
		}
		resolved, digest, err := s.datasets.Materialize(ctx, ref, path)
		if err != nil {
			return nil, fmt.Errorf("input %s=%s: %w", name, ref, err)
		}
		inputs = append(inputs, forge.Input{Name: name, Ref: resolved, Digest: digest, Path: rel, Format: format})
	}
	return inputs, nil
}

// follow supervises a started attempt in a goroutine: timeout, cancel
// requests, metrics, and its end.
func (s *Service) follow(ctx context.Context, j Job, attempt int, h forge.Handle) {
	s.mu.Lock()
	s.watching[j.ID] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.watching, j.ID)
			s.mu.Unlock()
		}()
		s.supervise(ctx, j, attempt, h)
	}()
}

func (s *Service) supervise(ctx context.Context, j Job, attempt int, h forge.Handle) {
	exec := s.execs[j.Executor]
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		exit forge.Exit
		err  error
	}
	done := make(chan result, 1)
	go func() {
		e, err := exec.Wait(wctx, h)
		done <- result{e, err}
	}()

	// A cancel that came while starting, or before a restart, is acted on now.
	if cur, err := s.st.get(ctx, j.ID); err == nil && cur.CancelRequested {
		exec.Cancel(ctx, h, forge.ReasonCancelled)
	}
	var timeout <-chan time.Time
	if d, _ := j.Spec.TimeoutDuration(); d > 0 {
		started := time.UnixMilli(j.StartedAt)
		if j.StartedAt == 0 {
			started = time.Now()
		}
		t := time.NewTimer(time.Until(started.Add(d)))
		defer t.Stop()
		timeout = t.C
	}
	sampler, _ := exec.(forge.Sampler)
	var sample <-chan time.Time
	if sampler != nil && s.runs != nil {
		t := time.NewTicker(s.cfg.SampleEvery)
		defer t.Stop()
		sample = t.C
	}
	var last forge.Usage
	var step int64
	runID := j.RunID
	for {
		select {
		case r := <-done:
			if r.err != nil {
				if ctx.Err() == nil {
					s.log.Error("wait for job failed", "job", j.ID, "err", r.err)
				}
				return // the next server start re-attaches
			}
			s.end(ctx, j, attempt, h, r.exit)
			return
		case <-timeout:
			s.log.Info("job past its timeout: stopping it", "job", j.ID, "timeout", j.Spec.Timeout)
			if err := exec.Cancel(ctx, h, forge.ReasonTimeout); err != nil {
				s.log.Error("stop job past its timeout", "job", j.ID, "err", err)
			}
		case <-sample:
			if runID == "" {
				if cur, err := s.st.get(ctx, j.ID); err == nil {
					runID = cur.RunID
				}
			}
			u, err := sampler.Usage(ctx, h)
			if err != nil || runID == "" {
				continue
			}
			m := map[string]float64{"system/memory_mb": float64(u.MemoryBytes) / (1 << 20)}
			if !last.At.IsZero() {
				if dt := u.At.Sub(last.At).Seconds(); dt > 0 {
					m["system/cpu_percent"] = 100 * (u.CPUSeconds - last.CPUSeconds) / dt
				}
			}
			last = u
			if err := s.runs.LogSystemMetrics(ctx, runID, m, step); err != nil {
				s.log.Warn("log system metrics", "job", j.ID, "err", err)
			}
			step++
		case <-ctx.Done():
			return
		}
	}
}

// end records an attempt's end: its log goes to the blob store, and the job
// is queued again if its retry policy says so, or ends.
func (s *Service) end(ctx context.Context, j Job, attempt int, h forge.Handle, exit forge.Exit) {
	// Recording the end must not be cut short by a shutdown that began
	// after the processes ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var digest string
	var size int64
	if exec := s.execs[j.Executor]; h != "" && exec != nil {
		if r, err := exec.Logs(ctx, h, 0); err == nil {
			info, err := s.blobs.Put(ctx, r)
			r.Close()
			if err != nil {
				s.log.Error("store job log", "job", j.ID, "err", err)
			} else {
				digest, size = string(info.Digest), info.Size
			}
		}
	}
	cur, err := s.st.get(ctx, j.ID)
	if err != nil {
		s.log.Error("read job at its end", "job", j.ID, "err", err)
		return
	}
	next := Succeeded
	switch {
	case !exit.Failed():
	case exit.Reason == forge.ReasonCancelled || cur.CancelRequested:
		next = Cancelled
		exit.Reason = forge.ReasonCancelled
	case attempt <= cur.Spec.MaxRetries && cur.Spec.retryable(exit):
		next = Queued
	default:
		next = Failed
	}
	if err := s.st.finish(ctx, j.ID, attempt, exit, digest, size, next); err != nil {
		s.log.Error("record job end", "job", j.ID, "err", err)
		return
	}
	s.log.Info("job attempt ended", "job", j.ID, "attempt", attempt, "code", exit.Code, "reason", exit.Reason, "state", next)
	if s.runs != nil && cur.RunID != "" && next.Final() {
		status := map[State]string{Succeeded: "FINISHED", Failed: "FAILED", Cancelled: "KILLED"}[next]
		if err := s.runs.SetRunStatus(ctx, cur.RunID, status); err != nil {
			s.log.Warn("set run status", "job", j.ID, "err", err)
		}
	}
	os.RemoveAll(filepath.Join(s.attemptDir(j.ID, attempt), "code"))
	s.poke()
}

// Logs writes an attempt's log to w (attempt 0: the latest, and with
// follow, the ones after it too). With follow it returns when the job has
// ended and all its output is written, or ctx ends.
func (s *Service) Logs(ctx context.Context, id string, attempt int, follow bool, w io.Writer) error {
	flush := func() {
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
	j, err := s.st.get(ctx, id)
	if err != nil {
		return err
	}
	all := attempt == 0
	if all {
		attempt = max(j.Attempt, 1)
	} else if attempt > j.Attempt {
		return forge.Errorf(forge.NotFound, "job %s has no attempt %d", id, attempt)
	}
	var off int64
	for {
		j, err = s.st.get(ctx, id)
		if err != nil {
			return err
		}
		var a *Attempt
		if attempt <= len(j.Attempts) {
			a = &j.Attempts[attempt-1]
		}
		switch {
		case a != nil && a.FinishedAt != 0:
			// A follower that read the whole log from the executor while
			// the attempt ran is done with it: skipping to its offset in the
			// blob would read (and hash) all of it again.
			if a.LogDigest != "" && (off < a.LogSize || a.LogSize == 0) {
				if err := s.copyBlob(ctx, a.LogDigest, off, w); err != nil {
					return err
				}
			}
			flush()
			if !follow || !all || j.State.Final() || j.Attempt == attempt && j.State == Queued && j.CancelRequested {
				return nil
			}
			// A retry follows: wait for it and go on with its log.
			for j.Attempt == attempt && !j.State.Final() {
				if err := sleep(ctx, 100*time.Millisecond); err != nil {
					return err
				}
				if j, err = s.st.get(ctx, id); err != nil {
					return err
				}
			}
			if j.Attempt == attempt {
				return nil
			}
			attempt, off = attempt+1, 0
			fmt.Fprintf(w, "--- forge: attempt %d ---\n", attempt)
			continue
		case a != nil && a.Handle != "" && s.execs[a.Executor] != nil:
			if r, err := s.execs[a.Executor].Logs(ctx, a.Handle, off); err == nil {
				n, err := io.Copy(w, r)
				r.Close()
				off += n
				if err != nil {
					return err
				}
				if n > 0 {
					flush()
					continue
				}
			}
		}
		if !follow {
			return nil
		}
		if j.State.Final() && (a == nil || a.FinishedAt != 0) {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (s *Service) copyBlob(ctx context.Context, d string, off int64, w io.Writer) error {
	r, err := s.blobs.Open(ctx, forge.Digest(d))
	if err != nil {
		return fmt.Errorf("open job log: %w", err)
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, off); err != nil && err != io.EOF {
		return err
	}
	_, err = io.Copy(w, r)
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func describe(r forge.Resources) string {
	return fmt.Sprintf("%g CPUs, %d MiB memory, %d GPUs", r.CPUs, r.MemoryBytes>>20, r.GPUs)
}
