package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// JobSpec is what `forge run` submits (POST /api/forge/v1/jobs). The YAML
// form of `forge run -f spec.yaml` has the same field names.
type JobSpec struct {
	Name         string            `json:"name,omitempty" yaml:"name"`
	Command      []string          `json:"command" yaml:"command"`
	Env          map[string]string `json:"env,omitempty" yaml:"env"`
	Code         string            `json:"code,omitempty" yaml:"code"` // bundle sha256
	Inputs       map[string]string `json:"inputs,omitempty" yaml:"inputs"`
	CPUs         float64           `json:"cpus,omitempty" yaml:"cpus"`
	Memory       string            `json:"memory,omitempty" yaml:"memory"`
	GPUs         int               `json:"gpus,omitempty" yaml:"gpus"`
	Nodes        int               `json:"nodes,omitempty" yaml:"nodes"`
	ProcsPerNode int               `json:"procs_per_node,omitempty" yaml:"procs_per_node"`
	Timeout      string            `json:"timeout,omitempty" yaml:"timeout"`
	MaxRetries   int               `json:"max_retries,omitempty" yaml:"max_retries"`
	RetryOn      []string          `json:"retry_on,omitempty" yaml:"retry_on"`
	Priority     int               `json:"priority,omitempty" yaml:"priority"`
	Experiment   string            `json:"experiment,omitempty" yaml:"experiment"`
	// Executor names one of the server's executors; empty: its default.
	Executor string `json:"executor,omitempty" yaml:"executor"`
	// Image is the container image, for executors that run containers.
	Image string `json:"image,omitempty" yaml:"image"`
}

// Job is a job as the server reports it.
type Job struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	State           string       `json:"state"` // queued|running|succeeded|failed|cancelled
	Priority        int          `json:"priority"`
	SubmittedAt     int64        `json:"submitted_at"`
	Spec            JobSpec      `json:"spec"`
	Executor        string       `json:"executor"`
	Attempt         int          `json:"attempt"`
	StartedAt       int64        `json:"started_at,omitempty"`
	FinishedAt      int64        `json:"finished_at,omitempty"`
	ExitCode        *int         `json:"exit_code,omitempty"`
	Reason          string       `json:"reason,omitempty"`
	Message         string       `json:"message,omitempty"`
	CancelRequested bool         `json:"cancel_requested,omitempty"`
	RunID           string       `json:"run_id,omitempty"`
	ExperimentID    string       `json:"experiment_id,omitempty"`
	Attempts        []JobAttempt `json:"attempts,omitempty"`
}

// Final reports whether the job has ended.
func (j Job) Final() bool {
	return j.State == "succeeded" || j.State == "failed" || j.State == "cancelled"
}

// JobAttempt is one try at running a job.
type JobAttempt struct {
	Attempt    int    `json:"attempt"`
	Executor   string `json:"executor"`
	StartedAt  int64  `json:"started_at"`
	FinishedAt int64  `json:"finished_at,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	LogDigest  string `json:"log_digest,omitempty"`
	LogSize    int64  `json:"log_size,omitempty"`
}

// Executor is one of the server's executors (GET /api/forge/v1/executors).
type Executor struct {
	Name      string `json:"name"`
	Kind      string `json:"kind,omitempty"` // local, slurm or kubernetes
	Default   bool   `json:"default"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Total and Free are known for some executors only.
	Total *Resources `json:"total,omitempty"`
	Free  *Resources `json:"free,omitempty"`
}

// Resources is CPUs, memory and GPUs.
type Resources struct {
	CPUs        float64 `json:"cpus,omitempty"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	GPUs        int     `json:"gpus,omitempty"`
}

// Executors lists the executors a job may name.
func (c *Client) Executors(ctx context.Context) ([]Executor, error) {
	var out struct {
		Executors []Executor `json:"executors"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/executors", nil, nil, &out)
	return out.Executors, err
}

// SubmitJob queues a job.
func (c *Client) SubmitJob(ctx context.Context, spec JobSpec) (Job, error) {
	var j Job
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/jobs", nil, spec, &j)
	return j, err
}

// Jobs lists jobs, newest first; state may be empty.
func (c *Client) Jobs(ctx context.Context, state string) ([]Job, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	var out struct {
		Jobs []Job `json:"jobs"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/jobs", q, nil, &out)
	return out.Jobs, err
}

// Job returns one job with its attempts.
func (c *Client) Job(ctx context.Context, id string) (Job, error) {
	var j Job
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/jobs/"+url.PathEscape(id), nil, nil, &j)
	return j, err
}

// CancelJob cancels a queued or running job.
func (c *Client) CancelJob(ctx context.Context, id string) (Job, error) {
	var j Job
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, &j)
	return j, err
}

// JobLogs returns a job's log; with follow it streams until the job ends.
// attempt 0 is the latest (and, when following, the retries after it).
func (c *Client) JobLogs(ctx context.Context, id string, attempt int, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if attempt > 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	resp, err := c.Request(ctx, http.MethodGet, "/api/forge/v1/jobs/"+url.PathEscape(id)+"/logs", q, nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// HasBundle reports whether the server stores the code bundle digest.
func (c *Client) HasBundle(ctx context.Context, digest string) (bool, error) {
	resp, err := c.Request(ctx, http.MethodHead, "/api/forge/v1/bundles/"+digest, nil, nil, "")
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// PutBundle uploads a code bundle under its sha256 digest.
func (c *Client) PutBundle(ctx context.Context, digest string, data []byte) error {
	return c.UploadBundle(ctx, digest, bytes.NewReader(data), nil)
}

// UploadBundle is PutBundle from a reader, telling progress (if not nil)
// as the bytes go.
func (c *Client) UploadBundle(ctx context.Context, digest string, r io.Reader, progress Progress) error {
	if progress != nil {
		// The counting reader hides r's type, which told net/http its length.
		size := sizeOf(r)
		progress(0, size)
		r = sizedReader{&progressReader{r: r, total: size, fn: progress}, size}
	}
	resp, err := c.Request(ctx, http.MethodPut, "/api/forge/v1/bundles/"+digest, nil, r, "application/gzip")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
