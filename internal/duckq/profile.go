package duckq

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Profile summarizes a dataset column by column.
type Profile struct {
	Rows    int64           `json:"rows"`
	Columns []ColumnProfile `json:"columns"`
}

// ColumnProfile holds one column's statistics. Which fields are set depends
// on the column's kind: mean, std, quantiles and histogram for numbers, top
// values for text, min and max for anything ordered.
type ColumnProfile struct {
	Name           string     `json:"name"`
	Type           string     `json:"type"`
	Kind           ColumnKind `json:"kind"`
	Count          int64      `json:"count"` // non-null values
	Nulls          int64      `json:"nulls"`
	ApproxDistinct int64      `json:"approx_distinct"`
	Min            any        `json:"min,omitempty"` // float64 for numbers, string otherwise
	Max            any        `json:"max,omitempty"`
	Mean           *float64   `json:"mean,omitempty"`
	Std            *float64   `json:"std,omitempty"`
	Quantiles      *Quantiles `json:"quantiles,omitempty"`
	TopValues      []Value    `json:"top_values,omitempty"`
	Histogram      *Histogram `json:"histogram,omitempty"`
}

// ColumnKind groups column types by the statistics that make sense for them.
type ColumnKind string

const (
	KindNumber ColumnKind = "number"
	KindText   ColumnKind = "text"
	KindTime   ColumnKind = "time" // dates, times, timestamps
	KindBool   ColumnKind = "bool"
	KindOther  ColumnKind = "other" // blobs, lists, structs, maps
)

// Quantiles are exact quantiles of a number column's finite values, with
// linear interpolation between the closest ranks (DuckDB's quantile_cont),
// whatever the order of the rows.
type Quantiles struct {
	P05 float64 `json:"p05"`
	P25 float64 `json:"p25"`
	P50 float64 `json:"p50"`
	P75 float64 `json:"p75"`
	P95 float64 `json:"p95"`
}

// Value is a value and how many rows hold it.
type Value struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// Histogram has equal-width bins over [Edges[0], Edges[len(Edges)-1]]; bin i
// counts values in [Edges[i], Edges[i+1]), the last bin is closed. NaN and
// infinities are left out, as they are of min, max, mean, std and quantiles.
type Histogram struct {
	Edges  []float64 `json:"edges"`
	Counts []int64   `json:"counts"`
}

const (
	histogramBins = 20
	topValues     = 10
	// Text columns with at most this many distinct values get exact top
	// values: every value is counted in scan 2. Above it, approx_top_k
	// proposes topCandidates values in scan 3 and scan 4 counts those
	// exactly; oversampling makes a wrong pick unlikely outside near ties.
	exactTopLimit = 10000
	topCandidates = 5 * topValues
)

var quantileLevels = []float64{0.05, 0.25, 0.5, 0.75, 0.95}

func kindOf(duckType string) ColumnKind {
	t := strings.ToUpper(duckType)
	switch {
	case strings.HasSuffix(t, "]") || strings.HasPrefix(t, "STRUCT") || strings.HasPrefix(t, "MAP") ||
		strings.HasPrefix(t, "UNION"):
		return KindOther
	case strings.HasPrefix(t, "DECIMAL"), slices.Contains([]string{"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
		"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE"}, t):
		return KindNumber
	case t == "VARCHAR" || strings.HasPrefix(t, "ENUM"):
		return KindText
	case t == "BOOLEAN":
		return KindBool
	case strings.HasPrefix(t, "DATE") || strings.HasPrefix(t, "TIME"):
		return KindTime
	}
	return KindOther
}

// Profile computes per-column statistics of a Parquet file. Scan 1 is one
// SELECT with every aggregate; scan 2 is one GROUP BY GROUPING SETS that bins
// the numbers by the range scan 1 found and counts every value of the text
// columns with few distinct values (exact top values, cheap on the
// dictionary-encoded pages such columns have). Only text columns with many
// distinct values take two more scans, of themselves alone: approx_top_k
// proposes candidates, which are then counted exactly.
func (e *Engine) Profile(ctx context.Context, parquetPath string) (Profile, error) {
	db, err := e.open(ctx, nil)
	if err != nil {
		return Profile{}, err
	}
	defer db.Close()
	src := "read_parquet(" + quoteString(parquetPath) + ")"
	cols, err := columnsOf(ctx, db, "SELECT * FROM "+src)
	if err != nil {
		return Profile{}, err
	}
	p := Profile{Columns: make([]ColumnProfile, len(cols))}

	// Scan 1. Each column contributes a fixed set of expressions, so the
	// results are read back by position.
	exprs := []string{"count(*)"}
	for i, c := range cols {
		p.Columns[i] = ColumnProfile{Name: c.Name, Type: c.Type, Kind: kindOf(c.Type)}
		exprs = append(exprs, scan1Exprs(quoteIdent(c.Name), p.Columns[i].Kind, c.Type)...)
	}
	vals, err := scanOne(ctx, db, "SELECT "+strings.Join(exprs, ", ")+" FROM "+src)
	if err != nil {
		return Profile{}, err
	}
	p.Rows = vals[0].(int64)
	at := 1
	var groups, many []groupKey
	for i := range p.Columns {
		c := &p.Columns[i]
		n := len(scan1Exprs("", c.Kind, c.Type))
		v := vals[at : at+n]
		at += n
		c.Count = asInt(v[0])
		c.Nulls = p.Rows - c.Count
		if c.Kind == KindOther {
			continue
		}
		// HyperLogLog can overshoot on small columns; there cannot be
		// more distinct values than values.
		c.ApproxDistinct = min(asInt(v[1]), c.Count)
		c.Min, c.Max = asString(v[2]), asString(v[3])
		col := quoteIdent(c.Name)
		switch c.Kind {
		case KindNumber:
			c.Min, c.Max = asFloat(v[2]), asFloat(v[3])
			c.Mean, c.Std = asFloatPtr(v[4]), asFloatPtr(v[5])
			if q, ok := v[6].([]any); ok && len(q) == len(quantileLevels) {
				c.Quantiles = &Quantiles{asF(q[0]), asF(q[1]), asF(q[2]), asF(q[3]), asF(q[4])}
			}
			lo, hi := asFloatPtr(v[2]), asFloatPtr(v[3])
			if lo == nil || hi == nil {
				continue
			}
			width := (*hi - *lo) / histogramBins
			c.Histogram = &Histogram{Edges: make([]float64, histogramBins+1), Counts: make([]int64, histogramBins)}
			for b := range c.Histogram.Edges {
				c.Histogram.Edges[b] = *lo + float64(b)*width
			}
			c.Histogram.Edges[histogramBins] = *hi
			bin := "0"
			if width > 0 {
				bin = fmt.Sprintf("least(floor((%s::DOUBLE - %v) / %v)::BIGINT, %d)", col, *lo, width, histogramBins-1)
			}
			groups = append(groups, groupKey{i, fmt.Sprintf("CASE WHEN isfinite(%s::DOUBLE) THEN %s END", col, bin)})
		case KindText:
			switch {
			case c.Count == 0:
			case c.ApproxDistinct <= exactTopLimit:
				groups = append(groups, groupKey{i, col})
			default:
				many = append(many, groupKey{i, col})
			}
		}
	}

	// Scan 2.
	counts, err := countGroups(ctx, db, src, groups)
	if err != nil {
		return Profile{}, err
	}
	// Scans 3 and 4, of the text columns with many distinct values only.
	if len(many) > 0 {
		exprs = exprs[:0]
		for _, g := range many {
			exprs = append(exprs, fmt.Sprintf("approx_top_k(%s, %d)", g.expr, topCandidates))
		}
		vals, err := scanOne(ctx, db, "SELECT "+strings.Join(exprs, ", ")+" FROM "+src)
		if err != nil {
			return Profile{}, err
		}
		var candidates []groupKey
		for k, g := range many {
			var lits []string
			top, _ := vals[k].([]any)
			for _, t := range top {
				if s, ok := t.(string); ok {
					lits = append(lits, quoteString(s))
				}
			}
			if len(lits) > 0 {
				candidates = append(candidates, groupKey{g.owner,
					fmt.Sprintf("CASE WHEN %s IN (%s) THEN %s END", g.expr, strings.Join(lits, ", "), g.expr)})
			}
		}
		more, err := countGroups(ctx, db, src, candidates)
		if err != nil {
			return Profile{}, err
		}
		maps.Copy(counts, more)
	}

	for i, byKey := range counts {
		c := &p.Columns[i]
		if c.Kind == KindNumber {
			for key, n := range byKey {
				b, err := strconv.Atoi(key)
				if err == nil && b >= 0 && b < histogramBins {
					c.Histogram.Counts[b] += n
				}
			}
			continue
		}
		for v, n := range byKey {
			c.TopValues = append(c.TopValues, Value{v, n})
		}
		slices.SortFunc(c.TopValues, func(a, b Value) int {
			if a.Count != b.Count {
				return cmp.Compare(b.Count, a.Count)
			}
			return strings.Compare(a.Value, b.Value)
		})
		if len(c.TopValues) > topValues {
			c.TopValues = c.TopValues[:topValues]
		}
	}
	return p, nil
}

// groupKey is an expression whose values are counted for column owner.
type groupKey struct {
	owner int
	expr  string
}

// countGroups counts the rows of src by the value of each key, in one scan
// with one grouping set per key, and returns owner -> value -> count. NULL
// values are left out.
func countGroups(ctx context.Context, db *sql.DB, src string, keys []groupKey) (map[int]map[string]int64, error) {
	counts := map[int]map[string]int64{}
	if len(keys) == 0 {
		return counts, nil
	}
	var proj, flags, vals, sets []string
	for j, k := range keys {
		name := fmt.Sprintf("k%d", j)
		proj = append(proj, k.expr+" AS "+name)
		flags = append(flags, "GROUPING("+name+")")
		vals = append(vals, name+"::VARCHAR")
		sets = append(sets, "("+name+")")
	}
	query := fmt.Sprintf("SELECT %s, %s, count(*) FROM (SELECT %s FROM %s) GROUP BY GROUPING SETS (%s)",
		strings.Join(flags, ", "), strings.Join(vals, ", "), strings.Join(proj, ", "), src, strings.Join(sets, ", "))
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, mapError(ctx, err, "profile")
	}
	defer rows.Close()
	n := len(keys)
	row := make([]any, 2*n+1)
	ptrs := make([]any, len(row))
	for i := range row {
		ptrs[i] = &row[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		for j := range n {
			// GROUPING is 0 for the one key this row is grouped by.
			if asInt(row[j]) != 0 {
				continue
			}
			if v, ok := row[n+j].(string); ok {
				owner := keys[j].owner
				if counts[owner] == nil {
					counts[owner] = map[string]int64{}
				}
				counts[owner][v] += asInt(row[2*n])
			}
			break
		}
	}
	return counts, mapError(ctx, rows.Err(), "profile")
}

// scan1Exprs lists the aggregates of scan 1 for a column of kind k. Their
// number depends only on k, which is how results are read back. Min and max
// of a number column are of its finite values, and bound its histogram.
func scan1Exprs(col string, k ColumnKind, duckType string) []string {
	exprs := []string{"count(" + col + ")"}
	switch k {
	case KindOther:
		return exprs
	case KindNumber:
		// NaN and infinities would make every moment NaN or overflow
		// (stddev_samp raises an error), so they count as missing. A CASE
		// rather than FILTER clauses: DuckDB computes the shared argument
		// once, where five filters cost more than the aggregates.
		d := col + "::DOUBLE"
		if t := strings.ToUpper(duckType); t == "FLOAT" || t == "DOUBLE" {
			d = "CASE WHEN isfinite(" + col + ") THEN " + col + "::DOUBLE END"
		}
		levels := make([]string, len(quantileLevels))
		for i, q := range quantileLevels {
			levels[i] = fmt.Sprint(q)
		}
		return append(exprs,
			"approx_count_distinct("+col+")",
			"min("+d+")",
			"max("+d+")",
			"avg("+d+")",
			"stddev_samp("+d+")",
			// Exact: reservoir_quantile was not a uniform sample of a
			// table larger than its reservoir (on 0..2,999,999 in file
			// order it answered p50 = 49,999), and approx_quantile has
			// no stated bound. One sort of the column answers every level.
			fmt.Sprintf("quantile_cont(%s, [%s])", d, strings.Join(levels, ", ")))
	}
	exprs = append(exprs,
		"approx_count_distinct("+col+")",
		"min("+col+")::VARCHAR",
		"max("+col+")::VARCHAR")
	return exprs
}

func scanOne(ctx context.Context, db *sql.DB, query string) ([]any, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, mapError(ctx, err, "profile")
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if !rows.Next() {
		return nil, mapError(ctx, rows.Err(), "profile")
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	for i := range vals {
		vals[i] = normalize(vals[i])
	}
	return vals, nil
}

func asInt(v any) int64 {
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

func asF(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case string:
		var f float64
		fmt.Sscan(x, &f)
		return f
	}
	return math.NaN()
}

func asFloatPtr(v any) *float64 {
	if v == nil {
		return nil
	}
	f := asF(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil // JSON has no NaN
	}
	return &f
}

// asFloat returns a number for JSON, or nil when there is none.
func asFloat(v any) any {
	if p := asFloatPtr(v); p != nil {
		return *p
	}
	return nil
}

func asString(v any) any {
	if v == nil {
		return nil
	}
	return fmt.Sprint(v)
}
