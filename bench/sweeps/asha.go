package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/forge-mlops/forge/internal/sweep"
)

// The learning-curve task: trial i's loss at step s (1 to curveSteps) is
// final + bump * (sqrt(curveSteps/s) - 1) / (sqrt(curveSteps) - 1), where
// final is Branin at its params and bump (0 to 30) depends on the params
// another way, so that early and final rankings differ.
const (
	curveTrials  = 60
	curveSteps   = 81
	curveWorkers = 4
)

type curveTrial struct{ final, bump float64 }

func (c curveTrial) at(s int) float64 {
	return c.final + c.bump*(math.Sqrt(curveSteps/float64(s))-1)/(math.Sqrt(curveSteps)-1)
}

// simulate runs the trials on curveWorkers workers, one step per tick,
// asking the pruner (Forge's own, as the sweep service calls it) after
// every step; it returns the steps run and the best final value among
// the trials that ran to the end.
func simulate(trials []curveTrial, es *sweep.EarlyStopping) (steps int, best float64) {
	curves := make([]sweep.Curve, len(trials))
	for i := range curves {
		curves[i].Number = i
	}
	next, tick := 0, int64(0)
	var running []int
	best = math.Inf(1)
	for next < len(trials) || len(running) > 0 {
		for len(running) < curveWorkers && next < len(trials) {
			running = append(running, next)
			next++
		}
		tick++
		var still []int
		for _, i := range running {
			s := len(curves[i].Points) + 1
			curves[i].Points = append(curves[i].Points, sweep.Point{Step: int64(s), Value: trials[i].at(s), Timestamp: tick})
			steps++
			if s == curveSteps {
				curves[i].Complete = true
				best = math.Min(best, trials[i].final)
				continue
			}
			if es != nil {
				var others []sweep.Curve
				for j, c := range curves {
					if j != i && len(c.Points) > 0 {
						others = append(others, c)
					}
				}
				if stop, _ := es.Prune(curves[i], others); stop {
					continue
				}
			}
			still = append(still, i)
		}
		running = still
	}
	return steps, best
}

func ashaTask() {
	fmt.Printf("(b) learning curves: %d trials of %d steps, %d at a time, 10 seeds; steps used against running all to the end, and the final best found\n",
		curveTrials, curveSteps, curveWorkers)
	rules := []struct {
		name string
		es   sweep.EarlyStopping
	}{
		{"asha min_steps 1, eta 3", sweep.EarlyStopping{Type: "asha", MinSteps: 1, ReductionFactor: 3}},
		{"asha min_steps 3, eta 3", sweep.EarlyStopping{Type: "asha", MinSteps: 3, ReductionFactor: 3}},
		{"asha min_steps 9, eta 3", sweep.EarlyStopping{Type: "asha", MinSteps: 9, ReductionFactor: 3}},
		{"median (Optuna defaults)", sweep.EarlyStopping{Type: "median"}},
	}
	for _, rule := range rules {
		es := rule.es
		if err := es.Normalize("loss"); err != nil {
			panic(err)
		}
		var ratios, gaps []float64
		within := 0
		for seed := range uint64(10) {
			r := rand.New(rand.NewPCG(seed, 5))
			trials := make([]curveTrial, curveTrials)
			for i := range trials {
				x, y := -5+15*r.Float64(), 15*r.Float64()
				trials[i] = curveTrial{final: branin(x, y), bump: 10 * (1 + math.Sin(2*x) + math.Cos(y))}
			}
			full, fullBest := simulate(trials, nil)
			steps, best := simulate(trials, &es)
			gap := (best - fullBest) / math.Abs(fullBest)
			ratios, gaps = append(ratios, float64(steps)/float64(full)), append(gaps, gap)
			if gap <= 0.02 {
				within++
			}
		}
		_, rm, _ := quartiles(ratios)
		_, gm, q3 := quartiles(gaps)
		fmt.Printf("    %-26s steps %.3f of all (median), best +%.2f%% (median; q3 +%.2f%%), within 2%% in %d of 10 seeds\n",
			rule.name, rm, 100*gm, 100*q3, within)
	}
	fmt.Println("    goal: <= 0.333 of the steps, best within 2%")
}
