package tracking_test

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

// A long history comes back as at most n buckets whose min and max keep a
// single-step spike, whose counts add up to the points stored, and whose
// means are the means of the points they hold.
func TestMetricBuckets(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0"})
		if err != nil {
			t.Fatal(err)
		}
		const steps = 10000
		var pts []tracking.Metric
		for i := 0; i < steps; i++ {
			v := float64(i % 10)
			if i == 4321 {
				v = 1e6 // the spike
			}
			pts = append(pts, tracking.Metric{Key: "loss", Value: v, Timestamp: 1000 + int64(i), Step: int64(i)})
		}
		pts = append(pts, tracking.Metric{Key: "loss", Value: math.NaN(), Timestamp: 1, Step: 5})
		for i := 0; i < len(pts); i += 1000 {
			if err := s.LogBatch(ctx, r.ID, pts[i:min(i+1000, len(pts))], nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		h, err := s.MetricBuckets(ctx, r.ID, "loss", 100, tracking.StepRange{})
		if err != nil {
			t.Fatal(err)
		}
		// 100 steps a bucket are read from cells of 64: a bucket holds one
		// or two, all of its points.
		if len(h.Buckets) < 90 || len(h.Buckets) > 100 || h.Points != steps {
			t.Fatalf("%d buckets over %d points, want 90-100 over %d", len(h.Buckets), h.Points, steps)
		}
		var count int64
		spike := false
		for i, b := range h.Buckets {
			count += b.Count
			if b.Count != b.StepMax-b.Step+1 || (i > 0 && b.Step != h.Buckets[i-1].StepMax+1) || b.TimeMin != 1000+b.Step || b.TimeMax != 1000+b.StepMax {
				t.Fatalf("bucket %d: %+v, not the steps after bucket %d", i, b, i-1)
			}
			var sum float64
			for st := b.Step; st <= b.StepMax; st++ {
				sum += float64(st % 10)
			}
			if b.Step <= 4321 && 4321 <= b.StepMax {
				spike = b.Max == 1e6 && b.Min == 0
			} else if b.Max != 9 || b.Min != 0 || math.Abs(b.Mean-sum/float64(b.Count)) > 1e-12 {
				t.Fatalf("bucket %d: %+v, want max 9, min 0, mean %v", i, b, sum/float64(b.Count))
			}
		}
		if count != steps || !spike {
			t.Errorf("counts add to %d (want %d); spike kept: %v", count, steps, spike)
		}
		// Narrow buckets are read from the points, of equal width.
		p, err := s.MetricBuckets(ctx, r.ID, "loss", 2000, tracking.StepRange{})
		if err != nil || len(p.Buckets) != 2000 || p.Buckets[1].Step != 5 || p.Buckets[1].Count != 5 {
			t.Fatalf("2000 buckets: %d, %v", len(p.Buckets), err)
		}
		// A step window, and fewer points than buckets: one bucket a point.
		from, to := int64(4316), int64(4325)
		w, err := s.MetricBuckets(ctx, r.ID, "loss", 1000, tracking.StepRange{From: &from, To: &to})
		if err != nil || len(w.Buckets) != 10 || w.Buckets[5].Max != 1e6 || w.Buckets[5].Step != 4321 {
			t.Fatalf("window: %+v %v", w, err)
		}
		// Steps at both ends of int64 do not overflow the bucket arithmetic.
		r2, _ := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0"})
		if err := s.LogBatch(ctx, r2.ID, []tracking.Metric{{Key: "x", Value: 1, Step: math.MinInt64 + 1}, {Key: "x", Value: 2, Step: 0}, {Key: "x", Value: 3, Step: math.MaxInt64}}, nil, nil); err != nil {
			t.Fatal(err)
		}
		e, err := s.MetricBuckets(ctx, r2.ID, "x", 1, tracking.StepRange{})
		var total int64
		for _, b := range e.Buckets {
			total += b.Count
		}
		if err != nil || total != 3 || e.Buckets[0].Min != 1 || e.Buckets[len(e.Buckets)-1].Max != 3 {
			t.Fatalf("extreme steps: %+v %v", e, err)
		}
		// Refusals.
		if _, err := s.MetricBuckets(ctx, r.ID, "loss", 0, tracking.StepRange{}); forge.KindOf(err) != forge.Invalid {
			t.Errorf("0 buckets: %v", err)
		}
		if _, err := s.MetricBuckets(ctx, "nope", "loss", 10, tracking.StepRange{}); forge.KindOf(err) != forge.NotFound {
			t.Errorf("missing run: %v", err)
		}
		empty, err := s.MetricBuckets(ctx, r.ID, "absent", 10, tracking.StepRange{})
		if err != nil || len(empty.Buckets) != 0 || empty.Points != 0 {
			t.Errorf("absent key: %+v %v", empty, err)
		}
	})
}

// Over HTTP the histories come as columns, gzip-compressed when asked, and
// bad parameters are a 400 that names them.
func TestMetricBucketsHTTP(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		mux := http.NewServeMux()
		httpapi.Mount(mux, tracking.NewAPI(s, nil, slog.New(slog.DiscardHandler)).Routes())
		r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0"})
		if err != nil {
			t.Fatal(err)
		}
		var pts []tracking.Metric
		for i := 0; i < 999; i++ {
			pts = append(pts, tracking.Metric{Key: "loss", Value: 1 / float64(i+1), Timestamp: int64(i), Step: int64(i)})
		}
		pts = append(pts, tracking.Metric{Key: "loss", Value: math.Inf(1), Timestamp: 5000, Step: 999})
		if err := s.LogBatch(ctx, r.ID, pts, nil, nil); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/api/forge/v1/metrics/buckets?key=loss&buckets=10&run_id="+r.ID, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("%d %v", rec.Code, rec.Header())
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Histories []struct {
				RunID  string    `json:"run_id"`
				Points int64     `json:"points"`
				Step   []int64   `json:"step"`
				Max    []float64 `json:"max"`
				Mean   []float64 `json:"mean"`
			} `json:"histories"`
		}
		if err := json.NewDecoder(zr).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if len(got.Histories) != 1 || got.Histories[0].Points != 1000 || len(got.Histories[0].Step) != 10 ||
			got.Histories[0].Max[9] != math.MaxFloat64 || got.Histories[0].Mean[0] == 0 {
			t.Fatalf("histories: %+v", got.Histories)
		}
		for _, q := range []string{"key=loss", "run_id=" + r.ID, "key=loss&buckets=x&run_id=" + r.ID, "key=loss&buckets=0&run_id=" + r.ID,
			"key=loss&start_step=a&run_id=" + r.ID} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/forge/v1/metrics/buckets?"+q, nil))
			if rec.Code != 400 {
				t.Errorf("%s: %d %s, want 400", q, rec.Code, rec.Body)
			}
		}
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/forge/v1/metrics/buckets?key=loss&run_id=nope", nil))
		if rec.Code != 404 {
			t.Errorf("missing run: %d %s", rec.Code, rec.Body)
		}
	})
}

// Buckets read from the rollups hold exactly the points of their step
// ranges, however the points came: out of order, in several batches, the
// same point logged twice (stored, and counted, once), NaN ones (not
// counted), negative steps, and with a step window that cuts cells.
func TestMetricBucketsRollups(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0"})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 7))
		type point struct {
			ts int64
			v  float64
		}
		stored := map[int64][]point{}
		var pts []tracking.Metric
		for _, st := range rng.Perm(3000) {
			step := int64(st) - 1000
			m := tracking.Metric{Key: "loss", Value: math.Round(rng.NormFloat64()*1000) / 8, Timestamp: 5000 + rng.Int64N(100), Step: step}
			if st%97 == 0 {
				m.Value = math.NaN()
			} else {
				stored[step] = append(stored[step], point{m.Timestamp, m.Value})
			}
			pts = append(pts, m)
			if st%5 == 0 { // a second point at the step, and the same point again
				m2 := m
				m2.Timestamp++
				pts = append(pts, m2, m)
				if !math.IsNaN(m.Value) {
					stored[step] = append(stored[step], point{m2.Timestamp, m2.Value})
				}
			}
		}
		// Batches of 700 (one statement) and of 5 (a statement a point).
		for i, size := 0, 700; i < len(pts); i, size = i+size, 705-size {
			if err := s.LogBatch(ctx, r.ID, pts[i:min(i+size, len(pts))], nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 1000; i += 500 { // logged again, both ways
			if err := s.LogBatch(ctx, r.ID, pts[i:i+500], nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.LogBatch(ctx, r.ID, pts[i+500-5:i+500], nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			n        int
			from, to *int64
		}{{100, nil, nil}, {30, nil, nil}, {7, nil, nil}, {50, ptr(-995), ptr(1234)}, {20, ptr(3), ptr(1999)}} {
			h, err := s.MetricBuckets(ctx, r.ID, "loss", c.n, tracking.StepRange{From: c.from, To: c.to})
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := int64(-1000), int64(1999)
			if c.from != nil {
				lo, hi = *c.from, *c.to
			}
			var want, got int64
			for st := lo; st <= hi; st++ {
				want += int64(len(stored[st]))
			}
			if len(h.Buckets) > c.n || len(h.Buckets) < c.n*8/10 {
				t.Errorf("%d buckets asked: %d", c.n, len(h.Buckets))
			}
			for i, b := range h.Buckets {
				var n int64
				mn, mx, sum := math.Inf(1), math.Inf(-1), 0.0
				tmin, tmax := int64(math.MaxInt64), int64(0)
				for st := b.Step; st <= b.StepMax; st++ {
					for _, p := range stored[st] {
						n++
						mn, mx, sum = math.Min(mn, p.v), math.Max(mx, p.v), sum+p.v
						tmin, tmax = min(tmin, p.ts), max(tmax, p.ts)
					}
				}
				if b.Step < lo || b.StepMax > hi || b.Count != n || b.Min != mn || b.Max != mx || b.TimeMin != tmin || b.TimeMax != tmax ||
					math.Abs(b.Mean-sum/float64(n)) > 1e-9 || (i > 0 && b.Step <= h.Buckets[i-1].StepMax) {
					t.Fatalf("n=%d bucket %d: %+v, want count %d min %v max %v mean %v times %d-%d", c.n, i, b, n, mn, mx, sum/float64(n), tmin, tmax)
				}
				got += b.Count
			}
			if got != want || h.Points != want {
				t.Errorf("n=%d %v..%v: %d points in buckets (%d said), want %d", c.n, lo, hi, got, h.Points, want)
			}
		}
	})
}

func ptr(v int64) *int64 { return &v }

// The cells migration 0014 makes for points stored before it are the cells
// LogBatch keeps: an upgraded database charts its old runs as a new one.
func TestMetricRollupsBackfill(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0"})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 3))
		var pts []tracking.Metric
		for _, st := range rng.Perm(500) {
			m := tracking.Metric{Key: "loss", Value: rng.NormFloat64(), Timestamp: 100 + rng.Int64N(50), Step: int64(st) - 100}
			if st%31 == 0 {
				m.Value = math.NaN()
			}
			pts = append(pts, m, tracking.Metric{Key: "acc", Value: float64(st), Timestamp: m.Timestamp, Step: m.Step})
			if st%7 == 0 {
				pts = append(pts, m) // logged twice
			}
		}
		for i := 0; i < len(pts); i += 300 {
			if err := s.LogBatch(ctx, r.ID, pts[i:min(i+300, len(pts))], nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		const cells = `SELECT key, shift, cell, step_min, step_max, time_min, time_max, vmin, vmax, vsum, n
			FROM metric_rollups ORDER BY key, shift, cell`
		kept := rollupRows(t, db, cells)
		sqlFile, err := os.ReadFile(filepath.Join("..", "sqlstore", "migrations", db.Dialect().String(), "0014_metric_rollups.sql"))
		if err != nil {
			t.Fatal(err)
		}
		_, backfill, ok := strings.Cut(string(sqlFile), "INSERT INTO metric_rollups")
		if !ok {
			t.Fatal("no backfill in migration 0014")
		}
		if _, err := db.Exec(ctx, "DELETE FROM metric_rollups"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "INSERT INTO metric_rollups"+backfill); err != nil {
			t.Fatal(err)
		}
		made := rollupRows(t, db, cells)
		if len(kept) == 0 || len(made) != len(kept) {
			t.Fatalf("backfill made %d cells, LogBatch kept %d", len(made), len(kept))
		}
		for i := range kept {
			if made[i] != kept[i] {
				t.Fatalf("cell %d: backfill %s, LogBatch %s", i, made[i], kept[i])
			}
		}
	})
}

// rollupRows reads each row of q as one line of text.
func rollupRows(t *testing.T, db *sqlstore.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range vals {
			if f, ok := v.(float64); ok {
				fmt.Fprintf(&b, "%.9g|", f) // sums may differ in the last bits with the order of adding
				continue
			}
			fmt.Fprintf(&b, "%v|", v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
