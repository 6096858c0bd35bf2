package webui_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/forge-mlops/forge/api"
)

// seeded is what seed logged: an experiment of runs whose final loss is
// known, the best of them, and one run whose name, param and tag are HTML.
type seeded struct {
	expID, bestID, xssID string
	runs                 int
}

const xss = `<img src=x onerror="window.__xss=1">`

func seed(t *testing.T, base string) seeded {
	t.Helper()
	ctx := context.Background()
	c := api.NewClient(base, "")
	var exp api.CreateExperimentResponse
	if err := c.Do(ctx, "POST", "/api/2.0/mlflow/experiments/create", nil, map[string]any{"name": "mnist-sweep"}, &exp); err != nil {
		t.Fatal(err)
	}
	s := seeded{expID: exp.ExperimentID}
	newRun := func(name string, lr string, final float64, tags map[string]string) string {
		var r api.RunResponse
		if err := c.Do(ctx, "POST", "/api/2.0/mlflow/runs/create", nil,
			map[string]any{"experiment_id": exp.ExperimentID, "run_name": name, "start_time": 1764750000000}, &r); err != nil {
			t.Fatal(err)
		}
		id := r.Run.Info.RunID
		var metrics []map[string]any
		for step := 0; step < 50; step++ {
			v := final + float64(49-step)*0.05
			metrics = append(metrics, map[string]any{"key": "loss", "value": v, "step": step, "timestamp": 1764750000000 + step})
		}
		metrics = append(metrics, map[string]any{"key": "accuracy", "value": 1 - final, "step": 49, "timestamp": 1764750000049})
		var tagList []map[string]string
		for k, v := range tags {
			tagList = append(tagList, map[string]string{"key": k, "value": v})
		}
		if err := c.Do(ctx, "POST", "/api/2.0/mlflow/runs/log-batch", nil, map[string]any{"run_id": id, "metrics": metrics,
			"params": []map[string]string{{"key": "lr", "value": lr}}, "tags": tagList}, nil); err != nil {
			t.Fatal(err)
		}
		s.runs++
		return id
	}
	for i := 0; i < 40; i++ {
		lr := []string{"0.1", "0.01", "0.001"}[i%3]
		newRun(fmt.Sprintf("run-%02d", i), lr, 0.3+float64(i%17)*0.01, nil)
	}
	s.bestID = newRun("best-run", "0.01", 0.05, nil)
	s.xssID = newRun(xss, xss, 0.9, map[string]string{"team": xss})
	return s
}

// browser starts headless Chromium for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not installed (scripts/setup.sh test installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.WindowSize(1280, 800))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// This chromedp's protocol tables predate some of Chromium's event
	// values; it says so on every request, harmlessly.
	quiet := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unknown IPAddressSpace") {
			t.Logf("chromedp: %s", msg)
		}
	}
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithErrorf(quiet))
	t.Cleanup(cancel2)
	// Every page records what the Content-Security-Policy blocked.
	record := chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.__csp = [];
			document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`).Do(ctx)
		return err
	})
	if err := chromedp.Run(ctx, record); err != nil { // start the browser
		t.Fatal(err)
	}
	return ctx
}

// screenshot saves what the browser shows under testdata-out/<test>/.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil { // 100: PNG, not JPEG
		t.Fatal(err)
	}
	dir := filepath.Join("testdata-out", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(p)
	t.Logf("screenshot: %s", abs)
}

// runsAt opens an experiment's runs page as a new document (a hash change
// alone would leave the last page's rows in place for a moment) and waits
// until every run is loaded.
func runsAt(url string) chromedp.Action {
	return chromedp.Tasks{chromedp.Navigate("about:blank"), chromedp.Navigate(url), chromedp.WaitVisible(`#runs .vt-row`),
		chromedp.Poll(`/^\d+ runs?$/.test(document.getElementById('run-count').textContent)`, nil)}
}

// run runs actions, each call bounded so that one stuck wait fails its
// own journey with a screenshot instead of the whole test.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		screenshot(t, ctx, "failed")
		t.Fatal(err)
	}
}

func TestBrowserJourneys(t *testing.T) {
	base := startServer(t, false)
	s := seed(t, base)
	ctx := browser(t)
	expURL := base + "/#/experiments/" + s.expID

	t.Run("experiments list", func(t *testing.T) {
		var text string
		run(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#experiments a`),
			chromedp.Poll(`document.querySelector('#experiments tbody tr td:nth-child(3)').textContent === '`+fmt.Sprint(s.runs)+`'`, nil),
			chromedp.Text(`#experiments`, &text))
		if !strings.Contains(text, "mnist-sweep") {
			t.Errorf("experiments list shows %q, want mnist-sweep", text)
		}
		screenshot(t, ctx, "experiments")
	})

	t.Run("sort by a metric finds the best run", func(t *testing.T) {
		var first string
		run(t, ctx, runsAt(expURL),
			chromedp.Click(`#runs .vt-head [data-col="metrics.loss"]`),
			chromedp.Poll(`location.hash.includes('sort=metrics.loss')`, nil),
			chromedp.Text(`#runs .vt-row [data-col="attributes.run_name"]`, &first))
		if first != "best-run" {
			t.Errorf("first row after sorting by loss: %q, want best-run", first)
		}
		// Only the rows in view are in the page, not all of them.
		var rows int
		run(t, ctx, chromedp.Evaluate(`document.querySelectorAll('#runs .vt-row').length`, &rows))
		if rows == 0 || rows >= s.runs {
			t.Errorf("%d rows in the DOM for %d runs: not virtualized", rows, s.runs)
		}
		screenshot(t, ctx, "sorted")
		// The sort is in the URL: reloading it keeps it.
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(`#runs .vt-row`),
			chromedp.Text(`#runs .vt-row [data-col="attributes.run_name"]`, &first))
		if first != "best-run" {
			t.Errorf("after reload the first row is %q, want best-run", first)
		}
	})

	t.Run("min and max of a metric as columns", func(t *testing.T) {
		// Each loss falls over 50 steps to its last value: the run whose
		// highest loss is the lowest is best-run (from 2.5 down to 0.05).
		var name, lo, hi, head string
		first := `#runs .vt-row [data-col="%s"]`
		run(t, ctx, runsAt(expURL+"?cols=attributes.run_name,metrics.loss,min.loss,max.loss&sort=max.loss"),
			chromedp.Poll(`(() => { const c = document.querySelector('#runs .vt-row [data-col="max.loss"]'); return c && c.textContent === '2.5'; })()`, nil),
			chromedp.Text(fmt.Sprintf(first, "attributes.run_name"), &name), chromedp.Text(fmt.Sprintf(first, "min.loss"), &lo),
			chromedp.Text(fmt.Sprintf(first, "max.loss"), &hi), chromedp.Text(`#runs .vt-head [data-col="max.loss"]`, &head))
		if name != "best-run" || lo != "0.05" || hi != "2.5" || !strings.Contains(head, "loss (max)") {
			t.Errorf("first row %q min %q max %q (header %q), want best-run 0.05 2.5 under loss (max)", name, lo, hi, head)
		}
		screenshot(t, ctx, "min-max")
	})

	t.Run("bad filter then a valid one", func(t *testing.T) {
		var msg, count string
		run(t, ctx, runsAt(expURL),
			chromedp.SetValue(`#filter`, `metrics.loss <<< 1`), chromedp.Click(`#search`),
			chromedp.WaitVisible(`#filter-error .error`), chromedp.Text(`#filter-error .error`, &msg))
		if strings.TrimSpace(msg) == "" {
			t.Fatal("the filter error is shown empty")
		}
		t.Logf("inline error: %s", msg)
		screenshot(t, ctx, "bad-filter")
		run(t, ctx, chromedp.SetValue(`#filter`, `params.lr = "0.001"`), chromedp.Click(`#search`),
			chromedp.Poll(`!document.querySelector('#filter-error .error') && document.getElementById('run-count').textContent === '13 runs'`, nil),
			chromedp.Text(`#run-count`, &count))
		var lrs []string
		run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll('#runs .vt-row [data-col="params.lr"]')].map(c => c.textContent)`, &lrs))
		for _, lr := range lrs {
			if lr != "0.001" {
				t.Errorf("filtered table shows lr %q", lr)
			}
		}
		var hash string
		run(t, ctx, chromedp.Evaluate(`location.hash`, &hash))
		if q, _ := url.ParseQuery(hash[strings.Index(hash, "?")+1:]); q.Get("filter") != `params.lr = "0.001"` {
			t.Errorf("filter not in the URL: %s", hash)
		}
		screenshot(t, ctx, "filtered")
	})

	t.Run("group by a param, fold a group, open a run by keyboard", func(t *testing.T) {
		var groups []string
		run(t, ctx, runsAt(expURL+"?sort=metrics.loss"),
			chromedp.Poll(`document.getElementById('run-count').textContent === '`+fmt.Sprint(s.runs)+` runs' && !!document.querySelector('#group-by option[value="params.lr"]')`, nil),
			chromedp.SetValue(`#group-by`, "params.lr"),
			chromedp.Evaluate(`document.getElementById('group-by').dispatchEvent(new Event('change'))`, nil),
			chromedp.WaitVisible(`#runs .vt-group`),
			chromedp.Evaluate(`[...document.querySelectorAll('#runs .vt-group')].map(g => g.dataset.group)`, &groups))
		// Sorted: the HTML one first ("<" before digits), then 0.001, 0.01
		// (best-run's), 0.1 (below the rows in view, so not in the DOM).
		if len(groups) < 3 || groups[0] != xss || groups[1] != "0.001" || groups[2] != "0.01" {
			t.Fatalf("groups %q", groups)
		}
		var head string
		run(t, ctx, chromedp.Text(`#runs .vt-group[data-group="0.01"]`, &head))
		if !strings.Contains(head, "14 runs") || !strings.Contains(head, "min 0.05") {
			t.Errorf("group header %q, want 14 runs (13 of run-NN and best-run) and the best loss as min", head)
		}
		screenshot(t, ctx, "grouped")
		var before, after int
		run(t, ctx, chromedp.Evaluate(`document.querySelectorAll('#runs .vt-row:not(.vt-group)').length`, &before),
			chromedp.Click(`#runs .vt-group[data-group="0.001"]`),
			chromedp.Poll(`document.querySelector('#runs .vt-group[data-group="0.001"]').getAttribute('aria-expanded') === 'false'`, nil),
			chromedp.Evaluate(`[...document.querySelectorAll('#runs .vt-row:not(.vt-group)')].filter(r => r.querySelector('[data-col="params.lr"]') && r.querySelector('[data-col="params.lr"]').textContent === '0.001').length`, &after))
		if after != 0 {
			t.Errorf("a folded group still shows %d of its runs (of %d rows)", after, before)
		}
		var hash string
		run(t, ctx, chromedp.Evaluate(`location.hash`, &hash))
		if !strings.Contains(hash, "group=params.lr") {
			t.Errorf("grouping not in the URL: %s", hash)
		}
		// Keyboard: into the table, down to the first run, Enter opens it.
		var name string
		run(t, ctx, runsAt(expURL+"?sort=metrics.loss"),
			chromedp.Focus(`#runs`), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter),
			chromedp.WaitVisible(`#run-name`), chromedp.Text(`#run-name`, &name))
		if name != "best-run" {
			t.Errorf("Enter on the first row opened %q, want best-run", name)
		}
	})

	t.Run("a run and its chart", func(t *testing.T) {
		var drawn bool
		run(t, ctx, chromedp.Navigate(base+"/#/runs/"+s.bestID), chromedp.WaitVisible(`#charts canvas`),
			chromedp.Poll(`(() => { const c = document.querySelector('#charts canvas');
				const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
				for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; })()`, &drawn))
		var name string
		run(t, ctx, chromedp.Text(`#run-name`, &name))
		if name != "best-run" || !drawn {
			t.Errorf("run page: name %q, chart drawn %v", name, drawn)
		}
		screenshot(t, ctx, "run")
	})

	t.Run("missing run", func(t *testing.T) {
		var text string
		run(t, ctx, chromedp.Navigate(base+"/#/runs/0123456789abcdef0123456789abcdef"), chromedp.WaitVisible(`.notfound a`),
			chromedp.Text(`.notfound`, &text))
		if !strings.Contains(text, "does not exist") {
			t.Errorf("missing run page: %q", text)
		}
	})

	t.Run("stored HTML stays text", func(t *testing.T) {
		var name string
		var imgs int
		var fired bool
		run(t, ctx, chromedp.Navigate(base+"/#/runs/"+s.xssID), chromedp.WaitVisible(`#params`),
			chromedp.Text(`#run-name`, &name),
			chromedp.Evaluate(`document.querySelectorAll('#main img').length`, &imgs))
		run(t, ctx, chromedp.Navigate(expURL+"?cols=attributes.run_name,params.lr,tags.team"),
			chromedp.WaitVisible(`#runs .vt-row`),
			chromedp.Evaluate(`document.querySelectorAll('#main img').length`, &imgs),
			chromedp.Evaluate(`window.__xss === 1`, &fired))
		if name != xss || imgs != 0 || fired {
			t.Errorf("run name shown as %q, %d img elements, script ran: %v", name, imgs, fired)
		}
		screenshot(t, ctx, "xss")
	})

	t.Run("jobs list and a job", func(t *testing.T) {
		if err := api.NewClient(base, "").Do(context.Background(), "POST", "/api/forge/v1/jobs", nil,
			map[string]any{"name": "train " + xss, "command": []string{"true"}}, nil); err != nil {
			t.Fatal(err)
		}
		var name, state string
		var imgs int
		run(t, ctx, chromedp.Navigate(base+"/#/jobs"), chromedp.WaitVisible(`#jobs tbody tr a`),
			chromedp.Text(`#jobs tbody tr a`, &name),
			chromedp.Evaluate(`document.querySelectorAll('#main img').length`, &imgs))
		if name != "train "+xss || imgs != 0 {
			t.Errorf("jobs list shows %q with %d img elements", name, imgs)
		}
		screenshot(t, ctx, "jobs")
		run(t, ctx, chromedp.Click(`#jobs tbody tr a`), chromedp.WaitVisible(`#job-log`),
			chromedp.Text(`#job-state`, &state))
		if state == "" {
			t.Error("job page shows no state")
		}
		screenshot(t, ctx, "job")
	})

	t.Run("dark theme follows the system", func(t *testing.T) {
		var bg string
		dark := emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}})
		light := emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}})
		run(t, ctx, dark, chromedp.Navigate(base+"/#/runs/"+s.bestID), chromedp.WaitVisible(`#charts canvas`),
			chromedp.Evaluate(`getComputedStyle(document.body).backgroundColor`, &bg))
		screenshot(t, ctx, "run-dark")
		run(t, ctx, light)
		if bg != "rgb(17, 20, 24)" {
			t.Errorf("dark background %q, want rgb(17, 20, 24)", bg)
		}
	})

	t.Run("a narrow window", func(t *testing.T) {
		// At 600 px the pages fit the width: wide tables scroll inside
		// their own box, the page itself never scrolls sideways.
		narrow := emulation.SetDeviceMetricsOverride(600, 900, 1, false)
		defer chromedp.Run(ctx, emulation.ClearDeviceMetricsOverride())
		for _, u := range []string{base + "/#/jobs", base + "/", base + "/#/runs/" + s.bestID, expURL} {
			var over int
			run(t, ctx, narrow, chromedp.Navigate(u), chromedp.WaitVisible(`#main h1`),
				chromedp.Evaluate(`document.documentElement.scrollWidth - window.innerWidth`, &over))
			if over > 0 {
				t.Errorf("%s at 600 px: the page is %d px wider than the window", u, over)
			}
		}
		screenshot(t, ctx, "narrow-runs")
		// The last column is out of sight (left empty) until the table
		// is scrolled sideways to it.
		var before, after string
		last := `(() => { const c = [...document.querySelector('#runs .vt-row').querySelectorAll('[data-col]')].pop(); return c.dataset.col + '=' + c.textContent; })()`
		run(t, ctx, narrow, runsAt(expURL+"?sort=metrics.loss"), chromedp.Evaluate(last, &before),
			chromedp.Evaluate(`(() => { const vt = document.getElementById('runs'); vt.scrollLeft = vt.scrollWidth; })()`, nil),
			chromedp.Poll(`!/=$/.test(`+last+`)`, nil), chromedp.Evaluate(last, &after))
		if before != "params.lr=" || after != "params.lr=0.01" {
			t.Errorf("best-run's last cell %q before scrolling sideways, %q after; want empty, then params.lr=0.01", before, after)
		}
		screenshot(t, ctx, "narrow-runs-scrolled")
	})

	t.Run("compare runs", func(t *testing.T) {
		var diff string
		run(t, ctx, runsAt(expURL+"?sort=metrics.loss"),
			chromedp.Click(`#runs .vt-row:nth-child(1) input`), chromedp.Click(`#runs .vt-row:nth-child(2) input`),
			chromedp.Click(`#runs .vt-row:nth-child(3) input`), chromedp.Click(`#compare`),
			chromedp.WaitVisible(`#charts canvas`), chromedp.Text(`#param-diff`, &diff))
		// The three lowest losses: best-run (lr 0.01) and two of lr 0.1 and 0.001.
		if !strings.Contains(diff, "lr") || !strings.Contains(diff, "best-run") {
			t.Errorf("params that differ: %q, want lr and best-run", diff)
		}
		var metric string
		run(t, ctx, chromedp.Evaluate(`document.getElementById('metric').value`, &metric))
		if metric != "loss" {
			t.Errorf("compare charts %q first, want loss, the metric the table was sorted by", metric)
		}
		var series int
		run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll('#charts .u-legend .u-series')].filter(r => r.style.display !== 'none').length`, &series))
		if series != 4 { // the step axis and three runs
			t.Errorf("compare chart legend has %d entries, want 4", series)
		}
		var lines, points string
		run(t, ctx, chromedp.WaitVisible(`#pcoords canvas`), chromedp.AttributeValue(`#pcoords canvas`, "data-lines", &lines, nil),
			chromedp.AttributeValue(`#scatter canvas`, "data-points", &points, nil))
		if lines != "3" || points != "3" {
			t.Errorf("parallel coordinates draw %s lines and the scatter %s points, want 3 each", lines, points)
		}
		screenshot(t, ctx, "compare")
		// Lines by group: one per lr value, the mean of its runs with a band.
		var legend []string
		run(t, ctx, chromedp.SetValue(`#chart-group`, "lr"),
			chromedp.Evaluate(`document.getElementById('chart-group').dispatchEvent(new Event('change'))`, nil),
			chromedp.Poll(`document.querySelector('#charts .u-legend').textContent.includes('runs)')`, nil),
			chromedp.Evaluate(`[...document.querySelectorAll('#charts .u-legend .u-series')].filter(r => r.style.display !== 'none').map(r => r.textContent).slice(1)`, &legend))
		// The three lowest losses tie past best-run, so which lr values
		// are picked varies: every group has its count, and they add to 3.
		total := 0
		for _, l := range legend {
			var n int
			if i := strings.Index(l, "("); i >= 0 {
				fmt.Sscanf(l[i:], "(%d runs)", &n)
			}
			total += n
		}
		if len(legend) < 1 || total != 3 || !strings.Contains(strings.Join(legend, " "), "lr=0.01 (") {
			t.Errorf("grouped legend %q, want groups of lr adding up to 3 runs, lr=0.01 among them", legend)
		}
		screenshot(t, ctx, "compare-grouped")
		// The UI itself needs nothing the policy forbids (no inline script or style).
		var blocked []string
		run(t, ctx, chromedp.Evaluate(`window.__csp || ['the recorder is not installed']`, &blocked))
		if len(blocked) != 0 {
			t.Errorf("Content-Security-Policy blocked: %v", blocked)
		}
	})
}

// With --auth the page asks for a token, refuses a wrong one with the
// server's message, and shows the data once signed in (by cookie).
func TestBrowserSignIn(t *testing.T) {
	base := startServer(t, true)
	ctx := browser(t)
	var msg string
	run(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#signin #token`),
		chromedp.SendKeys(`#token`, "not-a-token"), chromedp.Click(`#signin button`),
		chromedp.WaitVisible(`#signin-error .error`), chromedp.Text(`#signin-error .error`, &msg))
	if strings.TrimSpace(msg) == "" {
		t.Error("a wrong token is refused with no message")
	}
	screenshot(t, ctx, "refused")
	var stored string
	run(t, ctx, chromedp.SetValue(`#token`, adminToken), chromedp.Click(`#signin button`),
		chromedp.WaitVisible(`#main h1`), chromedp.Poll(`!document.getElementById('signin')`, nil),
		chromedp.Evaluate(`location.href + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie`, &stored))
	if strings.Contains(stored, adminToken) {
		t.Errorf("the token is visible to the page: %s", stored)
	}
	screenshot(t, ctx, "signed-in")
}
