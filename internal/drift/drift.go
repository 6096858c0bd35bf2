// Package drift compares what a deployed model sees (a current window of
// logged payloads) with a reference (its training data), column by column,
// with the statistics and default thresholds of Evidently's data drift
// preset. The heavy lifting (value counts, cumulative distributions,
// quantiles, bin counts) is done by DuckDB; Go only combines aggregates.
package drift

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
)

// Kinds of column.
const (
	Numeric     = "numeric"
	Categorical = "categorical"
)

// Methods, the statistic that decides whether a column drifted.
const (
	MethodKS            = "ks"            // p-value < threshold
	MethodWasserstein   = "wasserstein"   // normed distance > threshold
	MethodChiSquare     = "chisquare"     // p-value < threshold
	MethodJensenShannon = "jensenshannon" // distance > threshold
)

// Options are Evidently's defaults when zero.
type Options struct {
	// SmallReference: at or below this many reference rows, tests (KS,
	// chi-squared) decide; above it, distances (Wasserstein, Jensen-Shannon).
	SmallReference int64 // 1000
	PValue         float64
	Distance       float64 // 0.1
	// DriftShare: the dataset drifted when at least this share of its
	// columns did.
	DriftShare float64 // 0.5
	PSIBins    int     // 10
	// MaxCategories: a numeric column with at most this many distinct
	// reference values is treated as categorical, as Evidently does.
	MaxCategories int64 // 5
	// ExactRows: above this many rows (both sides together), numeric
	// statistics come from Bins-bin histograms (binned.go).
	ExactRows int64 // 200,000
	Bins      int   // 4096
	// ReferenceKey, when set, names the reference's content (an
	// immutable file, say): what Compare computes of the reference alone
	// (statistics, quantiles, histograms) is then kept for that key and
	// those columns and options, and later reports scan only the current
	// window (cache.go).
	ReferenceKey string
}

func (o *Options) defaults() {
	if o.SmallReference <= 0 {
		o.SmallReference = 1000
	}
	if o.PValue <= 0 {
		o.PValue = 0.05
	}
	if o.Distance <= 0 {
		o.Distance = 0.1
	}
	if o.DriftShare <= 0 {
		o.DriftShare = 0.5
	}
	if o.PSIBins <= 1 {
		o.PSIBins = 10
	}
	if o.MaxCategories <= 0 {
		o.MaxCategories = 5
	}
	if o.ExactRows <= 0 {
		o.ExactRows = 200_000
	}
	if o.Bins <= 1 {
		o.Bins = 4096
	}
}

// Report is the drift of a current window against a reference.
type Report struct {
	ReferenceRows int64     `json:"reference_rows"`
	CurrentRows   int64     `json:"current_rows"`
	Features      []Feature `json:"features"`
	Drifted       int       `json:"drifted"`
	Share         float64   `json:"share"`
	ShareLimit    float64   `json:"share_threshold"`
	DatasetDrift  bool      `json:"dataset_drift"`
}

// Feature is the drift of one column. Method, Statistic and Threshold say
// what decided Drifted; the other statistics are there to read.
type Feature struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Method    string  `json:"method"`
	Statistic float64 `json:"statistic"`
	Threshold float64 `json:"threshold"`
	Drifted   bool    `json:"drifted"`
	// Numeric columns.
	PSI         *float64 `json:"psi,omitempty"`
	KS          *float64 `json:"ks,omitempty"`
	KSPValue    *float64 `json:"ks_p_value,omitempty"`
	Wasserstein *float64 `json:"wasserstein_normed,omitempty"`
	// Categorical columns.
	ChiSquarePValue *float64 `json:"chisquare_p_value,omitempty"`
	JensenShannon   *float64 `json:"jensenshannon,omitempty"`
	// CurrentRows counts the current window's non-null values.
	CurrentRows int64 `json:"current_rows"`
}

// Column names a column of both relations and says how to compare it.
type Column struct {
	Name string
	Kind string // Numeric or Categorical
}

// Compare computes the drift of each column between ref and cur, two
// DuckDB relations (a table name, or read_parquet([...])) that both have
// the columns. Nulls (and NaN, infinities for numbers) are left out, as
// Evidently drops them.
func Compare(ctx context.Context, db *sql.DB, ref, cur string, cols []Column, opts Options) (Report, error) {
	opts.defaults()
	r := Report{Features: []Feature{}, ShareLimit: opts.DriftShare}
	if err := db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM "+ref+"), (SELECT count(*) FROM "+cur+")").
		Scan(&r.ReferenceRows, &r.CurrentRows); err != nil {
		return Report{}, fmt.Errorf("count rows: %w", err)
	}
	if r.ReferenceRows == 0 {
		return Report{}, forge.Errorf(forge.Invalid, "the reference has no rows")
	}
	small := r.ReferenceRows <= opts.SmallReference
	large := r.ReferenceRows+r.CurrentRows > opts.ExactRows
	// Large inputs take the PSI's edges from the histograms (binned.go),
	// not from quantiles, the costliest reference statistic; a column
	// computed exactly after all reads them then.
	entry := cachedReference(opts, cols, large)
	stats := entry.statsOrNil()
	if stats == nil {
		var err error
		if stats, err = referenceStats(ctx, db, ref, cols, opts.PSIBins, !large); err != nil {
			return Report{}, err
		}
		entry.setStats(stats)
	}
	var bins map[string]binned
	if large {
		var num []string
		for _, c := range cols {
			if st, ok := stats[c.Name]; ok && c.Kind == Numeric && st.distinct > opts.MaxCategories {
				num = append(num, c.Name)
			}
		}
		bs, hists, err := binnedNumeric(ctx, db, ref, cur, num, stats, opts, entry.histsOrNil())
		if err != nil {
			return Report{}, err
		}
		bins = bs
		entry.setHists(hists)
	}
	for _, c := range cols {
		var f Feature
		var err error
		kind := c.Kind
		st, isNum := stats[c.Name]
		if isNum && st.distinct <= opts.MaxCategories {
			kind = Categorical
		}
		if b, ok := bins[c.Name]; ok && kind == Numeric {
			f, err = fromBins(c.Name, b, st, opts, small)
		} else if kind == Numeric {
			if st.edges == nil {
				if st.edges, err = quantiles(ctx, db, ref, c.Name, opts.PSIBins); err != nil {
					return Report{}, fmt.Errorf("column %q: %w", c.Name, err)
				}
			}
			f, err = numeric(ctx, db, ref, cur, c.Name, st, opts, small)
		} else {
			f, err = categorical(ctx, db, ref, cur, c.Name, c.Kind == Numeric, opts, small)
		}
		if err != nil {
			return Report{}, fmt.Errorf("column %q: %w", c.Name, err)
		}
		f.Name, f.Kind = c.Name, kind
		if f.Drifted {
			r.Drifted++
		}
		r.Features = append(r.Features, f)
	}
	if len(r.Features) > 0 {
		r.Share = float64(r.Drifted) / float64(len(r.Features))
	}
	r.DatasetDrift = len(r.Features) > 0 && r.Share >= opts.DriftShare
	return r, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func numExpr(col string) string { return "TRY_CAST(" + quoteIdent(col) + " AS DOUBLE)" }

// union is both sides' finite values of col, s = 0 for ref, 1 for cur.
func union(ref, cur, col string) string {
	v := numExpr(col)
	return fmt.Sprintf(`SELECT %[1]s AS v, 0 AS s FROM %[2]s WHERE isfinite(%[1]s)
		UNION ALL SELECT %[1]s, 1 FROM %[3]s WHERE isfinite(%[1]s)`, v, ref, cur)
}

// refStats are what a numeric column's tests need of the reference alone.
type refStats struct {
	distinct int64
	min, max float64
	std      float64   // population standard deviation
	edges    []float64 // the PSI bins' inner edges: quantiles, as numpy.quantile
}

// referenceStats reads, in one scan of ref, every numeric column's
// distinct count, standard deviation and PSI edges.
func referenceStats(ctx context.Context, db *sql.DB, ref string, cols []Column, bins int, withQuantiles bool) (map[string]refStats, error) {
	levels := quantileLevels(bins)
	var exprs []string
	var names []string
	for _, c := range cols {
		if c.Kind != Numeric {
			continue
		}
		v := "CASE WHEN isfinite(" + numExpr(c.Name) + ") THEN " + numExpr(c.Name) + " END"
		q := "NULL"
		if withQuantiles {
			q = "quantile_cont(" + v + ", [" + strings.Join(levels, ", ") + "])"
		}
		exprs = append(exprs, "count(DISTINCT "+v+")", "coalesce(stddev_pop("+v+"), 0)", q, "min("+v+")::DOUBLE", "max("+v+")::DOUBLE")
		names = append(names, c.Name)
	}
	out := map[string]refStats{}
	if len(names) == 0 {
		return out, nil
	}
	vals := make([]any, len(exprs))
	ptrs := make([]any, len(exprs))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := db.QueryRowContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+ref).Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("reference statistics: %w", err)
	}
	for i, n := range names {
		st := refStats{distinct: toInt(vals[5*i]), std: toFloat(vals[5*i+1]), min: toFloat(vals[5*i+3]), max: toFloat(vals[5*i+4])}
		if q, ok := vals[5*i+2].([]any); ok {
			for _, x := range q {
				st.edges = append(st.edges, toFloat(x))
			}
		}
		out[n] = st
	}
	return out, nil
}

func numeric(ctx context.Context, db *sql.DB, ref, cur, col string, st refStats, opts Options, small bool) (Feature, error) {
	// KS statistic and the Wasserstein-1 distance from the two empirical
	// CDFs over the merged distinct values, in one sort; the reference's
	// population standard deviation norms the distance, as Evidently does.
	q := `WITH g AS (SELECT v, count(*) FILTER (WHERE s = 0) AS a, count(*) FILTER (WHERE s = 1) AS b
		FROM (` + union(ref, cur, col) + `) GROUP BY v),
	c AS (SELECT sum(a) OVER w / sum(a) OVER () AS fa, sum(b) OVER w / sum(b) OVER () AS fb,
		coalesce(lead(v) OVER (ORDER BY v) - v, 0) AS dv, sum(a) OVER () AS na, sum(b) OVER () AS nb
		FROM g WINDOW w AS (ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
	SELECT coalesce(max(abs(fa - fb)), 0), coalesce(sum(abs(fa - fb) * dv), 0),
		coalesce(max(na), 0)::BIGINT, coalesce(max(nb), 0)::BIGINT FROM c`
	var ks, wd float64
	var na, nb int64
	if err := db.QueryRowContext(ctx, q).Scan(&ks, &wd, &na, &nb); err != nil {
		return Feature{}, err
	}
	f := Feature{CurrentRows: nb}
	if nb == 0 {
		return f, forge.Errorf(forge.Invalid, "column %q has no values in the current window", col)
	}
	p := ksPValue(ks, na, nb)
	wdn := wd / math.Max(st.std, 0.001)
	f.KS, f.KSPValue, f.Wasserstein = &ks, &p, &wdn
	ps, err := psiOf(ctx, db, ref, cur, col, st.edges, opts.PSIBins)
	if err != nil {
		return Feature{}, err
	}
	f.PSI = &ps
	if small {
		f.Method, f.Statistic, f.Threshold, f.Drifted = MethodKS, p, opts.PValue, p < opts.PValue
	} else {
		f.Method, f.Statistic, f.Threshold, f.Drifted = MethodWasserstein, wdn, opts.Distance, wdn > opts.Distance
	}
	return f, nil
}

func quantileLevels(bins int) []string {
	levels := make([]string, bins-1)
	for i := range levels {
		levels[i] = strconv.FormatFloat(float64(i+1)/float64(bins), 'g', -1, 64)
	}
	return levels
}

// quantiles are the PSI's inner edges of col in ref, as numpy.quantile.
func quantiles(ctx context.Context, db *sql.DB, ref, col string, bins int) ([]float64, error) {
	var q any
	v := finite(col)
	if err := db.QueryRowContext(ctx, "SELECT quantile_cont("+v+", ["+strings.Join(quantileLevels(bins), ", ")+"]) FROM "+ref).Scan(&q); err != nil {
		return nil, err
	}
	var out []float64
	if l, ok := q.([]any); ok {
		for _, x := range l {
			out = append(out, toFloat(x))
		}
	}
	return out, nil
}

// fromBins is numeric's Feature from a column's histograms.
func fromBins(col string, b binned, st refStats, opts Options, small bool) (Feature, error) {
	f := Feature{CurrentRows: b.cur}
	if b.cur == 0 {
		return f, forge.Errorf(forge.Invalid, "column %q has no values in the current window", col)
	}
	ks, ps := b.ks, b.psi
	p := ksPValue(ks, b.ref, b.cur)
	wdn := b.wasserstein / math.Max(st.std, 0.001)
	f.KS, f.KSPValue, f.Wasserstein, f.PSI = &ks, &p, &wdn, &ps
	if small {
		f.Method, f.Statistic, f.Threshold, f.Drifted = MethodKS, p, opts.PValue, p < opts.PValue
	} else {
		f.Method, f.Statistic, f.Threshold, f.Drifted = MethodWasserstein, wdn, opts.Distance, wdn > opts.Distance
	}
	return f, nil
}

// psiOf bins both sides by the reference's quantiles edges (n bins): bin
// i holds values in [e_i, e_i+1), the first and last bins are open-ended.
func psiOf(ctx context.Context, db *sql.DB, ref, cur, col string, edges []float64, n int) (float64, error) {
	bin := "0"
	for _, e := range edges {
		bin += fmt.Sprintf(" + (v >= %s)::INT", strconv.FormatFloat(e, 'g', -1, 64))
	}
	q := `SELECT s, ` + bin + ` AS bin, count(*) FROM (` + union(ref, cur, col) + `) GROUP BY ALL`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	counts := [2][]float64{make([]float64, n), make([]float64, n)}
	var total [2]float64
	for rows.Next() {
		var s, bin int
		var c float64
		if err := rows.Scan(&s, &bin, &c); err != nil {
			return 0, err
		}
		counts[s][bin] += c
		total[s] += c
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for s := range counts {
		for i := range counts[s] {
			counts[s][i] /= total[s]
		}
	}
	return psi(counts[0], counts[1]), nil
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	}
	return math.NaN()
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case uint64:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

func categorical(ctx context.Context, db *sql.DB, ref, cur, col string, wasNumber bool, opts Options, small bool) (Feature, error) {
	key := "CAST(" + quoteIdent(col) + " AS VARCHAR)"
	if wasNumber {
		// 1 and 1.0 are one category.
		key = "CAST(" + numExpr(col) + " AS VARCHAR)"
	}
	q := fmt.Sprintf(`WITH u AS (SELECT %[1]s AS k, 0 AS s FROM %[2]s UNION ALL SELECT %[1]s, 1 FROM %[3]s)
	SELECT k, count(*) FILTER (WHERE s = 0), count(*) FILTER (WHERE s = 1) FROM u WHERE k IS NOT NULL GROUP BY k ORDER BY k`,
		key, ref, cur)
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return Feature{}, err
	}
	defer rows.Close()
	var a, b []float64
	var na, nb float64
	for rows.Next() {
		var k string
		var x, y float64
		if err := rows.Scan(&k, &x, &y); err != nil {
			return Feature{}, err
		}
		a, b = append(a, x), append(b, y)
		na, nb = na+x, nb+y
	}
	if err := rows.Err(); err != nil {
		return Feature{}, err
	}
	f := Feature{CurrentRows: int64(nb)}
	if nb == 0 {
		return f, forge.Errorf(forge.Invalid, "column %q has no values in the current window", col)
	}
	// Evidently's chi_stat_test: expected counts are the reference's,
	// scaled to the current window's size.
	exp := make([]float64, len(a))
	for i := range a {
		exp[i] = a[i] * nb / na
	}
	_, p := chiSquare(b, exp)
	js := jensenShannon(a, b)
	f.ChiSquarePValue, f.JensenShannon = &p, &js
	if small {
		f.Method, f.Statistic, f.Threshold, f.Drifted = MethodChiSquare, p, opts.PValue, p < opts.PValue
	} else {
		f.Method, f.Statistic, f.Threshold, f.Drifted = MethodJensenShannon, js, opts.Distance, js > opts.Distance
	}
	return f, nil
}

// Columns reads the columns of rel and their kinds: numbers are Numeric,
// everything else Categorical.
func Columns(ctx context.Context, db *sql.DB, rel string) ([]Column, error) {
	rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * FROM "+rel)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	var out []Column
	for rows.Next() {
		vals := make([]any, len(cts))
		ptrs := make([]any, len(cts))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		name, _ := vals[0].(string)
		typ, _ := vals[1].(string)
		kind := Categorical
		if isNumberType(typ) {
			kind = Numeric
		}
		out = append(out, Column{Name: name, Kind: kind})
	}
	return out, rows.Err()
}

func isNumberType(t string) bool {
	t = strings.ToUpper(t)
	for _, p := range []string{"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// Parquet is the relation of the Parquet files paths.
func Parquet(paths ...string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = "'" + strings.ReplaceAll(p, "'", "''") + "'"
	}
	return "read_parquet([" + strings.Join(q, ", ") + "], union_by_name = true)"
}
