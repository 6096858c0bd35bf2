package server_test

import (
	"context"
	"encoding/json"
	"fmt"

	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// trialScript is a sweep's trial: it checks that the parameter reached it
// both as an argument and as FORGE_PARAM_X, waits a little (so that a
// restart can fall in the middle of the sweep), and logs its loss to its
// own run through MLflow's REST API, trying again while the server
// restarts.
const trialScript = `
import json, os, sys, time, urllib.request
x, opt = float(sys.argv[1]), sys.argv[2]
assert os.environ["FORGE_PARAM_X"] == sys.argv[1] and os.environ["FORGE_PARAM_OPT"] == opt
time.sleep(1)
loss = (x - 0.3) ** 2 + (0 if opt == "b" else 1)
headers = {"Content-Type": "application/json"}
if os.environ.get("MLFLOW_TRACKING_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": loss, "timestamp": 1, "step": 0}
req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
    data=json.dumps(body).encode(), headers=headers)
for i in range(600):  # the server may be restarting
    try:
        urllib.request.urlopen(req).read()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("could not log the loss")
`

func waitSweep(t *testing.T, c *api.Client, name string, done func(api.Sweep) bool) api.Sweep {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for {
		sw, err := c.Sweep(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if done(sw) {
			return sw
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sweep %s: condition not met: %+v", name, sw)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func countState(sw api.Sweep, state string) int {
	n := 0
	for _, tr := range sw.Trials {
		if tr.State == state {
			n++
		}
	}
	return n
}

// A random sweep on a real server's local executor, with the server
// killed (-9) in the middle and a new one started on the same data dir: every
// trial runs once and completes, its run is a child of the sweep's run and
// carries its params, and the best trial is the one with the least loss.
func TestSweepSurvivesRestart(t *testing.T) {
	parent, err := os.MkdirTemp("", "forge-sweep-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, "data")
	p, _ := startForge(t, "--data-dir", dataDir)
	c := api.NewClient(p.url, "")
	ctx := context.Background()
	lo, hi := -1.0, 1.0
	const trials = 8
	spec := api.SweepSpec{Name: "e2e", Command: []string{"/usr/bin/python3", "-c", trialScript, "${x}", "${opt}"},
		Objective: api.SweepObjective{Metric: "loss"}, Algorithm: "random", MaxTrials: trials, Parallel: 2, Seed: 5,
		Parameters: map[string]*api.SweepParam{"x": {Type: "float", Min: &lo, Max: &hi}, "opt": {Values: []any{"a", "b"}}}}

	// Bad input first: refused, naming the field, and nothing created.
	badSpec := spec
	badSpec.Command = append([]string{}, spec.Command...)
	badSpec.Command = append(badSpec.Command, "${lr}")
	if _, err := c.CreateSweep(ctx, badSpec); err == nil || !strings.Contains(err.Error(), "${lr}") {
		t.Fatalf("a spec naming an undefined ${lr}: %v", err)
	}
	if list, err := c.Sweeps(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after a refused spec: %v %v, want no sweep", list, err)
	}

	if _, err := c.CreateSweep(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSweep(ctx, spec); err == nil {
		t.Fatal("a second sweep of the same name was accepted")
	}
	mid := waitSweep(t, c, "e2e", func(sw api.Sweep) bool { return countState(sw, "complete") >= 2 })
	if mid.State != "running" || len(mid.Trials) >= trials && countState(mid, "complete") == trials {
		t.Fatalf("the sweep ended before the restart: %+v", mid)
	}
	p.kill() // kill -9: nothing gets to tidy up

	// The same address: the trials running now log to it.
	p2, _ := startForgeAt(t, strings.TrimPrefix(p.url, "http://"), "--data-dir", dataDir)
	c = api.NewClient(p2.url, "")
	sw := waitSweep(t, c, "e2e", func(sw api.Sweep) bool { return sw.State != "running" })
	if sw.State != "finished" || len(sw.Trials) != trials || countState(sw, "complete") != trials {
		t.Fatalf("after the restart: %+v", sw)
	}
	jobs, err := c.Jobs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != trials {
		t.Fatalf("%d jobs for %d trials: a trial ran twice or not at all", len(jobs), trials)
	}
	seen := map[int]bool{}
	best := math.Inf(1)
	for i, tr := range sw.Trials {
		if seen[tr.Number] {
			t.Fatalf("trial %d twice", tr.Number)
		}
		seen[tr.Number] = true
		x, _ := strconv.ParseFloat(tr.Params["x"], 64)
		want := (x - 0.3) * (x - 0.3)
		if tr.Params["opt"] != "b" {
			want++
		}
		if tr.Value == nil || math.Abs(*tr.Value-want) > 1e-9 {
			t.Fatalf("trial %d: value %v, want %v from its params %v", tr.Number, tr.Value, want, tr.Params)
		}
		if i > 0 && *tr.Value < *sw.Trials[i-1].Value {
			t.Fatalf("trials not sorted by objective: %+v", sw.Trials)
		}
		best = math.Min(best, *tr.Value)
		run, err := c.GetRun(ctx, tr.RunID)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, kv := range run.Data.Params {
			got["param "+kv.Key] = kv.Value
		}
		for _, kv := range run.Data.Tags {
			got["tag "+kv.Key] = kv.Value
		}
		if got["param x"] != tr.Params["x"] || got["param opt"] != tr.Params["opt"] || got["tag mlflow.parentRunId"] != sw.ParentRunID {
			t.Fatalf("trial %d's run: %v, want params %v and parent %s", tr.Number, got, tr.Params, sw.ParentRunID)
		}
	}
	if sw.Best == nil || *sw.Best.Value != best {
		t.Fatalf("best %+v, want the least loss %v", sw.Best, best)
	}
	// The CLI: show prints the best trial first, and the same as JSON.
	env := []string{"FORGE_SERVER=" + p2.url}
	out, errOut, code := runForge(t, env, "sweeps", "show", "e2e")
	bestLine := fmt.Sprintf("best:        trial %d, loss = %s", sw.Best.Number, strconv.FormatFloat(best, 'g', 6, 64))
	if code != 0 || !strings.Contains(out, bestLine) || !strings.Contains(out, "TRIAL  STATE") {
		t.Fatalf("forge sweeps show: %d %s %s, want %q", code, out, errOut, bestLine)
	}
	if first := strings.Split(out[strings.Index(out, "TRIAL"):], "\n")[1]; !strings.HasPrefix(first, strconv.Itoa(sw.Best.Number)+" ") {
		t.Fatalf("the table's first row %q is not the best trial %d", first, sw.Best.Number)
	}
	out, errOut, code = runForge(t, env, "sweeps", "show", "e2e", "-o", "json")
	var shown api.Sweep
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || len(shown.Trials) != trials || shown.Best.Number != sw.Best.Number {
		t.Fatalf("forge sweeps show -o json: %d %s %s", code, out, errOut)
	}
	if out, _, code := runForge(t, env, "sweeps", "ls"); code != 0 || !strings.Contains(out, "e2e") || !strings.Contains(out, "finished") {
		t.Fatalf("forge sweeps ls: %d %s", code, out)
	}
	// A spec file with min above max is refused naming the field.
	bad := filepath.Join(parent, "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\ncommand: [echo, '${x}']\nobjective: {metric: loss}\nalgorithm: random\nmax_trials: 3\nparameters:\n  x: {type: float, min: 2, max: 1}\n"), 0o644)
	if _, errOut, code := runForge(t, env, "sweep", "-f", bad, "--no-code"); code == 0 || !strings.Contains(errOut, "parameters.x: min 2 is above max 1") {
		t.Fatalf("forge sweep -f bad.yaml: %d %s", code, errOut)
	}
	if parentRun, err := c.GetRun(ctx, sw.ParentRunID); err != nil || parentRun.Info.Status != "FINISHED" {
		t.Fatalf("the sweep's run: %+v %v, want FINISHED", parentRun.Info, err)
	}
}

// stopScript is a trial that logs acc 0.5, 0.9, 0.7 for x=1 and waits
// for a cancel otherwise.
const stopScript = `
import json, os, sys, time, urllib.request
x = int(sys.argv[1])
if x != 1:
    time.sleep(600)
for step, acc in enumerate([0.5, 0.9, 0.7]):
    body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "acc", "value": acc, "timestamp": 1, "step": step}
    urllib.request.urlopen(urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})).read()
`

// On PostgreSQL: a trial's objective is its metric's best value when the
// spec says so; stopping a grid sweep cancels its running trial's job;
// resuming it runs the cancelled point again, and stopping a stopped
// sweep is a conflict.
func TestSweepStopResume(t *testing.T) {
	t.Setenv("FORGE_DB", sqlstoretest.PostgresURL(t))
	parent, err := os.MkdirTemp("", "forge-sweep-")
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
	lo, hi := 1.0, 2.0
	spec := api.SweepSpec{Name: "grid", Command: []string{"/usr/bin/python3", "-c", stopScript, "${x}"},
		Objective: api.SweepObjective{Metric: "acc", Goal: "maximize", Use: "best"}, Algorithm: "grid", Parallel: 1,
		Parameters: map[string]*api.SweepParam{"x": {Type: "int", Min: &lo, Max: &hi}}}
	if _, err := c.CreateSweep(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Trial 0 (x=1) completes; trial 1 (x=2) waits.
	waitSweep(t, c, "grid", func(sw api.Sweep) bool {
		return countState(sw, "complete") == 1 && countState(sw, "running") == 1 && sw.Trials[1].RunID != ""
	})
	sw, err := c.StopSweep(ctx, "grid")
	if err != nil || sw.State != "stopped" || countState(sw, "cancelled") != 1 {
		t.Fatalf("stop: %+v %v", sw, err)
	}
	var jobID string
	for _, tr := range sw.Trials {
		if tr.State == "cancelled" {
			jobID = tr.JobID
		}
	}
	ctxJob, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		j, err := c.Job(ctxJob, jobID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Final() {
			if j.State != "cancelled" {
				t.Fatalf("the stopped trial's job: %+v", j)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.StopSweep(ctx, "grid"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("stopping a stopped sweep: %v", err)
	}
	if sw, err = c.ResumeSweep(ctx, "grid"); err != nil || sw.State != "running" {
		t.Fatalf("resume: %+v %v", sw, err)
	}
	// The cancelled point (x=2) runs again; stop it too, then check.
	sw = waitSweep(t, c, "grid", func(sw api.Sweep) bool { return len(sw.Trials) == 3 })
	var again api.SweepTrial
	for _, tr := range sw.Trials {
		if tr.Number == 2 {
			again = tr
		}
	}
	if again.Params["x"] != "2" {
		t.Fatalf("after resume trial 2 is %+v, want x=2 again", again)
	}
	if sw.Best == nil || sw.Best.Params["x"] != "1" || *sw.Best.Value != 0.9 {
		t.Fatalf("best %+v, want x=1 with its best acc 0.9 (not the last, 0.7)", sw.Best)
	}
	if _, err := c.StopSweep(ctx, "grid"); err != nil {
		t.Fatal(err)
	}
}

// A trial that fails counts as failed and the sweep goes on; when more
// than half of max_trials have failed the sweep ends as failed, starting
// no more trials.
func TestSweepFailsWhenMostTrialsFail(t *testing.T) {
	parent, err := os.MkdirTemp("", "forge-sweep-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ := startForge(t, "--data-dir", filepath.Join(parent, "data"))
	c := api.NewClient(p.url, "")
	// x=1 logs its loss, every other value exits 3 without one.
	script := `
import json, os, sys, urllib.request
if sys.argv[1] != "1":
    sys.exit(3)
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": 1, "timestamp": 1, "step": 0}
urllib.request.urlopen(urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})).read()
`
	lo, hi := 1.0, 6.0
	if _, err := c.CreateSweep(context.Background(), api.SweepSpec{Name: "failing", Command: []string{"/usr/bin/python3", "-c", script, "${x}"},
		Objective: api.SweepObjective{Metric: "loss"}, Algorithm: "grid", Parallel: 1,
		Parameters: map[string]*api.SweepParam{"x": {Type: "int", Min: &lo, Max: &hi}}}); err != nil {
		t.Fatal(err)
	}
	sw := waitSweep(t, c, "failing", func(sw api.Sweep) bool { return sw.State != "running" })
	if sw.State != "failed" || sw.Message != "4 of 5 trials failed" || len(sw.Trials) != 5 || countState(sw, "complete") != 1 {
		t.Fatalf("sweep: state %s %q, %d trials, want failed after 4 of 5: %+v", sw.State, sw.Message, len(sw.Trials), sw.Trials)
	}
	if sw.Best == nil || sw.Best.Params["x"] != "1" {
		t.Fatalf("best %+v, want the one trial that completed", sw.Best)
	}
	if run, err := c.GetRun(context.Background(), sw.ParentRunID); err != nil || run.Info.Status != "FAILED" {
		t.Fatalf("the sweep's run: %+v %v, want FAILED", run.Info, err)
	}
}
