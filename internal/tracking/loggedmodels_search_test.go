package tracking_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

// logged-models/search with MLflow 3's filter and order_by objects.
func TestSearchLoggedModelsFilter(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		store := tracking.New(db)
		blobs, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		httpapi.Mount(mux, tracking.NewAPI(store, tracking.NewArtifacts(db, blobs), slog.New(slog.DiscardHandler)).Routes())
		ts := httptest.NewServer(mux)
		defer ts.Close()

		byName := map[string]string{}
		for _, m := range []struct {
			name, typ, alpha, stage string
		}{{"clf-a", "sklearn", "0.1", "dev"}, {"clf-b", "sklearn", "0.5", "prod"}, {"net", "pytorch", "0.1", "prod"}} {
			lm, err := store.CreateLoggedModel(ctx, tracking.NewLoggedModel{ExperimentID: "0", Name: m.name, ModelType: m.typ,
				Params: []tracking.KV{{Key: "alpha", Value: m.alpha}}, Tags: []tracking.KV{{Key: "stage", Value: m.stage}}})
			if err != nil {
				t.Fatal(err)
			}
			byName[m.name] = lm.ID
		}
		if _, err := store.FinalizeLoggedModel(ctx, byName["net"], tracking.ModelReady); err != nil {
			t.Fatal(err)
		}

		search := func(body string) (int, []string, string) {
			t.Helper()
			resp, err := http.Post(ts.URL+"/api/2.0/mlflow/logged-models/search", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var out struct {
				Models []struct {
					Info struct {
						Name string `json:"name"`
					} `json:"info"`
				} `json:"models"`
				NextPageToken string `json:"next_page_token"`
			}
			json.Unmarshal(b, &out)
			var names []string
			for _, m := range out.Models {
				names = append(names, m.Info.Name)
			}
			if resp.StatusCode != 200 {
				return resp.StatusCode, nil, string(b)
			}
			return resp.StatusCode, names, out.NextPageToken
		}
		asc := `"order_by":[{"field_name":"name","ascending":true}]`
		for _, c := range []struct{ body, want string }{
			{`{"experiment_ids":["0"],"filter":"name = 'clf-b'"}`, "clf-b"},
			{`{"experiment_ids":["0"],"filter":"name LIKE 'clf%'",` + asc + `}`, "clf-a,clf-b"},
			{`{"experiment_ids":["0"],"filter":"params.alpha = '0.1'",` + asc + `}`, "clf-a,net"},
			{`{"experiment_ids":["0"],"filter":"tags.stage = 'prod' AND model_type = 'sklearn'"}`, "clf-b"},
			{`{"experiment_ids":["0"],"filter":"status = 'LOGGED_MODEL_READY'"}`, "net"},
			{`{"experiment_ids":["0"],"filter":"creation_time > 0",` + asc + `}`, "clf-a,clf-b,net"},
			{`{"experiment_ids":["0"],"order_by":[{"field_name":"name","ascending":false}]}`, "net,clf-b,clf-a"},
			{`{"experiment_ids":["0"],"order_by":[{"field_name":"name"}]}`, "clf-a,clf-b,net"},
			{`{"experiment_ids":["1"]}`, ""},
		} {
			status, names, extra := search(c.body)
			if status != 200 || strings.Join(names, ",") != c.want {
				t.Errorf("%s: %d %v %s, want %q", c.body, status, names, extra, c.want)
			}
		}
		// Paging follows the order.
		status, names, next := search(`{"experiment_ids":["0"],"max_results":2,` + asc + `}`)
		if status != 200 || strings.Join(names, ",") != "clf-a,clf-b" || next == "" {
			t.Fatalf("page 1: %d %v %q", status, names, next)
		}
		if status, names, _ := search(`{"experiment_ids":["0"],"max_results":2,` + asc + `,"page_token":"` + next + `"}`); status != 200 || strings.Join(names, ",") != "net" {
			t.Errorf("page 2: %d %v", status, names)
		}

		for _, c := range []struct{ body, message string }{
			{`{"experiment_ids":["0"],"filter":"name = "}`, "INVALID_PARAMETER_VALUE"},
			{`{"experiment_ids":["0"],"filter":"bogus = 'x'"}`, "bogus"},
			{`{"experiment_ids":["0"],"filter":"metrics.acc > 0.9"}`, "no logged-model metrics"},
			{`{"experiment_ids":["0"],"order_by":[{"field_name":"metrics.acc"}]}`, "no logged-model metrics"},
			{`{"experiment_ids":["0"],"order_by":[{"field_name":"bogus"}]}`, "bogus"},
			{`{"experiment_ids":["0"],"order_by":[{"ascending":true}]}`, "field_name"},
			{`{"experiment_ids":["0"],"order_by":"name"}`, "order_by"},
			{`{"experiment_ids":["0"],"datasets":[{"dataset_name":"d"}]}`, "no logged-model metrics"},
		} {
			if status, _, body := search(c.body); status != 400 || !strings.Contains(body, c.message) {
				t.Errorf("%s: %d %s, want 400 %q", c.body, status, body, c.message)
			}
		}
		// Bad searches changed nothing.
		if status, names, _ := search(`{"experiment_ids":["0"],` + asc + `}`); status != 200 || len(names) != 3 {
			t.Errorf("after bad searches: %d %v", status, names)
		}
	})
}
