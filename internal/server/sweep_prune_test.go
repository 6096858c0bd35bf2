package server_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
)

// curveScript is a trial with a learning curve: at step s it logs
// (x - 0.3)^2 + 1/s, for steps 1 to 8, a little apart; after the last it
// waits, so that the sweep sees every step before the trial ends.
const curveScript = `
import json, os, sys, time, urllib.request
x = float(sys.argv[1])
headers = {"Content-Type": "application/json"}
if os.environ.get("MLFLOW_TRACKING_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
for step in range(1, 9):
    body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": (x - 0.3) ** 2 + 1 / step,
            "timestamp": int(time.time() * 1000), "step": step}
    urllib.request.urlopen(urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
        data=json.dumps(body).encode(), headers=headers)).read()
    time.sleep(0.3)
time.sleep(3)
`

// An ASHA sweep of real trial processes on the local executor, one at a
// time: the trials the rule gives up on (computed here from their params,
// since every curve ranks the trials as its final value does) end as
// pruned, their jobs cancelled with reason pruned and their runs KILLED;
// the others complete, and the best trial is the best of all.
func TestSweepASHAPrunesTrials(t *testing.T) {
	parent, err := os.MkdirTemp("", "forge-sweep-asha-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ := startForge(t, "--data-dir", filepath.Join(parent, "data"))
	c := api.NewClient(p.url, "")
	ctx := context.Background()
	lo, hi := -1.0, 1.0
	const trials = 6
	spec := api.SweepSpec{Name: "asha", Command: []string{"/usr/bin/python3", "-c", curveScript, "${x}"},
		Objective: api.SweepObjective{Metric: "loss"}, Algorithm: "random", MaxTrials: trials, Parallel: 1, Seed: 3,
		Parameters:    map[string]*api.SweepParam{"x": {Type: "float", Min: &lo, Max: &hi}},
		EarlyStopping: &api.SweepEarlyStopping{Type: "asha", MinSteps: 1, ReductionFactor: 3}}
	if _, err := c.CreateSweep(ctx, spec); err != nil {
		t.Fatal(err)
	}
	sw := waitSweep(t, c, "asha", func(sw api.Sweep) bool { return sw.State != "running" })
	if sw.State != "finished" || len(sw.Trials) != trials {
		t.Fatalf("sweep: %+v", sw)
	}
	byNumber := append([]api.SweepTrial(nil), sw.Trials...)
	sort.Slice(byNumber, func(a, b int) bool { return byNumber[a].Number < byNumber[b].Number })

	// Trials ran one after another, so at each rung (steps 1 and 3; 9 is
	// past the last step) a trial meets the earlier ones that got there.
	final := make([]float64, trials)
	reached := make([]int, trials) // rungs passed
	want := make([]bool, trials)
	for i, tr := range byNumber {
		x, _ := strconv.ParseFloat(tr.Params["x"], 64)
		final[i] = (x - 0.3) * (x - 0.3)
		for rung := range 2 {
			competing := []float64{final[i]}
			for j := range i {
				if reached[j] >= rung {
					competing = append(competing, final[j])
				}
			}
			sort.Float64s(competing)
			if final[i] > competing[max(len(competing)/3-1, 0)] {
				want[i] = true
				break
			}
			reached[i] = rung + 1
		}
	}
	pruned := 0
	best := math.Inf(1)
	for i, tr := range byNumber {
		j, err := c.Job(ctx, tr.JobID)
		if err != nil {
			t.Fatal(err)
		}
		run, err := c.GetRun(ctx, tr.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if want[i] {
			pruned++
			if tr.State != "pruned" || j.State != "cancelled" || j.Reason != "pruned" || run.Info.Status != "KILLED" || !strings.HasPrefix(tr.Message, "pruned at step") {
				t.Errorf("trial %d (final %.4f): %s %q, job %s %s, run %s; want pruned, its job cancelled (pruned), its run KILLED",
					i, final[i], tr.State, tr.Message, j.State, j.Reason, run.Info.Status)
			}
			continue
		}
		best = math.Min(best, final[i])
		if tr.State != "complete" || j.State != "succeeded" || tr.Value == nil || math.Abs(*tr.Value-(final[i]+1.0/8)) > 1e-9 {
			t.Errorf("trial %d (final %.4f): %s %v %q, job %s; want complete at its step 8 value", i, final[i], tr.State, tr.Value, tr.Message, j.State)
		}
	}
	if pruned == 0 || pruned == trials {
		t.Fatalf("the seed gives %d pruned trials of %d: pick one that prunes some", pruned, trials)
	}
	if sw.Best == nil || math.Abs(*sw.Best.Value-(best+1.0/8)) > 1e-9 {
		t.Fatalf("best %+v, want the complete trial with the least loss %v", sw.Best, best+1.0/8)
	}
	// sweeps show marks them.
	out, errOut, code := runForge(t, []string{"FORGE_SERVER=" + p.url}, "sweeps", "show", "asha")
	if code != 0 || !strings.Contains(out, "early stop:  asha on loss by step (min_steps 1, reduction_factor 3), "+strconv.Itoa(pruned)+" trials pruned") ||
		strings.Count(out, " pruned ") != pruned {
		t.Fatalf("forge sweeps show: %d %s %s", code, out, errOut)
	}
}
