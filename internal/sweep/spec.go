// Package sweep searches hyperparameters: the sweep spec, the samplers
// (grid, random, TPE as Optuna does it) and the runner that submits each
// trial as an ordinary job, keeps `parallel` of them in flight, reads each
// trial's objective from its tracking run and resumes from the store after
// a restart.
package sweep

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/jobs"
)

// MaxGrid is the most trials a grid may make.
const MaxGrid = 10000

// Spec is a sweep as a user writes it (YAML or JSON).
type Spec struct {
	Name       string            `json:"name" yaml:"name"`
	Command    []string          `json:"command" yaml:"command"`
	Objective  Objective         `json:"objective" yaml:"objective"`
	Algorithm  string            `json:"algorithm" yaml:"algorithm"` // grid | random | tpe
	Parameters map[string]*Param `json:"parameters" yaml:"parameters"`
	MaxTrials  int               `json:"max_trials,omitempty" yaml:"max_trials"`
	Parallel   int               `json:"parallel,omitempty" yaml:"parallel"`
	Seed       uint64            `json:"seed,omitempty" yaml:"seed"`
	// Multivariate makes TPE model the parameters jointly, as Optuna's
	// TPESampler(multivariate=True).
	Multivariate  bool           `json:"multivariate,omitempty" yaml:"multivariate"`
	EarlyStopping *EarlyStopping `json:"early_stopping,omitempty" yaml:"early_stopping"`

	// What every trial's job gets, as `forge run` takes it.
	Executor   string            `json:"executor,omitempty" yaml:"executor"`
	Experiment string            `json:"experiment,omitempty" yaml:"experiment"`
	Env        map[string]string `json:"env,omitempty" yaml:"env"`
	Inputs     map[string]string `json:"inputs,omitempty" yaml:"inputs"`
	Code       string            `json:"code,omitempty" yaml:"code"`
	CPUs       float64           `json:"cpus,omitempty" yaml:"cpus"`
	Memory     string            `json:"memory,omitempty" yaml:"memory"`
	GPUs       int               `json:"gpus,omitempty" yaml:"gpus"`
	Timeout    string            `json:"timeout,omitempty" yaml:"timeout"`
	MaxRetries int               `json:"max_retries,omitempty" yaml:"max_retries"`
	Image      string            `json:"image,omitempty" yaml:"image"`
}

// Objective is the metric each trial logs and which way is better.
type Objective struct {
	Metric string `json:"metric" yaml:"metric"`
	Goal   string `json:"goal,omitempty" yaml:"goal"` // minimize (default) | maximize
	// Use says which of the metric's values is the trial's: last
	// (default) or best.
	Use string `json:"use,omitempty" yaml:"use"`
}

// Param is one searched parameter: a float or int range, or categorical
// values.
type Param struct {
	Type   string   `json:"type,omitempty" yaml:"type"` // float | int | categorical
	Min    *float64 `json:"min,omitempty" yaml:"min"`
	Max    *float64 `json:"max,omitempty" yaml:"max"`
	Log    bool     `json:"log,omitempty" yaml:"log"`
	Values []any    `json:"values,omitempty" yaml:"values"`

	choices []string // Values as text, set by Normalize
}

var (
	nameRx  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	paramRx = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	refRx   = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// Normalize fills defaults and checks the spec, naming the field at fault.
func (s *Spec) Normalize() error {
	if !nameRx.MatchString(s.Name) {
		return forge.Errorf(forge.Invalid, "name: %q must be 1-128 letters, digits, '.', '_' or '-'", s.Name)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return forge.Errorf(forge.Invalid, "command: must not be empty")
	}
	if s.Objective.Metric == "" {
		return forge.Errorf(forge.Invalid, "objective.metric: must name the metric trials log")
	}
	switch s.Objective.Goal {
	case "":
		s.Objective.Goal = "minimize"
	case "minimize", "maximize":
	default:
		return forge.Errorf(forge.Invalid, "objective.goal: %q, want minimize or maximize", s.Objective.Goal)
	}
	switch s.Objective.Use {
	case "":
		s.Objective.Use = "last"
	case "last", "best":
	default:
		return forge.Errorf(forge.Invalid, "objective.use: %q, want last or best", s.Objective.Use)
	}
	switch s.Algorithm {
	case "":
		s.Algorithm = "tpe"
	case "grid", "random", "tpe":
	default:
		return forge.Errorf(forge.Invalid, "algorithm: %q is not one of grid, random, tpe", s.Algorithm)
	}
	if s.Multivariate && s.Algorithm != "tpe" {
		return forge.Errorf(forge.Invalid, "multivariate: only tpe takes it, not %s", s.Algorithm)
	}
	if s.EarlyStopping == nil {
		s.EarlyStopping = &EarlyStopping{}
	}
	if err := s.EarlyStopping.Normalize(s.Objective.Metric); err != nil {
		return err
	}
	if len(s.Parameters) == 0 {
		return forge.Errorf(forge.Invalid, "parameters: at least one is needed")
	}
	for _, name := range s.paramNames() {
		if err := s.Parameters[name].normalize(name, s.Algorithm == "grid"); err != nil {
			return err
		}
	}
	for i, arg := range s.Command {
		for _, m := range refRx.FindAllStringSubmatch(arg, -1) {
			if _, ok := s.Parameters[m[1]]; !ok {
				return forge.Errorf(forge.Invalid, "command[%d]: ${%s} is not one of the parameters", i, m[1])
			}
		}
	}
	if s.MaxTrials < 0 || s.MaxTrials > 100000 {
		return forge.Errorf(forge.Invalid, "max_trials: %d, want 1 to 100000", s.MaxTrials)
	}
	if s.Algorithm == "grid" {
		n := s.gridSize()
		if n > MaxGrid {
			return forge.Errorf(forge.Invalid, "parameters: the grid would make %.0f trials, more than %d", n, MaxGrid)
		}
		if s.MaxTrials == 0 || s.MaxTrials > int(n) {
			s.MaxTrials = int(n)
		}
	} else if s.MaxTrials == 0 {
		return forge.Errorf(forge.Invalid, "max_trials: must be set for %s search", s.Algorithm)
	}
	if s.Parallel == 0 {
		s.Parallel = 1
	}
	if s.Parallel < 0 || s.Parallel > 1000 {
		return forge.Errorf(forge.Invalid, "parallel: %d, want 1 to 1000", s.Parallel)
	}
	// The rest is the job's to check: a trial's spec with the parameters
	// at their first values must be valid.
	js := s.JobSpec(0, s.firstParams())
	if err := js.Normalize(); err != nil {
		return err
	}
	return nil
}

func (p *Param) normalize(name string, grid bool) error {
	if !paramRx.MatchString(name) {
		return forge.Errorf(forge.Invalid, "parameters: %q is not a valid name (letters, digits, '_')", name)
	}
	if p == nil {
		return forge.Errorf(forge.Invalid, "parameters.%s: empty", name)
	}
	if p.Type == "" && len(p.Values) > 0 {
		p.Type = "categorical"
	}
	switch p.Type {
	case "categorical":
		if len(p.Values) == 0 {
			return forge.Errorf(forge.Invalid, "parameters.%s.values: must not be empty", name)
		}
		if p.Min != nil || p.Max != nil || p.Log {
			return forge.Errorf(forge.Invalid, "parameters.%s: values do not take min, max or log", name)
		}
		p.choices = make([]string, len(p.Values))
		seen := map[string]bool{}
		for i, v := range p.Values {
			p.choices[i] = fmt.Sprint(v)
			if seen[p.choices[i]] {
				return forge.Errorf(forge.Invalid, "parameters.%s.values: %q twice", name, p.choices[i])
			}
			seen[p.choices[i]] = true
		}
		return nil
	case "float", "int":
	case "":
		return forge.Errorf(forge.Invalid, "parameters.%s.type: missing (float, int, or give values)", name)
	default:
		return forge.Errorf(forge.Invalid, "parameters.%s.type: %q, want float, int or categorical", name, p.Type)
	}
	if len(p.Values) > 0 {
		return forge.Errorf(forge.Invalid, "parameters.%s: a %s range does not take values", name, p.Type)
	}
	if p.Min == nil || p.Max == nil {
		return forge.Errorf(forge.Invalid, "parameters.%s: min and max are needed", name)
	}
	lo, hi := *p.Min, *p.Max
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return forge.Errorf(forge.Invalid, "parameters.%s: min and max must be finite", name)
	}
	if lo > hi {
		return forge.Errorf(forge.Invalid, "parameters.%s: min %g is above max %g", name, lo, hi)
	}
	if p.Log && lo <= 0 {
		return forge.Errorf(forge.Invalid, "parameters.%s.log: a log scale needs min > 0 (min is %g)", name, lo)
	}
	if p.Type == "int" && (lo != math.Trunc(lo) || hi != math.Trunc(hi)) {
		return forge.Errorf(forge.Invalid, "parameters.%s: an int range needs whole min and max", name)
	}
	if grid && p.Type == "float" && lo != hi {
		return forge.Errorf(forge.Invalid, "parameters.%s: grid search needs values (or an int range) for every parameter", name)
	}
	return nil
}

func (s *Spec) paramNames() []string {
	names := make([]string, 0, len(s.Parameters))
	for n := range s.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// size is how many values the parameter has on a grid.
func (p *Param) size() float64 {
	switch p.Type {
	case "categorical":
		return float64(len(p.choices))
	case "int":
		return *p.Max - *p.Min + 1
	}
	return 1
}

func (s *Spec) gridSize() float64 {
	n := 1.0
	for _, p := range s.Parameters {
		n *= p.size()
	}
	return n
}

func (s *Spec) firstParams() map[string]string {
	out := map[string]string{}
	for n, p := range s.Parameters {
		if p.Type == "categorical" {
			out[n] = p.choices[0]
		} else {
			out[n] = p.format(*p.Min)
		}
	}
	return out
}

// format writes a numeric value as the trial sees it.
func (p *Param) format(v float64) string {
	if p.Type == "int" {
		return strconv.FormatInt(int64(math.Round(v)), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// JobSpec is trial number's job: the command with the parameters
// substituted, and FORGE_PARAM_<NAME> for each in its environment.
func (s *Spec) JobSpec(number int, params map[string]string) jobs.Spec {
	cmd := make([]string, len(s.Command))
	for i, arg := range s.Command {
		cmd[i] = refRx.ReplaceAllStringFunc(arg, func(m string) string { return params[m[2:len(m)-1]] })
	}
	env := map[string]string{}
	for k, v := range s.Env {
		env[k] = v
	}
	for k, v := range params {
		env["FORGE_PARAM_"+strings.ToUpper(k)] = v
	}
	exp := s.Experiment
	if exp == "" {
		exp = "sweep-" + s.Name
	}
	return jobs.Spec{
		Name: fmt.Sprintf("%s-%d", s.Name, number), Command: cmd, Env: env, Code: s.Code, Inputs: s.Inputs,
		CPUs: s.CPUs, Memory: s.Memory, GPUs: s.GPUs, Timeout: s.Timeout, MaxRetries: s.MaxRetries,
		Experiment: exp, Executor: s.Executor, Image: s.Image,
	}
}
