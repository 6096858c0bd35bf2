// Command sweeps benchmarks Forge's hyperparameter search next to Optuna
// 3.1 (Debian's python3-optuna), in the same run:
//
//	(a) quality: the best value after -trials trials on Branin, Hartmann-6
//	    and a noisy Branin, over -seeds seeds: median and quartiles for
//	    Forge's TPE (univariate and multivariate) and random search, and
//	    Optuna's TPE (both) and random search;
//	(b) ASHA on a synthetic learning-curve task: steps used against running
//	    every trial to the end, and the final best found;
//	(c) suggest overhead with 1,000 finished trials in the history;
//	(d) a sweep of -local trivial trials on a real server's local executor,
//	    parallel 2: the share of its wall time spent outside the trials'
//	    processes.
//
//	go build -o /tmp/forge-bench ./cmd/forge && nice go run ./bench/sweeps -forge /tmp/forge-bench
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge/internal/sweep"
)

type options struct {
	seeds, trials, local int
	scenarios            string
	python, forge        string
}

func main() {
	var o options
	flag.IntVar(&o.seeds, "seeds", 10, "(a): seeds per function and sampler")
	flag.IntVar(&o.trials, "trials", 50, "(a): trials per search")
	flag.IntVar(&o.local, "local", 200, "(d): trials of the local sweep")
	flag.StringVar(&o.scenarios, "scenarios", "a,b,c,d", "which scenarios to run")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "python with optuna 3.1")
	flag.StringVar(&o.forge, "forge", "/tmp/forge-bench", "(d): the forge binary")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, sc := range strings.Split(o.scenarios, ",") {
		var err error
		switch sc {
		case "a":
			err = quality(ctx, o)
		case "b":
			ashaTask()
		case "c":
			suggestOverhead()
		case "d":
			err = localSweep(ctx, o)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/sweeps:", err)
			os.Exit(1)
		}
	}
}

func branin(x, y float64) float64 {
	b, c, t := 5.1/(4*math.Pi*math.Pi), 5/math.Pi, 1/(8*math.Pi)
	return math.Pow(y-b*x*x+c*x-6, 2) + 10*(1-t)*math.Cos(x) + 10
}

var (
	hA = [4][6]float64{{10, 3, 17, 3.5, 1.7, 8}, {0.05, 10, 17, 0.1, 8, 14}, {3, 3.5, 1.7, 10, 17, 8}, {17, 8, 0.05, 10, 0.1, 14}}
	hP = [4][6]float64{{1312, 1696, 5569, 124, 8283, 5886}, {2329, 4135, 8307, 3736, 1004, 9991},
		{2348, 1451, 3522, 2883, 3047, 6650}, {4047, 8828, 8732, 5743, 1091, 381}}
	hAlpha = [4]float64{1, 1.2, 3, 3.2}
)

func hartmann6(x []float64) float64 {
	s := 0.0
	for i := range 4 {
		e := 0.0
		for j := range 6 {
			d := x[j] - hP[i][j]*1e-4
			e += hA[i][j] * d * d
		}
		s += hAlpha[i] * math.Exp(-e)
	}
	return -s
}

// noise is the noisy Branin's standard deviation (Optuna's side too).
const noise = 5.0

func f(v float64) *float64 { return &v }

func spec(fn, algo string, multivariate bool, seed uint64, trials int) *sweep.Spec {
	ps := map[string]*sweep.Param{"x": {Type: "float", Min: f(-5), Max: f(10)}, "y": {Type: "float", Min: f(0), Max: f(15)}}
	if fn == "hartmann6" {
		ps = map[string]*sweep.Param{}
		for i := range 6 {
			ps["x"+strconv.Itoa(i)] = &sweep.Param{Type: "float", Min: f(0), Max: f(1)}
		}
	}
	s := &sweep.Spec{Name: "b", Command: []string{"x"}, Objective: sweep.Objective{Metric: "v"}, Algorithm: algo,
		Multivariate: multivariate, MaxTrials: trials, Seed: seed, Parameters: ps}
	if err := s.Normalize(); err != nil {
		panic(err)
	}
	return s
}

// eval returns the observed value and the noise-free one.
func eval(fn string, p map[string]string, r *rand.Rand) (float64, float64) {
	num := func(k string) float64 { v, _ := strconv.ParseFloat(p[k], 64); return v }
	if fn == "hartmann6" {
		xs := make([]float64, 6)
		for i := range xs {
			xs[i] = num("x" + strconv.Itoa(i))
		}
		v := hartmann6(xs)
		return v, v
	}
	v := branin(num("x"), num("y"))
	if fn == "noisy_branin" {
		return v + r.NormFloat64()*noise, v
	}
	return v, v
}

// search runs a sweep's sampler sequentially and returns the noise-free
// value of the trial with the best observed one.
func search(fn string, s *sweep.Spec, seed uint64) float64 {
	r := rand.New(rand.NewPCG(seed, 99))
	var hist []sweep.Observation
	bestObs, bestTrue := math.Inf(1), math.Inf(1)
	for i := range s.MaxTrials {
		p := s.Suggest(i, hist)
		v, tv := eval(fn, p, r)
		if v < bestObs {
			bestObs, bestTrue = v, tv
		}
		hist = append(hist, sweep.Observation{Params: p, Value: v, Complete: true})
	}
	return bestTrue
}

// quartiles returns the 25th, 50th and 75th percentiles (linear, as numpy).
func quartiles(xs []float64) (float64, float64, float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	q := func(p float64) float64 {
		pos := p * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(s)-1)
		return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
	}
	return q(0.25), q(0.5), q(0.75)
}

func quality(ctx context.Context, o options) error {
	fns := []string{"branin", "hartmann6", "noisy_branin"}
	optima := map[string]float64{"branin": 0.397887, "hartmann6": -3.32237, "noisy_branin": 0.397887}
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, o.python, "bench/sweeps/optuna_peer.py", strings.Join(fns, ","),
		strconv.Itoa(o.seeds), strconv.Itoa(o.trials)).Output()
	if err != nil {
		return fmt.Errorf("optuna peer: %w", err)
	}
	peerTime := time.Since(t0)
	var peer map[string]json.RawMessage
	if err := json.Unmarshal(out, &peer); err != nil {
		return fmt.Errorf("optuna peer output: %w", err)
	}
	fmt.Printf("(a) best value after %d trials over %d seeds: median [q1, q3] (optuna ran in %.1fs)\n", o.trials, o.seeds, peerTime.Seconds())
	for _, fn := range fns {
		res := map[string][]float64{}
		if err := json.Unmarshal(peer[fn], &res); err != nil {
			return err
		}
		t0 := time.Now()
		for seed := range uint64(o.seeds) {
			res["forge-tpe"] = append(res["forge-tpe"], search(fn, spec(fn, "tpe", false, seed, o.trials), seed))
			res["forge-tpe-mv"] = append(res["forge-tpe-mv"], search(fn, spec(fn, "tpe", true, seed, o.trials), seed))
			res["forge-random"] = append(res["forge-random"], search(fn, spec(fn, "random", false, seed, o.trials), seed))
		}
		fmt.Printf("  %s (optimum %g; forge's three searches in %.2fs)\n", fn, optima[fn], time.Since(t0).Seconds())
		for _, k := range []string{"forge-tpe", "optuna-tpe", "forge-tpe-mv", "optuna-tpe-mv", "forge-random", "optuna-random"} {
			q1, m, q3 := quartiles(res[k])
			fmt.Printf("    %-14s %9.4f [%.4f, %.4f]\n", k, m, q1, q3)
		}
	}
	var ms float64
	json.Unmarshal(peer["suggest_ms"], &ms)
	fmt.Printf("  optuna TPE suggest with 1,000 finished trials (2 params): %.1f ms\n", ms)
	return nil
}

// suggestOverhead times Suggest with 1,000 complete trials of history.
func suggestOverhead() {
	fmt.Println("(c) suggest with 1,000 finished trials: median of 21")
	for _, c := range []struct {
		fn string
		mv bool
	}{{"branin", false}, {"branin", true}, {"hartmann6", false}, {"hartmann6", true}} {
		s := spec(c.fn, "tpe", c.mv, 1, 2000)
		r := rand.New(rand.NewPCG(1, 2))
		rs := spec(c.fn, "random", false, 7, 2000)
		var hist []sweep.Observation
		for i := range 1000 {
			p := rs.Suggest(i, nil)
			v, _ := eval(c.fn, p, r)
			hist = append(hist, sweep.Observation{Params: p, Value: v, Complete: true})
		}
		var ts []float64
		for i := range 21 {
			t0 := time.Now()
			s.Suggest(1000+i, hist)
			ts = append(ts, float64(time.Since(t0).Microseconds())/1000)
		}
		_, m, _ := quartiles(ts)
		fmt.Printf("    %-10s multivariate=%-5v %.2f ms\n", c.fn, c.mv, m)
	}
}
