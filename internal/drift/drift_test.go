package drift

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/duckq"
)

// scipyScript computes, for each numeric column, the KS statistic
// (ks_2samp), the asymptotic KS p-value (kstwobign.sf(sqrt(en)·D), the
// distribution Compare uses), ks_2samp's own p-value, the Wasserstein
// distance normed by the reference's std and the PSI over the reference's
// deciles; for each categorical column chisquare's p-value and
// jensenshannon, with Evidently's expected counts.
const scipyScript = `
import csv, json, sys
import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

def load(p):
    with open(p) as f:
        rows = list(csv.DictReader(f))
    return rows

ref, cur = load(sys.argv[1]), load(sys.argv[2])
out = {}
for col in sys.argv[3].split(","):
    a = np.array([float(r[col]) for r in ref]); b = np.array([float(r[col]) for r in cur])
    ks = stats.ks_2samp(a, b)
    en = len(a) * len(b) / (len(a) + len(b))
    edges = np.quantile(a, np.linspace(0.1, 0.9, 9))
    fa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=10) / len(a)
    fb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=10) / len(b)
    fa = np.where(fa == 0, 0.0001, fa); fb = np.where(fb == 0, 0.0001, fb)
    out[col] = {"ks": ks.statistic, "ks_p_asymp": stats.kstwobign.sf(np.sqrt(en) * ks.statistic),
        "ks_p_scipy": ks.pvalue, "wasserstein": stats.wasserstein_distance(a, b) / max(np.std(a), 0.001),
        "psi": float(np.sum((fa - fb) * np.log(fa / fb)))}
for col in sys.argv[4].split(","):
    a = [r[col] for r in ref]; b = [r[col] for r in cur]
    keys = sorted(set(a) | set(b))
    ca = np.array([a.count(k) for k in keys], dtype=float); cb = np.array([b.count(k) for k in keys], dtype=float)
    p = stats.chisquare(cb, ca * len(b) / len(a)).pvalue
    out[col] = {"chisquare_p": p, "js": jensenshannon(ca, cb)}
json.dump(out, sys.stdout)
`

type sample struct {
	num  map[string]func(*rand.Rand) float64
	cat  map[string]func(*rand.Rand) string
	rows int
}

// writeCSV writes rows drawn from s, numbers with all 17 digits so that
// DuckDB and numpy read the same values.
func writeCSV(t *testing.T, path string, s sample, numCols, catCols []string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	b.WriteString(strings.Join(append(append([]string{}, numCols...), catCols...), ",") + "\n")
	for range s.rows {
		var f []string
		for _, c := range numCols {
			f = append(f, fmt.Sprintf("%.17g", s.num[c](rng)))
		}
		for _, c := range catCols {
			f = append(f, s.cat[c](rng))
		}
		b.WriteString(strings.Join(f, ",") + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pick(vals []string, weights []float64) func(*rand.Rand) string {
	return func(r *rand.Rand) string {
		x := r.Float64()
		for i, w := range weights {
			if x < w {
				return vals[i]
			}
			x -= w
		}
		return vals[len(vals)-1]
	}
}

func TestCompareMatchesSciPy(t *testing.T) {
	numCols := []string{"same", "shifted", "wider", "ints"}
	catCols := []string{"color", "newcat"}
	ref := sample{rows: 800, num: map[string]func(*rand.Rand) float64{
		"same":    func(r *rand.Rand) float64 { return r.NormFloat64() },
		"shifted": func(r *rand.Rand) float64 { return r.NormFloat64() },
		"wider":   func(r *rand.Rand) float64 { return r.ExpFloat64() },
		"ints":    func(r *rand.Rand) float64 { return float64(r.IntN(40)) }, // ties
	}, cat: map[string]func(*rand.Rand) string{
		"color":  pick([]string{"red", "green", "blue"}, []float64{0.5, 0.3, 0.2}),
		"newcat": pick([]string{"a", "b"}, []float64{0.5, 0.5}),
	}}
	cur := sample{rows: 600, num: map[string]func(*rand.Rand) float64{
		"same":    func(r *rand.Rand) float64 { return r.NormFloat64() },
		"shifted": func(r *rand.Rand) float64 { return r.NormFloat64() + 0.5 },
		"wider":   func(r *rand.Rand) float64 { return 2 * r.ExpFloat64() },
		"ints":    func(r *rand.Rand) float64 { return float64(r.IntN(40)) },
	}, cat: map[string]func(*rand.Rand) string{
		"color":  pick([]string{"red", "green", "blue"}, []float64{0.5, 0.3, 0.2}),
		"newcat": pick([]string{"a", "b", "c"}, []float64{0.4, 0.4, 0.2}), // "c" unseen in the reference
	}}
	dir := t.TempDir()
	refCSV, curCSV := filepath.Join(dir, "ref.csv"), filepath.Join(dir, "cur.csv")
	writeCSV(t, refCSV, ref, numCols, catCols, 1)
	writeCSV(t, curCSV, cur, numCols, catCols, 3)

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
	// Both sides as Parquet, as payload logs and datasets are stored.
	for _, p := range []string{refCSV, curCSV} {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("COPY (SELECT * FROM read_csv('%s', all_varchar = false, types = {'color': 'VARCHAR', 'newcat': 'VARCHAR'})) TO '%s' (FORMAT parquet)", p, strings.TrimSuffix(p, ".csv")+".parquet")); err != nil {
			t.Fatal(err)
		}
	}
	refRel, curRel := Parquet(filepath.Join(dir, "ref.parquet")), Parquet(filepath.Join(dir, "cur.parquet"))
	cols, err := Columns(ctx, db, refRel)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Compare(ctx, db, refRel, curRel, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command("/usr/bin/python3", "-c", scipyScript, refCSV, curCSV,
		strings.Join(numCols, ","), strings.Join(catCols, ",")).Output()
	if err != nil {
		t.Fatalf("scipy: %v", err)
	}
	var want map[string]map[string]float64
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	// Tolerance: 1e-9 absolute on every statistic and p-value computed the
	// same way as SciPy (the bar).
	const tol = 1e-9
	near := func(col, what string, got *float64, w float64) {
		t.Helper()
		if got == nil {
			t.Errorf("%s: %s missing", col, what)
			return
		}
		if math.Abs(*got-w) > tol {
			t.Errorf("%s: %s = %.15g, scipy %.15g", col, what, *got, w)
		}
	}
	byName := map[string]Feature{}
	for _, f := range rep.Features {
		byName[f.Name] = f
	}
	for _, c := range numCols {
		f, w := byName[c], want[c]
		if f.Kind != Numeric || f.Method != MethodKS {
			t.Errorf("%s: kind %s method %s, want numeric ks (reference of 800 rows)", c, f.Kind, f.Method)
		}
		near(c, "ks", f.KS, w["ks"])
		near(c, "ks p (asymptotic)", f.KSPValue, w["ks_p_asymp"])
		near(c, "wasserstein normed", f.Wasserstein, w["wasserstein"])
		near(c, "psi", f.PSI, w["psi"])
		// ks_2samp's exact p-value differs from the asymptotic one a
		// little at these sizes; the verdict at 0.05 must agree.
		if (w["ks_p_scipy"] < 0.05) != f.Drifted {
			t.Errorf("%s: drifted %v, ks_2samp p %g", c, f.Drifted, w["ks_p_scipy"])
		}
	}
	for _, c := range catCols {
		f, w := byName[c], want[c]
		if f.Kind != Categorical || f.Method != MethodChiSquare {
			t.Errorf("%s: kind %s method %s, want categorical chisquare", c, f.Kind, f.Method)
		}
		near(c, "chisquare p", f.ChiSquarePValue, w["chisquare_p"])
		near(c, "jensenshannon", f.JensenShannon, w["js"])
		if (w["chisquare_p"] < 0.05) != f.Drifted {
			t.Errorf("%s: drifted %v, chisquare p %g", c, f.Drifted, w["chisquare_p"])
		}
	}
	// The verdicts on the clear cases; "color" is drawn alike on both
	// sides but is left to SciPy's verdict above, as a sample may stray.
	wantDrift := map[string]bool{"same": false, "shifted": true, "wider": true, "ints": false, "newcat": true}
	for c, d := range wantDrift {
		if byName[c].Drifted != d {
			t.Errorf("%s: drifted = %v, want %v (%+v)", c, byName[c].Drifted, d, byName[c])
		}
	}
	n := 0
	for _, f := range rep.Features {
		if f.Drifted {
			n++
		}
	}
	if len(rep.Features) != 6 || rep.Drifted != n || rep.Share != float64(n)/6 || rep.DatasetDrift != (n >= 3) {
		t.Errorf("dataset: %d of %d drifted, share %g, drift %v", rep.Drifted, len(rep.Features), rep.Share, rep.DatasetDrift)
	}
}

// Above 1,000 reference rows, distances decide: Wasserstein for numbers,
// Jensen-Shannon for categories, both over 0.1.
func TestCompareLargeReferenceUsesDistances(t *testing.T) {
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
	// A fixed, deterministic sample: x uniform on [0, 1) shifted by 0.5 in
	// the current window (normed Wasserstein 0.5/std = 0.5·sqrt(12) ≈ 1.73),
	// y unchanged, k a category whose mix moves from even to all "a".
	mustExec(t, db, ctx, `CREATE TABLE ref AS SELECT (i % 1000) / 1000.0 AS x, ((i * 7) % 1000) / 1000.0 AS y,
		CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END AS k FROM range(5000) t(i)`)
	mustExec(t, db, ctx, `CREATE TABLE cur AS SELECT (i % 1000) / 1000.0 + 0.5 AS x, ((i * 7) % 1000) / 1000.0 AS y,
		'a' AS k FROM range(2000) t(i)`)
	cols, err := Columns(ctx, db, "ref")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Compare(ctx, db, "ref", "cur", cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Feature{}
	for _, f := range rep.Features {
		got[f.Name] = f
	}
	if f := got["x"]; f.Method != MethodWasserstein || !f.Drifted || math.Abs(f.Statistic-0.5/math.Sqrt((1.0-1e-6)/12)) > 1e-3 {
		t.Errorf("x: %+v", f)
	}
	if f := got["y"]; f.Method != MethodWasserstein || f.Drifted || f.Statistic > 1e-9 {
		t.Errorf("y: %+v", f)
	}
	// JS distance of (0.5, 0.5) and (1, 0), with m = (0.75, 0.25):
	// KL(p||m) = 0.5 ln(4/3), KL(q||m) = ln(4/3).
	wantJS := math.Sqrt(0.75 * math.Log(4.0/3))
	if f := got["k"]; f.Method != MethodJensenShannon || !f.Drifted || math.Abs(f.Statistic-wantJS) > 1e-12 || wantJS < 0.1 {
		t.Errorf("k: %+v (want js %g)", f, wantJS)
	}
	if rep.Drifted != 2 || !rep.DatasetDrift {
		t.Errorf("report: %+v", rep)
	}
}

func mustExec(t *testing.T, db *sql.DB, ctx context.Context, q string) {
	t.Helper()
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
}
