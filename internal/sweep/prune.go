package sweep

import (
	"fmt"
	"math"
	"sort"

	"github.com/forge-mlops/forge"
)

// EarlyStopping stops trials whose intermediate metric says they will not
// win: asynchronous successive halving (asha) or Optuna's median rule.
type EarlyStopping struct {
	Type string `json:"type" yaml:"type"` // asha | median | none
	// Metric is the intermediate metric (default: the objective's), read
	// by MetricStep, the tracking step its values are logged at.
	Metric     string `json:"metric,omitempty" yaml:"metric"`
	MetricStep string `json:"metric_step,omitempty" yaml:"metric_step"` // step (the only one)

	// asha: rung k is at step min_steps * reduction_factor^k; a trial
	// goes on past it only if it is in the best 1/reduction_factor of the
	// trials that reached it before it (Optuna's SuccessiveHalvingPruner).
	MinSteps        int64 `json:"min_steps,omitempty" yaml:"min_steps"`
	ReductionFactor int   `json:"reduction_factor,omitempty" yaml:"reduction_factor"`

	// median: a trial whose best value so far is worse than the median of
	// completed trials' values at the same step is stopped, once
	// startup_trials have completed (default 5) and past warmup_steps
	// (default 0), as Optuna's MedianPruner.
	StartupTrials *int  `json:"startup_trials,omitempty" yaml:"startup_trials"`
	WarmupSteps   int64 `json:"warmup_steps,omitempty" yaml:"warmup_steps"`
}

// Point is one logged value of the intermediate metric.
type Point struct {
	Step      int64   `json:"step"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
}

// Normalize fills the defaults and checks the fields; objective is the
// objective metric, the default intermediate one.
func (e *EarlyStopping) Normalize(objective string) error {
	switch e.Type {
	case "", "none":
		e.Type = "none"
		return nil
	case "asha", "median":
	default:
		return forge.Errorf(forge.Invalid, "early_stopping.type: %q, want asha, median or none", e.Type)
	}
	if e.Metric == "" {
		e.Metric = objective
	}
	switch e.MetricStep {
	case "":
		e.MetricStep = "step"
	case "step":
	default:
		return forge.Errorf(forge.Invalid, "early_stopping.metric_step: %q, want step (the metric's logged step)", e.MetricStep)
	}
	if e.Type == "median" {
		if e.MinSteps != 0 || e.ReductionFactor != 0 {
			return forge.Errorf(forge.Invalid, "early_stopping: min_steps and reduction_factor are asha's, not median's")
		}
		if e.StartupTrials == nil {
			n := 5
			e.StartupTrials = &n
		}
		if *e.StartupTrials < 0 {
			return forge.Errorf(forge.Invalid, "early_stopping.startup_trials: %d, want 0 or more", *e.StartupTrials)
		}
		if e.WarmupSteps < 0 {
			return forge.Errorf(forge.Invalid, "early_stopping.warmup_steps: %d, want 0 or more", e.WarmupSteps)
		}
		return nil
	}
	if e.StartupTrials != nil || e.WarmupSteps != 0 {
		return forge.Errorf(forge.Invalid, "early_stopping: startup_trials and warmup_steps are median's, not asha's")
	}
	if e.MinSteps == 0 {
		e.MinSteps = 1
	}
	if e.MinSteps < 1 {
		return forge.Errorf(forge.Invalid, "early_stopping.min_steps: %d, want 1 or more", e.MinSteps)
	}
	if e.ReductionFactor == 0 {
		e.ReductionFactor = 3
	}
	if e.ReductionFactor < 2 {
		return forge.Errorf(forge.Invalid, "early_stopping.reduction_factor: %d, want 2 or more", e.ReductionFactor)
	}
	return nil
}

// Curve is one trial's intermediate values, lower better, in step order
// (then timestamp).
type Curve struct {
	Number   int
	Complete bool
	Points   []Point
}

// LowerBetter returns the points with values negated for a maximized
// metric, sorted by step then timestamp.
func LowerBetter(ps []Point, maximize bool) []Point {
	out := append([]Point(nil), ps...)
	if maximize {
		for i := range out {
			out[i].Value = -out[i].Value
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Step != out[b].Step {
			return out[a].Step < out[b].Step
		}
		return out[a].Timestamp < out[b].Timestamp
	})
	return out
}

// Prune says whether the running trial me should stop, and why. others are
// every other trial of the sweep that has logged the metric.
func (e *EarlyStopping) Prune(me Curve, others []Curve) (bool, string) {
	if len(me.Points) == 0 {
		return false, ""
	}
	switch e.Type {
	case "asha":
		return e.asha(me, others)
	case "median":
		return e.median(me, others)
	}
	return false, ""
}

// rungPoint is the trial's value at rung step r: the first one logged at
// a step of r or more.
func rungPoint(ps []Point, r int64) (Point, bool) {
	i := sort.Search(len(ps), func(i int) bool { return ps[i].Step >= r })
	if i == len(ps) {
		return Point{}, false
	}
	return ps[i], true
}

// asha checks every rung the trial has reached. The trials it competes
// with at a rung are those that reached it before it did (by the logged
// timestamp, then trial number), so the verdict is a function of the
// histories: a restart reaches the same one.
func (e *EarlyStopping) asha(me Curve, others []Curve) (bool, string) {
	last := me.Points[len(me.Points)-1].Step
	r := e.MinSteps
	for k := 0; last >= r; k++ {
		p, _ := rungPoint(me.Points, r)
		if math.IsNaN(p.Value) {
			return true, fmt.Sprintf("NaN at step %d", p.Step)
		}
		competing := []float64{p.Value}
		for _, o := range others {
			q, ok := rungPoint(o.Points, r)
			if ok && !math.IsNaN(q.Value) && (q.Timestamp < p.Timestamp || q.Timestamp == p.Timestamp && o.Number < me.Number) {
				competing = append(competing, q.Value)
			}
		}
		// As Optuna: promotable if among the best len/eta; the first
		// eta-1 trials of a rung only if they are the best so far.
		idx := max(len(competing)/e.ReductionFactor-1, 0)
		sort.Float64s(competing)
		if p.Value > competing[idx] {
			return true, fmt.Sprintf("rung %d (step %d): not in the best 1/%d of %d trials", k, r, e.ReductionFactor, len(competing))
		}
		if r > math.MaxInt64/int64(e.ReductionFactor) {
			break
		}
		r *= int64(e.ReductionFactor)
	}
	return false, ""
}

// median is Optuna's MedianPruner (a 50th PercentilePruner, interval 1,
// n_min_trials 1): the trial's best value so far against the median of
// the completed trials' values at its latest step.
func (e *EarlyStopping) median(me Curve, others []Curve) (bool, string) {
	var done []Curve
	for _, o := range others {
		if o.Complete {
			done = append(done, o)
		}
	}
	if len(done) == 0 || len(done) < *e.StartupTrials {
		return false, ""
	}
	step := me.Points[len(me.Points)-1].Step
	if step < e.WarmupSteps {
		return false, ""
	}
	best := math.Inf(1)
	for _, p := range me.Points {
		if math.IsNaN(p.Value) {
			continue
		}
		best = math.Min(best, p.Value)
	}
	if math.IsInf(best, 1) {
		return true, "NaN at every step"
	}
	var at []float64
	for _, o := range done {
		// The value last logged at the step, as Optuna keeps one per step.
		v, ok := math.NaN(), false
		for _, p := range o.Points {
			if p.Step == step {
				v, ok = p.Value, true
			}
		}
		if ok && !math.IsNaN(v) {
			at = append(at, v)
		}
	}
	if len(at) == 0 {
		return false, ""
	}
	m := percentile(at, 50)
	if best > m {
		return true, fmt.Sprintf("step %d: best %g is worse than the median %g of %d completed trials", step, best, m, len(at))
	}
	return false, ""
}

// percentile is numpy's default (linear) percentile.
func percentile(xs []float64, q float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
