package tracking_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/tracking"
)

// The chart: 100 runs x 10,000 steps cut into 500 buckets each (what the compare page asks for 100 runs),
// one request as the compare page makes it (bench/ui measures it in the
// browser; this is the server's share).
//
//	go test ./internal/tracking -run '^$' -bench MetricBuckets100x10k -benchtime 10x
func BenchmarkMetricBuckets100x10k(b *testing.B) {
	const runs, steps = 100, 10_000
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqlstore.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := tracking.New(db)
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for range runs {
		r, err := s.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: "0"})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, r.ID)
		for start := 0; start < steps; start += 1000 {
			var pts []tracking.Metric
			for i := start; i < start+1000; i++ {
				pts = append(pts, tracking.Metric{Key: "loss", Value: rng.Float64(), Timestamp: int64(1_700_000_000_000 + i), Step: int64(i)})
			}
			if err := s.LogBatch(ctx, r.ID, pts, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	mux := http.NewServeMux()
	httpapi.Mount(mux, tracking.NewAPI(s, nil, slog.New(slog.DiscardHandler)).Routes())
	url := "/api/forge/v1/metrics/buckets?key=loss&buckets=500&run_id=" + strings.Join(ids, "&run_id=")
	// The rollups and the points (as before migration 0014) in turns, so
	// that the ratio holds on a busy machine.
	for _, way := range []string{"rollups", "points", "rollups", "points"} {
		b.Run(way, func(b *testing.B) {
			s.ReadRollups(way == "rollups")
			for b.Loop() {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), fmt.Sprintf(`"points":%d`, steps)) {
					b.Fatalf("%d %.200s", rec.Code, rec.Body)
				}
			}
		})
	}
}
