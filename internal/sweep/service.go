package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/jobs"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Jobs is the jobs service, as sweeps use it: every trial is a job.
type Jobs interface {
	Submit(ctx context.Context, spec jobs.Spec) (jobs.Job, error)
	Get(ctx context.Context, id string) (jobs.Job, error)
	Cancel(ctx context.Context, id string) (jobs.Job, error)
	CancelFor(ctx context.Context, id string, reason forge.Reason) (jobs.Job, error)
	List(ctx context.Context, state jobs.State, limit int) ([]jobs.Job, error)
}

// Runs is the tracking store, as sweeps use it: the sweep's parent run,
// the trials' params and their objective metric.
type Runs interface {
	CreateRun(ctx context.Context, experiment, name string, tags map[string]string) (runID, experimentID string, err error)
	SetRunStatus(ctx context.Context, runID, status string) error
	LogParams(ctx context.Context, runID string, params map[string]string) error
	// LastMetric is the metric's latest value on the run; ok is false when
	// the run has not logged it.
	LastMetric(ctx context.Context, runID, key string) (v float64, ok bool, err error)
	// MetricHistory is every value the run logged for the metric.
	MetricHistory(ctx context.Context, runID, key string) ([]Point, error)
}

// Service creates sweeps and runs them: Run is its control loop.
type Service struct {
	st   store
	jobs Jobs
	runs Runs
	log  *slog.Logger
	tick time.Duration
	wake chan struct{}
	mu   sync.Mutex // one pass at a time

	// Under mu: the intermediate metric of trials that have ended (it
	// changes no more), by run, and the jobs known to have ended.
	curves map[string][]Point
	ended  map[string]bool
}

// New makes the service; tick is how often running trials are looked at
// (0: a second).
func New(db *sqlstore.DB, js Jobs, runs Runs, tick time.Duration, log *slog.Logger) *Service {
	if tick <= 0 {
		tick = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: store{db}, jobs: js, runs: runs, log: log, tick: tick, wake: make(chan struct{}, 1),
		curves: map[string][]Point{}, ended: map[string]bool{}}
}

// Create validates the spec, makes the sweep's parent run and starts it.
func (s *Service) Create(ctx context.Context, spec Spec) (Sweep, error) {
	if err := spec.Normalize(); err != nil {
		return Sweep{}, err
	}
	if _, err := s.st.get(ctx, spec.Name); err == nil {
		return Sweep{}, forge.Errorf(forge.AlreadyExists, "name: a sweep %q exists", spec.Name)
	}
	sw := Sweep{Name: spec.Name, Spec: spec, State: Running, CreatedAt: sqlstore.Now()}
	exp := spec.JobSpec(0, spec.firstParams()).Experiment
	runID, expID, err := s.runs.CreateRun(ctx, exp, spec.Name, map[string]string{"forge.sweep": spec.Name})
	if err != nil {
		return Sweep{}, fmt.Errorf("create the sweep's parent run: %w", err)
	}
	sw.ParentRunID, sw.ExperimentID = runID, expID
	s.runs.SetRunStatus(ctx, runID, "RUNNING")
	if err := s.st.create(ctx, &sw); err != nil {
		s.runs.SetRunStatus(ctx, runID, "FAILED")
		return Sweep{}, err
	}
	s.Poke()
	return sw, nil
}

// Get returns a sweep and its trials.
func (s *Service) Get(ctx context.Context, name string) (Sweep, []Trial, error) {
	sw, err := s.st.get(ctx, name)
	if err != nil {
		return sw, nil, err
	}
	ts, err := s.st.trials(ctx, name)
	return sw, ts, err
}

// List returns every sweep, newest first.
func (s *Service) List(ctx context.Context) ([]Sweep, error) { return s.st.list(ctx, false) }

// Stop stops a running sweep and cancels its trials in flight.
func (s *Service) Stop(ctx context.Context, name string) (Sweep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw, err := s.st.get(ctx, name)
	if err != nil {
		return sw, err
	}
	if sw.State != Running {
		return sw, forge.Errorf(forge.Conflict, "sweep %s is %s, not running", name, sw.State)
	}
	if err := s.st.setState(ctx, name, Stopped, "stopped", sqlstore.Now()); err != nil {
		return sw, err
	}
	ts, err := s.st.trials(ctx, name)
	if err != nil {
		return sw, err
	}
	for _, t := range ts {
		if t.State != TrialRunning && t.State != TrialPending {
			continue
		}
		if t.JobID != "" {
			if _, err := s.jobs.Cancel(ctx, t.JobID); err != nil && !forge.IsKind(err, forge.Conflict) {
				s.log.Warn("cancel trial", "sweep", name, "trial", t.Number, "job", t.JobID, "err", err)
			}
		}
		t.State, t.Message = TrialCancelled, "the sweep was stopped"
		if err := s.st.updateTrial(ctx, name, t); err != nil {
			return sw, err
		}
	}
	s.runs.SetRunStatus(ctx, sw.ParentRunID, "KILLED")
	return s.st.get(ctx, name)
}

// Resume continues a stopped sweep.
func (s *Service) Resume(ctx context.Context, name string) (Sweep, error) {
	s.mu.Lock()
	sw, err := s.st.get(ctx, name)
	if err == nil && sw.State != Stopped {
		err = forge.Errorf(forge.Conflict, "sweep %s is %s, not stopped", name, sw.State)
	}
	if err == nil {
		err = s.st.setState(ctx, name, Running, "", 0)
	}
	s.mu.Unlock()
	if err != nil {
		return sw, err
	}
	s.runs.SetRunStatus(ctx, sw.ParentRunID, "RUNNING")
	s.Poke()
	return s.st.get(ctx, name)
}

// Poke wakes the control loop: a trial's job has ended.
func (s *Service) Poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run drives every running sweep until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		if err := s.pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sweep pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

func (s *Service) pass(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sws, err := s.st.list(ctx, true)
	if err != nil {
		return err
	}
	var errs []error
	for _, sw := range sws {
		if err := s.step(ctx, sw); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", sw.Name, err))
		}
	}
	return errors.Join(errs...)
}

// step follows the sweep's trials in flight, starts new ones up to
// parallel, and ends the sweep when every trial has.
func (s *Service) step(ctx context.Context, sw Sweep) error {
	ts, err := s.st.trials(ctx, sw.Name)
	if err != nil {
		return err
	}
	// Trials cancelled when the sweep was stopped do not count towards
	// max_trials: resuming runs as many again.
	for i := range ts {
		if err := s.follow(ctx, sw, &ts[i]); err != nil {
			return err
		}
	}
	if err := s.prunePass(ctx, sw, ts); err != nil {
		return err
	}
	inflight, failed, used := 0, 0, 0
	for i := range ts {
		switch {
		case ts[i].State == TrialPending, ts[i].State == TrialRunning, ts[i].State == TrialPruned && !s.ended[ts[i].JobID]:
			inflight++
		case ts[i].State == TrialFailed:
			failed++
		}
		if ts[i].State != TrialCancelled {
			used++
		}
	}
	// Most trials failing stops the sweep: the command, not the
	// parameters, is likely at fault.
	tooMany := func() bool { return failed > sw.Spec.MaxTrials/2 }
	if tooMany() {
		return s.end(ctx, sw, Failed, fmt.Sprintf("%d of %d trials failed", failed, len(ts)))
	}
	for inflight < sw.Spec.Parallel && used < sw.Spec.MaxTrials && !tooMany() {
		used++
		t := Trial{Number: len(ts), Params: sw.Spec.Suggest(len(ts), s.observations(sw.Spec, ts)), State: TrialPending, fresh: true}
		if err := s.st.addTrial(ctx, sw.Name, t); err != nil {
			return err
		}
		ts = append(ts, t)
		if err := s.follow(ctx, sw, &ts[len(ts)-1]); err != nil {
			return err
		}
		switch ts[len(ts)-1].State {
		case TrialPending, TrialRunning:
			inflight++
		case TrialFailed:
			failed++
		}
	}
	if inflight == 0 && used >= sw.Spec.MaxTrials {
		return s.end(ctx, sw, Finished, "")
	}
	return nil
}

func (s *Service) end(ctx context.Context, sw Sweep, state, msg string) error {
	status := "FINISHED"
	if state == Failed {
		status = "FAILED"
	}
	s.runs.SetRunStatus(ctx, sw.ParentRunID, status)
	if best, ok := bestTrial(sw.Spec, mustTrials(ctx, s.st, sw.Name)); ok {
		s.runs.LogParams(ctx, sw.ParentRunID, map[string]string{"best_trial": strconv.Itoa(best.Number), "best_run_id": best.RunID})
	}
	return s.st.setState(ctx, sw.Name, state, msg, sqlstore.Now())
}

func mustTrials(ctx context.Context, st store, name string) []Trial {
	ts, _ := st.trials(ctx, name)
	return ts
}

// follow moves one trial on: submits a pending trial's job (or finds the
// one submitted before a restart), logs its params once its run exists,
// and reads its objective when its job ends.
func (s *Service) follow(ctx context.Context, sw Sweep, t *Trial) error {
	name := sw.Spec.JobSpec(t.Number, t.Params).Name
	switch t.State {
	case TrialPruned:
		return s.followPruned(ctx, t)
	case TrialPending:
		// A restart between submitting and recording the job: find it by
		// its name rather than submit it twice.
		id := ""
		if !t.fresh {
			var err error
			if id, err = s.findJob(ctx, name); err != nil {
				return err
			}
		}
		if id != "" {
			t.JobID = id
		} else {
			spec := sw.Spec.JobSpec(t.Number, t.Params)
			spec.Tags = map[string]string{"mlflow.parentRunId": sw.ParentRunID, "forge.sweep": sw.Name,
				"forge.sweep_trial": strconv.Itoa(t.Number)}
			j, err := s.jobs.Submit(ctx, spec)
			if err != nil {
				t.State, t.Message = TrialFailed, "submit: "+err.Error()
				return s.st.updateTrial(ctx, sw.Name, *t)
			}
			t.JobID = j.ID
		}
		t.State = TrialRunning
		if err := s.st.updateTrial(ctx, sw.Name, *t); err != nil {
			return err
		}
		fallthrough
	case TrialRunning:
		j, err := s.jobs.Get(ctx, t.JobID)
		if err != nil {
			return err
		}
		changed := false
		if j.RunID != "" && !t.logged {
			if err := s.runs.LogParams(ctx, j.RunID, t.Params); err != nil {
				return err
			}
			t.RunID, t.logged, changed = j.RunID, true, true
		}
		if j.State.Final() {
			changed = true
			switch {
			case j.State != jobs.Succeeded:
				t.State, t.Message = TrialFailed, fmt.Sprintf("job %s %s", j.State, j.Message)
				if j.State == jobs.Cancelled {
					t.State = TrialCancelled
				}
			case j.RunID == "":
				t.State, t.Message = TrialFailed, "the job has no tracking run"
			default:
				v, ok, err := s.objective(ctx, sw.Spec, j.RunID)
				if err != nil {
					return err
				}
				if !ok {
					t.State, t.Message = TrialFailed, fmt.Sprintf("the run logged no metric %q", sw.Spec.Objective.Metric)
				} else {
					t.State, t.Value = TrialComplete, &v
				}
			}
		}
		if changed {
			return s.st.updateTrial(ctx, sw.Name, *t)
		}
	}
	return nil
}

func (s *Service) findJob(ctx context.Context, name string) (string, error) {
	js, err := s.jobs.List(ctx, "", 10000)
	if err != nil {
		return "", err
	}
	for _, j := range js {
		if j.Name == name && j.Spec.Tags["forge.sweep"] != "" {
			return j.ID, nil
		}
	}
	return "", nil
}

// observations are the trials as the sampler sees them: lower is better.
// A pruned trial has its last intermediate value and step.
func (s *Service) observations(spec Spec, ts []Trial) []Observation {
	out := make([]Observation, len(ts))
	for i, t := range ts {
		out[i] = Observation{Params: t.Params, Complete: t.State == TrialComplete && t.Value != nil, Cancelled: t.State == TrialCancelled,
			Pruned: t.State == TrialPruned && t.Value != nil}
		if c := s.curves[t.RunID]; out[i].Pruned && len(c) > 0 {
			out[i].Step = c[len(c)-1].Step
		}
		if out[i].Complete || out[i].Pruned {
			out[i].Value = *t.Value
			if spec.Objective.Goal == "maximize" {
				out[i].Value = -out[i].Value
			}
		}
	}
	return out
}

// Sorted returns the trials best first: completed ones by objective, then
// pruned ones by their last intermediate value, then the rest by number.
func Sorted(spec Spec, ts []Trial) []Trial {
	out := append([]Trial(nil), ts...)
	key := func(t Trial) (int, float64) {
		rank := map[string]int{TrialComplete: 0, TrialPruned: 1}[t.State]
		if t.State != TrialComplete && t.State != TrialPruned || t.Value == nil || math.IsNaN(*t.Value) {
			return 2, 0
		}
		if spec.Objective.Goal == "maximize" {
			return rank, -*t.Value
		}
		return rank, *t.Value
	}
	sort.SliceStable(out, func(a, b int) bool {
		ra, va := key(out[a])
		rb, vb := key(out[b])
		return ra < rb || ra == rb && va < vb
	})
	return out
}

func bestTrial(spec Spec, ts []Trial) (Trial, bool) {
	s := Sorted(spec, ts)
	if len(s) == 0 || s[0].State != TrialComplete {
		return Trial{}, false
	}
	return s[0], true
}

// objective is the trial run's objective: the metric's last value, or its
// best one if the spec says so.
func (s *Service) objective(ctx context.Context, spec Spec, runID string) (float64, bool, error) {
	if spec.Objective.Use != "best" {
		return s.runs.LastMetric(ctx, runID, spec.Objective.Metric)
	}
	ps, err := s.runs.MetricHistory(ctx, runID, spec.Objective.Metric)
	if err != nil || len(ps) == 0 {
		return 0, false, err
	}
	best := ps[0].Value
	for _, p := range ps[1:] {
		v := p.Value
		if spec.Objective.Goal == "maximize" && v > best || spec.Objective.Goal != "maximize" && v < best {
			best = v
		}
	}
	return best, true, nil
}
