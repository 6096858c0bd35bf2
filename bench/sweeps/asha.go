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
	fmt.Printf("(b) learning curves: %d trials of %d steps, %d at a time; steps used and the final best found\n", curveTrials, curveSteps, curveWorkers)
	var ratios, gaps, mratios, mgaps []float64
	for seed := range uint64(10) {
		r := rand.New(rand.NewPCG(seed, 5))
		trials := make([]curveTrial, curveTrials)
		for i := range trials {
			x, y := -5+15*r.Float64(), 15*r.Float64()
			trials[i] = curveTrial{final: branin(x, y), bump: 10 * (1 + math.Sin(2*x) + math.Cos(y))}
		}
		full, fullBest := simulate(trials, nil)
		asha := &sweep.EarlyStopping{Type: "asha", MinSteps: 1, ReductionFactor: 3}
		median := &sweep.EarlyStopping{Type: "median"}
		for _, es := range []*sweep.EarlyStopping{asha, median} {
			if err := es.Normalize("loss"); err != nil {
				panic(err)
			}
		}
		as, ab := simulate(trials, asha)
		ms, mb := simulate(trials, median)
		ratios, gaps = append(ratios, float64(as)/float64(full)), append(gaps, (ab-fullBest)/math.Abs(fullBest))
		mratios, mgaps = append(mratios, float64(ms)/float64(full)), append(mgaps, (mb-fullBest)/math.Abs(fullBest))
		fmt.Printf("    seed %d: all to the end %d steps, best %.4f; asha %d steps (%.3f), best %.4f (+%.2f%%); median %d steps (%.3f), best %.4f (+%.2f%%)\n",
			seed, full, fullBest, as, float64(as)/float64(full), ab, 100*(ab-fullBest)/math.Abs(fullBest),
			ms, float64(ms)/float64(full), mb, 100*(mb-fullBest)/math.Abs(fullBest))
	}
	_, rm, _ := quartiles(ratios)
	_, gm, _ := quartiles(gaps)
	_, mrm, _ := quartiles(mratios)
	_, mgm, _ := quartiles(mgaps)
	fmt.Printf("    median over 10 seeds: asha %.3f of the steps, best +%.2f%%; median rule %.3f of the steps, best +%.2f%% (goal <= 0.333, within 2%%)\n",
		rm, 100*gm, mrm, 100*mgm)
}
