// Package jobs runs training jobs: the job spec, the durable queue in the
// metadata store, the scheduler that admits queued jobs by priority when the
// executor has room, and the supervisor that follows each attempt to its end
// (timeouts, cancels, retries, logs into the blob store, system metrics into
// the job's tracking run) and re-attaches to running attempts after a
// restart. The HTTP API under /api/forge/v1/jobs is in http.go.
package jobs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/names"
)

// Spec is what a user asks to run. Its JSON and YAML forms are the same.
type Spec struct {
	Name    string            `json:"name,omitempty" yaml:"name"`
	Command []string          `json:"command" yaml:"command"`
	Env     map[string]string `json:"env,omitempty" yaml:"env"`
	// Code is the digest of a code bundle (see package bundle); the job runs
	// in a fresh extraction of it. Empty: an empty folder.
	Code string `json:"code,omitempty" yaml:"code"`
	// Inputs maps a name to a dataset reference (name or name@version); the
	// process gets FORGE_INPUT_<NAME>=path of the materialised Parquet file
	// (CSV for a reference ending in ":csv"), where it runs.
	Inputs map[string]string `json:"inputs,omitempty" yaml:"inputs"`
	// Resources, per node.
	CPUs   float64 `json:"cpus,omitempty" yaml:"cpus"`
	Memory string  `json:"memory,omitempty" yaml:"memory"` // e.g. 4GiB, 512MB
	GPUs   int     `json:"gpus,omitempty" yaml:"gpus"`

	Nodes        int    `json:"nodes,omitempty" yaml:"nodes"`
	ProcsPerNode int    `json:"procs_per_node,omitempty" yaml:"procs_per_node"`
	Timeout      string `json:"timeout,omitempty" yaml:"timeout"` // a Go duration: 90m, 2h
	MaxRetries   int    `json:"max_retries,omitempty" yaml:"max_retries"`
	// RetryOn lists exit codes ("3") and reasons ("lost", "signal", "oom",
	// "timeout") worth a retry. Empty: any failure but a timeout.
	RetryOn    []string `json:"retry_on,omitempty" yaml:"retry_on"`
	Priority   int      `json:"priority,omitempty" yaml:"priority"`
	Experiment string   `json:"experiment,omitempty" yaml:"experiment"`
	// Executor names one of the server's executors (config `executors:`);
	// empty: the server's default. Submit fills it in.
	Executor string `json:"executor,omitempty" yaml:"executor"`
	// Image is the container image for executors that run containers
	// (Kubernetes); empty: the executor's default. Others ignore it.
	Image string `json:"image,omitempty" yaml:"image"`
	// Tags go on the job's tracking run when it is made (a sweep's trials
	// name their parent run with mlflow.parentRunId).
	Tags map[string]string `json:"tags,omitempty" yaml:"tags"`
}

var (
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	inputName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	digestRx  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Normalize fills defaults and checks the spec, naming the field at fault.
func (s *Spec) Normalize() error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return forge.Errorf(forge.Invalid, "command: must not be empty")
	}
	if s.Name == "" {
		// Not the program: every job would be "python3". The job's run
		// takes the same name.
		s.Name = names.RandomReadable()
	}
	if len(s.Name) > 200 {
		return forge.Errorf(forge.Invalid, "name: longer than 200 characters")
	}
	if len(s.Image) > 512 || strings.ContainsAny(s.Image, " \t\n") {
		return forge.Errorf(forge.Invalid, "image: %q is not an image reference", s.Image)
	}
	for k, v := range s.Tags {
		if k == "" || len(k) > 250 || len(v) > 8000 || k == "forge.job_id" {
			return forge.Errorf(forge.Invalid, "tags: %q is not a tag this job may set", k)
		}
	}
	for k := range s.Env {
		if !envName.MatchString(k) {
			return forge.Errorf(forge.Invalid, "env: %q is not a valid variable name", k)
		}
	}
	if s.Code != "" {
		s.Code = strings.TrimPrefix(s.Code, "sha256:")
		if !digestRx.MatchString(s.Code) {
			return forge.Errorf(forge.Invalid, "code: %q is not a sha256 digest", s.Code)
		}
	}
	for k, v := range s.Inputs {
		if !inputName.MatchString(k) {
			return forge.Errorf(forge.Invalid, "inputs: %q: a name is letters, digits and _", k)
		}
		if v == "" {
			return forge.Errorf(forge.Invalid, "inputs: %s: no dataset given", k)
		}
	}
	if s.CPUs == 0 {
		s.CPUs = 1
	}
	if s.CPUs < 0 || s.GPUs < 0 {
		return forge.Errorf(forge.Invalid, "cpus and gpus must not be negative")
	}
	if _, err := s.MemoryBytes(); err != nil {
		return err
	}
	if s.Nodes == 0 {
		s.Nodes = 1
	}
	if s.ProcsPerNode == 0 {
		s.ProcsPerNode = 1
	}
	if s.Nodes < 1 || s.ProcsPerNode < 1 || s.Nodes*s.ProcsPerNode > 1024 {
		return forge.Errorf(forge.Invalid, "nodes and procs_per_node: want at least 1, at most 1024 processes in all")
	}
	if _, err := s.TimeoutDuration(); err != nil {
		return err
	}
	if s.MaxRetries < 0 || s.MaxRetries > 100 {
		return forge.Errorf(forge.Invalid, "max_retries: want 0 to 100")
	}
	for _, r := range s.RetryOn {
		if _, err := strconv.Atoi(r); err == nil {
			continue
		}
		switch forge.Reason(r) {
		case forge.ReasonLost, forge.ReasonSignal, forge.ReasonOOM, forge.ReasonTimeout:
		default:
			return forge.Errorf(forge.Invalid, "retry_on: %q: want an exit code or lost, signal, oom, timeout", r)
		}
	}
	return nil
}

// Resources returns what one node of the job needs.
func (s *Spec) Resources() forge.Resources {
	m, _ := s.MemoryBytes()
	return forge.Resources{CPUs: s.CPUs, MemoryBytes: m, GPUs: s.GPUs}
}

// MemoryBytes parses Memory.
func (s *Spec) MemoryBytes() (int64, error) {
	if s.Memory == "" {
		return 0, nil
	}
	n, err := ParseBytes(s.Memory)
	if err != nil {
		return 0, forge.Errorf(forge.Invalid, "memory: %v", err)
	}
	return n, nil
}

// TimeoutDuration parses Timeout; zero means none.
func (s *Spec) TimeoutDuration() (time.Duration, error) {
	if s.Timeout == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s.Timeout)
	if err != nil || d < 0 {
		return 0, forge.Errorf(forge.Invalid, "timeout: %q is not a duration like 90s, 30m or 2h", s.Timeout)
	}
	return d, nil
}

// retryable says whether an attempt that ended with exit deserves another.
func (s *Spec) retryable(exit forge.Exit) bool {
	// Cancelled is what someone asked for; invalid is a fixed reason (what
	// the job was given), the same on every attempt.
	if exit.Reason == forge.ReasonCancelled || exit.Reason == forge.ReasonPruned || exit.Reason == forge.ReasonInvalid {
		return false
	}
	if len(s.RetryOn) == 0 {
		return exit.Reason != forge.ReasonTimeout
	}
	for _, r := range s.RetryOn {
		if r == string(exit.Reason) || exit.Reason == forge.ReasonExited && r == strconv.Itoa(exit.Code) {
			return true
		}
	}
	return false
}

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseBytes parses sizes like 4GiB, 512MB, 2G or 1048576.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size like 4GiB or 512MB", s)
	}
	return int64(f * float64(mult)), nil
}
