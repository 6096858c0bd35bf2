package tracking_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

// FuzzLogBatch posts any body to runs/log-batch and runs/log-metric: it is
// a 200 or a 4xx, never a 500, and a refused body changes nothing stored.
func FuzzLogBatch(f *testing.F) {
	for _, s := range []string{
		`{"metrics":[{"key":"acc","value":0.9,"timestamp":1,"step":2}]}`,
		`{"params":[{"key":"lr","value":"0.1"}],"tags":[{"key":"t","value":"v"}]}`,
		`{"metrics":[{"key":"acc","value":1,"timestamp":1,"step":9223372036854775808}]}`,
		`{"metrics":[{"key":"acc","value":1,"timestamp":1e20,"step":0}]}`,
		`{"metrics":[]} }`, `{"key":"acc","value":1,"timestamp":"1","step":"3"}`, `[`, `null`,
	} {
		f.Add([]byte(s), false)
	}
	db := sqlstoretest.OpenSQLite(f)
	s := tracking.New(db)
	mux := http.NewServeMux()
	httpapi.Mount(mux, tracking.NewAPI(s, nil, slog.New(slog.DiscardHandler)).Routes())
	run, err := s.CreateRun(ctx, tracking.CreateRunOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, single bool) {
		before, err := s.GetRun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The run is named in the body by prefixing it: the fuzzer's bytes follow.
		path := "/api/2.0/mlflow/runs/log-batch"
		if single {
			path = "/api/2.0/mlflow/runs/log-metric"
		}
		b := append([]byte(`{"run_id":"`+run.ID+`",`), bytes.TrimPrefix(bytes.TrimSpace(body), []byte("{"))...)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", path, bytes.NewReader(b)))
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, b, rec.Code, rec.Body)
		}
		if rec.Code != 200 {
			after, err := s.GetRun(ctx, run.ID)
			if err != nil || !reflect.DeepEqual(before, after) {
				t.Fatalf("refused %q (%d %s) changed the run:\n%+v\n%+v", b, rec.Code, rec.Body, before, after)
			}
		}
	})
}
