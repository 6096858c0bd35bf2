package tracking_test

import (
	"compress/gzip"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
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
		if len(h.Buckets) != 100 || h.Points != steps {
			t.Fatalf("%d buckets over %d points, want 100 over %d", len(h.Buckets), h.Points, steps)
		}
		var count int64
		spike := false
		for i, b := range h.Buckets {
			count += b.Count
			if b.Step != int64(i*100) || b.StepMax != int64(i*100+99) || b.Count != 100 {
				t.Fatalf("bucket %d: %+v, want steps %d..%d", i, b, i*100, i*100+99)
			}
			if b.Step <= 4321 && 4321 <= b.StepMax {
				spike = b.Max == 1e6 && b.Min == 0
			} else if b.Max != 9 || b.Mean != 4.5 {
				t.Fatalf("bucket %d: max %v mean %v, want 9 and 4.5", i, b.Max, b.Mean)
			}
		}
		if count != steps || !spike {
			t.Errorf("counts add to %d (want %d); spike kept: %v", count, steps, spike)
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
