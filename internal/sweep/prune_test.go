package sweep

import (
	"math"
	"strings"
	"testing"
)

// pts makes a curve from values at steps 1, 2, ..., each logged at
// timestamp t0 + step.
func pts(t0 int64, vs ...float64) []Point {
	out := make([]Point, len(vs))
	for i, v := range vs {
		out[i] = Point{Step: int64(i + 1), Value: v, Timestamp: t0 + int64(i+1)}
	}
	return out
}

func asha(t *testing.T, minSteps int64, rf int) *EarlyStopping {
	t.Helper()
	e := &EarlyStopping{Type: "asha", MinSteps: minSteps, ReductionFactor: rf}
	if err := e.Normalize("loss"); err != nil {
		t.Fatal(err)
	}
	return e
}

// ASHA with eta 3 and rungs at steps 1, 3, 9: a trial is judged at each
// rung only against the trials that reached it before it did.
func TestASHAFixedHistories(t *testing.T) {
	e := asha(t, 1, 3)
	a := Curve{Number: 0, Points: pts(0, 5, 4, 3, 2, 2, 2, 2, 2, 1.5, 1)}
	b := Curve{Number: 1, Points: pts(100, 4, 3.5, 3.2)}
	c := Curve{Number: 2, Points: pts(200, 6)}
	d := Curve{Number: 3, Points: pts(300, 4.5, 4, 3.9)}
	e5 := Curve{Number: 4, Points: pts(400, 3, 2, 1)}
	cases := []struct {
		name   string
		me     Curve
		others []Curve
		prune  bool
		why    string
	}{
		// The first to reach every rung is promoted: later, better
		// trials do not count against it.
		{"first trial", a, []Curve{b, c, d, e5}, false, ""},
		// Rung 0 [4, 5]: best of two, promoted. Rung 1 (step 3): only
		// a reached it before (3), and 3.2 is worse.
		{"second trial", b, []Curve{a, c, d, e5}, true, "rung 1 (step 3)"},
		// Rung 0 [6, 5, 4]: 1/3 of 3 is one, and 6 is not the best.
		{"third trial", c, []Curve{a, b, d, e5}, true, "rung 0 (step 1): not in the best 1/3 of 3 trials"},
		{"fourth trial", d, []Curve{a, b, c, e5}, true, "rung 0 (step 1)"},
		// Best at rung 0 (3 < 4) and at rung 1 (1 < a's 3 and b's 3.2).
		{"fifth trial", e5, []Curve{a, b, c, d}, false, ""},
		// Below the first rung nothing is decided.
		{"before the first rung", Curve{Number: 9, Points: pts(900, 100)[:0]}, []Curve{a}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := e.Prune(tc.me, tc.others)
			if got != tc.prune || !strings.HasPrefix(why, tc.why) {
				t.Fatalf("prune = %v %q, want %v %q", got, why, tc.prune, tc.why)
			}
		})
	}

	// With six trials at a rung, the best two go on (6/3 = 2).
	var six []Curve
	for i, v := range []float64{1, 2, 3, 4, 5} {
		six = append(six, Curve{Number: i, Points: pts(int64(i)*10, v)})
	}
	for _, tc := range []struct {
		v     float64
		prune bool
	}{{1.5, false}, {2, false}, {2.5, true}} {
		me := Curve{Number: 5, Points: pts(100, tc.v)}
		if got, _ := e.Prune(me, six); got != tc.prune {
			t.Errorf("sixth trial at %g among 1..5: prune = %v, want %v", tc.v, got, tc.prune)
		}
	}

	// min_steps 2, eta 2: rungs at 2, 4, 8; the value at a rung is the
	// first logged at or past its step.
	e2 := asha(t, 2, 2)
	first := Curve{Number: 0, Points: []Point{{Step: 2, Value: 1, Timestamp: 1}, {Step: 5, Value: 0.5, Timestamp: 2}}}
	late := Curve{Number: 1, Points: []Point{{Step: 3, Value: 0.9, Timestamp: 10}, {Step: 4, Value: 0.8, Timestamp: 11}}}
	// Rung 0: 0.9 (at step 3) against 1, promoted; rung 1: 0.8 (step 4)
	// against first's 0.5 (step 5), pruned.
	if got, why := e2.Prune(late, []Curve{first}); !got || !strings.HasPrefix(why, "rung 1 (step 4)") {
		t.Errorf("prune = %v %q, want pruned at rung 1 (step 4)", got, why)
	}
	first.Points[1].Value = 0.85
	if got, why := e2.Prune(late, []Curve{first}); got {
		t.Errorf("best at both rungs, below rung 2 (step 8): pruned (%s)", why)
	}

	// NaN stops a trial at once.
	if got, why := e.Prune(Curve{Number: 7, Points: pts(0, math.NaN())}, nil); !got || !strings.Contains(why, "NaN") {
		t.Errorf("NaN: prune = %v %q", got, why)
	}
}

// ASHA on a maximized metric: lowerBetter negates it, so the larger
// value wins the rung.
func TestASHAMaximize(t *testing.T) {
	e := asha(t, 1, 2)
	first := Curve{Number: 0, Points: LowerBetter(pts(0, 0.9), true)}
	worse := Curve{Number: 1, Points: LowerBetter(pts(10, 0.8), true)}
	better := Curve{Number: 2, Points: LowerBetter(pts(10, 0.95), true)}
	if got, _ := e.Prune(worse, []Curve{first}); !got {
		t.Error("accuracy 0.8 after 0.9 with eta 2 was not pruned")
	}
	if got, _ := e.Prune(better, []Curve{first}); got {
		t.Error("accuracy 0.95 after 0.9 was pruned")
	}
}

func TestMedianFixedHistories(t *testing.T) {
	e := &EarlyStopping{Type: "median"}
	if err := e.Normalize("loss"); err != nil {
		t.Fatal(err)
	}
	if *e.StartupTrials != 5 || e.WarmupSteps != 0 || e.Metric != "loss" || e.MetricStep != "step" {
		t.Fatalf("defaults: %+v, want Optuna's (5 startup trials, no warmup)", e)
	}
	var done []Curve
	for i := range 5 {
		// At step 3 the completed trials logged 3, 4, 5, 6, 7: median 5.
		done = append(done, Curve{Number: i, Complete: true, Points: pts(0, 10, 9, float64(3+i), 1)})
	}
	cases := []struct {
		name   string
		me     []float64
		others []Curve
		prune  bool
	}{
		{"worse than the median", []float64{9, 8, 6}, done, true},
		{"at the median", []float64{9, 8, 5}, done, false},
		// The trial's best so far counts, not its latest value.
		{"best earlier step", []float64{4, 8, 6}, done, false},
		{"four completed, below startup", []float64{9, 8, 6}, done[:4], false},
		// Running trials are not compared with.
		{"running others", []float64{9, 8, 6}, []Curve{{Number: 1, Points: pts(0, 1, 1, 1)}}, false},
		// No completed trial logged the step: no verdict.
		{"step past every completed trial", []float64{9, 8, 7, 6, 9}, done, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			me := Curve{Number: 9, Points: pts(0, tc.me...)}
			if got, why := e.Prune(me, tc.others); got != tc.prune {
				t.Fatalf("prune = %v (%s), want %v", got, why, tc.prune)
			}
		})
	}
	// Warm-up: no verdict before warmup_steps.
	w := &EarlyStopping{Type: "median", WarmupSteps: 4}
	if err := w.Normalize("loss"); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.Prune(Curve{Number: 9, Points: pts(0, 9, 8, 6)}, done); got {
		t.Error("pruned at step 3 with warmup_steps 4")
	}
	if p := percentile([]float64{4, 1, 3, 2}, 50); p != 2.5 {
		t.Errorf("median of 1..4 = %g, want 2.5 (numpy's linear percentile)", p)
	}
}

func TestEarlyStoppingSpec(t *testing.T) {
	spec := func(es *EarlyStopping) error {
		s := braninSpec("tpe", 1)
		s.EarlyStopping = es
		return s.Normalize()
	}
	for _, tc := range []struct {
		es    *EarlyStopping
		field string
	}{
		{&EarlyStopping{Type: "hyperband"}, "early_stopping.type"},
		{&EarlyStopping{Type: "asha", ReductionFactor: 1}, "early_stopping.reduction_factor"},
		{&EarlyStopping{Type: "asha", MinSteps: -1}, "early_stopping.min_steps"},
		{&EarlyStopping{Type: "asha", MetricStep: "epoch"}, "early_stopping.metric_step"},
		{&EarlyStopping{Type: "asha", WarmupSteps: 3}, "warmup_steps"},
		{&EarlyStopping{Type: "median", ReductionFactor: 3}, "reduction_factor"},
		{&EarlyStopping{Type: "median", WarmupSteps: -2}, "early_stopping.warmup_steps"},
	} {
		if err := spec(tc.es); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.es, err, tc.field)
		}
	}
	s := braninSpec("tpe", 1)
	s.EarlyStopping = &EarlyStopping{Type: "asha"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if es := s.EarlyStopping; es.MinSteps != 1 || es.ReductionFactor != 3 || es.Metric != "loss" {
		t.Errorf("asha defaults: %+v", es)
	}
	if braninSpec("tpe", 1).EarlyStopping.Type != "none" {
		t.Error("no early_stopping is not none")
	}
}
