package duckq

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiffSchemaAndStats(t *testing.T) {
	a := makeParquet(t, `SELECT i AS id, (hash(i) % 1000)::DOUBLE AS x, 'k' || (i % 5) AS kind, i % 2 AS flag, 1.5 AS gone
		FROM range(10000) r(i)`)
	b := makeParquet(t, `SELECT i AS id, CASE WHEN i % 4 = 0 THEN NULL ELSE (hash(i) % 1000)::DOUBLE + 300 END AS x,
		'k' || (i % 5) AS kind, (i % 2)::VARCHAR AS flag, i * 2 AS new_col
		FROM range(12000) r(i)`)
	e := newTestEngine(t, EngineOptions{})
	d, err := e.Diff(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if d.RowsA != 10000 || d.RowsB != 12000 {
		t.Errorf("rows %d %d", d.RowsA, d.RowsB)
	}
	if diff := cmp.Diff([]Column{{"new_col", "BIGINT"}}, d.Added); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Column{{"gone", "DECIMAL(2,1)"}}, d.Removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]TypeChange{{"flag", "BIGINT", "VARCHAR"}}, d.TypeChanged); diff != "" {
		t.Errorf("type changes (-want +got):\n%s", diff)
	}
	var names []string
	for _, c := range d.Columns {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"id", "x", "kind", "flag"}, names); diff != "" {
		t.Errorf("common columns (-want +got):\n%s", diff)
	}

	x := d.Columns[1]
	ra := reference(t, a, "SELECT avg(x), stddev_samp(x), count(*) FILTER (WHERE x IS NULL) / count(*) FROM t")
	rb := reference(t, b, "SELECT avg(x), stddev_samp(x), count(*) FILTER (WHERE x IS NULL) / count(*) FROM t")
	if !near(*x.MeanA, asF(ra[0]), 1e-9) || !near(*x.MeanB, asF(rb[0]), 1e-9) ||
		!near(*x.StdA, asF(ra[1]), 1e-9) || !near(*x.StdB, asF(rb[1]), 1e-9) {
		t.Errorf("x mean/std: got %v %v %v %v, want %v %v", *x.MeanA, *x.MeanB, *x.StdA, *x.StdB, ra, rb)
	}
	if x.NullFractionA != asF(ra[2]) || x.NullFractionB != asF(rb[2]) {
		t.Errorf("x null fractions %v %v, want %v %v", x.NullFractionA, x.NullFractionB, ra[2], rb[2])
	}
	if d.Columns[2].PSI != nil || d.Columns[3].PSI != nil {
		t.Error("PSI set for a column that is not a number in both")
	}

	// Recount every bin with plain DuckDB from the edges reported, and
	// recompute the PSI from those counts.
	if x.Bins == nil || x.PSI == nil {
		t.Fatalf("no PSI for x: %+v", x)
	}
	want := 0.0
	for i := 0; i <= len(x.Bins.Edges); i++ {
		cond := "x <= ?"
		args := []any{0.0}
		switch {
		case i == 0:
			args = []any{x.Bins.Edges[0]}
		case i == len(x.Bins.Edges):
			cond, args = "x > ?", []any{x.Bins.Edges[i-1]}
		default:
			cond, args = "x > ? AND x <= ?", []any{x.Bins.Edges[i-1], x.Bins.Edges[i]}
		}
		fa := binFraction(t, a, cond, args)
		fb := binFraction(t, b, cond, args)
		if !near(fa, x.Bins.FractionsA[i], 1e-12) || !near(fb, x.Bins.FractionsB[i], 1e-12) {
			t.Errorf("bin %d: fractions %v %v, recounted %v %v", i, x.Bins.FractionsA[i], x.Bins.FractionsB[i], fa, fb)
		}
		fa, fb = math.Max(fa, 1e-4), math.Max(fb, 1e-4)
		want += (fb - fa) * math.Log(fb/fa)
	}
	if !near(*x.PSI, want, 1e-9) {
		t.Errorf("PSI %v, recomputed %v", *x.PSI, want)
	}
	if *x.PSI < 0.25 {
		t.Errorf("PSI %v for a shift of 30%% of the range, want a major shift (> 0.25)", *x.PSI)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatal(err)
	}
}

func binFraction(t *testing.T, path, cond string, args []any) float64 {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var f float64
	q := "SELECT count(*) FILTER (WHERE " + cond + ") / count(x) FROM read_parquet(" + quoteString(path) + ")"
	if err := db.QueryRow(q, args...).Scan(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDiffSameAndSmallShift(t *testing.T) {
	a := makeParquet(t, `SELECT (hash(i) % 10000)::DOUBLE AS x FROM range(50000) r(i)`)
	small := makeParquet(t, `SELECT (hash(i + 7) % 10000)::DOUBLE * 1.02 AS x FROM range(40000) r(i)`)
	e := newTestEngine(t, EngineOptions{})
	d, err := e.Diff(context.Background(), a, a)
	if err != nil {
		t.Fatal(err)
	}
	if psi := *d.Columns[0].PSI; psi != 0 {
		t.Errorf("PSI of a file against itself = %v, want 0", psi)
	}
	d, err = e.Diff(context.Background(), a, small)
	if err != nil {
		t.Fatal(err)
	}
	if psi := *d.Columns[0].PSI; psi <= 0 || psi >= 0.1 {
		t.Errorf("PSI for a 2%% stretch = %v, want small but positive", psi)
	}
}
