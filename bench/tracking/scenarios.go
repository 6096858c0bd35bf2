package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forge-mlops/forge/api"
)

// Each scenario replays the request sequence behind one of MLflow 2.12.2's
// measured figures, with the REST calls the mlflow Python client makes.

// seqLogMetric is (a): mlflow.log_metric 1,000 times on one run.
func seqLogMetric(ctx context.Context, c *client, tag string) (time.Duration, error) {
	exp, err := c.createExperiment(ctx, "bench-a-"+tag)
	if err != nil {
		return 0, err
	}
	run, err := c.createRun(ctx, exp, "log-metric")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range 1000 {
		if err := c.logMetric(ctx, run, "loss", 1/float64(i+1), int64(i)); err != nil {
			return 0, fmt.Errorf("log-metric %d: %w", i, err)
		}
	}
	d := time.Since(start)
	pts, err := c.history(ctx, run, "loss")
	if err != nil {
		return 0, err
	}
	if len(pts) != 1000 {
		return 0, fmt.Errorf("get-history has %d points, want 1000", len(pts))
	}
	return d, nil
}

// batchMetrics is (b): mlflow.log_batch with 10,000 metric points, which the
// client splits into 10 requests of 1,000.
func batchMetrics(ctx context.Context, c *client, tag string) (time.Duration, error) {
	exp, err := c.createExperiment(ctx, "bench-b-"+tag)
	if err != nil {
		return 0, err
	}
	run, err := c.createRun(ctx, exp, "log-batch")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for b := range 10 {
		now := api.Int64(time.Now().UnixMilli())
		req := api.LogBatchRequest{RunID: run, Metrics: make([]api.Metric, 1000)}
		for i := range req.Metrics {
			step := b*1000 + i
			req.Metrics[i] = api.Metric{Key: "loss", Value: api.Float(1 / float64(step+1)), Timestamp: now, Step: api.Int64(step)}
		}
		if err := c.logBatch(ctx, req); err != nil {
			return 0, fmt.Errorf("log-batch %d: %w", b, err)
		}
	}
	d := time.Since(start)
	pts, err := c.history(ctx, run, "loss")
	if err != nil {
		return 0, err
	}
	if len(pts) != 10000 {
		return 0, fmt.Errorf("get-history has %d points, want 10000", len(pts))
	}
	return d, nil
}

// runBatch is the one log_batch of a benchmark run: a few params, metrics, tags.
func runBatch(runID string, rng *rand.Rand) api.LogBatchRequest {
	now := api.Int64(time.Now().UnixMilli())
	return api.LogBatchRequest{
		RunID: runID,
		Params: []api.KV{{Key: "lr", Value: fmt.Sprintf("%.4f", rng.Float64()/10)},
			{Key: "max_depth", Value: fmt.Sprint(rng.IntN(10) + 2)}, {Key: "optimizer", Value: "adam"}},
		Metrics: []api.Metric{{Key: "acc", Value: api.Float(rng.Float64()), Timestamp: now},
			{Key: "loss", Value: api.Float(rng.Float64() * 2), Timestamp: now},
			{Key: "f1", Value: api.Float(rng.Float64()), Timestamp: now}},
		Tags: []api.KV{{Key: "team", Value: "bench"}, {Key: "dataset", Value: "iris"}},
	}
}

// createRuns is (c): 1,000 runs, each runs/create, one runs/log-batch, and
// runs/update to FINISHED, one after the other. It returns the experiment
// for (d).
func createRuns(ctx context.Context, c *client, tag string) (time.Duration, string, error) {
	exp, err := c.createExperiment(ctx, "bench-c-"+tag)
	if err != nil {
		return 0, "", err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for i := range 1000 {
		run, err := c.createRun(ctx, exp, fmt.Sprintf("run-%d", i))
		if err != nil {
			return 0, "", fmt.Errorf("runs/create %d: %w", i, err)
		}
		if err := c.logBatch(ctx, runBatch(run, rng)); err != nil {
			return 0, "", fmt.Errorf("log-batch %d: %w", i, err)
		}
		if err := c.finishRun(ctx, run); err != nil {
			return 0, "", fmt.Errorf("runs/update %d: %w", i, err)
		}
	}
	return time.Since(start), exp, nil
}

// searchAllRuns is (d): mlflow.search_runs over an experiment of 1,000 runs,
// all of them returned (max_results 1000, following page tokens). It runs
// five times and gives the median.
func searchAllRuns(ctx context.Context, c *client, exp string) (time.Duration, error) {
	var ds []time.Duration
	for range 5 {
		start := time.Now()
		runs, err := c.searchAll(ctx, api.SearchRunsRequest{ExperimentIDs: []string{exp}, RunViewType: "ACTIVE_ONLY", MaxResults: 1000})
		if err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
		if len(runs) != 1000 {
			return 0, fmt.Errorf("search returned %d runs, want 1000", len(runs))
		}
		for _, r := range runs {
			if r.Info.Status != "FINISHED" || len(r.Data.Metrics) != 3 || len(r.Data.Params) != 3 {
				return 0, fmt.Errorf("run %s came back incomplete: status %s, %d metrics, %d params", r.Info.RunID, r.Info.Status, len(r.Data.Metrics), len(r.Data.Params))
			}
		}
	}
	return quantile(ds, 0.5), nil
}

// concurrentResult is what (e) found.
type concurrentResult struct {
	writers          int
	elapsed          time.Duration
	acked, batches   int64
	missing, extra   int64
	errors, locked   int64
	errorKinds       map[string]int64
	p50, p99         time.Duration
	verifiedInterval time.Duration
}

// concurrentWriters is (e): writers each log batches of keys x steps points
// to their own run until the duration ends; then every acknowledged point is
// looked up with metrics/get-history.
func concurrentWriters(ctx context.Context, c *client, tag string, writers, keys, steps int, dur time.Duration) (concurrentResult, error) {
	res := concurrentResult{writers: writers, errorKinds: map[string]int64{}}
	exp, err := c.createExperiment(ctx, "bench-e-"+tag)
	if err != nil {
		return res, err
	}
	runs := make([]string, writers)
	for i := range runs {
		if runs[i], err = c.createRun(ctx, exp, fmt.Sprintf("writer-%d", i)); err != nil {
			return res, err
		}
	}
	// acked[w][b] says whether writer w's batch b was acknowledged; batch b
	// holds steps [b*steps, (b+1)*steps) of every key.
	acked := make([][]bool, writers)
	lat := make([][]time.Duration, writers)
	var mu sync.Mutex
	var nerr, nlocked atomic.Int64
	wctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; wctx.Err() == nil; b++ {
				req := api.LogBatchRequest{RunID: runs[w], Metrics: make([]api.Metric, 0, keys*steps)}
				now := api.Int64(time.Now().UnixMilli())
				for k := range keys {
					for s := range steps {
						step := b*steps + s
						req.Metrics = append(req.Metrics, api.Metric{Key: fmt.Sprintf("m%d", k), Value: api.Float(float64(w*1e9 + step)), Timestamp: now, Step: api.Int64(step)})
					}
				}
				// The deadline stops new batches, not the one in flight.
				t0 := time.Now()
				err := c.logBatch(ctx, req)
				lat[w] = append(lat[w], time.Since(t0))
				acked[w] = append(acked[w], err == nil)
				if err != nil {
					nerr.Add(1)
					if strings.Contains(err.Error(), "database is locked") {
						nlocked.Add(1)
					}
					mu.Lock()
					res.errorKinds[errorKind(err)]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.errors, res.locked = nerr.Load(), nlocked.Load()
	var all []time.Duration
	for w := range writers {
		all = append(all, lat[w]...)
		for _, ok := range acked[w] {
			if ok {
				res.batches++
			}
		}
	}
	res.acked = res.batches * int64(keys*steps)
	res.p50, res.p99 = quantile(all, 0.5), quantile(all, 0.99)

	vstart := time.Now()
	for w := range writers {
		for k := range keys {
			pts, err := c.history(ctx, runs[w], fmt.Sprintf("m%d", k))
			if err != nil {
				return res, fmt.Errorf("verify: %w", err)
			}
			have := map[int64]int{}
			for _, p := range pts {
				have[int64(p.Step)]++
			}
			for b, ok := range acked[w] {
				for s := range steps {
					n := have[int64(b*steps+s)]
					switch {
					case ok && n != 1:
						res.missing++
					case !ok && n > 0:
						res.extra++ // an unacknowledged batch that did commit
					}
				}
			}
		}
	}
	res.verifiedInterval = time.Since(vstart)
	return res, nil
}

func errorKind(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		msg := he.body
		if len(msg) > 80 {
			msg = msg[:80]
		}
		return fmt.Sprintf("HTTP %d %s", he.status, msg)
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// searchResult is what (f) found.
type searchResult struct {
	runs          int
	populate      time.Duration
	p50, p95, max time.Duration
	matched       int
}

// searchMany is (f): populate an experiment with n runs (create + one
// log-batch each, from several workers), then time 50 searches with a metric
// filter, ordered by a metric, 100 results (the MLflow UI's page size).
func searchMany(ctx context.Context, c *client, tag string, n, workers int, progress func(done int)) (searchResult, error) {
	res := searchResult{runs: n}
	exp, err := c.createExperiment(ctx, "bench-f-"+tag)
	if err != nil {
		return res, err
	}
	start := time.Now()
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				run, err := c.createRun(ctx, exp, fmt.Sprintf("run-%d", i))
				if err == nil {
					err = c.logBatch(ctx, runBatch(run, rng))
				}
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				if progress != nil && (i+1)%10000 == 0 {
					progress(i + 1)
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return res, fmt.Errorf("populate: %w", *e)
	}
	res.populate = time.Since(start)

	req := api.SearchRunsRequest{ExperimentIDs: []string{exp}, Filter: "metrics.acc > 0.5",
		OrderBy: []string{"metrics.acc DESC"}, MaxResults: 100, RunViewType: "ACTIVE_ONLY"}
	var ds []time.Duration
	for range 50 {
		var out api.SearchRunsResponse
		t0 := time.Now()
		if err := c.post(ctx, "runs/search", req, &out); err != nil {
			return res, err
		}
		ds = append(ds, time.Since(t0))
		if err := checkOrdered(out.Runs, 100); err != nil {
			return res, err
		}
		res.matched = len(out.Runs)
	}
	res.p50, res.p95, res.max = quantile(ds, 0.5), quantile(ds, 0.95), quantile(ds, 1)
	return res, nil
}

// checkOrdered verifies a page of (f): want runs, each with acc > 0.5, by acc descending.
func checkOrdered(runs []api.Run, want int) error {
	if len(runs) != want {
		return fmt.Errorf("search returned %d runs, want %d", len(runs), want)
	}
	prev := 2.0
	for _, r := range runs {
		acc := -1.0
		for _, m := range r.Data.Metrics {
			if m.Key == "acc" {
				acc = float64(m.Value)
			}
		}
		if acc <= 0.5 || acc > prev {
			return fmt.Errorf("search result out of filter or order: acc %v after %v", acc, prev)
		}
		prev = acc
	}
	return nil
}

// quantile returns the q-quantile (nearest rank) of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
