package tracking

import (
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// Bucket is a run of consecutive steps of one metric reduced to what a
// chart needs to draw them as one pixel column: the mean for the line, and
// the min and max so that a spike stays visible at any zoom.
type Bucket struct {
	Step    int64   `json:"step"`     // first step in the bucket
	StepMax int64   `json:"step_max"` // last step in the bucket
	TimeMin int64   `json:"time_min"` // ms since the epoch
	TimeMax int64   `json:"time_max"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Count   int64   `json:"count"`
}

// BucketedHistory is one run's metric history cut into at most the buckets
// asked for, by step.
type BucketedHistory struct {
	RunID   string   `json:"run_id"`
	Key     string   `json:"key"`
	Points  int64    `json:"points"` // the points stored (NaN ones not drawn)
	Buckets []Bucket `json:"buckets"`
}

// MaxBuckets bounds what one history is cut into: more pixels than any
// screen is wide.
const MaxBuckets = 10000

// StepRange bounds the steps read, both ends inclusive; nil is no bound.
type StepRange struct{ From, To *int64 }

// MetricBuckets cuts a metric's history, within steps, into at most n
// buckets of about equal step width, aggregated by the database: a chart
// of a million points downloads n rows per run. Buckets of 8 steps or more
// are read from the rollups (see rollupBuckets); narrower ones from the
// points, of exactly equal width.
func (s *Store) MetricBuckets(ctx context.Context, runID, key string, n int, steps StepRange) (BucketedHistory, error) {
	h := BucketedHistory{RunID: runID, Key: key, Buckets: []Bucket{}}
	if n < 1 || n > MaxBuckets {
		return h, forge.Errorf(forge.Invalid, "buckets must be between 1 and %d, got %d", MaxBuckets, n)
	}
	if _, err := s.runExists(ctx, runID); err != nil {
		return h, err
	}
	where := "run_uuid = ? AND key = ? AND NOT is_nan"
	args := []any{runID, key}
	if steps.From != nil {
		where += " AND step >= ?"
		args = append(args, *steps.From)
	}
	if steps.To != nil {
		where += " AND step <= ?"
		args = append(args, *steps.To)
	}
	// The first and last steps are two seeks in the (run, key, step)
	// index; counting is left to the buckets (a count(*) here read every
	// point once more).
	var lo, hi *int64
	if err := s.db.QueryRow(ctx, "SELECT (SELECT step FROM metrics WHERE "+where+" ORDER BY step LIMIT 1), (SELECT step FROM metrics WHERE "+where+" ORDER BY step DESC LIMIT 1)",
		append(append([]any{}, args...), args...)...).Scan(&lo, &hi); err != nil {
		return h, fmt.Errorf("metric buckets: %w", err)
	}
	if lo == nil {
		return h, nil
	}
	// width is the steps per bucket, so that (step - lo) / width < n. The
	// subtraction is done unsigned: steps are any int64.
	span := uint64(*hi) - uint64(*lo)
	width := span/uint64(n) + 1
	bucket := "(step - CAST(? AS BIGINT)) / CAST(? AS BIGINT)"
	bargs := []any{*lo, int64(width)}
	if span > math.MaxInt64 {
		// step - lo would overflow: divide first (buckets stay in order,
		// one more may appear).
		w := int64(math.MaxInt64)
		if width != 0 && width < math.MaxInt64 { // 0: span/1 + 1 wrapped
			w = int64(width)
		}
		bucket, bargs = "step / CAST(? AS BIGINT) - CAST(? AS BIGINT) / CAST(? AS BIGINT)", []any{w, *lo, w}
	}
	if shift, ok := rollupShift(*lo, *hi, width); ok && !s.pointsOnly {
		return s.rollupBuckets(ctx, h, where, args, *lo, *hi, width, shift)
	}
	rows, err := s.db.Query(ctx, "SELECT "+bucket+" AS b, min(step), max(step), min(timestamp), max(timestamp), min(value), max(value), avg(value), count(*) FROM metrics WHERE "+
		where+" GROUP BY b ORDER BY b", append(bargs, args...)...)
	if err != nil {
		return h, fmt.Errorf("metric buckets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b Bucket
		var idx int64
		if err := rows.Scan(&idx, &b.Step, &b.StepMax, &b.TimeMin, &b.TimeMax, &b.Min, &b.Max, &b.Mean, &b.Count); err != nil {
			return h, err
		}
		h.Buckets = append(h.Buckets, b)
		h.Points += b.Count
	}
	return h, rows.Err()
}

// rollupShift picks the cells of metric_rollups a history of steps lo..hi
// in buckets width steps wide is read from: the widest cells no wider than
// a bucket, so that each bucket is one cell or more. Narrow buckets, and
// steps near the ends of int64 (where the cell arithmetic would
// overflow), read the points.
func rollupShift(lo, hi int64, width uint64) (uint, bool) {
	const edge = 1 << 62
	if lo < -edge || hi > edge {
		return 0, false
	}
	for _, shift := range []uint{6, 4, 3} {
		if width >= 1<<shift && (hi+1)>>shift-1 >= (lo+1<<shift-1)>>shift {
			return shift, true
		}
	}
	return 0, false
}

// rollupBuckets cuts the history from the whole cells between lo and hi
// and the points at both ends outside them (fewer than two cells), a
// bucket being the cells and points whose first step falls in it: the
// GROUP BY reads an eighth (or a 64th) of the rows it reads over the
// points. A bucket's min, max, count and step and time ranges are those of
// its points; its edges fall on cell edges, so a bucket may hold one cell
// more or less than its neighbour.
func (s *Store) rollupBuckets(ctx context.Context, h BucketedHistory, where string, args []any, lo, hi int64, width uint64, shift uint) (BucketedHistory, error) {
	first, last := (lo+1<<shift-1)>>shift, (hi+1)>>shift-1 // the whole cells
	from, to := first<<shift, (last+1)<<shift-1            // the steps they hold
	q := "SELECT (s - CAST(? AS BIGINT)) / CAST(? AS BIGINT) AS b, min(s), max(smax), min(tmin), max(tmax), min(vmin), max(vmax), sum(vsum), CAST(sum(n) AS BIGINT) FROM (" +
		"SELECT step AS s, step AS smax, timestamp AS tmin, timestamp AS tmax, value AS vmin, value AS vmax, value AS vsum, CAST(1 AS BIGINT) AS n FROM metrics WHERE " + where + " AND step < ?" +
		" UNION ALL SELECT step_min, step_max, time_min, time_max, vmin, vmax, vsum, n FROM metric_rollups WHERE run_uuid = ? AND key = ? AND shift = ? AND cell BETWEEN ? AND ?" +
		" UNION ALL SELECT step, step, timestamp, timestamp, value, value, value, 1 FROM metrics WHERE " + where + " AND step > ?" +
		") AS cells GROUP BY b ORDER BY b"
	qargs := []any{lo, int64(width)}
	qargs = append(append(qargs, args...), from)
	qargs = append(qargs, h.RunID, h.Key, int(shift), first, last)
	qargs = append(append(qargs, args...), to)
	rows, err := s.db.Query(ctx, q, qargs...)
	if err != nil {
		return h, fmt.Errorf("metric buckets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b Bucket
		var idx int64
		var sum sql.NullFloat64
		if err := rows.Scan(&idx, &b.Step, &b.StepMax, &b.TimeMin, &b.TimeMax, &b.Min, &b.Max, &sum, &b.Count); err != nil {
			return h, err
		}
		if sum.Valid && !math.IsNaN(sum.Float64) {
			b.Mean = sum.Float64 / float64(b.Count)
		} // else +Inf and -Inf were added: no mean, 0 drawn

		h.Buckets = append(h.Buckets, b)
		h.Points += b.Count
	}
	return h, rows.Err()
}

// bucketRoutes is Forge's own chart endpoint next to MLflow's.
func (a *API) bucketRoutes() []httpapi.Route {
	return []httpapi.Route{{Pattern: "GET /api/forge/v1/metrics/buckets", Access: httpapi.Read,
		Summary: "a metric's history of each run_id, cut into at most `buckets` min/max/mean buckets by step (columns, gzip when accepted)",
		Handler: http.HandlerFunc(a.serveBuckets)}}
}

// maxBucketRuns bounds one request: a chart overlays at most this many runs.
const maxBucketRuns = 1000

// bucketReaders is how many runs' histories one request reads at once:
// fewer than the SQLite store's 8 readers, so that a chart leaves some to
// the other requests.
const bucketReaders = 4

// bucketColumns is a BucketedHistory as columns, the shape a chart draws
// from, a third the bytes of an array of objects; means are rounded to 7
// significant digits, more than a chart can show.
type bucketColumns struct {
	RunID   string    `json:"run_id"`
	Key     string    `json:"key"`
	Points  int64     `json:"points"`
	Step    []int64   `json:"step"`
	StepMax []int64   `json:"step_max"`
	TimeMin []int64   `json:"time_min"`
	TimeMax []int64   `json:"time_max"`
	Min     []float64 `json:"min"`
	Max     []float64 `json:"max"`
	Mean    []float64 `json:"mean"`
	Count   []int64   `json:"count"`
}

func columns(h BucketedHistory) bucketColumns {
	n := len(h.Buckets)
	c := bucketColumns{RunID: h.RunID, Key: h.Key, Points: h.Points, Step: make([]int64, n), StepMax: make([]int64, n),
		TimeMin: make([]int64, n), TimeMax: make([]int64, n), Min: make([]float64, n), Max: make([]float64, n),
		Mean: make([]float64, n), Count: make([]int64, n)}
	for i, b := range h.Buckets {
		c.Step[i], c.StepMax[i], c.TimeMin[i], c.TimeMax[i] = b.Step, b.StepMax, b.TimeMin, b.TimeMax
		c.Min[i], c.Max[i], c.Mean[i], c.Count[i] = finite(b.Min), finite(b.Max), round7(finite(b.Mean)), b.Count
	}
	return c
}

// finite keeps JSON encodable: an infinity logged through MLflow becomes
// the largest float, as MLflow's own store does.
func finite(v float64) float64 {
	switch {
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}

func round7(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 7, 64), 64)
	if math.IsInf(r, 0) {
		return v
	}
	return r
}

// serveBuckets answers the histories gzip-compressed when the client takes
// it: a chart of 100 runs is then a few hundred KB.
func (a *API) serveBuckets(w http.ResponseWriter, r *http.Request) {
	out, err := a.metricBuckets(r)
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	writeGzipJSON(w, r, a, out)
}

// writeGzipJSON writes v as JSON, gzip-compressed (fast level) when the
// client takes it: the chart and runs-table columns are long arrays of
// numbers, a fifth of the bytes compressed.
func writeGzipJSON(w http.ResponseWriter, r *http.Request, a *API, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Vary", "Accept-Encoding")
	var dst io.Writer = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		defer gz.Close()
		dst = gz
	}
	if err := json.NewEncoder(dst).Encode(v); err != nil {
		a.log.Debug("write "+r.URL.Path, "err", err)
	}
}

func (a *API) metricBuckets(r *http.Request) (map[string][]bucketColumns, error) {
	q := r.URL.Query()
	ids, key := q["run_id"], q.Get("key")
	if len(ids) == 0 || len(ids) > maxBucketRuns {
		return nil, forge.Errorf(forge.Invalid, "give 1 to %d run_id parameters, got %d", maxBucketRuns, len(ids))
	}
	if err := httpapi.Required("key", key); err != nil {
		return nil, err
	}
	n := int64(1000)
	if v := q.Get("buckets"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 32); err != nil {
			return nil, forge.Errorf(forge.Invalid, "buckets must be an integer, got %q", v)
		}
	}
	var steps StepRange
	for _, p := range []struct {
		name string
		dst  **int64
	}{{"start_step", &steps.From}, {"end_step", &steps.To}} {
		if v := q.Get(p.name); v != "" {
			i, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, forge.Errorf(forge.Invalid, "%s must be an integer, got %q", p.name, v)
			}
			*p.dst = &i
		}
	}
	// Each run's history is its own query (a GROUP BY over its points):
	// a chart of 100 runs runs them side by side on the store's readers.
	out := make([]bucketColumns, len(ids))
	g, gctx := errgroup.WithContext(r.Context())
	g.SetLimit(bucketReaders)
	for i, id := range ids {
		g.Go(func() error {
			h, err := a.store.MetricBuckets(gctx, id, key, int(n), steps)
			if err != nil {
				return err
			}
			out[i] = columns(h)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return map[string][]bucketColumns{"histories": out}, nil
}
