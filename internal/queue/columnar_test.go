package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge/internal/duckq"
)

// ingestBoth writes msgs through the columnar path and through the
// JSON-lines path alone, and returns both Parquet files, whether the
// columnar path held, and the dead letters of each.
func ingestBoth(t *testing.T, e *duckq.Engine, msgs []Message) (col, jl string, held bool, dead [2]int64) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	meta := []duckq.Column{{Name: ColKey, Type: "VARCHAR"}, {Name: ColPartition, Type: "INTEGER"}, {Name: ColOffset, Type: "BIGINT"}, {Name: ColTimestamp, Type: "TIMESTAMP"}}
	for i, columnar := range []bool{true, false} {
		d := filepath.Join(dir, fmt.Sprint(i))
		os.Mkdir(d, 0o755)
		w, err := NewWriter(filepath.Join(d, "rows.jsonl"), filepath.Join(d, "dead.jsonl"), nil)
		if err != nil {
			t.Fatal(err)
		}
		pq := filepath.Join(d, "data.parquet")
		if columnar {
			w.Columnar(pq, func(p, j string) error { return e.ParquetToJSONLines(ctx, p, j) })
		}
		write, wait := w.Pipe()
		for _, m := range msgs {
			write(m)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		dead[i] = w.DeadLetters
		if columnar {
			held, col = w.Parquet(), pq
		} else {
			jl = pq
		}
		if !w.Parquet() {
			if _, err := e.ConvertJSONLines(ctx, filepath.Join(d, "rows.jsonl"), meta, pq); err != nil {
				t.Fatal(err)
			}
		}
	}
	return col, jl, held, dead
}

// contents is a Parquet file's columns with DuckDB's types and its rows
// in order, as DuckDB reads them.
func contents(t *testing.T, e *duckq.Engine, path string) ([]duckq.Column, []string) {
	t.Helper()
	tab, err := e.ReadParquet(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := e.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT to_json(t)::VARCHAR FROM read_parquet('" + path + "') t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return tab.Columns, out
}

func TestColumnarSameAsReadJSON(t *testing.T) {
	e, err := duckq.NewEngine(duckq.EngineOptions{MemoryLimit: "500MB", Threads: 1, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	old := groupRows
	groupRows = 4
	defer func() { groupRows = old }()
	t0 := time.Date(2026, 12, 3, 14, 0, 0, 123456000, time.UTC)
	flat := func(i int) string {
		return fmt.Sprintf(`{"user_id":%d, "page":"/p/%d","price":%d.5,"ok":%t,"s":"%016x"}`, i, i, i, i%2 == 0, uint64(i)*2654435761)
	}
	for _, tc := range []struct {
		name string
		vals []string
		held bool
	}{
		{"flat", []string{flat(1), flat(2), flat(3), flat(4), flat(5), flat(6), flat(7), flat(8), flat(9), flat(10)}, true},
		{"widen and new keys in the first group", []string{`{"a":1}`, `{"a":2.5,"b":"x"}`, `{}`, `{"b":null,"a":3}`, `{"a":4,"b":"y"}`, `{"a":1.0}`}, true},
		{"escapes and unicode", []string{`{"s":"a\"b\\n\u00e9 ☃","n":0,"e":1E3}`, `{"s":"plain","n":7,"e":2}`}, true},
		{"minus zero", []string{`{"n":-0}`, `{"n":7}`}, false},
		{"dead letters stay out", []string{flat(1), `not json`, `{"a":`, `{"_offset":3}`, `[1,2]`, flat(2), flat(3), flat(4), flat(5), `{"x":1,}`}, true},
		{"nested after a row group", []string{`{"a":1.0}`, `{"a":2.0}`, `{"a":3.0}`, `{"a":4.0}`, `{"a":5.0,"o":{"x":1}}`, `{"a":6}`}, false},
		{"date strings", []string{`{"d":"x"}`, `{"d":"2026-12-03"}`}, false},
		{"uuid", []string{`{"u":"a50e8400-e29b-41d4-a716-446655440000"}`}, false},
		{"time", []string{`{"t":"12:30:00"}`}, false},
		{"only nulls", []string{`{"a":null,"b":1}`, `{"a":null,"b":2}`}, false},
		{"bool and number", []string{`{"a":true}`, `{"a":1}`}, false},
		{"int then decimal after a row group", []string{`{"a":1}`, `{"a":2}`, `{"a":3}`, `{"a":4}`, `{"a":"s"}`, `{"a":0.5}`}, false},
		{"new key after a row group", []string{`{"a":1}`, `{"a":2}`, `{"a":3}`, `{"a":4}`, `{"b":"x","a":5}`}, false},
		{"keys differing by case", []string{`{"a":1}`, `{"A":2}`}, false},
		{"huge integer", []string{`{"a":9223372036854775808}`}, false},
		{"array", []string{`{"a":[1,2]}`, `{"a":[3]}`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []Message
			for i, v := range tc.vals {
				m := Message{Value: []byte(v), Partition: int32(i % 2), Offset: int64(i), Time: t0.Add(time.Duration(i) * time.Second)}
				if i%3 != 1 {
					m.Key = []byte(fmt.Sprint("k", i))
				}
				msgs = append(msgs, m)
			}
			col, jl, held, dead := ingestBoth(t, e, msgs)
			if held != tc.held {
				t.Errorf("columnar path held: %v, want %v", held, tc.held)
			}
			if dead[0] != dead[1] {
				t.Errorf("dead letters: columnar %d, JSON lines %d", dead[0], dead[1])
			}
			gc, gr := contents(t, e, col)
			wc, wr := contents(t, e, jl)
			if d := cmp.Diff(wc, gc); d != "" {
				t.Errorf("columns (-read_json +columnar):\n%s", d)
			}
			if d := cmp.Diff(wr, gr); d != "" {
				t.Errorf("rows (-read_json +columnar):\n%s", d)
			}
			if len(gr) != len(msgs)-int(dead[0]) {
				t.Errorf("%d rows, want %d", len(gr), len(msgs)-int(dead[0]))
			}
		})
	}
}
