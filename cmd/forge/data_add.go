package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/queue"
)

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
	// DuckDB says nothing while it converts: the phase line says what it
	// works on and for how long so far.
	what := src.Path // as typed; a postgres:// one without its password
	if src.IsPostgres() {
		what = src.Describe()
	}
	if st, err := os.Stat(src.Path); err == nil && st.Mode().IsRegular() {
		what += " (" + humanBytes(st.Size()) + ")"
	}
	conv := c.phase("converting " + what + " to Parquet")
	t, err := datasets.Convert(ctx, eng, src, pq)
	conv.stop()
	if err != nil {
		return err
	}
	converted := time.Since(start)
	f, err := os.Open(pq)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	up := c.newBar(fmt.Sprintf("uploading %s (%d rows)", name, t.Rows), st.Size())
	up.then = "the server is storing " + name
	res, err := cf.client().AddDatasetVersion(ctx, name, up.reader(f), src.Describe(), *desc, osUser())
	up.close()
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
