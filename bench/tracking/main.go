// Command tracking benchmarks Forge's MLflow tracking API against MLflow
// 2.12.2's own server, by replaying the same request sequences the mlflow
// Python client sends, over HTTP keep-alive, to 127.0.0.1 only.
//
//	go run ./bench/tracking -start -forge /tmp/forge-bench -mlflow ../shared/peers/mlflow-2.12.2
//	go run ./bench/tracking -server http://127.0.0.1:7700       # Forge alone, no ratios
//	go run ./bench/tracking -start -forge /tmp/forge-bench -team -scenarios a,b,c,d   # SQLite + local vs PostgreSQL + S3
//
// With -mlflow it starts the real MLflow peer too and runs scenarios a-d on
// both, alternating, -rounds times: the ratios printed are measured in the
// same run, never recorded ones.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/forge-mlops/forge/bench/forgeproc"
)

const goal = 50.0

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tracking:", err)
		os.Exit(1)
	}
}

type options struct {
	server       string
	start        bool
	forge        string
	db           string
	scenarios    []string
	duration     time.Duration
	writers      int
	runs         int
	workers      int
	timeout      time.Duration
	mlflow       string
	rounds       int
	mlWorkers    int
	client       bool
	clientScript string
	tag          string
	team         bool
	asyncCommit  bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tracking", flag.ContinueOnError)
	var o options
	var scen string
	fs.StringVar(&o.server, "server", "http://127.0.0.1:7700", "Forge (or MLflow) tracking server on this machine")
	fs.BoolVar(&o.start, "start", false, "start `forge server` from -forge on a temp data dir, and stop it at the end")
	fs.StringVar(&o.forge, "forge", "forge", "forge binary for -start")
	fs.StringVar(&o.db, "db", "", "with -start: --db for the server (postgres://...); empty for SQLite")
	fs.StringVar(&scen, "scenarios", "a,b,c,d,e,f", "which scenarios to run (a-f, comma-separated)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "(e): how long the concurrent writers write")
	fs.IntVar(&o.writers, "writers", 20, "(e): concurrent writers")
	fs.IntVar(&o.runs, "runs", 100000, "(f): runs to search over")
	fs.IntVar(&o.workers, "workers", 8, "(f): concurrent clients creating the runs")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.StringVar(&o.mlflow, "mlflow", "", "folder of the MLflow 2.12.2 peer (server.sh): start it and measure it in the same run")
	fs.IntVar(&o.rounds, "rounds", 2, "with -mlflow: rounds of scenarios a-d on each server, alternating")
	fs.IntVar(&o.mlWorkers, "mlflow-workers", 2, "with -mlflow: MLflow's gunicorn workers")
	fs.BoolVar(&o.client, "client", false, "with -mlflow: drive a-d with the real mlflow client against Forge, MLflow and a null server instead")
	fs.BoolVar(&o.team, "team", false, "with -start: start a second server on PostgreSQL + S3 (both started here) and run a-d on both, alternating, -rounds times")
	fs.BoolVar(&o.asyncCommit, "team-async-commit", false, "with -team: PostgreSQL with synchronous_commit=off (a commit does not wait for the WAL fsync)")
	fs.StringVar(&o.clientScript, "client-script", "bench/tracking/mlflow_client.py", "with -client: the client's scenario script")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.scenarios = strings.Split(scen, ",")
	for _, s := range o.scenarios {
		if len(s) != 1 || s[0] < 'a' || s[0] > 'f' {
			return fmt.Errorf("-scenarios: unknown scenario %q (want a to f)", s)
		}
	}
	if slices.Contains(o.scenarios, "d") && !slices.Contains(o.scenarios, "c") {
		return fmt.Errorf("-scenarios: d searches the runs c creates; run c too")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	if o.start {
		var extra []string
		if o.db != "" {
			extra = []string{"--db", o.db}
		}
		p, err := forgeproc.Start(ctx, o.forge, extra...)
		if err != nil {
			return err
		}
		defer p.Stop()
		o.server = p.URL
		fmt.Fprintf(out, "started %s server on %s (data dir %s)\n", o.forge, p.URL, p.DataDir())
	}
	if err := checkLoopback(o.server); err != nil {
		return err
	}
	if o.team && (!o.start || o.mlflow != "" || o.db != "") {
		return fmt.Errorf("-team needs -start, and neither -mlflow nor -db")
	}
	if o.client && o.mlflow == "" {
		return fmt.Errorf("-client needs -mlflow PEER_DIR (the client and MLflow's server come from the peer)")
	}
	var ml *client
	if o.mlflow != "" {
		p, err := startPeer(ctx, o.mlflow, o.mlWorkers)
		if err != nil {
			return err
		}
		defer p.stop()
		ml = newClient(p.URL)
		fmt.Fprintf(out, "started MLflow 2.12.2 (%s, SQLite, %d gunicorn workers) on %s\n", o.mlflow, o.mlWorkers, p.URL)
	}
	if o.client {
		o.tag = time.Now().Format("20060102-150405")
		return clientSideBySide(ctx, o, o.server, ml.base, out)
	}
	return bench(ctx, newClient(o.server), ml, o, out)
}

type row struct {
	id, name string
	d        time.Duration
}

// runABCD runs the timed scenarios a-d that were asked for, in order.
func runABCD(ctx context.Context, c *client, tag string, has func(string) bool) ([]row, error) {
	var rows []row
	var searchExp string
	steps := []struct {
		id, name string
		fn       func() (time.Duration, error)
	}{
		{"a", "1,000 sequential runs/log-metric, one run", func() (time.Duration, error) { return seqLogMetric(ctx, c, tag) }},
		{"b", "runs/log-batch 10 x 1,000 metric points", func() (time.Duration, error) { return batchMetrics(ctx, c, tag) }},
		{"c", "1,000 runs: create, one log-batch, update FINISHED", func() (time.Duration, error) {
			d, exp, err := createRuns(ctx, c, tag)
			searchExp = exp
			return d, err
		}},
		{"d", "runs/search returning all 1,000 runs (median of 5)", func() (time.Duration, error) { return searchAllRuns(ctx, c, searchExp) }},
	}
	for _, s := range steps {
		if !has(s.id) {
			continue
		}
		d, err := s.fn()
		if err != nil {
			return nil, fmt.Errorf("scenario %s (%s) on %s: %w", s.id, s.name, c.base, err)
		}
		rows = append(rows, row{s.id, s.name, d})
	}
	return rows, nil
}

// sideBySide runs a-d on Forge and MLflow alternately (the first server of
// each round alternates too) and prints each round's ratio.
func sideBySide(ctx context.Context, forge, ml *client, o options, tag string, has func(string) bool, out io.Writer) error {
	var fr, mr [][]row
	for round := range o.rounds {
		order := []*client{forge, ml}
		if round%2 == 1 {
			order = []*client{ml, forge}
		}
		for _, c := range order {
			fmt.Fprintf(out, "round %d on %s...\n", round+1, c.base)
			rows, err := runABCD(ctx, c, fmt.Sprintf("%s-r%d", tag, round), has)
			if err != nil {
				return err
			}
			for _, r := range rows {
				fmt.Fprintf(out, "   %s) %.4f s\n", r.id, r.d.Seconds())
			}
			if c == forge {
				fr = append(fr, rows)
			} else {
				mr = append(mr, rows)
			}
		}
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tMLflow s (same run)\tForge s\tratio\tgoal 50x\t")
	for i := range fr[0] {
		var ms, fs, ratios []string
		met := "met"
		for r := range fr {
			m, f := mr[r][i].d.Seconds(), fr[r][i].d.Seconds()
			ms, fs = append(ms, fmt.Sprintf("%.3f", m)), append(fs, fmt.Sprintf("%.4f", f))
			ratios = append(ratios, fmt.Sprintf("%.1fx", m/f))
			if m/f < goal {
				met = "no"
			}
		}
		fmt.Fprintf(tw, "%s) %s\t%s\t%s\t%s\t%s\t\n", fr[0][i].id, fr[0][i].name, strings.Join(ms, " / "), strings.Join(fs, " / "), strings.Join(ratios, " / "), met)
	}
	return tw.Flush()
}

func bench(ctx context.Context, c, ml *client, o options, out io.Writer) error {
	tag := time.Now().Format("20060102-150405.000")
	fmt.Fprintf(out, "tracking benchmark against %s, %s\n", c.base, time.Now().Format(time.RFC3339))
	has := func(s string) bool { return slices.Contains(o.scenarios, s) }
	abcd := has("a") || has("b") || has("c") || has("d")
	switch {
	case abcd && o.team:
		if err := teamSideBySide(ctx, c, o, has, out); err != nil {
			return err
		}
	case abcd && ml != nil:
		if err := sideBySide(ctx, c, ml, o, tag, has, out); err != nil {
			return err
		}
	case abcd:
		fmt.Fprintln(out, "Forge alone (give -mlflow PEER_DIR to measure MLflow 2.12.2 in the same run and print ratios):")
		rows, err := runABCD(ctx, c, tag, has)
		if err != nil {
			return err
		}
		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tForge s\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s) %s\t%.4f\t\n", r.id, r.name, r.d.Seconds())
		}
		tw.Flush()
	}

	if has("e") {
		fmt.Fprintf(out, "\ne) %d concurrent writers, %s, log-batch of 10 keys x 10 steps each...\n", o.writers, o.duration)
		r, err := concurrentWriters(ctx, c, tag, o.writers, 10, 10, o.duration)
		if err != nil {
			return fmt.Errorf("scenario e: %w", err)
		}
		fmt.Fprintf(out, "   acknowledged %d points in %d batches over %.1fs: %.0f points/s (%.0f batches/s); log-batch latency p50 %s, p99 %s\n",
			r.acked, r.batches, r.elapsed.Seconds(), float64(r.acked)/r.elapsed.Seconds(), float64(r.batches)/r.elapsed.Seconds(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
		fmt.Fprintf(out, "   verified with metrics/get-history in %.1fs: %d acknowledged points missing, %d unacknowledged points stored\n",
			r.verifiedInterval.Seconds(), r.missing, r.extra)
		fmt.Fprintf(out, "   errors: %d, of which \"database is locked\": %d\n", r.errors, r.locked)
		for k, n := range r.errorKinds {
			fmt.Fprintf(out, "     %dx %s\n", n, k)
		}
		verdict := "met"
		if r.missing > 0 || r.errors > 0 {
			verdict = "NOT met"
		}
		fmt.Fprintf(out, "   goal (no point lost, no \"database is locked\", no error): %s\n", verdict)
	}

	if has("f") {
		fmt.Fprintf(out, "\nf) populating %d runs (runs/create + runs/log-batch each, %d clients)...\n", o.runs, o.workers)
		r, err := searchMany(ctx, c, tag, o.runs, o.workers, func(done int) {
			fmt.Fprintf(out, "   %d runs\n", done)
		})
		if err != nil {
			return fmt.Errorf("scenario f: %w", err)
		}
		fmt.Fprintf(out, "   populated in %.1fs (%.0f runs/s)\n", r.populate.Seconds(), float64(r.runs)/r.populate.Seconds())
		fmt.Fprintf(out, "   50 x runs/search filter \"metrics.acc > 0.5\" order_by \"metrics.acc DESC\" max_results 100 over %d runs:\n", r.runs)
		verdict := "met"
		if r.p50 >= 100*time.Millisecond {
			verdict = "NOT met"
		}
		fmt.Fprintf(out, "   median %s, p95 %s, max %s (goal: median under 100ms: %s)\n",
			r.p50.Round(10*time.Microsecond), r.p95.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond), verdict)
	}
	return nil
}
