package drift

import (
	"context"
	"math"
	"testing"

	"github.com/forge-mlops/forge/internal/duckq"
)

// The binned statistics of large inputs stay within their bounds of the
// exact ones: KS within the densest bin's mass, the normed distance
// within a bin's width over the std, the PSI (deciles moved by less than
// a bin) within 2%; a heavy-tailed column is computed exactly.
func TestBinnedMatchesExact(t *testing.T) {
	ctx := context.Background()
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	db, err := eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	normal := "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
	mustExec(t, db, ctx, "SELECT setseed(0.25)")
	mustExec(t, db, ctx, "CREATE TABLE ref AS SELECT "+normal+" AS a, "+normal+" AS b, random() AS u, "+
		"CASE WHEN i % 1000 = 0 THEN 1e6 ELSE random() END AS tail, "+normal+" AS far FROM range(20000) t(i)")
	mustExec(t, db, ctx, "CREATE TABLE cur AS SELECT "+normal+" + 0.3 AS a, "+normal+" AS b, random() * 1.2 AS u, "+
		"random() AS tail, "+normal+" + 10 AS far FROM range(8000) t(i)")
	// u's and far's current values reach beyond the reference's range.
	cols := []Column{{"a", Numeric}, {"b", Numeric}, {"u", Numeric}, {"tail", Numeric}, {"far", Numeric}}
	exact, err := Compare(ctx, db, "ref", "cur", cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{ExactRows: 1, Bins: 1024}
	approx, err := Compare(ctx, db, "ref", "cur", cols, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range exact.Features {
		g := approx.Features[i]
		// The deciles move by less than a bin: the PSI stays close.
		if d := math.Abs(*e.PSI - *g.PSI); d > 0.02**e.PSI+0.0005 {
			t.Errorf("%s: PSI %v binned, %v exact", e.Name, *g.PSI, *e.PSI)
		}
		if e.Name == "tail" {
			if *g.KS != *e.KS || *g.Wasserstein != *e.Wasserstein {
				t.Errorf("tail (range 1e6 x its spread): binned KS %v W %v, want the exact %v %v", *g.KS, *g.Wasserstein, *e.KS, *e.Wasserstein)
			}
			continue
		}
		// Bound: the densest bin of either side holds at most this share.
		var lo, hi, peak float64
		if err := db.QueryRowContext(ctx, `SELECT min(v), max(v) FROM (SELECT `+e.Name+` AS v FROM ref UNION ALL SELECT `+e.Name+` FROM cur)`).Scan(&lo, &hi); err != nil {
			t.Fatal(err)
		}
		w := (hi - lo) / float64(opts.Bins)
		for _, rel := range []string{"ref", "cur"} {
			var p float64
			if err := db.QueryRowContext(ctx, `SELECT max(n) / sum(n) FROM (SELECT count(*)::DOUBLE AS n FROM `+rel+` GROUP BY floor((`+e.Name+` - ?) / ?))`, lo, w).Scan(&p); err != nil {
				t.Fatal(err)
			}
			peak = math.Max(peak, p)
		}
		var std float64
		if err := db.QueryRowContext(ctx, "SELECT stddev_pop("+e.Name+") FROM ref").Scan(&std); err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(*g.KS - *e.KS); d > peak {
			t.Errorf("%s: KS %v binned, %v exact: off by %v, over the densest bin's %v", e.Name, *g.KS, *e.KS, d, peak)
		}
		if d := math.Abs(*g.Wasserstein - *e.Wasserstein); d > w/std {
			t.Errorf("%s: W %v binned, %v exact: off by %v, over a bin's width %v", e.Name, *g.Wasserstein, *e.Wasserstein, d, w/std)
		}
		if g.Drifted != e.Drifted {
			t.Errorf("%s: drifted %v binned, %v exact", e.Name, g.Drifted, e.Drifted)
		}
		t.Logf("%s: KS %.6f vs %.6f, W %.6f vs %.6f", e.Name, *g.KS, *e.KS, *g.Wasserstein, *e.Wasserstein)
	}
}

// With a ReferenceKey, what Compare computes of the reference alone is
// kept: a second report under the key gives the same figures without
// reading the reference's values again (here they changed under it,
// which a key promises they do not), while a report without the key
// sees the new values.
func TestReferenceCache(t *testing.T) {
	ctx := context.Background()
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	db, err := eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	normal := "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
	mustExec(t, db, ctx, "SELECT setseed(0.5)")
	mustExec(t, db, ctx, "CREATE TABLE ref AS SELECT "+normal+" AS a, (i % 3) AS k FROM range(5000) t(i)")
	mustExec(t, db, ctx, "CREATE TABLE cur AS SELECT "+normal+" + 0.3 AS a, (i % 2) AS k FROM range(3000) t(i)")
	cols := []Column{{"a", Numeric}, {"k", Numeric}}
	for _, exact := range []bool{false, true} {
		opts := Options{ReferenceKey: "ref@" + map[bool]string{false: "binned", true: "exact"}[exact], Bins: 512}
		if !exact {
			opts.ExactRows = 1
		}
		first, err := Compare(ctx, db, "ref", "cur", cols, opts)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, ctx, "UPDATE ref SET a = a * 3")
		again, err := Compare(ctx, db, "ref", "cur", cols, opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.ReferenceKey = ""
		fresh, err := Compare(ctx, db, "ref", "cur", cols, opts)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, ctx, "UPDATE ref SET a = a / 3")
		f, a, n := first.Features[0], again.Features[0], fresh.Features[0]
		if exact {
			// The exact path reads the reference's values with the
			// window's; the std (the norm) comes from the cache, a third
			// of the changed reference's.
			if math.Abs(*a.Wasserstein-3**n.Wasserstein) > 1e-9 {
				t.Errorf("exact, cached: normed W %v, want 3 x %v (the cached std)", *a.Wasserstein, *n.Wasserstein)
			}
			continue
		}
		if *a.KS != *f.KS || *a.Wasserstein != *f.Wasserstein || *a.PSI != *f.PSI {
			t.Errorf("binned, cached: KS %v W %v PSI %v, want the first report's %v %v %v", *a.KS, *a.Wasserstein, *a.PSI, *f.KS, *f.Wasserstein, *f.PSI)
		}
		if *n.KS == *f.KS {
			t.Errorf("binned, no key: KS %v, the same as before the reference changed", *n.KS)
		}
		if first.Features[1].Kind != Categorical || again.Features[1].Kind != Categorical {
			t.Errorf("k: kinds %s, %s, want categorical (3 distinct values)", first.Features[1].Kind, again.Features[1].Kind)
		}
	}
}
