package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge/api"
)

func init() {
	register("experiments", "list or create experiments (ls|create)", cmdExperiments)
	register("runs", "list, show and compare runs (ls|show|compare)", cmdRuns)
}

func cmdExperiments(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "experiments", args, map[string]func(context.Context, *cli, []string) error{
		"ls":     experimentsList,
		"create": experimentsCreate,
	})
}

func experimentsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "experiments ls")
	cf := addClientFlags(fs, c)
	all := fs.Bool("all", false, "include deleted experiments")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	view := "ACTIVE_ONLY"
	if *all {
		view = "ALL"
	}
	exps, err := cf.client().SearchExperiments(ctx, api.SearchExperimentsRequest{ViewType: view, OrderBy: []string{"experiment_id ASC"}})
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, exps)
	}
	var rows [][]string
	for _, e := range exps {
		rows = append(rows, []string{e.ExperimentID, e.Name, e.LifecycleStage, cf.when(e.CreationTime)})
	}
	return table(c.stdout, []string{"ID", "NAME", "STAGE", "CREATED"}, rows)
}

func experimentsCreate(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "experiments create")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge experiments create NAME"}
	}
	id, err := cf.client().CreateExperiment(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, map[string]string{"experiment_id": id})
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}

func cmdRuns(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "runs", args, map[string]func(context.Context, *cli, []string) error{
		"ls":      runsList,
		"show":    runsShow,
		"compare": runsCompare,
	})
}

// experimentIDs resolves names or ids given to --experiment.
func experimentIDs(ctx context.Context, cl *api.Client, refs []string) ([]string, error) {
	if len(refs) == 0 {
		return []string{"0"}, nil
	}
	var ids []string
	for _, ref := range refs {
		if _, err := strconv.Atoi(ref); err == nil {
			ids = append(ids, ref)
			continue
		}
		e, err := cl.GetExperimentByName(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("experiment %q: %w", ref, err)
		}
		ids = append(ids, e.ExperimentID)
	}
	return ids, nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "runs ls")
	cf := addClientFlags(fs, c)
	var exps, orders stringList
	fs.Var(&exps, "experiment", "experiment name or id (repeatable; default: the Default experiment)")
	fs.Var(&orders, "order-by", `order, e.g. "metrics.val_auc DESC" (repeatable)`)
	filter := fs.String("filter", "", `MLflow filter, e.g. "metrics.acc > 0.9 AND params.lr = '0.1'"`)
	limit := fs.Int("limit", 100, "at most this many runs")
	deleted := fs.Bool("deleted", false, "show deleted runs instead")
	columns := fs.String("columns", "", "the table's columns after NAME, e.g. params.lr,metrics.val_auc,tags.team (default: the metrics of --order-by and --filter, else a few)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	cl := cf.client()
	ids, err := experimentIDs(ctx, cl, exps)
	if err != nil {
		return err
	}
	view := "ACTIVE_ONLY"
	if *deleted {
		view = "DELETED_ONLY"
	}
	res, err := cl.SearchRuns(ctx, api.SearchRunsRequest{ExperimentIDs: ids, Filter: *filter, OrderBy: orders, MaxResults: api.Int64(*limit), RunViewType: view})
	if err != nil {
		return err
	}
	if cf.json() {
		if res.Runs == nil {
			res.Runs = []api.Run{}
		}
		return printJSON(c.stdout, res.Runs)
	}
	// Show the metrics named in --order-by and --filter, else the first few.
	var metricCols []string
	for _, o := range append([]string(orders), *filter) {
		for _, f := range strings.Fields(o) {
			if k, ok := strings.CutPrefix(f, "metrics."); ok && !contains(metricCols, strings.Trim(k, "`\"")) {
				metricCols = append(metricCols, strings.Trim(k, "`\""))
			}
		}
	}
	if len(metricCols) == 0 {
		seen := map[string]bool{}
		for _, r := range res.Runs {
			for _, m := range r.Data.Metrics {
				if !seen[m.Key] && len(metricCols) < 4 && !strings.HasPrefix(m.Key, "system/") {
					seen[m.Key] = true
					metricCols = append(metricCols, m.Key)
				}
			}
		}
		sort.Strings(metricCols)
	}
	cols := make([]string, len(metricCols))
	for i, k := range metricCols {
		cols[i] = "metrics." + k
	}
	if *columns != "" {
		cols = nil
		for _, col := range strings.Split(*columns, ",") {
			col = strings.TrimSpace(col)
			kind, _, ok := strings.Cut(col, ".")
			if !ok || (kind != "metrics" && kind != "params" && kind != "tags") {
				return usageError{fmt.Sprintf("--columns: %q: want metrics.KEY, params.KEY or tags.KEY", col)}
			}
			cols = append(cols, col)
		}
	}
	header := []string{"RUN_ID", "NAME", "STATUS", "STARTED"}
	for _, col := range cols {
		// A default column is a metric, headed by its key alone.
		if *columns == "" {
			col = strings.TrimPrefix(col, "metrics.")
		}
		header = append(header, col)
	}
	var rows [][]string
	for _, r := range res.Runs {
		row := []string{r.Info.RunID, r.Info.RunName, r.Info.Status, cf.when(r.Info.StartTime)}
		for _, col := range cols {
			row = append(row, columnValue(r, col))
		}
		rows = append(rows, row)
	}
	return table(c.stdout, header, rows)
}

// columnValue is a run's metrics.KEY, params.KEY or tags.KEY, "-" if none.
func columnValue(r api.Run, col string) string {
	kind, key, _ := strings.Cut(col, ".")
	var kvs []api.KV
	switch kind {
	case "metrics":
		return metricValue(r, key)
	case "params":
		kvs = r.Data.Params
	case "tags":
		kvs = r.Data.Tags
	}
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value
		}
	}
	return "-"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func metricValue(r api.Run, key string) string {
	for _, m := range r.Data.Metrics {
		if m.Key == key {
			return strconv.FormatFloat(float64(m.Value), 'g', 6, 64)
		}
	}
	return "-"
}

func runsShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "runs show")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge runs show RUN_ID"}
	}
	r, err := cf.client().GetRun(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, r)
	}
	w := c.stdout
	fmt.Fprintf(w, "Run:        %s (%s)\nExperiment: %s\nStatus:     %s\nStarted:    %s\nEnded:      %s\nArtifacts:  %s\n",
		r.Info.RunID, r.Info.RunName, r.Info.ExperimentID, r.Info.Status, cf.whenLong(r.Info.StartTime), cf.whenLong(r.Info.EndTime), r.Info.ArtifactURI)
	section := func(title string, kvs [][]string) {
		if len(kvs) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		table(w, []string{"  KEY", "VALUE"}, kvs)
	}
	var ps, ms, ts [][]string
	for _, p := range r.Data.Params {
		ps = append(ps, []string{"  " + p.Key, p.Value})
	}
	for _, m := range r.Data.Metrics {
		ms = append(ms, []string{"  " + m.Key, fmt.Sprintf("%s (step %d)", strconv.FormatFloat(float64(m.Value), 'g', 6, 64), m.Step)})
	}
	for _, t := range r.Data.Tags {
		if !strings.HasPrefix(t.Key, "mlflow.log-model") {
			ts = append(ts, []string{"  " + t.Key, t.Value})
		}
	}
	section("Params", ps)
	section("Metrics (latest)", ms)
	section("Tags", ts)
	if len(r.Inputs.DatasetInputs) > 0 {
		fmt.Fprintln(w, "\nInputs:")
		for _, in := range r.Inputs.DatasetInputs {
			fmt.Fprintf(w, "  %s (digest %s, source %s)\n", in.Dataset.Name, in.Dataset.Digest, in.Dataset.Source)
		}
	}
	return nil
}

func runsCompare(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "runs compare")
	cf := addClientFlags(fs, c)
	all := fs.Bool("all", false, "show params that are equal too")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageError{"usage: forge runs compare RUN_ID RUN_ID..."}
	}
	cl := cf.client()
	var runs []api.Run
	for _, id := range pos {
		r, err := cl.GetRun(ctx, id)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	params := map[string][]string{}
	metrics := map[string][]string{}
	for i, r := range runs {
		for _, p := range r.Data.Params {
			if params[p.Key] == nil {
				params[p.Key] = make([]string, len(runs))
			}
			params[p.Key][i] = p.Value
		}
		for _, m := range r.Data.Metrics {
			if metrics[m.Key] == nil {
				metrics[m.Key] = make([]string, len(runs))
			}
			metrics[m.Key][i] = strconv.FormatFloat(float64(m.Value), 'g', 6, 64)
		}
	}
	type cmpOut struct {
		Runs    []string            `json:"runs"`
		Params  map[string][]string `json:"params"`
		Metrics map[string][]string `json:"metrics"`
	}
	out := cmpOut{Runs: pos, Params: map[string][]string{}, Metrics: metrics}
	for k, vs := range params {
		differ := false
		for _, v := range vs {
			differ = differ || v != vs[0]
		}
		if differ || *all {
			out.Params[k] = vs
		}
	}
	if cf.json() {
		return printJSON(c.stdout, out)
	}
	header := []string{"", "KEY"}
	seen := map[string]int{}
	for _, r := range runs {
		seen[r.Info.RunName]++
	}
	for _, r := range runs {
		// Names may repeat (every job once ran as "python3"): then the
		// column says which run it is.
		h := r.Info.RunName
		if h == "" || seen[h] > 1 {
			h = strings.TrimSpace(h + " (" + r.Info.RunID[:min(8, len(r.Info.RunID))] + ")")
		}
		header = append(header, h)
	}
	var rows [][]string
	add := func(kind string, m map[string][]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row := []string{kind, k}
			for _, v := range m[k] {
				if v == "" {
					v = "-"
				}
				row = append(row, v)
			}
			rows = append(rows, row)
		}
	}
	add("param", out.Params)
	add("metric", out.Metrics)
	return table(c.stdout, header, rows)
}
