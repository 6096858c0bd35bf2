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
// values in Options.Bins equal-width bins over the reference's range
// (current values off it are counted and summed beyond each end).
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

// hist is a column's counts on one side: fine bins, and the values below
// and above the grid, with their sums.
type hist struct {
	bins                           []float64
	under, over, underSum, overSum float64
}

// binnedNumeric computes binned statistics of cols (numeric, with their
// reference stats) and returns those it could: a column left out is to be
// computed exactly. refHists, when given, are the reference's histograms
// (of the same reference, stats and columns), computed before; it
// returns the reference's histograms it used.
func binnedNumeric(ctx context.Context, db *sql.DB, ref, cur string, cols []string, stats map[string]refStats, opts Options, refHists []hist) (map[string]binned, []hist, error) {
	if len(cols) == 0 {
		return nil, nil, nil
	}
	// The grid spans the reference's range, a hair wider so that its
	// maximum falls in the last bin; a current value outside it is counted,
	// and summed, below or above it, whose contribution to the distance
	// (the area between the CDFs out there) is then exact.
	type grid struct{ lo, hi, width float64 }
	grids := map[string]grid{}
	var keep []string
	for _, c := range cols {
		st := stats[c]
		if !(st.max > st.min) || math.IsInf(st.max-st.min, 0) {
			continue
		}
		grids[c] = grid{st.min, st.max, (st.max - st.min) / float64(opts.Bins) * (1 + 1e-9)}
		keep = append(keep, c)
	}
	if len(keep) == 0 {
		return nil, nil, nil
	}
	// A branch per column reads only that column (of Parquet, too).
	counts := func(rel string) ([]hist, error) {
		branches := make([]string, len(keep))
		for i, c := range keep {
			g := grids[c]
			branches[i] = fmt.Sprintf(`SELECT %d AS c, greatest(least(floor((v - %s) / %s)::BIGINT, %d), -1) AS k, count(*) AS n, sum(v) AS s
				FROM (SELECT %s AS v FROM %s) WHERE isfinite(v) GROUP BY k`, i, fmtF(g.lo), fmtF(g.width), opts.Bins, numExpr(c), rel)
		}
		rows, err := db.QueryContext(ctx, strings.Join(branches, " UNION ALL "))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := make([]hist, len(keep))
		for i := range out {
			out[i].bins = make([]float64, opts.Bins)
		}
		for rows.Next() {
			var i int
			var k int64
			var n, sum float64
			if err := rows.Scan(&i, &k, &n, &sum); err != nil {
				return nil, err
			}
			switch {
			case k < 0:
				out[i].under, out[i].underSum = n, sum
			case k >= int64(opts.Bins):
				out[i].over, out[i].overSum = n, sum
			default:
				out[i].bins[k] += n
			}
		}
		return out, rows.Err()
	}
	a := refHists
	if len(a) != len(keep) {
		var err error
		if a, err = counts(ref); err != nil {
			return nil, nil, fmt.Errorf("reference histograms: %w", err)
		}
	}
	b, err := counts(cur)
	if err != nil {
		return nil, nil, fmt.Errorf("current histograms: %w", err)
	}
	out := map[string]binned{}
	for i, c := range keep {
		g, ha, hb := grids[c], a[i], b[i]
		na, nb := ha.under+ha.over, hb.under+hb.over
		for j := range ha.bins {
			na, nb = na+ha.bins[j], nb+hb.bins[j]
		}
		r := binned{ref: int64(na), cur: int64(nb)}
		if na == 0 || nb == 0 {
			out[c] = r
			continue
		}
		// Below the grid the reference's CDF is 0, above it 1: the KS
		// difference is largest at the grid's ends, and the area is the
		// values' distances to them.
		r.wasserstein = (hb.under*g.lo-hb.underSum)/nb + (hb.overSum-hb.over*g.hi)/nb
		ca, cb := 0.0, hb.under
		r.ks = cb / nb
		// PSI bin of each fine bin: how many tenths of the reference lie
		// wholly below it; values off the grid go to the end bins.
		psiA, psiB := make([]float64, opts.PSIBins), make([]float64, opts.PSIBins)
		psiB[0] += hb.under
		psiB[opts.PSIBins-1] += hb.over
		bin, first, last := 0, -1, -1
		for j := range ha.bins {
			psiA[bin] += ha.bins[j]
			psiB[bin] += hb.bins[j]
			ca, cb = ca+ha.bins[j], cb+hb.bins[j]
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
			if j < len(ha.bins)-1 {
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
	return out, a, nil
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
