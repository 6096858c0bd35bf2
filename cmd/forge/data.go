package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/queue"
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
	f := &clientFlags{output: "table"}
	fs.StringVar(&f.server, "server", def.Server, "Forge server URL (env FORGE_SERVER)")
	fs.StringVar(&f.token, "token", def.Token, "access token (env FORGE_TOKEN)")
	return f
}

// localEngine is the DuckDB that converts the user's files where they are.
func localEngine() (*duckq.Engine, error) { return duckq.NewEngine(duckq.EngineOptions{}) }

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

func dataAdd(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data add")
	cf := addClientFlags(fs, c)
	delim := fs.String("delimiter", "", "CSV field delimiter (default: , or a tab for .tsv)")
	header := fs.Bool("header", false, "the CSV has a header row (default: detected)")
	noHeader := fs.Bool("no-header", false, "the CSV has no header row")
	schema := fs.String("schema", "", "override inferred types: col:type,col:type (DuckDB types)")
	desc := fs.String("description", "", "what this version is")
	query := fs.String("query", "", "the SELECT to run for a postgres:// source")
	qf := addQueueFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if qf.cont || (len(pos) == 2 && queue.IsURL(pos[1])) {
		return dataIngest(ctx, c, cf, qf, pos, *schema, *desc)
	}
	if qf.from != "" || qf.until != "" {
		return usageError{"--from and --until apply to kafka:// and nats:// sources"}
	}
	if len(pos) != 2 {
		return usageError{"usage: forge data add NAME SOURCE (a CSV/TSV/JSON-lines/Parquet file, a folder of them, postgres://... --query SQL, kafka://BROKER/TOPIC or nats://HOST:PORT/STREAM)"}
	}
	if err := cf.check(); err != nil {
		return err
	}
	if *header && *noHeader {
		return usageError{"--header and --no-header contradict each other"}
	}
	name := pos[0]
	if err := datasets.CheckName(name); err != nil {
		return err
	}
	src := datasets.Source{Path: pos[1], Delimiter: *delim, Query: *query}
	switch {
	case *header:
		src.Header = header
	case *noHeader:
		f := false
		src.Header = &f
	}
	if src.Schema, err = datasets.ParseSchema(*schema); err != nil {
		return err
	}
	eng, err := localEngine()
	if err != nil {
		return err
	}
	defer eng.Close()
	dir, err := os.MkdirTemp("", "forge-data-add-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pq := filepath.Join(dir, name+".parquet")
	start := time.Now()
	if _, err := datasets.Convert(ctx, eng, src, pq); err != nil {
		return err
	}
	converted := time.Since(start)
	f, err := os.Open(pq)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := cf.client().AddDatasetVersion(ctx, name, f, src.Describe(), *desc, osUser())
	if err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, res)
	}
	v := res.Version
	if res.Created {
		fmt.Fprintf(c.stdout, "added %s: %d rows, %d columns, %s (sha256 %s)\n", v.Ref(), v.Rows, len(v.Columns), humanBytes(v.Bytes), v.Digest[:12])
	} else {
		fmt.Fprintf(c.stdout, "unchanged: the content is already %s (sha256 %s); no new version\n", v.Ref(), v.Digest[:12])
	}
	fmt.Fprintf(c.stderr, "converted in %s, uploaded in %s\n", converted.Round(time.Millisecond), (time.Since(start) - converted).Round(time.Millisecond))
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func dataList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data ls")
	cf := addClientFlags(fs, c)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
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
			strconv.FormatInt(v.Rows, 10), strconv.Itoa(len(v.Columns)), humanBytes(v.Bytes), formatMillis(v.CreatedAt), orDash(v.Description)})
	}
	return table(c.stdout, []string{"NAME", "LATEST", "VERSIONS", "ROWS", "COLUMNS", "SIZE", "UPDATED", "DESCRIPTION"}, rows)
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
		{"created", formatMillis(v.CreatedAt) + " by " + by},
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
		runs = append(runs, []string{r.RunID, r.RunName, r.ExperimentID, r.Status, formatMillis(r.StartTime), orDash(r.Context)})
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

// tableWidth caps a cell in table output; wider values end in "…".
const tableWidth = 40

func dataQuery(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data query")
	cf := addServerFlags(fs, c)
	format := fs.String("o", "table", "output: table, csv, json (one object a line) or parquet (needs --out)")
	out := fs.String("out", "", "write to this file instead of standard output")
	limit := fs.Int("limit", -1, "at most this many rows (default 100 for table, the server's cap otherwise)")
	timeout := fs.Duration("timeout", 0, "cancel the query after this long (default: the server's timeout)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{`usage: forge data query "SELECT ... FROM sales" [-o table|csv|json|parquet] [--out FILE]`}
	}
	switch *format {
	case "table", "csv", "json":
	case "parquet":
		if *out == "" {
			return usageError{"-o parquet needs --out FILE"}
		}
	default:
		return usageError{fmt.Sprintf("-o %q: want table, csv, json or parquet", *format)}
	}
	if *limit < 0 {
		*limit = 0
		if *format == "table" {
			*limit = 100
		}
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		// The server stops the query at the timeout; the client waits a
		// little longer to hear it say so.
		ctx, cancel = context.WithTimeout(ctx, *timeout+5*time.Second)
		defer cancel()
	}
	stream, err := cf.client().Query(ctx, api.QueryRequest{SQL: pos[0], Limit: *limit, TimeoutMS: timeout.Milliseconds()})
	if err != nil {
		return err
	}
	defer stream.Close()
	if *format == "parquet" {
		return queryToParquet(ctx, stream, *out, c)
	}
	w := c.stdout
	var file *os.File
	if *out != "" {
		if file, err = os.Create(*out); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriter(w)
	switch *format {
	case "table":
		err = queryTable(stream, bw)
	case "csv":
		err = queryCSV(stream, bw)
	case "json":
		err = queryJSON(stream, bw)
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return err
	}
	if stream.Truncated && *format != "table" {
		fmt.Fprintf(c.stderr, "note: the result has more than %d rows; raise --limit to get more\n", stream.Rows)
	}
	return nil
}

func queryTable(s *api.QueryStream, w io.Writer) error {
	header := make([]string, len(s.Columns))
	for i, col := range s.Columns {
		header[i] = col.Name
	}
	var rows [][]string
	for s.Next() {
		r := make([]string, len(s.Row()))
		for i, v := range s.Row() {
			r[i] = clip(cell(v), tableWidth)
		}
		rows = append(rows, r)
	}
	if err := s.Err(); err != nil {
		return err
	}
	if err := table(w, header, rows); err != nil {
		return err
	}
	if s.Truncated {
		fmt.Fprintf(w, "(%d rows shown; the result has more: raise --limit, or use -o csv or -o parquet --out FILE)\n", s.Rows)
	} else {
		fmt.Fprintf(w, "(%d rows)\n", s.Rows)
	}
	return nil
}

// clip shortens s to n runes, and flattens newlines and tabs, which would
// break the table's alignment.
func clip(s string, n int) string {
	s = strings.NewReplacer("\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// cell is a value as text: NULL as empty, strings as they are, numbers as
// sent, and lists or structs as JSON.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func queryCSV(s *api.QueryStream, w io.Writer) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(s.Columns))
	for i, col := range s.Columns {
		header[i] = col.Name
	}
	cw.Write(header)
	for s.Next() {
		r := make([]string, len(s.Row()))
		for i, v := range s.Row() {
			r[i] = cell(v)
		}
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return s.Err()
}

// queryJSON writes one object a row, keys in column order.
func queryJSON(s *api.QueryStream, w io.Writer) error {
	keys := make([][]byte, len(s.Columns))
	for i, col := range s.Columns {
		keys[i], _ = json.Marshal(col.Name)
	}
	var buf []byte
	for s.Next() {
		buf = append(buf[:0], '{')
		for i, v := range s.Row() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, keys[i]...)
			buf = append(buf, ':')
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			buf = append(buf, b...)
		}
		buf = append(buf, '}', '\n')
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return s.Err()
}

// plainType is a type that a JSON value casts to directly; nested types are
// left to DuckDB's inference.
var plainType = regexp.MustCompile(`^[A-Z][A-Z0-9_ ]*(\([0-9, ]+\))?$`)

// queryToParquet writes the streamed rows as JSON lines to a temporary file,
// then has DuckDB read them back with the server's column types into a
// Parquet file, so the file has the types the query produced.
func queryToParquet(ctx context.Context, s *api.QueryStream, dst string, c *cli) error {
	dir, err := os.MkdirTemp("", "forge-query-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "rows.jsonl")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = queryJSON(s, bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if s.Rows == 0 {
		return errors.New("the query returned no rows: no Parquet file written")
	}
	var schema []duckq.Column
	for _, col := range s.Columns {
		if plainType.MatchString(col.Type) {
			schema = append(schema, duckq.Column{Name: col.Name, Type: col.Type})
		}
	}
	eng, err := localEngine()
	if err != nil {
		return err
	}
	defer eng.Close()
	t, err := eng.Convert(ctx, duckq.Source{Path: tmp, Format: duckq.FormatJSONL, Schema: schema}, dst, duckq.ConvertOptions{})
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	note := ""
	if s.Truncated {
		note = " (cut at --limit: the result has more)"
	}
	fmt.Fprintf(c.stderr, "wrote %d rows to %s%s\n", t.Rows, dst, note)
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

func dataGet(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "data get")
	cf := addClientFlags(fs, c)
	out := fs.String("out", "", "the `FILE` to write: Parquet, or CSV when it ends in .csv")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := outFromFormat(c, cf, out, "data get", "FILE"); err != nil {
		return err
	}
	ref, err := oneRef(pos, "usage: forge data get NAME[@VERSION] --out FILE")
	if err != nil {
		return err
	}
	if *out == "" {
		return usageError{"forge data get needs --out FILE (.parquet, or .csv)"}
	}
	// Download beside the target and rename, so FILE is complete and
	// verified or absent.
	tmp := *out + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	resolved, digest, err := cf.client().GetDataset(ctx, ref, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if strings.EqualFold(filepath.Ext(*out), ".csv") {
		eng, err := localEngine()
		if err != nil {
			return err
		}
		defer eng.Close()
		if err := eng.ExportCSV(ctx, tmp, *out); err != nil {
			return err
		}
	} else if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	if cf.json() {
		return printJSON(c.stdout, map[string]string{"dataset": resolved, "file": *out, "sha256": digest})
	}
	fmt.Fprintf(c.stdout, "%s -> %s (sha256 %s verified)\n", resolved, *out, digest[:12])
	return nil
}

// outFromFormat keeps the old "-o FILE" of data get and model download
// working for a while: -o is a format everywhere, so a value that is not one
// is taken as --out, with a note on stderr.
func outFromFormat(c *cli, cf *clientFlags, out *string, cmd, what string) error {
	if cf.output == "table" || cf.output == "json" {
		return nil
	}
	if *out != "" {
		return usageError{fmt.Sprintf("-o %q: want table or json (the %s goes to --out)", cf.output, strings.ToLower(what))}
	}
	fmt.Fprintf(c.stderr, "forge: %s -o %s is deprecated: -o is the output format; use --out %s\n", cmd, what, cf.output)
	*out, cf.output = cf.output, "table"
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
