package duckq

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// makeParquet writes the result of a DuckDB query to a Parquet file.
func makeParquet(t testing.TB, query string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data.parquet")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("COPY (" + query + ") TO " + quoteString(dst) + " (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	return dst
}

// reference runs an exact query with plain DuckDB and returns one row.
func reference(t *testing.T, path, query string) []any {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE VIEW t AS SELECT * FROM read_parquet(" + quoteString(path) + ")"); err != nil {
		t.Fatal(err)
	}
	vals, err := scanOne(context.Background(), db, query)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestProfile(t *testing.T) {
	path := makeParquet(t, `
		SELECT i AS id,
		       CASE WHEN i % 10 = 0 THEN NULL ELSE (hash(i) % 1000)::DOUBLE / 10 END AS score,
		       'c' || floor(sqrt(i % 10000))::INTEGER || CASE WHEN i % 50 = 0 THEN 'x' || i ELSE '' END AS color,
		       DATE '2024-01-01' + (i % 366)::INTEGER AS day,
		       i % 3 = 0 AS flag,
		       [i, i] AS pair
		FROM range(20000) r(i)`)
	e := newTestEngine(t, EngineOptions{})
	p, err := e.Profile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 20000 || len(p.Columns) != 6 {
		t.Fatalf("rows %d, %d columns", p.Rows, len(p.Columns))
	}
	kinds := []ColumnKind{KindNumber, KindNumber, KindText, KindTime, KindBool, KindOther}
	for i, c := range p.Columns {
		if c.Kind != kinds[i] {
			t.Errorf("%s: kind %s, want %s", c.Name, c.Kind, kinds[i])
		}
	}

	score := p.Columns[1]
	ref := reference(t, path, `SELECT count(score), avg(score), stddev_samp(score), min(score), max(score),
		quantile_cont(score, [0.05, 0.25, 0.5, 0.75, 0.95]), count(DISTINCT score) FROM t`)
	if score.Count != asInt(ref[0]) || score.Nulls != 20000-asInt(ref[0]) {
		t.Errorf("score count %d nulls %d, want %v", score.Count, score.Nulls, ref[0])
	}
	if !near(*score.Mean, asF(ref[1]), 1e-9) || !near(*score.Std, asF(ref[2]), 1e-9) {
		t.Errorf("score mean %v std %v, want %v %v", *score.Mean, *score.Std, ref[1], ref[2])
	}
	if score.Min != asF(ref[3]) || score.Max != asF(ref[4]) {
		t.Errorf("score min %v max %v, want %v %v", score.Min, score.Max, ref[3], ref[4])
	}
	exact := ref[5].([]any)
	got := []float64{score.Quantiles.P05, score.Quantiles.P25, score.Quantiles.P50, score.Quantiles.P75, score.Quantiles.P95}
	for i := range got {
		if !near(got[i], asF(exact[i]), 1e-9) {
			t.Errorf("quantile %v: %v, exact %v", quantileLevels[i], got[i], exact[i])
		}
	}
	if d := float64(score.ApproxDistinct); !near(d, asF(ref[6]), 0.1) {
		t.Errorf("approx distinct %v, exact %v", d, ref[6])
	}

	// Histogram: recount each bin exactly from the edges reported.
	h := score.Histogram
	if h == nil || len(h.Counts) != histogramBins || len(h.Edges) != histogramBins+1 {
		t.Fatalf("histogram %+v", h)
	}
	var total int64
	for b := range h.Counts {
		cond := "score >= ? AND score < ?"
		if b == histogramBins-1 {
			cond = "score >= ? AND score <= ?"
		}
		db, _ := sql.Open("duckdb", "")
		var n int64
		err := db.QueryRow("SELECT count(*) FROM read_parquet("+quoteString(path)+") WHERE "+cond, h.Edges[b], h.Edges[b+1]).Scan(&n)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		// A value on an edge may fall either side by rounding.
		if math.Abs(float64(n-h.Counts[b])) > 5 {
			t.Errorf("bin %d [%v,%v): %d, exact %d", b, h.Edges[b], h.Edges[b+1], h.Counts[b], n)
		}
		total += h.Counts[b]
	}
	if total != score.Count {
		t.Errorf("histogram holds %d values, column has %d", total, score.Count)
	}

	color := p.Columns[2]
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	rows, err := db.Query("SELECT color, count(*) AS n FROM read_parquet(" + quoteString(path) + ") GROUP BY color ORDER BY n DESC, color LIMIT 10")
	if err != nil {
		t.Fatal(err)
	}
	var want []Value
	for rows.Next() {
		var v Value
		rows.Scan(&v.Value, &v.Count)
		want = append(want, v)
	}
	rows.Close()
	if diff := cmp.Diff(want, color.TopValues); diff != "" {
		t.Errorf("top values (-exact +got):\n%s", diff)
	}

	day := p.Columns[3]
	if day.Min != "2024-01-01" || day.Max != "2024-12-31" {
		t.Errorf("day min %v max %v", day.Min, day.Max)
	}
	if pair := p.Columns[5]; pair.Count != 20000 || pair.Histogram != nil {
		t.Errorf("list column: %+v", pair)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	json.Unmarshal(b, &back)
	col := back["columns"].([]any)[1].(map[string]any)
	for _, k := range []string{"approx_distinct", "top_values", "quantiles", "histogram", "mean", "std", "nulls"} {
		if _, ok := col[k]; !ok && k != "top_values" {
			t.Errorf("JSON of a number column lacks %q: %v", k, col)
		}
	}
}

func TestProfileEdgeCases(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	path := makeParquet(t, `SELECT 7 AS same, NULL::DOUBLE AS empty, x AS f FROM (VALUES ('nan'::DOUBLE), ('inf'::DOUBLE), (1.0), (3.0)) v(x)`)
	p, err := e.Profile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	same, empty, f := p.Columns[0], p.Columns[1], p.Columns[2]
	if same.Histogram == nil || same.Histogram.Counts[0] != 4 {
		t.Errorf("constant column histogram %+v, want all 4 in the first bin", same.Histogram)
	}
	if empty.Count != 0 || empty.Nulls != 4 || empty.Mean != nil || empty.Histogram != nil {
		t.Errorf("all-null column %+v", empty)
	}
	if f.Histogram == nil || f.Histogram.Edges[0] != 1 || f.Histogram.Edges[histogramBins] != 3 {
		t.Fatalf("NaN/inf column histogram %+v, want range [1,3]", f.Histogram)
	}
	var n int64
	for _, c := range f.Histogram.Counts {
		n += c
	}
	if n != 2 {
		t.Errorf("NaN/inf column histogram holds %d values, want the 2 finite ones", n)
	}
	if _, err := json.Marshal(p); err != nil {
		t.Errorf("profile with NaN does not encode: %v", err)
	}
}

// TestProfileTopValuesHighCardinality covers the approximate path: too many
// distinct values to count them all, a few frequent ones to find.
func TestProfileTopValuesHighCardinality(t *testing.T) {
	path := makeParquet(t, `
		SELECT CASE WHEN i % 10 < 3 THEN 'hot' || (i % 10) ELSE 'v' || i END AS s
		FROM range(40000) r(i)`)
	e := newTestEngine(t, EngineOptions{})
	p, err := e.Profile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Columns[0].ApproxDistinct <= exactTopLimit {
		t.Fatalf("approx distinct %d: the data does not exercise the approximate path", p.Columns[0].ApproxDistinct)
	}
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	rows, err := db.Query("SELECT s, count(*) AS n FROM read_parquet(" + quoteString(path) + ") GROUP BY s HAVING n > 1 ORDER BY n DESC, s")
	if err != nil {
		t.Fatal(err)
	}
	var want []Value
	for rows.Next() {
		var v Value
		rows.Scan(&v.Value, &v.Count)
		want = append(want, v)
	}
	rows.Close()
	got := p.Columns[0].TopValues
	if len(got) < len(want) {
		t.Fatalf("top values %v, want the first %d to be %v", got, len(want), want)
	}
	if diff := cmp.Diff(want, got[:len(want)]); diff != "" {
		t.Errorf("top values (-exact +got):\n%s", diff)
	}
}

// TestProfileQuantilesAnyOrder checks quantiles against DuckDB's exact
// quantile_cont on a table large enough that a sample would show (issue 17:
// 0..2,999,999 in file order once gave p50 = 49,999), for rows in order, in
// reverse, all equal and heavy-tailed.
func TestProfileQuantilesAnyOrder(t *testing.T) {
	path := makeParquet(t, `
		SELECT i AS sorted,
		       2999999 - i AS reversed,
		       42 AS constant,
		       -- Pareto with alpha 1: most values near 1, a few in the millions.
		       1.0 / ((hash(i) % 1000000 + 1) / 1000000.0) AS heavy
		FROM range(3000000) r(i)`)
	e := newTestEngine(t, EngineOptions{})
	p, err := e.Profile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 3000000 {
		t.Fatalf("rows %d", p.Rows)
	}
	for _, c := range p.Columns {
		exact := reference(t, path, "SELECT quantile_cont("+quoteIdent(c.Name)+", [0.05, 0.25, 0.5, 0.75, 0.95]) FROM t")[0].([]any)
		if c.Quantiles == nil {
			t.Errorf("%s: no quantiles", c.Name)
			continue
		}
		got := []float64{c.Quantiles.P05, c.Quantiles.P25, c.Quantiles.P50, c.Quantiles.P75, c.Quantiles.P95}
		for i := range got {
			if !near(got[i], asF(exact[i]), 1e-9) {
				t.Errorf("%s quantile %v: %v, exact %v", c.Name, quantileLevels[i], got[i], asF(exact[i]))
			}
		}
		if c.ApproxDistinct > c.Count {
			t.Errorf("%s: approx_distinct %d above its %d values", c.Name, c.ApproxDistinct, c.Count)
		}
	}
	if q := p.Columns[0].Quantiles; q.P50 != 1499999.5 {
		t.Errorf("sorted p50 %v, want 1499999.5", q.P50)
	}
}

// TestProfileDistinctNeverAboveCount: HyperLogLog overshoots on small
// columns of all-distinct values (674 distinct of 569 rows was reported).
func TestProfileDistinctNeverAboveCount(t *testing.T) {
	e := newTestEngine(t, EngineOptions{})
	for _, n := range []int{1, 10, 100, 569, 1000, 5000} {
		path := makeParquet(t, fmt.Sprintf(`SELECT i AS n, i::DOUBLE / 7 AS f, 'v' || i AS s, DATE '2000-01-01' + i::INTEGER AS d FROM range(%d) r(i)`, n))
		p, err := e.Profile(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Columns {
			if c.ApproxDistinct > c.Count || c.ApproxDistinct <= 0 {
				t.Errorf("%d rows, column %s: approx_distinct %d of %d values", n, c.Name, c.ApproxDistinct, c.Count)
			}
		}
	}
}
