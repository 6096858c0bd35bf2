package duckq

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge"
)

func newTestEngine(t testing.TB, opts EngineOptions) *Engine {
	t.Helper()
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readBack returns the rows of a Parquet file as strings, read by DuckDB.
func readBack(t testing.TB, path string) [][]string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT COLUMNS(*)::VARCHAR FROM read_parquet(" + quoteString(path) + ")")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
			if !v.Valid {
				row[i] = "NULL"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConvertFormats(t *testing.T) {
	e := newTestEngine(t, EngineOptions{Threads: 2})
	dir := t.TempDir()
	ctx := context.Background()

	csvPath := writeFile(t, dir, "sales.csv", "id,region,amount\n1,north,10.5\n2,south,\n3,\"east, far\",7\n")
	tsvPath := writeFile(t, dir, "sales.tsv", "id\tregion\tamount\n1\tnorth\t10.5\n2\tsouth\t\n3\teast, far\t7\n")
	jsonPath := writeFile(t, dir, "sales.jsonl", `{"id":1,"region":"north","amount":10.5}`+"\n"+
		`{"id":2,"region":"south","amount":null}`+"\n"+`{"id":3,"region":"east, far","amount":7}`+"\n")
	want := [][]string{{"1", "north", "10.5"}, {"2", "south", "NULL"}, {"3", "east, far", "7.0"}}
	wantCols := []Column{{"id", "BIGINT"}, {"region", "VARCHAR"}, {"amount", "DOUBLE"}}

	for _, src := range []string{csvPath, tsvPath, jsonPath} {
		t.Run(filepath.Ext(src), func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out.parquet")
			tab, err := e.Convert(ctx, Source{Path: src}, dst, ConvertOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Table{Rows: 3, Columns: wantCols}, tab); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, readBack(t, dst)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			// A Parquet file converts to itself, row for row.
			again := filepath.Join(t.TempDir(), "again.parquet")
			if _, err := e.Convert(ctx, Source{Path: dst}, again, ConvertOptions{}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, readBack(t, again)); diff != "" {
				t.Errorf("parquet round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertFolderUnionByName(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	dir := t.TempDir()
	writeFile(t, dir, "in/b.csv", "id,extra\n3,x\n")
	writeFile(t, dir, "in/a.csv", "id,name\n1,ann\n2,bob\n")
	writeFile(t, dir, "in/.hidden", "ignored")
	dst := filepath.Join(dir, "out.parquet")
	tab, err := e.Convert(context.Background(), Source{Path: filepath.Join(dir, "in")}, dst, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows != 3 || len(tab.Columns) != 3 {
		t.Fatalf("got %+v, want 3 rows of id, name, extra", tab)
	}
	want := [][]string{{"1", "ann", "NULL"}, {"2", "bob", "NULL"}, {"3", "NULL", "x"}}
	if diff := cmp.Diff(want, readBack(t, dst)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}

	writeFile(t, dir, "mixed/a.csv", "id\n1\n")
	writeFile(t, dir, "mixed/b.jsonl", `{"id":2}`+"\n")
	_, err = e.Convert(context.Background(), Source{Path: filepath.Join(dir, "mixed")}, dst, ConvertOptions{})
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "one format") {
		t.Errorf("mixed folder: got %v, want an Invalid error about one format", err)
	}
}

func TestConvertSchemaOverride(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	dir := t.TempDir()
	src := writeFile(t, dir, "z.csv", "zip,score\n01234,1\n98765,2\n")
	dst := filepath.Join(dir, "out.parquet")
	tab, err := e.Convert(context.Background(), Source{Path: src, Schema: []Column{{"zip", "VARCHAR"}, {"score", "DOUBLE"}}}, dst, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Column{{"zip", "VARCHAR"}, {"score", "DOUBLE"}}, tab.Columns); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	if got := readBack(t, dst)[0][0]; got != "01234" {
		t.Errorf("zip = %q, want the leading zero kept", got)
	}

	js := writeFile(t, dir, "z.jsonl", `{"n":"5"}`+"\n"+`{"n":"x"}`+"\n")
	_, err = e.Convert(context.Background(), Source{Path: js, Schema: []Column{{"n", "INTEGER"}}}, dst, ConvertOptions{})
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), `"x"`) && !strings.Contains(err.Error(), "'x'") {
		t.Errorf("json override: got %v, want Invalid naming the bad value", err)
	}
	_, err = e.Convert(context.Background(), Source{Path: src, Schema: []Column{{"zip", "INT'); DROP"}}}, dst, ConvertOptions{})
	if !forge.IsKind(err, forge.Invalid) {
		t.Errorf("bad type name: got %v, want Invalid", err)
	}
}

func TestConvertBadInput(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06"
	// Far enough down that DuckDB's sniffer sample does not reach it.
	var long strings.Builder
	long.WriteString("a,b\n")
	for range 30000 {
		long.WriteString("1,x\n")
	}
	long.WriteString("2,y,z\n")

	tests := []struct {
		name   string
		file   string
		body   string
		schema []Column
		want   []string // substrings of the error message
	}{
		{"semicolons", "semi.csv", "a;b\n1;2\n", nil, []string{"semi.csv", `has ";"`, "--delimiter"}},
		{"ragged long row", "r.csv", "x,y\n1,a\n2,b,c\n3,d\n", nil, []string{"r.csv", "line 3", "Expected Number of Columns: 2 Found: 3"}},
		{"ragged short row", "s.csv", "x,y\n1,a\n2\n", nil, []string{"s.csv", "line 3", "Found: 1"}},
		{"ragged after sample", "l.csv", long.String(), nil, []string{"l.csv", "line 30002", "Found: 3"}},
		{"ragged tsv", "r.tsv", "a\tb\n1\t2\n3\t4\t5\n", nil, []string{"r.tsv", "line 3"}},
		{"invalid utf8", "u.csv", "x,y\n1,a\n2,\xff\xfe\n", nil, []string{"u.csv", "line 3", "not utf-8"}},
		{"text in number column", "n.csv", "x,y\n1,a\n2,b\nabc,c\n", []Column{{"x", "BIGINT"}}, []string{"n.csv", "line 4", `Could not convert string "abc"`}},
		{"unterminated quote", "q.csv", "x,y\n1,\"a\n", nil, []string{"q.csv", "line 2", "unterminated quote"}},
		{"empty csv", "e.csv", "", nil, []string{"e.csv is empty"}},
		{"empty parquet", "e.parquet", "", nil, []string{"e.parquet is empty"}},
		{"png named csv", "img.csv", png, nil, []string{"img.csv is not a CSV file", "PNG"}},
		{"json named parquet", "j.parquet", `{"a":1}` + "\n", nil, []string{"j.parquet is not a Parquet file (it looks like JSON)"}},
		{"csv named jsonl", "c.jsonl", "a,b\n1,2\n", nil, []string{"c.jsonl is not JSON lines"}},
		{"malformed json line", "m.jsonl", `{"a":1}` + "\n" + `{"a":` + "\n", nil, []string{`Malformed JSON in file "m.jsonl"`}},
		{"unknown extension", "data.xyz", "a\n1\n", nil, []string{"data.xyz: unknown format"}},
		{"override of missing column", "o.csv", "a\n1\n", []Column{{"nope", "INTEGER"}}, []string{"nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := writeFile(t, t.TempDir(), tc.file, tc.body)
			dst := filepath.Join(t.TempDir(), "out.parquet")
			_, err := e.Convert(context.Background(), Source{Path: src, Schema: tc.schema}, dst, ConvertOptions{})
			if !forge.IsKind(err, forge.Invalid) {
				t.Fatalf("got %v (kind %v), want an Invalid error", err, forge.KindOf(err))
			}
			msg := forge.Message(err)
			t.Logf("message: %s", msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message %q is not one line", msg)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed convert", dst)
			}
			entries, _ := os.ReadDir(filepath.Dir(dst))
			if len(entries) != 0 {
				t.Errorf("left files behind: %v", entries)
			}
		})
	}
}

// TestConvertDeterministic checks that identical content gives identical
// bytes, across runs and across thread counts (a server and a laptop must
// agree on a dataset's digest).
func TestConvertDeterministic(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("id,name,value,day\n")
	for i := range 300000 {
		b.WriteString(strings.Join([]string{itoa(i), "name" + itoa(i%977), itoa(i * 7 % 1000), "2024-01-" + itoa(10+i%20)}, ","))
		b.WriteString("\n")
	}
	src := writeFile(t, dir, "big.csv", b.String())
	var digests []string
	for _, threads := range []int{1, 2, 4, 1} {
		e := newTestEngine(t, EngineOptions{Threads: threads})
		dst := filepath.Join(dir, "out"+itoa(len(digests))+".parquet")
		tab, err := e.Convert(context.Background(), Source{Path: src}, dst, ConvertOptions{RowGroupSize: 50000})
		if err != nil {
			t.Fatal(err)
		}
		if tab.Rows != 300000 {
			t.Fatalf("rows = %d", tab.Rows)
		}
		digests = append(digests, sha(t, dst))
	}
	for i, d := range digests[1:] {
		if d != digests[0] {
			t.Errorf("run %d digest %s differs from run 0 digest %s", i+1, d, digests[0])
		}
	}
	// A different row group size is a different file: the option matters.
	e := newTestEngine(t, EngineOptions{})
	other := filepath.Join(dir, "other.parquet")
	if _, err := e.Convert(context.Background(), Source{Path: src}, other, ConvertOptions{RowGroupSize: 70000}); err != nil {
		t.Fatal(err)
	}
	if sha(t, other) == digests[0] {
		t.Error("row group size does not change the file; is the option applied?")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestConvertDialectOptions(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	dir := t.TempDir()
	noHeader := false
	for _, tc := range []struct {
		name string
		file string
		body string
		src  Source
		cols []string
		want [][]string
	}{
		{"no header", "a.csv", "1,x\n2,y\n", Source{Header: &noHeader}, []string{"column0", "column1"}, [][]string{{"1", "x"}, {"2", "y"}}},
		{"semicolon", "b.csv", "a;b\n1;x,y\n", Source{Delimiter: ";"}, []string{"a", "b"}, [][]string{{"1", "x,y"}}},
		{"format given", "c.txt", "a\tb\n1\tz\n", Source{Format: FormatTSV}, []string{"a", "b"}, [][]string{{"1", "z"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.Path = writeFile(t, dir, tc.file, tc.body)
			dst := filepath.Join(t.TempDir(), "out.parquet")
			tab, err := e.Convert(context.Background(), tc.src, dst, ConvertOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range tab.Columns {
				names = append(names, c.Name)
			}
			if diff := cmp.Diff(tc.cols, names); diff != "" {
				t.Errorf("columns (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, readBack(t, dst)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// A field that first appears after DuckDB's sample, or a type that changes
// late, is still a column: ConvertJSONLines reads again with every line
// sampled instead of failing or dropping it.
func TestConvertJSONLinesLateField(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rows.jsonl")
	var b strings.Builder
	for i := 0; i < 30000; i++ {
		fmt.Fprintf(&b, "{\"a\":%d}\n", i)
	}
	b.WriteString("{\"a\":1.5,\"late\":\"here\"}\n")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := e.ConvertJSONLines(context.Background(), p, nil, filepath.Join(dir, "o.parquet"))
	if err != nil || tb.Rows != 30001 || len(tb.Columns) != 2 || tb.Columns[1].Name != "late" || tb.Columns[0].Type != "DOUBLE" {
		t.Fatalf("converted %+v, %v", tb, err)
	}
}
