package duckq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge"
)

// datasets converts small CSVs into Parquet files and returns their paths.
func datasets(t *testing.T, e *Engine, csvs map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for name, body := range csvs {
		src := writeFile(t, dir, name+".csv", body)
		dst := filepath.Join(dir, name+".parquet")
		if _, err := e.Convert(context.Background(), Source{Path: src}, dst, ConvertOptions{}); err != nil {
			t.Fatal(err)
		}
		out[name] = dst
	}
	return out
}

func collect(t *testing.T, r *Rows) [][]any {
	t.Helper()
	var out [][]any
	err := r.ForEach(func(row []any) error {
		out = append(out, append([]any(nil), row...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestQueryJoinAndNames(t *testing.T) {
	e := newTestEngine(t, EngineOptions{QueryTimeout: time.Minute})
	p := datasets(t, e, map[string]string{
		"sales3":    "id,region_id,amount\n1,1,10\n2,2,20\n3,1,5\n",
		"regions":   "region_id,name\n1,north\n2,south\n",
		"sales_old": "id,region_id,amount\n1,1,1\n",
	})
	tables := map[string]string{"sales@3": p["sales3"], "sales": p["sales3"], "regions": p["regions"], "sales@1": p["sales_old"]}
	r, err := e.Query(context.Background(), `
		SELECT r.name, sum(s.amount) AS total, count(*) AS n
		FROM "sales@3" s JOIN regions r USING (region_id)
		GROUP BY r.name ORDER BY r.name;`, tables, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Column{{"name", "VARCHAR"}, {"total", "HUGEINT"}, {"n", "BIGINT"}}, r.Columns); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	got := collect(t, r)
	want := [][]any{{"north", int64(15), int64(2)}, {"south", int64(20), int64(1)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}

	r, err = e.Query(context.Background(), `SELECT (SELECT sum(amount) FROM sales) - (SELECT sum(amount) FROM "sales@1") AS d`, tables, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, r); len(got) != 1 || got[0][0] != int64(34) {
		t.Errorf("versions by name: got %v, want [[34]]", got)
	}
}

func TestQueryLimit(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	p := datasets(t, e, map[string]string{"t": "x\n1\n2\n3\n4\n5\n"})
	for _, tc := range []struct {
		limit     int
		want      []any
		truncated bool
	}{
		{2, []any{int64(5), int64(4)}, true},
		{5, []any{int64(5), int64(4), int64(3), int64(2), int64(1)}, false},
		{0, []any{int64(5), int64(4), int64(3), int64(2), int64(1)}, false},
	} {
		r, err := e.Query(context.Background(), "SELECT x FROM t ORDER BY x DESC", p, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		for r.Next() {
			got = append(got, r.Values()[0])
		}
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		r.Close()
		if diff := cmp.Diff(tc.want, got); diff != "" || r.Truncated() != tc.truncated {
			t.Errorf("limit %d: truncated=%v (-want +got):\n%s", tc.limit, r.Truncated(), diff)
		}
	}
}

func TestQueryForbidden(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	p := datasets(t, e, map[string]string{"sales": "id,amount\n1,10\n2,20\n", "secret": "k\nhidden\n"})
	dir := t.TempDir()
	outside := writeFile(t, dir, "other.csv", "a\n1\n")
	target := filepath.Join(dir, "written")
	tables := map[string]string{"sales": p["sales"]}
	before := sha(t, p["sales"])

	for _, q := range []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT * FROM read_text('/etc/hostname')",
		"SELECT * FROM '" + outside + "'",
		"SELECT * FROM read_parquet('" + p["secret"] + "')",
		"SELECT * FROM glob('/etc/*')",
		"COPY sales TO '" + target + "'",
		"COPY (SELECT * FROM sales) TO '" + target + "' (FORMAT parquet)",
		"SELECT 1; COPY (SELECT 1) TO '" + target + "'",
		"COPY sales FROM '" + outside + "'",
		"ATTACH '" + target + "' AS x",
		"INSTALL httpfs",
		"LOAD httpfs",
		"SET threads = 1",
		"SET enable_external_access = true",
		"RESET lock_configuration",
		"PRAGMA threads = 1",
		"CREATE TABLE t AS SELECT 1",
		"INSERT INTO sales VALUES (3, 30)",
		"DELETE FROM sales",
		"DROP VIEW sales",
		"EXPORT DATABASE '" + target + "'",
		"CALL pragma_version()",
		"SELECT * FROM query('COPY (SELECT 1) TO ''" + target + "''')",
		"SELECT * FROM nonexistent",
		"SELEC 1",
		"",
	} {
		t.Run(q, func(t *testing.T) {
			r, err := e.Query(context.Background(), q, tables, 10)
			if err == nil {
				rows := collect(t, r)
				t.Fatalf("query ran and returned %v; want an Invalid error", rows)
			}
			if !forge.IsKind(err, forge.Invalid) {
				t.Errorf("got %v (kind %v), want Invalid", err, forge.KindOf(err))
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("%s was written", target)
			}
		})
	}
	if sha(t, p["sales"]) != before {
		t.Error("the dataset file changed")
	}
	// The engine still works, and settings were not changed for later queries.
	r, err := e.Query(context.Background(), "SELECT current_setting('enable_external_access') AS x, count(*) AS n FROM sales", tables, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, r); !cmp.Equal(got, [][]any{{false, int64(2)}}) {
		t.Errorf("got %v, want [[false 2]]", got)
	}
}

func TestQueryCancel(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	p := datasets(t, e, map[string]string{"t": "x\n1\n"})
	huge := "SELECT count(*) FROM t, range(100000) a, range(100000) b, range(100000) c WHERE a.range + b.range + c.range = -1"

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.Query(ctx, huge, p, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: got %v, want context.Canceled", err)
	}
	t.Logf("cancelled after %v", time.Since(start))

	e2 := newTestEngine(t, EngineOptions{QueryTimeout: 300 * time.Millisecond})
	start = time.Now()
	_, err = e2.Query(context.Background(), huge, p, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: got %v, want context.DeadlineExceeded", err)
	}
	t.Logf("timed out after %v", time.Since(start))
}

func TestQueryErrorMessage(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	p := datasets(t, e, map[string]string{"sales": "id\n1\n"})
	_, err := e.Query(context.Background(), "SELECT nope FROM sales", p, 0)
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(forge.Message(err), `"nope"`) {
		t.Errorf("got %v, want Invalid naming the column", err)
	}
	if strings.Contains(forge.Message(err), "\n") {
		t.Errorf("message %q spans lines", forge.Message(err))
	}
}

func TestQueryShapes(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	p := datasets(t, e, map[string]string{"sales": "id,amount\n1,10\n2,20\n"})
	for _, q := range []string{
		"FROM sales ORDER BY id",
		"SELECT * FROM sales ORDER BY id -- trailing comment",
		"WITH s AS (SELECT * FROM sales) SELECT * FROM s ORDER BY id;",
		"SELECT * FROM read_parquet('" + p["sales"] + "') ORDER BY id",
	} {
		r, err := e.Query(context.Background(), q, map[string]string{"sales": p["sales"]}, 100)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if got := collect(t, r); !cmp.Equal(got, [][]any{{int64(1), int64(10)}, {int64(2), int64(20)}}) {
			t.Errorf("%s: got %v", q, got)
		}
	}
}
