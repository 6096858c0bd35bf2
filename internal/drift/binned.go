package drift

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Above Options.ExactRows rows (reference and current together), a
// numeric column's statistics come from histograms rather than from the
// exact merged sort: one hash aggregation per column and side counts its
// values in Options.Bins equal-width bins over the two sides' joint range.
// Each empirical CDF is then exact at every bin edge, so the KS statistic
// is off by at most the mass of one bin and the Wasserstein distance by
// at most one bin's width; the PSI's decile edges are the bin edges where
// the reference's CDF crosses each tenth (moved by less than one bin from
// numpy.quantile's). bench/monitoring measures all three against SciPy.
// A column whose reference puts its middle 80% in fewer than minSpread
// bins (a heavy tail stretched the range) is computed exactly instead.
const minSpread = 80

// binned holds what the histograms give of one column.
type binned struct {
	ks, wasserstein, psi float64
	ref, cur             int64
}

// binnedNumeric computes binned statistics of cols (numeric, with their
// reference stats) and returns those it could: a column left out is to be
// computed exactly.
func binnedNumeric(ctx context.Context, db *sql.DB, ref, cur string, cols []string, stats map[string]refStats, opts Options) (map[string]binned, error) {
	if len(cols) == 0 {
		return nil, nil
	}
	// The current side's range; the reference's is in its stats.
	var exprs []string
	for _, c := range cols {
		v := finite(c)
		exprs = append(exprs, "min("+v+")::DOUBLE", "max("+v+")::DOUBLE")
	}
	vals, err := scanRow(ctx, db, "SELECT "+strings.Join(exprs, ", ")+" FROM "+cur, len(exprs))
	if err != nil {
		return nil, fmt.Errorf("current ranges: %w", err)
	}
	type grid struct{ lo, width float64 }
	grids := map[string]grid{}
	var keep []string
	for i, c := range cols {
		st := stats[c]
		lo, hi := st.min, st.max
		if x := toFloat(vals[2*i]); !math.IsNaN(x) {
			lo = math.Min(lo, x)
		}
		if x := toFloat(vals[2*i+1]); !math.IsNaN(x) {
			hi = math.Max(hi, x)
		}
		if !(hi > lo) || math.IsInf(hi-lo, 0) {
			continue
		}
		grids[c] = grid{lo, (hi - lo) / float64(opts.Bins)}
		keep = append(keep, c)
	}
	if len(keep) == 0 {
		return nil, nil
	}
	// A branch per column reads only that column (of Parquet, too).
	counts := func(rel string) ([][]float64, error) {
		branches := make([]string, len(keep))
		for i, c := range keep {
			g := grids[c]
			branches[i] = fmt.Sprintf(`SELECT %d AS c, least(greatest(floor((v - %s) / %s)::BIGINT, 0), %d) AS k, count(*) AS n
				FROM (SELECT %s AS v FROM %s) WHERE isfinite(v) GROUP BY k`, i, fmtF(g.lo), fmtF(g.width), opts.Bins-1, numExpr(c), rel)
		}
		rows, err := db.QueryContext(ctx, strings.Join(branches, " UNION ALL "))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := make([][]float64, len(keep))
		for i := range out {
			out[i] = make([]float64, opts.Bins)
		}
		for rows.Next() {
			var i int
			var k int64
			var n float64
			if err := rows.Scan(&i, &k, &n); err != nil {
				return nil, err
			}
			out[i][k] += n
		}
		return out, rows.Err()
	}
	a, err := counts(ref)
	if err != nil {
		return nil, fmt.Errorf("reference histograms: %w", err)
	}
	b, err := counts(cur)
	if err != nil {
		return nil, fmt.Errorf("current histograms: %w", err)
	}
	out := map[string]binned{}
	for i, c := range keep {
		g := grids[c]
		var na, nb float64
		for j := range a[i] {
			na, nb = na+a[i][j], nb+b[i][j]
		}
		r := binned{ref: int64(na), cur: int64(nb)}
		if na == 0 || nb == 0 {
			out[c] = r
			continue
		}
		// PSI bin of each fine bin: how many tenths of the reference lie
		// wholly below it.
		psiA, psiB := make([]float64, opts.PSIBins), make([]float64, opts.PSIBins)
		var ca, cb float64
		bin, first, last := 0, -1, -1
		for j := range a[i] {
			psiA[bin] += a[i][j]
			psiB[bin] += b[i][j]
			ca, cb = ca+a[i][j], cb+b[i][j]
			for bin < opts.PSIBins-1 && ca/na >= float64(bin+1)/float64(opts.PSIBins) {
				bin++
			}
			if first < 0 && ca/na >= 0.1 {
				first = j
			}
			if last < 0 && ca/na >= 0.9 {
				last = j
			}
			d := math.Abs(ca/na - cb/nb)
			r.ks = math.Max(r.ks, d)
			if j < len(a[i])-1 {
				r.wasserstein += d * g.width
			}
		}
		if last-first < minSpread {
			continue // a heavy tail: exactly
		}
		for j := range psiA {
			psiA[j], psiB[j] = psiA[j]/na, psiB[j]/nb
		}
		r.psi = psi(psiA, psiB)
		out[c] = r
	}
	return out, nil
}

func finite(col string) string {
	return "CASE WHEN isfinite(" + numExpr(col) + ") THEN " + numExpr(col) + " END"
}

func fmtF(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) + "::DOUBLE" }

func scanRow(ctx context.Context, db *sql.DB, q string, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := db.QueryRowContext(ctx, q).Scan(ptrs...)
	return vals, err
}
