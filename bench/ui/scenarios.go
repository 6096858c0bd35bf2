package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/forge-mlops/forge/api"
)

const ml = "/api/2.0/mlflow/"

// seedRuns makes an experiment of o.runs runs, each with o.params params
// and o.metrics metrics (one point each), over 4 connections.
// With -server, an experiment already seeded with the same sizes by an
// earlier run is used again.
func seedRuns(ctx context.Context, c *api.Client, o options) (string, error) {
	name := fmt.Sprintf("bench-ui-runs-%dx%dx%d", o.runs, o.params, o.metrics)
	if id, ok := seeded(ctx, c, o, name); ok {
		return id, nil
	}
	var exp api.CreateExperimentResponse
	if err := c.Do(ctx, "POST", ml+"experiments/create", nil, map[string]any{"name": name}, &exp); err != nil {
		return "", err
	}
	return exp.ExperimentID, parallel(o.runs, 4, func(i int) error {
		var r api.RunResponse
		if err := c.Do(ctx, "POST", ml+"runs/create", nil, map[string]any{"experiment_id": exp.ExperimentID,
			"run_name": fmt.Sprintf("run-%05d", i), "start_time": 1764750000000 + int64(i)*1000}, &r); err != nil {
			return err
		}
		var params, metrics []map[string]any
		for p := 0; p < o.params; p++ {
			params = append(params, map[string]any{"key": fmt.Sprintf("p%02d", p), "value": fmt.Sprint((i*7 + p) % 13)})
		}
		for m := 0; m < o.metrics; m++ {
			metrics = append(metrics, map[string]any{"key": fmt.Sprintf("m%02d", m), "value": float64((i*31+m*17)%1000) / 1000, "step": 0, "timestamp": 1764750000000})
		}
		return c.Do(ctx, "POST", ml+"runs/log-batch", nil, map[string]any{"run_id": r.Run.Info.RunID, "params": params, "metrics": metrics}, nil)
	})
}

// seedHistories makes o.chartRuns runs with o.chartSteps steps of "loss"
// each, with a spike, in batches of 1,000 points (MLflow's limit).
func seedHistories(ctx context.Context, c *api.Client, o options) ([]string, error) {
	name := fmt.Sprintf("bench-ui-charts-%dx%d", o.chartRuns, o.chartSteps)
	if id, ok := seeded(ctx, c, o, name); ok {
		return runIDs(ctx, c, id, o.chartRuns)
	}
	var exp api.CreateExperimentResponse
	if err := c.Do(ctx, "POST", ml+"experiments/create", nil, map[string]any{"name": name}, &exp); err != nil {
		return nil, err
	}
	ids := make([]string, o.chartRuns)
	err := parallel(o.chartRuns, 4, func(i int) error {
		var r api.RunResponse
		if err := c.Do(ctx, "POST", ml+"runs/create", nil, map[string]any{"experiment_id": exp.ExperimentID, "run_name": fmt.Sprintf("curve-%03d", i)}, &r); err != nil {
			return err
		}
		ids[i] = r.Run.Info.RunID
		for s0 := 0; s0 < o.chartSteps; s0 += 1000 {
			var ms []map[string]any
			for s := s0; s < min(s0+1000, o.chartSteps); s++ {
				v := 1/float64(s+1) + float64(i)*0.001
				if s == o.chartSteps/2 {
					v = 5
				}
				ms = append(ms, map[string]any{"key": "loss", "value": v, "step": s, "timestamp": 1764750000000 + int64(s)*100})
			}
			if err := c.Do(ctx, "POST", ml+"runs/log-batch", nil, map[string]any{"run_id": ids[i], "metrics": ms}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

// seeded finds an experiment that an earlier run against the same -server
// made (a fresh -forge server has none).
func seeded(ctx context.Context, c *api.Client, o options, name string) (string, bool) {
	if o.server == "" {
		return "", false
	}
	exp, err := c.GetExperimentByName(ctx, name)
	return exp.ExperimentID, err == nil && exp.ExperimentID != ""
}

func parallel(n, workers int, fn func(i int) error) error {
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			close(next)
			wg.Wait()
			return err
		case next <- i:
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// runsScenario: the experiment page of o.runs runs: first rows visible,
// every run loaded, sorting by a metric, scrolling the whole table, and
// the tab's memory.
func runsScenario(ctx context.Context, w io.Writer, b *browser, base, expID string, o options, round int) (scrollStats, error) {
	if err := b.navigate(base + "/#/experiments/" + expID); err != nil {
		return scrollStats{}, err
	}
	var loaded struct{ First, All float64 }
	if err := b.eval(`new Promise(resolve => {
		const t = () => {
			const row = document.querySelector('#runs .vt-row');
			if (row && !window.__first) window.__first = performance.now();
			if (document.getElementById('run-count') && document.getElementById('run-count').textContent === '`+fmt.Sprintf("%d runs", o.runs)+`') resolve({ First: window.__first, All: performance.now() });
			else requestAnimationFrame(t);
		};
		t();
	})`, &loaded); err != nil {
		return scrollStats{}, fmt.Errorf("wait for rows: %w", err)
	}
	var sortMs float64
	if err := b.eval(`(async () => {
		window.__long = [];
		const before = document.querySelector('#runs .vt-row').dataset.run;
		const t0 = performance.now();
		document.querySelector('#runs .vt-head [data-col="metrics.m00"]').click();
		await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
		const ms = performance.now() - t0;
		if (document.querySelector('#runs .vt-row').dataset.run === before) throw new Error('sorting did not change the first row');
		return ms;
	})()`, &sortMs); err != nil {
		return scrollStats{}, fmt.Errorf("sort: %w", err)
	}
	scroll, err := b.scroll("runs")
	if err != nil {
		return scrollStats{}, err
	}
	mem, err := b.tabMemory()
	if err != nil {
		return scrollStats{}, err
	}
	fmt.Fprintf(w, "runs page %d runs: first rows\t%d\t%.0f ms\t< 500 ms\t\n", o.runs, round, loaded.First)
	fmt.Fprintf(w, "runs page: all %d loaded\t%d\t%.0f ms\t\t\n", o.runs, round, loaded.All)
	fmt.Fprintf(w, "runs page: sort by a metric\t%d\t%.0f ms\t< 200 ms\t\n", round, sortMs)
	fmt.Fprintf(w, "runs page: scroll top to bottom\t%d\t%s\t60 fps, none > 50 ms\t\n", round, scroll)
	fmt.Fprintf(w, "runs page: tab memory\t%d\t%s\t< 300 MB\t\n", round, mem)
	return scroll, nil
}

// chartScenario: the compare page overlaying o.chartRuns runs of
// o.chartSteps steps: drawn, bytes sent for it, and a zoom by drag.
func chartScenario(ctx context.Context, w io.Writer, b *browser, base string, ids []string, o options, round int) error {
	if err := b.navigate(base + "/#/compare?metric=loss&runs=" + strings.Join(ids, ",")); err != nil {
		return err
	}
	var drawn struct {
		Ms    float64 `json:"ms"`
		Bytes float64 `json:"bytes"`
		Info  string  `json:"info"`
		// Where the time went: before the buckets call (the page, the
		// runs), the call itself (server and transfer), after it (decode,
		// arrays, draw).
		Before  float64 `json:"before"`
		Buckets float64 `json:"buckets"`
		After   float64 `json:"after"`
	}
	if err := b.eval(`new Promise(resolve => {
		const t = () => {
			const info = document.querySelector('#charts .chart-info');
			if (document.querySelector('#charts canvas') && info) {
				const ms = performance.now();
				const api = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'));
				const bytes = api.reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0);
				const b = api.filter(e => e.name.includes('/metrics/buckets'));
				const buckets = b.length ? Math.max(...b.map(e => e.responseEnd)) - Math.min(...b.map(e => e.startTime)) : 0;
				const before = b.length ? Math.min(...b.map(e => e.startTime)) : 0;
				resolve({ ms, bytes, info: info.textContent, buckets, before, after: ms - (b.length ? Math.max(...b.map(e => e.responseEnd)) : ms) });
			} else requestAnimationFrame(t);
		};
		t();
	})`, &drawn); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	var zoom struct {
		LongMax float64 `json:"long_max"`
		LongN   int     `json:"long_n"`
	}
	if err := b.eval(`(async () => {
		window.__long = [];
		const over = document.querySelector('#charts .u-over');
		const r = over.getBoundingClientRect();
		const at = (type, x) => over.dispatchEvent(new MouseEvent(type, { bubbles: true, clientX: r.left + x, clientY: r.top + r.height / 2, button: 0 }));
		at('mousedown', r.width * 0.3);
		for (let i = 1; i <= 20; i++) { at('mousemove', r.width * (0.3 + i * 0.02)); await new Promise(f => requestAnimationFrame(f)); }
		document.dispatchEvent(new MouseEvent('mouseup', { bubbles: true, clientX: r.left + r.width * 0.7, clientY: r.top + r.height / 2 }));
		await new Promise(f => setTimeout(f, 200));
		return { long_max: Math.max(0, ...window.__long), long_n: window.__long.length };
	})()`, &zoom); err != nil {
		return fmt.Errorf("zoom: %w", err)
	}
	fmt.Fprintf(w, "chart %d runs x %d steps: drawn\t%d\t%.0f ms (%s)\t< 1 s\t\n", o.chartRuns, o.chartSteps, round, drawn.Ms, drawn.Info)
	fmt.Fprintf(w, "chart: page and runs, buckets call, decode and draw\t%d\t%.0f + %.0f + %.0f ms\t\t\n", round, drawn.Before, drawn.Buckets, drawn.After)
	fmt.Fprintf(w, "chart: bytes fetched from the API\t%d\t%.2f MB\t< 2 MB\t\n", round, drawn.Bytes/1e6)
	fmt.Fprintf(w, "chart: zoom by drag\t%d\t%d long tasks (max %.0f ms)\tnone > 50 ms\t\n", round, zoom.LongN, zoom.LongMax)
	mem, err := b.tabMemory()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "chart: tab memory\t%d\t%s\t< 300 MB\t\n", round, mem)
	return nil
}

// pcoordsScenario: the compare page of 1,000 runs of the experiment, until
// its parallel coordinates are drawn.
func pcoordsScenario(ctx context.Context, w io.Writer, b *browser, base string, ids []string, round int) error {
	if err := b.navigate(base + "/#/compare?metric=m00&runs=" + strings.Join(ids, ",")); err != nil {
		return err
	}
	var ms float64
	if err := b.eval(`new Promise(resolve => {
		const t = () => {
			const c = document.querySelector('#pcoords canvas');
			if (c && Number(c.dataset.lines) === `+fmt.Sprint(len(ids))+`) resolve(performance.now()); else requestAnimationFrame(t);
		};
		t();
	})`, &ms); err != nil {
		return fmt.Errorf("parallel coordinates: %w", err)
	}
	fmt.Fprintf(w, "compare %d runs: parallel coordinates drawn\t%d\t%.0f ms\t< 1 s\t\n", len(ids), round, ms)
	return nil
}

// runIDs reads the first n run IDs of an experiment.
func runIDs(ctx context.Context, c *api.Client, expID string, n int) ([]string, error) {
	var out struct {
		Runs []struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"runs"`
	}
	if err := c.Do(ctx, "POST", ml+"runs/search", nil, map[string]any{"experiment_ids": []string{expID}, "max_results": n}, &out); err != nil {
		return nil, err
	}
	ids := make([]string, len(out.Runs))
	for i, r := range out.Runs {
		ids[i] = r.Info.RunID
	}
	return ids, nil
}
