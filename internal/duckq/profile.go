package duckq

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
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

// Quantiles are quantiles of a number column: exact up to 100,000 values,
// from a uniform sample of that size above.
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
	// proposes topCandidates values in scan 1 and scan 2 counts those
	// exactly; oversampling makes a wrong pick unlikely outside near ties.
	exactTopLimit = 10000
	topCandidates = 5 * topValues
	reservoirSize = 100_000
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

// Profile computes per-column statistics of a Parquet file in two scans: one
// SELECT with every aggregate, then one for the histograms and the exact
// counts of the most frequent text values the first scan found.
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
	type binning struct{ lo, width float64 }
	bins := map[int]binning{}
	tops := map[int][]string{}
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
		c.ApproxDistinct = asInt(v[1])
		c.Min, c.Max = asString(v[2]), asString(v[3])
		switch c.Kind {
		case KindNumber:
			c.Min, c.Max = asFloat(v[2]), asFloat(v[3])
			c.Mean, c.Std = asFloatPtr(v[4]), asFloatPtr(v[5])
			if q, ok := v[6].([]any); ok && len(q) == len(quantileLevels) {
				c.Quantiles = &Quantiles{asF(q[0]), asF(q[1]), asF(q[2]), asF(q[3]), asF(q[4])}
			}
			lo, hi := asFloatPtr(v[2]), asFloatPtr(v[3])
			if lo != nil && hi != nil {
				bins[i] = binning{*lo, (*hi - *lo) / histogramBins}
				c.Histogram = &Histogram{Edges: make([]float64, histogramBins+1), Counts: make([]int64, histogramBins)}
				for b := range c.Histogram.Edges {
					c.Histogram.Edges[b] = *lo + float64(b)*(*hi-*lo)/histogramBins
				}
				c.Histogram.Edges[histogramBins] = *hi
			}
		case KindText:
			if top, ok := v[4].([]any); ok {
				for _, t := range top {
					if s, ok := t.(string); ok {
						tops[i] = append(tops[i], s)
					}
				}
			}
		}
	}

	// Scan 2: bin numbers by the range scan 1 found, count the candidate
	// top values exactly. Both come back as JSON maps of key to count.
	var exprs2 []string
	var owners []int
	for i, c := range p.Columns {
		col := quoteIdent(c.Name)
		if b, ok := bins[i]; ok {
			bin := "0"
			if b.width > 0 {
				bin = fmt.Sprintf("least(floor((%s::DOUBLE - %v) / %v)::BIGINT, %d)", col, b.lo, b.width, histogramBins-1)
			}
			// CASE, not FILTER: DuckDB computes an aggregate's argument
			// before its filter, and NaN does not cast to BIGINT.
			exprs2 = append(exprs2, fmt.Sprintf("histogram(CASE WHEN isfinite(%s::DOUBLE) THEN %s END)::JSON::VARCHAR", col, bin))
			owners = append(owners, i)
		}
		if c.Kind == KindText && c.ApproxDistinct <= exactTopLimit {
			exprs2 = append(exprs2, fmt.Sprintf("histogram(%s)::JSON::VARCHAR", col))
			owners = append(owners, i)
		} else if len(tops[i]) > 0 {
			lits := make([]string, len(tops[i]))
			for j, s := range tops[i] {
				lits[j] = quoteString(s)
			}
			exprs2 = append(exprs2, fmt.Sprintf("histogram(%s) FILTER (WHERE %s IN (%s))::JSON::VARCHAR",
				col, col, strings.Join(lits, ", ")))
			owners = append(owners, i)
		}
	}
	if len(exprs2) == 0 {
		return p, nil
	}
	vals, err = scanOne(ctx, db, "SELECT "+strings.Join(exprs2, ", ")+" FROM "+src)
	if err != nil {
		return Profile{}, err
	}
	for k, i := range owners {
		counts := map[string]int64{}
		if s, ok := vals[k].(string); ok {
			if err := json.Unmarshal([]byte(s), &counts); err != nil {
				return Profile{}, fmt.Errorf("profile %s: read counts: %w", p.Columns[i].Name, err)
			}
		}
		c := &p.Columns[i]
		if c.Kind == KindNumber {
			for key, n := range counts {
				var b int
				fmt.Sscan(key, &b)
				if b >= 0 && b < histogramBins {
					c.Histogram.Counts[b] += n
				}
			}
			continue
		}
		for v, n := range counts {
			c.TopValues = append(c.TopValues, Value{v, n})
		}
		slices.SortFunc(c.TopValues, func(a, b Value) int {
			if a.Count != b.Count {
				return int(b.Count - a.Count)
			}
			return strings.Compare(a.Value, b.Value)
		})
		if len(c.TopValues) > topValues {
			c.TopValues = c.TopValues[:topValues]
		}
	}
	return p, nil
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
			// A uniform sample of reservoirSize values gives quantiles
			// within about 0.3% of rank, exact below that many rows, at
			// half the cost of approx_quantile's t-digest on wide tables.
			fmt.Sprintf("reservoir_quantile(%s, [%s], %d)", d, strings.Join(levels, ", "), reservoirSize))
	}
	exprs = append(exprs,
		"approx_count_distinct("+col+")",
		"min("+col+")::VARCHAR",
		"max("+col+")::VARCHAR")
	if k == KindText {
		exprs = append(exprs, fmt.Sprintf("approx_top_k(%s, %d)", col, topCandidates))
	}
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
