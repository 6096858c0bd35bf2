package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/duckq"
)

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
