package tracking_test

import (
	"bytes"
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

// The calls an MLflow 3 client makes for mlflow.<flavor>.log_model: create
// the logged model, upload its files through the artifact proxy to its
// artifact_uri, finalize it, link it to the run; then the UI's reads.
func TestLoggedModelsAPI(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		blobs, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		mux := http.NewServeMux()
		httpapi.Mount(mux, httpapi.WithAjaxTwins(tracking.NewAPI(tracking.New(db), tracking.NewArtifacts(db, blobs), log).Routes()))
		ts := httptest.NewServer(mux)
		defer ts.Close()
		do := func(method, path, body string, out any) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if out != nil && resp.StatusCode == 200 {
				if err := json.Unmarshal(b, out); err != nil {
					t.Fatalf("%s %s: %v: %s", method, path, err, b)
				}
			}
			return resp.StatusCode, string(b)
		}
		const p = "/api/2.0/mlflow/"
		var run struct {
			Run struct {
				Info struct {
					RunID string `json:"run_id"`
				}
			}
		}
		do("POST", p+"runs/create", `{"experiment_id":"0"}`, &run)
		runID := run.Run.Info.RunID

		type model struct {
			Model struct {
				Info struct {
					ModelID, ExperimentID, Name, Status, SourceRunID, ArtifactURI string
					Tags                                                          []struct{ Key, Value string }
				}
				Data struct{ Params []struct{ Key, Value string } }
			}
		}
		// MLflow's JSON names, read into Go's field names.
		unmarshal := func(s string) model {
			var raw map[string]map[string]map[string]any
			json.Unmarshal([]byte(s), &raw)
			var m model
			info := raw["model"]["info"]
			str := func(k string) string { v, _ := info[k].(string); return v }
			m.Model.Info.ModelID, m.Model.Info.ExperimentID, m.Model.Info.Name = str("model_id"), str("experiment_id"), str("name")
			m.Model.Info.Status, m.Model.Info.SourceRunID, m.Model.Info.ArtifactURI = str("status"), str("source_run_id"), str("artifact_uri")
			b, _ := json.Marshal(info["tags"])
			json.Unmarshal(b, &m.Model.Info.Tags)
			b, _ = json.Marshal(raw["model"]["data"]["params"])
			json.Unmarshal(b, &m.Model.Data.Params)
			return m
		}
		status, body := do("POST", p+"logged-models", `{"experiment_id":"0","name":"clf","model_type":"sklearn","source_run_id":"`+runID+
			`","params":[{"key":"alpha","value":"0.1"}],"tags":[{"key":"mlflow.source.type","value":"LOCAL"}]}`, nil)
		m := unmarshal(body).Model.Info
		if status != 200 || !strings.HasPrefix(m.ModelID, "m-") || m.Status != tracking.ModelPending || m.SourceRunID != runID ||
			m.ArtifactURI != "mlflow-artifacts:/0/models/"+m.ModelID+"/artifacts" || len(m.Tags) != 1 {
			t.Fatalf("create: %d %s", status, body)
		}
		id := m.ModelID
		// The client uploads MLmodel to the artifact URI through the proxy.
		req, _ := http.NewRequest("PUT", ts.URL+"/api/2.0/mlflow-artifacts/artifacts/0/models/"+id+"/artifacts/MLmodel", bytes.NewReader([]byte("flavors: {}\n")))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("upload: %v %v", err, resp)
		}
		status, body = do("PATCH", p+"logged-models/"+id, `{"model_id":"`+id+`","status":"LOGGED_MODEL_READY"}`, nil)
		if status != 200 || unmarshal(body).Model.Info.Status != tracking.ModelReady {
			t.Errorf("finalize: %d %s", status, body)
		}
		for _, c := range []struct{ method, path, body string }{
			{"PATCH", "logged-models/" + id + "/tags", `{"tags":[{"key":"stage","value":"dev"},{"key":"gone","value":"x"}]}`},
			{"DELETE", "logged-models/" + id + "/tags/gone", ""},
			{"POST", "logged-models/" + id + "/params", `{"params":[{"key":"depth","value":"3"}]}`},
			{"POST", "runs/log-outputs", `{"run_id":"` + runID + `","models":[{"model_id":"` + id + `","step":0}]}`},
		} {
			if status, body := do(c.method, p+c.path, c.body, nil); status != 200 {
				t.Errorf("%s %s: %d %s", c.method, c.path, status, body)
			}
		}
		status, body = do("GET", "/ajax-api/2.0/mlflow/logged-models/"+id, "", nil)
		got := unmarshal(body).Model
		if status != 200 || len(got.Info.Tags) != 2 || len(got.Data.Params) != 2 || got.Data.Params[0].Key != "alpha" || got.Data.Params[1].Key != "depth" {
			t.Errorf("get: %d %s", status, body)
		}
		var found struct {
			Models []json.RawMessage `json:"models"`
		}
		do("POST", p+"logged-models/search", `{"experiment_ids":["0"]}`, &found)
		if len(found.Models) != 1 || !strings.Contains(string(found.Models[0]), id) {
			t.Errorf("search: %s", found.Models)
		}
		status, body = do("GET", p+"logged-models/"+id+"/artifacts/directories", "", nil)
		if status != 200 || !strings.Contains(body, `"path":"MLmodel"`) {
			t.Errorf("list artifacts: %d %s", status, body)
		}
		resp, err := http.Get(ts.URL + p + "logged-models/" + id + "/artifacts/files?artifact_file_path=MLmodel")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "flavors: {}\n" || resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("artifact file: %d %q %v", resp.StatusCode, b, resp.Header)
		}

		for _, c := range []struct {
			method, path, body string
			status             int
			message            string
		}{
			{"POST", "logged-models", `{"name":"x"}`, 400, "Missing value for required parameter 'experiment_id'. See the API docs for more information about request parameters."},
			{"POST", "logged-models", `{"experiment_id":"999"}`, 404, "No Experiment with id=999 exists"},
			{"POST", "logged-models", `{"experiment_id":"0","source_run_id":"nope"}`, 404, "Run with id=nope not found"},
			{"GET", "logged-models/m-nope", "", 404, "Logged model with ID 'm-nope' not found."},
			{"PATCH", "logged-models/" + id, `{"status":"BOGUS"}`, 400, ""},
			{"GET", "logged-models/" + id + "/artifacts/files?artifact_file_path=../../x", "", 400, "Invalid path"},
			{"POST", "logged-models/search", `{"experiment_ids":["0"],"filter":"metrics.acc > 0.9"}`, 400, "no logged-model metrics"},
		} {
			status, body := do(c.method, p+c.path, c.body, nil)
			if status != c.status || !strings.Contains(body, c.message) {
				t.Errorf("%s %s %s: %d %s, want %d %q", c.method, c.path, c.body, status, body, c.status, c.message)
			}
		}
		if status, body := do("DELETE", p+"logged-models/"+id, "", nil); status != 200 {
			t.Errorf("delete: %d %s", status, body)
		}
		if status, _ := do("GET", p+"logged-models/"+id, "", nil); status != 404 {
			t.Errorf("after delete: %d", status)
		}
	})
}
