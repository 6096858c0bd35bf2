package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/datasets"
)

func init() {
	register("data", "datasets: add, ls, show, rm, query, profile, diff, get, follow, follows, dead-letters", cmdData)
}

func cmdData(ctx context.Context, c *cli, args []string) error {
	return subcommand(ctx, c, "data", args, map[string]func(context.Context, *cli, []string) error{
		"add":          dataAdd,
		"ls":           dataList,
		"show":         dataShow,
		"rm":           dataRemove,
		"query":        dataQuery,
		"profile":      dataProfile,
		"diff":         dataDiff,
		"get":          dataGet,
		"follow":       dataFollow,
		"follows":      dataFollows,
		"dead-letters": dataDeadLetters,
	})
}

// addServerFlags is addClientFlags for commands whose -o means something
// else (an output file, or more formats than table and json).
func addServerFlags(fs *flag.FlagSet, c *cli) *clientFlags {
	def := config.LoadClient(c.env)
	f := &clientFlags{output: "table", now: c.now}
	fs.StringVar(&f.server, "server", def.Server, "Forge server URL (env FORGE_SERVER)")
	fs.StringVar(&f.token, "token", def.Token, "access token (env FORGE_TOKEN)")
	return f
}

func dataList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data ls")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	switch len(pos) {
	case 0:
	case 1:
		return dataVersions(ctx, c, cf, pos[0])
	default:
		return usageError{"usage: forge data ls [NAME]"}
	}
	ds, err := cf.client().ListDatasets(ctx)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, ds)
	}
	var rows [][]string
	for _, d := range ds {
		v := d.Latest
		rows = append(rows, []string{d.Name, strconv.FormatInt(v.Version, 10), strconv.Itoa(d.Versions),
			strconv.FormatInt(v.Rows, 10), strconv.Itoa(len(v.Columns)), humanBytes(v.Bytes), cf.when(v.CreatedAt), orDash(v.Description)})
	}
	return table(c.stdout, []string{"NAME", "LATEST", "VERSIONS", "ROWS", "COLUMNS", "SIZE", "UPDATED", "DESCRIPTION"}, rows)
}

// dataVersions lists a dataset's versions, newest first.
func dataVersions(ctx context.Context, c *cli, cf *clientFlags, name string) error {
	if err := datasets.CheckName(name); err != nil {
		return err
	}
	vs, err := cf.client().DatasetVersions(ctx, name)
	if err != nil {
		return err
	}
	if cf.json() {
		if vs == nil {
			vs = []api.DatasetVersion{}
		}
		return printJSON(c.stdout, vs)
	}
	var rows [][]string
	for _, v := range vs {
		rows = append(rows, []string{strconv.FormatInt(v.Version, 10), strconv.FormatInt(v.Rows, 10), strconv.Itoa(len(v.Columns)),
			humanBytes(v.Bytes), cf.when(v.CreatedAt), orDash(v.CreatedBy), v.Digest[:min(12, len(v.Digest))], orDash(v.Description)})
	}
	return table(c.stdout, []string{"VERSION", "ROWS", "COLUMNS", "SIZE", "CREATED", "BY", "SHA256", "DESCRIPTION"}, rows)
}

func oneRef(pos []string, usage string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{usage}
	}
	if _, err := datasets.ParseRef(pos[0]); err != nil {
		return "", err
	}
	return pos[0], nil
}

func dataShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data show")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneRef(pos, "usage: forge data show NAME[@VERSION]")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	s, err := cf.client().ShowDataset(ctx, ref)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, s)
	}
	v := s.Version
	parent := "-"
	if v.Parent != nil {
		parent = fmt.Sprintf("%s@%d", v.Name, *v.Parent)
	}
	by := v.CreatedBy
	if by == "" {
		by = "-"
	}
	table(c.stdout, []string{"DATASET", v.Ref()}, append([][]string{
		{"digest", "sha256:" + v.Digest},
		{"rows", strconv.FormatInt(v.Rows, 10)},
		{"columns", strconv.Itoa(len(v.Columns))},
		{"size", humanBytes(v.Bytes)},
		{"source", orDash(v.Source)},
		{"description", orDash(v.Description)},
		{"created", cf.whenLong(v.CreatedAt) + " by " + by},
		{"parent", parent},
	}, queueRows(s.Queue)...))
	fmt.Fprintln(c.stdout)
	var cols [][]string
	for _, col := range v.Columns {
		cols = append(cols, []string{col.Name, col.Type})
	}
	table(c.stdout, []string{"COLUMN", "TYPE"}, cols)
	fmt.Fprintln(c.stdout)
	if len(s.Runs) == 0 {
		fmt.Fprintln(c.stdout, "used by no runs")
		return nil
	}
	var runs [][]string
	for _, r := range s.Runs {
		runs = append(runs, []string{r.RunID, r.RunName, r.ExperimentID, r.Status, cf.when(r.StartTime), orDash(r.Context)})
	}
	return table(c.stdout, []string{"USED BY RUN", "NAME", "EXPERIMENT", "STATUS", "STARTED", "CONTEXT"}, runs)
}

func dataRemove(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data rm")
	cf := addClientFlags(fs, c)
	force := fs.Bool("force", false, "remove even while runs, jobs or models reference the version")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneRef(pos, "usage: forge data rm NAME[@VERSION] [--force]")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	removed, err := cf.client().RemoveDataset(ctx, ref, *force)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, removed)
	}
	for _, v := range removed {
		fmt.Fprintf(c.stdout, "removed %s\n", v.Ref())
	}
	return nil
}

func dataProfile(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data profile")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneRef(pos, "usage: forge data profile NAME[@VERSION] [-o json]")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	p, err := cf.client().DatasetProfile(ctx, ref)
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, p)
	}
	fmt.Fprintf(c.stdout, "%s: %d rows\n\n", p.Version.Ref(), p.Profile.Rows)
	var rows [][]string
	for _, col := range p.Profile.Columns {
		r := []string{col.Name, col.Type, strconv.FormatInt(col.Count, 10), strconv.FormatInt(col.Nulls, 10),
			strconv.FormatInt(col.ApproxDistinct, 10), clip(anyText(col.Min), 20), clip(anyText(col.Max), 20),
			num(col.Mean), num(col.Std), "-", "-"}
		if q := col.Quantiles; q != nil {
			r[9] = fmt.Sprintf("%.4g / %.4g / %.4g", q.P05, q.P50, q.P95)
		}
		if len(col.TopValues) > 0 {
			var top []string
			for i, v := range col.TopValues {
				if i == 3 {
					break
				}
				top = append(top, fmt.Sprintf("%s (%d)", clip(v.Value, 12), v.Count))
			}
			r[10] = strings.Join(top, ", ")
		}
		rows = append(rows, r)
	}
	return table(c.stdout, []string{"COLUMN", "TYPE", "COUNT", "NULLS", "DISTINCT~", "MIN", "MAX", "MEAN", "STD", "P5 / P50 / P95", "TOP"}, rows)
}

func anyText(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case float64:
		return strconv.FormatFloat(x, 'g', 6, 64)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func num(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(*f, 'g', 5, 64)
}

func dataDiff(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data diff")
	cf := addClientFlags(fs, c)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"usage: forge data diff NAME@A NAME@B [-o json]"}
	}
	if err := cf.check(); err != nil {
		return err
	}
	d, err := cf.client().DiffDatasets(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, d)
	}
	fmt.Fprintf(c.stdout, "%s -> %s: rows %d -> %d (%+d)\n", d.A.Ref(), d.B.Ref(), d.Diff.RowsA, d.Diff.RowsB, d.Diff.RowsB-d.Diff.RowsA)
	for _, col := range d.Diff.Added {
		fmt.Fprintf(c.stdout, "+ column %s %s\n", col.Name, col.Type)
	}
	for _, col := range d.Diff.Removed {
		fmt.Fprintf(c.stdout, "- column %s %s\n", col.Name, col.Type)
	}
	for _, t := range d.Diff.TypeChanged {
		fmt.Fprintf(c.stdout, "~ column %s %s -> %s\n", t.Name, t.From, t.To)
	}
	fmt.Fprintln(c.stdout)
	var rows [][]string
	for _, col := range d.Diff.Columns {
		psi, shift := "-", ""
		if col.PSI != nil {
			psi = strconv.FormatFloat(*col.PSI, 'f', 4, 64)
			switch {
			case *col.PSI > 0.25:
				shift = "major shift"
			case *col.PSI > 0.1:
				shift = "some shift"
			}
		}
		rows = append(rows, []string{col.Name,
			fmt.Sprintf("%.2f%% -> %.2f%%", 100*col.NullFractionA, 100*col.NullFractionB),
			num(col.MeanA) + " -> " + num(col.MeanB), num(col.StdA) + " -> " + num(col.StdB), psi, shift})
	}
	return table(c.stdout, []string{"COLUMN", "NULLS", "MEAN", "STD", "PSI", ""}, rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
