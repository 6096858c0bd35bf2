package tracking_test

import (
	"compress/gzip"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

// Each active run's min and max of a metric over its whole history (not
// its last value), NaN points left out, deleted runs and other experiments
// not counted; over HTTP as columns, gzip when asked, and bad parameters a
// 400 or 404 that names them.
func TestMetricRanges(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		exp, err := s.CreateExperiment(ctx, "ranges", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.CreateExperiment(ctx, "other", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		run := func(exp string, pts ...tracking.Metric) string {
			t.Helper()
			r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: exp})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.LogBatch(ctx, r.ID, pts, nil, nil); err != nil {
				t.Fatal(err)
			}
			return r.ID
		}
		m := func(key string, v float64, step int64) tracking.Metric {
			return tracking.Metric{Key: key, Value: v, Step: step, Timestamp: 1000 + step}
		}
		// The last loss is 0.5, its min 0.1 (step 1), its max 2.
		a := run(exp, m("loss", 2, 0), m("loss", 0.1, 1), m("loss", 0.5, 2), m("loss", math.NaN(), 3), m("acc", 0.7, 0))
		b := run(exp, m("loss", 3, 0), m("loss", math.Inf(1), 1))
		gone := run(exp, m("loss", -100, 0))
		if err := s.DeleteRun(ctx, gone); err != nil {
			t.Fatal(err)
		}
		run(other, m("loss", -50, 0))

		got, err := s.MetricRanges(ctx, exp, []string{"loss", "absent"})
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := map[string]float64{}, map[string]float64{}
		if len(got) != 2 || got[0].Key != "loss" || got[1].Key != "absent" || len(got[1].RunIDs) != 0 {
			t.Fatalf("ranges %+v", got)
		}
		for i, id := range got[0].RunIDs {
			lo[id], hi[id] = got[0].Min[i], got[0].Max[i]
		}
		want := map[string]float64{a: 0.1, b: 3}
		if diff := cmp.Diff(want, lo); diff != "" {
			t.Errorf("min (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]float64{a: 2, b: math.MaxFloat64}, hi); diff != "" {
			t.Errorf("max (-want +got):\n%s", diff)
		}
		all, err := s.MetricRanges(ctx, exp, nil)
		if err != nil || len(all) != 2 || all[0].Key != "acc" || all[1].Key != "loss" || len(all[0].RunIDs) != 1 || all[0].Max[0] != 0.7 {
			t.Fatalf("every key: %+v %v", all, err)
		}

		mux := http.NewServeMux()
		httpapi.Mount(mux, tracking.NewAPI(s, nil, slog.New(slog.DiscardHandler)).Routes())
		req := httptest.NewRequest("GET", "/api/forge/v1/metrics/ranges?key=loss&experiment_id="+exp, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Ranges []tracking.MetricRange `json:"ranges"`
		}
		if err := json.NewDecoder(zr).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if len(body.Ranges) != 1 || len(body.Ranges[0].RunIDs) != 2 {
			t.Fatalf("over HTTP: %+v", body)
		}
		for q, code := range map[string]int{
			"key=loss":            400,
			"experiment_id=abc":   404, // as MLflow: no such experiment
			"experiment_id=98765": 404,
			"experiment_id=" + exp + "&key=" + strings.Repeat("k&key=", 100) + "k": 400,
		} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/forge/v1/metrics/ranges?"+q, nil))
			if rec.Code != code {
				t.Errorf("%.60s: %d %s, want %d", q, rec.Code, rec.Body, code)
			}
		}
	})
}
