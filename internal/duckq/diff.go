package duckq

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Diff compares two versions of a dataset, A (the reference) and B.
type Diff struct {
	RowsA       int64        `json:"rows_a"`
	RowsB       int64        `json:"rows_b"`
	Added       []Column     `json:"added"`        // in B only
	Removed     []Column     `json:"removed"`      // in A only
	TypeChanged []TypeChange `json:"type_changed"` // in both, with another type
	Columns     []ColumnDiff `json:"columns"`      // in both, in A's order
}

// TypeChange is a column whose type differs between A and B.
type TypeChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// ColumnDiff holds the shift of one column present in both versions. Mean,
// std and PSI are set when the column is a number in both.
type ColumnDiff struct {
	Name          string   `json:"name"`
	NullFractionA float64  `json:"null_fraction_a"`
	NullFractionB float64  `json:"null_fraction_b"`
	MeanA         *float64 `json:"mean_a,omitempty"`
	MeanB         *float64 `json:"mean_b,omitempty"`
	StdA          *float64 `json:"std_a,omitempty"`
	StdB          *float64 `json:"std_b,omitempty"`
	// PSI is the population stability index of B against A over Bins: by
	// the usual reading, under 0.1 is no shift, over 0.25 a major one.
	PSI  *float64 `json:"psi,omitempty"`
	Bins *PSIBins `json:"bins,omitempty"`
}

// PSIBins are the bins a PSI was computed over: bin 0 holds values <=
// Edges[0], bin i values in (Edges[i-1], Edges[i]], the last bin values
// above the last edge. The edges are A's deciles, so each bin holds about a
// tenth of A. Fractions are of the finite values.
type PSIBins struct {
	Edges      []float64 `json:"edges"`
	FractionsA []float64 `json:"fractions_a"`
	FractionsB []float64 `json:"fractions_b"`
}

// psiEpsilon stands in for the fraction of an empty bin, whose log would
// be infinite.
const psiEpsilon = 1e-4

var decileLevels = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// Diff compares the Parquet files a and b in three scans: statistics and
// deciles of A, then the bin counts of A, then statistics and bin counts of B.
func (e *Engine) Diff(ctx context.Context, a, b string) (Diff, error) {
	db, err := e.open(ctx, nil)
	if err != nil {
		return Diff{}, err
	}
	defer db.Close()
	srcA := "read_parquet(" + quoteString(a) + ")"
	srcB := "read_parquet(" + quoteString(b) + ")"
	colsA, err := columnsOf(ctx, db, "SELECT * FROM "+srcA)
	if err != nil {
		return Diff{}, err
	}
	colsB, err := columnsOf(ctx, db, "SELECT * FROM "+srcB)
	if err != nil {
		return Diff{}, err
	}
	d := Diff{Added: []Column{}, Removed: []Column{}, TypeChanged: []TypeChange{}, Columns: []ColumnDiff{}}
	typeB := map[string]string{}
	for _, c := range colsB {
		typeB[c.Name] = c.Type
	}
	var numeric []bool // per entry of d.Columns
	for _, c := range colsA {
		tb, ok := typeB[c.Name]
		if !ok {
			d.Removed = append(d.Removed, c)
			continue
		}
		if tb != c.Type {
			d.TypeChanged = append(d.TypeChanged, TypeChange{c.Name, c.Type, tb})
		}
		d.Columns = append(d.Columns, ColumnDiff{Name: c.Name})
		numeric = append(numeric, kindOf(c.Type) == KindNumber && kindOf(tb) == KindNumber)
		delete(typeB, c.Name)
	}
	for _, c := range colsB {
		if _, ok := typeB[c.Name]; ok {
			d.Added = append(d.Added, c)
		}
	}

	// Scan 1: A's statistics and deciles.
	exprs := []string{"count(*)"}
	for i, c := range d.Columns {
		col := quoteIdent(c.Name)
		exprs = append(exprs, "count("+col+")")
		if numeric[i] {
			f := finite(col)
			exprs = append(exprs, "avg("+f+")", "stddev_samp("+f+")",
				fmt.Sprintf("approx_quantile(%s, %s)", f, floatList(decileLevels)))
		}
	}
	va, err := scanOne(ctx, db, "SELECT "+strings.Join(exprs, ", ")+" FROM "+srcA)
	if err != nil {
		return Diff{}, err
	}
	d.RowsA = asInt(va[0])
	at := 1
	edges := make([][]float64, len(d.Columns))
	for i := range d.Columns {
		c := &d.Columns[i]
		c.NullFractionA = fraction(d.RowsA-asInt(va[at]), d.RowsA)
		at++
		if !numeric[i] {
			continue
		}
		c.MeanA, c.StdA = asFloatPtr(va[at]), asFloatPtr(va[at+1])
		if q, ok := va[at+2].([]any); ok {
			for _, x := range q {
				if f := asF(x); !math.IsNaN(f) && !math.IsInf(f, 0) {
					edges[i] = append(edges[i], f)
				}
			}
			slices.Sort(edges[i])
			edges[i] = slices.Compact(edges[i])
		}
		at += 3
	}

	// Scan 2: A's counts per bin. Scan 3: B's statistics and counts.
	var binExprs []string
	for i, c := range d.Columns {
		if numeric[i] && len(edges[i]) > 0 {
			binExprs = append(binExprs, binHistogram(quoteIdent(c.Name), edges[i]))
		}
	}
	var ha []any
	if len(binExprs) > 0 {
		if ha, err = scanOne(ctx, db, "SELECT "+strings.Join(binExprs, ", ")+" FROM "+srcA); err != nil {
			return Diff{}, err
		}
	}
	exprs = []string{"count(*)"}
	for i, c := range d.Columns {
		col := quoteIdent(c.Name)
		exprs = append(exprs, "count("+col+")")
		if numeric[i] {
			f := finite(col)
			exprs = append(exprs, "avg("+f+")", "stddev_samp("+f+")")
			if len(edges[i]) > 0 {
				exprs = append(exprs, binHistogram(col, edges[i]))
			}
		}
	}
	vb, err := scanOne(ctx, db, "SELECT "+strings.Join(exprs, ", ")+" FROM "+srcB)
	if err != nil {
		return Diff{}, err
	}
	d.RowsB = asInt(vb[0])
	at, bin := 1, 0
	for i := range d.Columns {
		c := &d.Columns[i]
		c.NullFractionB = fraction(d.RowsB-asInt(vb[at]), d.RowsB)
		at++
		if !numeric[i] {
			continue
		}
		c.MeanB, c.StdB = asFloatPtr(vb[at]), asFloatPtr(vb[at+1])
		at += 2
		if len(edges[i]) == 0 {
			continue
		}
		countsA, err := binCounts(ha[bin], len(edges[i])+1)
		if err != nil {
			return Diff{}, err
		}
		countsB, err := binCounts(vb[at], len(edges[i])+1)
		if err != nil {
			return Diff{}, err
		}
		at++
		bin++
		c.Bins = &PSIBins{Edges: edges[i], FractionsA: fractions(countsA), FractionsB: fractions(countsB)}
		if c.Bins.FractionsA != nil && c.Bins.FractionsB != nil {
			psi := PSI(c.Bins.FractionsA, c.Bins.FractionsB)
			c.PSI = &psi
		}
	}
	return d, nil
}

// PSI is the population stability index sum((b-a) * ln(b/a)) of two
// distributions over the same bins, with psiEpsilon for empty bins.
func PSI(a, b []float64) float64 {
	var psi float64
	for i := range a {
		pa, pb := max(a[i], psiEpsilon), max(b[i], psiEpsilon)
		psi += (pb - pa) * math.Log(pb/pa)
	}
	return psi
}

func finite(col string) string {
	return "CASE WHEN isfinite(" + col + "::DOUBLE) THEN " + col + "::DOUBLE END"
}

// binHistogram counts a column's finite values per PSI bin, as a JSON map
// from bin index to count.
func binHistogram(col string, edges []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "histogram(CASE WHEN NOT coalesce(isfinite(%s::DOUBLE), false) THEN NULL", col)
	for i, e := range edges {
		fmt.Fprintf(&b, " WHEN %s::DOUBLE <= %s THEN %d", col, strconv.FormatFloat(e, 'g', -1, 64), i)
	}
	fmt.Fprintf(&b, " ELSE %d END)::JSON::VARCHAR", len(edges))
	return b.String()
}

func binCounts(v any, n int) ([]int64, error) {
	counts := make([]int64, n)
	s, ok := v.(string)
	if !ok {
		return counts, nil
	}
	var m map[string]int64
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("diff: read bin counts: %w", err)
	}
	for k, c := range m {
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < n {
			counts[i] = c
		}
	}
	return counts, nil
}

// fractions returns counts as fractions of their total, or nil when there
// are none.
func fractions(counts []int64) []float64 {
	var total int64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return nil
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = float64(c) / float64(total)
	}
	return out
}

func fraction(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}

func floatList(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return "[" + strings.Join(s, ", ") + "]"
}
