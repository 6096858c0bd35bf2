package api

import (
	"context"
	"net/http"
	"net/url"
)

// SweepSpec is what `forge sweep -f spec.yaml` submits (POST
// /api/forge/v1/sweeps); its YAML form has the same field names.
type SweepSpec struct {
	Name       string                 `json:"name" yaml:"name"`
	Command    []string               `json:"command" yaml:"command"`
	Objective  SweepObjective         `json:"objective" yaml:"objective"`
	Algorithm  string                 `json:"algorithm,omitempty" yaml:"algorithm"` // grid | random | tpe
	Parameters map[string]*SweepParam `json:"parameters" yaml:"parameters"`
	MaxTrials  int                    `json:"max_trials,omitempty" yaml:"max_trials"`
	Parallel   int                    `json:"parallel,omitempty" yaml:"parallel"`
	Seed       uint64                 `json:"seed,omitempty" yaml:"seed"`
	// Multivariate: TPE models the parameters jointly (Optuna's multivariate=True).
	Multivariate  bool                `json:"multivariate,omitempty" yaml:"multivariate"`
	EarlyStopping *SweepEarlyStopping `json:"early_stopping,omitempty" yaml:"early_stopping"`
	Executor      string              `json:"executor,omitempty" yaml:"executor"`
	Experiment    string              `json:"experiment,omitempty" yaml:"experiment"`
	Env           map[string]string   `json:"env,omitempty" yaml:"env"`
	Inputs        map[string]string   `json:"inputs,omitempty" yaml:"inputs"`
	Code          string              `json:"code,omitempty" yaml:"code"`
	CPUs          float64             `json:"cpus,omitempty" yaml:"cpus"`
	Memory        string              `json:"memory,omitempty" yaml:"memory"`
	GPUs          int                 `json:"gpus,omitempty" yaml:"gpus"`
	Timeout       string              `json:"timeout,omitempty" yaml:"timeout"`
	MaxRetries    int                 `json:"max_retries,omitempty" yaml:"max_retries"`
	Image         string              `json:"image,omitempty" yaml:"image"`
}

// SweepObjective is the metric trials log and which way is better.
type SweepObjective struct {
	Metric string `json:"metric" yaml:"metric"`
	Goal   string `json:"goal,omitempty" yaml:"goal"` // minimize | maximize
	Use    string `json:"use,omitempty" yaml:"use"`   // last (default) | best of the metric's values
}

// SweepEarlyStopping stops trials early by their intermediate metric: asha
// (min_steps, reduction_factor) or median (startup_trials, warmup_steps).
type SweepEarlyStopping struct {
	Type            string `json:"type" yaml:"type"` // asha | median | none
	Metric          string `json:"metric,omitempty" yaml:"metric"`
	MetricStep      string `json:"metric_step,omitempty" yaml:"metric_step"`
	MinSteps        int64  `json:"min_steps,omitempty" yaml:"min_steps"`
	ReductionFactor int    `json:"reduction_factor,omitempty" yaml:"reduction_factor"`
	StartupTrials   *int   `json:"startup_trials,omitempty" yaml:"startup_trials"`
	WarmupSteps     int64  `json:"warmup_steps,omitempty" yaml:"warmup_steps"`
}

// SweepParam is a float or int range (min, max, log) or categorical values.
type SweepParam struct {
	Type   string   `json:"type,omitempty" yaml:"type"`
	Min    *float64 `json:"min,omitempty" yaml:"min"`
	Max    *float64 `json:"max,omitempty" yaml:"max"`
	Log    bool     `json:"log,omitempty" yaml:"log"`
	Values []any    `json:"values,omitempty" yaml:"values"`
}

// Sweep is a sweep as the server reports it; Trials and Best are set by
// the calls that return one sweep.
type Sweep struct {
	Name         string       `json:"name"`
	Spec         SweepSpec    `json:"spec"`
	State        string       `json:"state"` // running | stopped | finished | failed
	Message      string       `json:"message,omitempty"`
	CreatedAt    int64        `json:"created_at"`
	FinishedAt   int64        `json:"finished_at,omitempty"`
	ParentRunID  string       `json:"parent_run_id,omitempty"`
	ExperimentID string       `json:"experiment_id,omitempty"`
	Best         *SweepTrial  `json:"best,omitempty"`
	Trials       []SweepTrial `json:"trials,omitempty"`
}

// SweepTrial is one trial: its parameters, job, run and objective.
type SweepTrial struct {
	Number  int               `json:"number"`
	Params  map[string]string `json:"params"`
	State   string            `json:"state"` // pending | running | complete | pruned | failed | cancelled
	JobID   string            `json:"job_id,omitempty"`
	RunID   string            `json:"run_id,omitempty"`
	Value   *float64          `json:"value,omitempty"`
	Message string            `json:"message,omitempty"`
}

// CreateSweep validates the spec and starts the sweep.
func (c *Client) CreateSweep(ctx context.Context, spec SweepSpec) (Sweep, error) {
	var s Sweep
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/sweeps", nil, spec, &s)
	return s, err
}

// Sweeps lists sweeps, newest first.
func (c *Client) Sweeps(ctx context.Context) ([]Sweep, error) {
	var out struct {
		Sweeps []Sweep `json:"sweeps"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/sweeps", nil, nil, &out)
	return out.Sweeps, err
}

// Sweep returns one sweep with its trials, best first.
func (c *Client) Sweep(ctx context.Context, name string) (Sweep, error) {
	var s Sweep
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/sweeps/"+url.PathEscape(name), nil, nil, &s)
	return s, err
}

// StopSweep stops a running sweep, cancelling its trials in flight.
func (c *Client) StopSweep(ctx context.Context, name string) (Sweep, error) {
	var s Sweep
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/sweeps/"+url.PathEscape(name)+"/stop", nil, nil, &s)
	return s, err
}

// ResumeSweep continues a stopped sweep.
func (c *Client) ResumeSweep(ctx context.Context, name string) (Sweep, error) {
	var s Sweep
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/sweeps/"+url.PathEscape(name)+"/resume", nil, nil, &s)
	return s, err
}
