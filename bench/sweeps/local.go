package main

import (
	"context"
	"fmt"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/bench/forgeproc"
)

// trivialTrial logs its objective and exits.
const trivialTrial = `
import json, os, urllib.request
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": float(os.environ["FORGE_PARAM_X"]) ** 2, "timestamp": 0, "step": 0}
urllib.request.urlopen(urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
    data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})).read()
`

// localSweep runs o.local trivial trials, 2 at a time, on a fresh server's
// local executor and compares the sweep's wall time with the time its
// trials' processes ran (each job's started_at to finished_at).
func localSweep(ctx context.Context, o options) error {
	p, err := forgeproc.Start(ctx, o.forge)
	if err != nil {
		return err
	}
	defer p.Stop()
	c := api.NewClient(p.URL, "")
	lo, hi := -1.0, 1.0
	spec := api.SweepSpec{Name: "trivial", Command: []string{o.python, "-c", trivialTrial}, Objective: api.SweepObjective{Metric: "loss"},
		Algorithm: "random", MaxTrials: o.local, Parallel: 2, Parameters: map[string]*api.SweepParam{"x": {Type: "float", Min: &lo, Max: &hi}}}
	t0 := time.Now()
	if _, err := c.CreateSweep(ctx, spec); err != nil {
		return err
	}
	var sw api.Sweep
	for {
		if sw, err = c.Sweep(ctx, "trivial"); err != nil {
			return err
		}
		if sw.State != "running" {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	wall := time.Since(t0)
	if sw.State != "finished" {
		return fmt.Errorf("sweep %s: %s", sw.State, sw.Message)
	}
	js, err := c.Jobs(ctx, "")
	if err != nil {
		return err
	}
	var in time.Duration
	for _, j := range js {
		in += time.Duration(j.FinishedAt-j.StartedAt) * time.Millisecond
	}
	outside := 1 - in.Seconds()/(2*wall.Seconds())
	fmt.Printf("(d) %d trivial trials, parallel 2, local executor: wall %.1fs, trial processes %.1fs (of 2 x wall), %.1f%% outside them (goal < 10%%); %.0f ms per trial\n",
		len(js), wall.Seconds(), in.Seconds(), 100*outside, float64(wall.Milliseconds())/float64(len(js)))
	return nil
}
