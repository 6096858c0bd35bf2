// Command ui measures Forge's web UI in headless Chromium, with the
// browser's own clocks (performance.now, PerformanceObserver long tasks,
// Resource Timing) against a real `forge server` it seeds through the API:
//
//	go build -o /tmp/forge-bench ./cmd/forge && go run ./bench/ui -forge /tmp/forge-bench
//
// It prints each figure next to the goal. MLflow's UI cannot be
// built here (its JavaScript needs packages from outside), so there is no
// peer in the same run; bench/ui/README.md quotes what MLflow's users report.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/performance"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/bench/forgeproc"
)

type options struct {
	forge, server         string
	runs, params, metrics int
	chartRuns, chartSteps int
	rounds                int
	scenarios             string
	trace                 bool
	timeout               time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/ui:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.forge, "forge", "", "forge binary to start (a fresh server on a temp data dir)")
	fs.StringVar(&o.server, "server", "", "or: a running server's URL (seeded as well)")
	fs.IntVar(&o.runs, "runs", 10000, "runs in the experiment")
	fs.IntVar(&o.params, "params", 20, "params per run")
	fs.IntVar(&o.metrics, "metrics", 10, "metrics per run")
	fs.IntVar(&o.chartRuns, "chart-runs", 100, "runs overlaid in the chart scenario")
	fs.IntVar(&o.chartSteps, "chart-steps", 10000, "steps of each charted run")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of each browser measurement")
	fs.StringVar(&o.scenarios, "scenarios", "runs,static,chart,pcoords", "scenarios to run, comma-separated")
	fs.BoolVar(&o.trace, "trace", false, "trace each scroll (DevTools timeline) and print where its time went, on stderr")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "bound on the whole benchmark")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	base := o.server
	if base == "" {
		if o.forge == "" {
			return errors.New("give -forge BIN or -server URL")
		}
		p, err := forgeproc.Start(ctx, o.forge)
		if err != nil {
			return err
		}
		defer p.Stop()
		base = p.URL
	}
	c := api.NewClient(base, os.Getenv("FORGE_TOKEN"))
	want := map[string]bool{}
	for _, n := range strings.Split(o.scenarios, ",") {
		want[strings.TrimSpace(n)] = true
	}
	t0 := time.Now()
	var expID string
	var chartIDs, compareIDs []string
	var err error
	if want["runs"] || want["pcoords"] {
		if expID, err = seedRuns(ctx, c, o); err != nil {
			return fmt.Errorf("seed runs: %w", err)
		}
		if compareIDs, err = runIDs(ctx, c, expID, min(1000, o.runs)); err != nil {
			return err
		}
	}
	if want["chart"] {
		if chartIDs, err = seedHistories(ctx, c, o); err != nil {
			return fmt.Errorf("seed histories: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "seeded in %.1fs\n", time.Since(t0).Seconds())
	staticURL, err := serveStatic(ctx, o)
	if err != nil {
		return err
	}
	b, err := newBrowser(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	b.trace = o.trace
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tround\tfigure\tgoal\t")
	// What a tab of the UI costs before any data: the experiments page.
	if err := b.navigate(base + "/#/"); err != nil {
		return err
	}
	if err := b.eval(`new Promise(r => { const t = () => document.querySelector('#main h1') && !document.querySelector('#main').textContent.includes('Loading') ? r(true) : requestAnimationFrame(t); t(); })`, nil); err != nil {
		return err
	}
	mem, err := b.tabMemory()
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "baseline: experiments page, tab memory\t-\t%s\t\t\n", mem)
	for round := 1; round <= o.rounds; round++ {
		var scroll scrollStats
		if want["runs"] {
			if scroll, err = runsScenario(ctx, tw, b, base, expID, o, round); err != nil {
				return err
			}
		}
		// The ceiling right after, on the machine as it is now.
		if want["static"] {
			if err := staticScenario(tw, b, staticURL, scroll, round); err != nil {
				return err
			}
		}
		if want["chart"] {
			if err := chartScenario(ctx, tw, b, base, chartIDs, o, round); err != nil {
				return err
			}
		}
		if want["pcoords"] {
			if err := pcoordsScenario(ctx, tw, b, base, compareIDs, round); err != nil {
				return err
			}
		}
	}
	kb, err := assetBytes(ctx, base)
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "assets, gzip\t-\t%.1f KB\t< 300 KB\t\n", kb)
	return tw.Flush()
}

// browser is one headless Chromium with one tab.
type browser struct {
	ctx    context.Context
	cancel func()
	trace  bool // trace each scroll
}

func newBrowser(ctx context.Context) (*browser, error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("chromium not installed (scripts/setup.sh test installs it): %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.WindowSize(1280, 800),
		chromedp.Flag("enable-precise-memory-info", true),
		// Without the back/forward cache a page left is dropped: with it,
		// each scenario's page stayed alive in a renderer of its own (the
		// 0.5-1.3 GB of renderers' RSS measured before).
		chromedp.Flag("disable-features", "site-per-process,Translate,BlinkGenPropertyTrees,BackForwardCache"))
	actx, c1 := chromedp.NewExecAllocator(ctx, opts...)
	tctx, c2 := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	// Every page keeps its long tasks (over 50 ms) from the start.
	record := chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(`window.__long = [];
			new PerformanceObserver(l => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ type: 'longtask', buffered: true });`).Do(ctx)
		return err
	})
	if err := chromedp.Run(tctx, record, performance.Enable()); err != nil {
		c2()
		c1()
		return nil, err
	}
	return &browser{ctx: tctx, cancel: func() { c2(); c1() }}, nil
}

func (b *browser) close() { b.cancel() }

// eval runs a script (an async function body is awaited) and reads its result.
func (b *browser) eval(script string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate(script, out, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
}

func (b *browser) navigate(url string) error {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	// A different hash alone would not load the page again.
	if err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	return chromedp.Run(ctx, chromedp.Navigate(url))
}

// heapMB is the tab's JavaScript heap in use and committed, from the
// DevTools protocol.
func (b *browser) heapMB() (used, total float64, err error) {
	var ms []*performance.Metric
	err = chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		ms, err = performance.GetMetrics().Do(ctx)
		return err
	}))
	for _, m := range ms {
		switch m.Name {
		case "JSHeapUsedSize":
			used = m.Value / 1e6
		case "JSHeapTotalSize":
			total = m.Value / 1e6
		}
	}
	return used, total, err
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/ui/[0-9a-f]{16}/[^"]+)"`)

// assetBytes is the UI's assets gzip-compressed: the shell, what it names,
// and the modules app.js imports (read from the served files).
func assetBytes(ctx context.Context, base string) (float64, error) {
	fetch := func(path string) ([]byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	shell, err := fetch("/")
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	queue := []string{}
	for _, m := range assetRef.FindAllSubmatch(shell, -1) {
		queue = append(queue, string(m[1]))
	}
	total := gz(shell)
	imports := regexp.MustCompile(`from '\./([^']+)'`)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		body, err := fetch(p)
		if err != nil {
			return 0, err
		}
		total += gz(body)
		dir := p[:strings.LastIndex(p, "/")+1]
		for _, m := range imports.FindAllSubmatch(body, -1) {
			queue = append(queue, dir+string(m[1]))
		}
	}
	return float64(total) / 1000, nil
}

func gz(b []byte) int {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Len()
}
