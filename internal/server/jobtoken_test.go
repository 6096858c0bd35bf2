package server_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// createRun makes a run as admin and returns its id and artifact root
// (the path under the artifact proxy).
func (e *edge) createRun(t *testing.T, name string) (id, root string) {
	t.Helper()
	status, b := e.do(t, "POST", mlflow+"experiments/create", `{"name":"`+name+`"}`, bearer(edgeAdmin)...)
	if status != 200 {
		t.Fatalf("create experiment: %d %s", status, b)
	}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	json.Unmarshal([]byte(b), &exp)
	status, b = e.do(t, "POST", mlflow+"runs/create", `{"experiment_id":"`+exp.ExperimentID+`"}`, bearer(edgeAdmin)...)
	if status != 200 {
		t.Fatalf("create run: %d %s", status, b)
	}
	var run struct {
		Run struct {
			Info struct {
				RunID       string `json:"run_id"`
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"run"`
	}
	json.Unmarshal([]byte(b), &run)
	root = strings.TrimPrefix(run.Run.Info.ArtifactURI, "mlflow-artifacts:/")
	return run.Run.Info.RunID, root
}

// runWrites are the bodies (or, for the artifact proxy, the path under the
// run's artifact root) that reach each route writing to one run. RUN is
// the run's id, ROOT its artifact root.
var runWrites = map[string]string{
	"POST /api/2.0/mlflow/runs/update":                     `{"run_id":"RUN","status":"FINISHED"}`,
	"POST /api/2.0/mlflow/runs/log-metric":                 `{"run_id":"RUN","key":"m","value":1,"timestamp":1,"step":0}`,
	"POST /api/2.0/mlflow/runs/log-parameter":              `{"run_id":"RUN","key":"p","value":"v"}`,
	"POST /api/2.0/mlflow/runs/log-batch":                  `{"run_id":"RUN","metrics":[{"key":"b","value":1,"timestamp":1,"step":0}],"params":[{"key":"q","value":"v"}]}`,
	"POST /api/2.0/mlflow/runs/log-model":                  `{"run_id":"RUN","model_json":"{\"artifact_path\":\"model\"}"}`,
	"POST /api/2.0/mlflow/runs/log-inputs":                 `{"run_id":"RUN","datasets":[{"dataset":{"name":"d","digest":"x","source_type":"local","source":"s"}}]}`,
	"POST /api/2.0/mlflow/runs/set-tag":                    `{"run_id":"RUN","key":"t","value":"v"}`,
	"POST /api/2.0/mlflow/runs/delete-tag":                 `{"run_id":"RUN","key":"t"}`,
	"POST /api/2.0/mlflow/runs/delete":                     `{"run_id":"RUN"}`,
	"POST /api/2.0/mlflow/runs/restore":                    `{"run_id":"RUN"}`,
	"PUT /api/2.0/mlflow-artifacts/artifacts/{path...}":    "ROOT/f.txt",
	"DELETE /api/2.0/mlflow-artifacts/artifacts/{path...}": "ROOT/f.txt",
}

// The /ajax-api/ twin of each route takes the same request.
func init() {
	twins := map[string]string{}
	for p, body := range runWrites {
		method, path, _ := strings.Cut(p, " ")
		twins[method+" "+strings.Replace(path, "/api/2.0/", "/ajax-api/2.0/", 1)] = body
	}
	maps.Copy(runWrites, twins)
}

// A job's token writes its own run and nothing else: every route that
// writes to one run refuses it for another run (403, the run unchanged)
// and lets it through for its own; every other write refuses it at the
// edge; it reads like a read token.
func TestJobTokenWritesOnlyItsRun(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := startEdge(t, backend == "postgres")
			own, ownRoot := e.createRun(t, "own")
			other, otherRoot := e.createRun(t, "other")
			secret, err := auth.New(e.db).CreateJobToken(context.Background(), "job-test-1", own, 0)
			if err != nil {
				t.Fatal(err)
			}
			job := bearer(secret)
			// A file of the other run that a refused delete must leave.
			if status, b := e.do(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/"+otherRoot+"/f.txt", "keep", bearer(edgeAdmin)...); status != 200 {
				t.Fatalf("put other's artifact: %d %s", status, b)
			}
			snapshot := func() string {
				_, run := e.do(t, "GET", mlflow+"runs/get?run_id="+other, "", bearer(edgeAdmin)...)
				_, files := e.do(t, "GET", mlflow+"artifacts/list?run_id="+other, "", bearer(edgeAdmin)...)
				return run + files
			}
			before := snapshot()

			var declared []string
			for _, rt := range e.srv.Routes() {
				if rt.Access == httpapi.WriteRun {
					declared = append(declared, rt.Pattern)
				}
			}
			slices.Sort(declared)
			var covered []string
			for p := range runWrites {
				covered = append(covered, p)
			}
			slices.Sort(covered)
			if !slices.Equal(declared, covered) {
				t.Fatalf("routes that write one run:\n%v\nthe test covers:\n%v", declared, covered)
			}
			// Deletes go after what they delete; restoring the run last. The
			// /ajax-api/ twins go as a second pass, the same way.
			var order []string
			for _, prefix := range []string{"/api/2.0/", "/ajax-api/2.0/"} {
				order = append(order, slices.DeleteFunc(slices.Clone(declared), func(p string) bool {
					return !strings.Contains(p, " "+prefix) || strings.HasPrefix(p, "DELETE ") || strings.Contains(p, "runs/delete") || strings.Contains(p, "runs/restore")
				})...)
				order = append(order, "DELETE "+prefix+"mlflow-artifacts/artifacts/{path...}",
					"POST "+prefix+"mlflow/runs/delete-tag", "POST "+prefix+"mlflow/runs/delete", "POST "+prefix+"mlflow/runs/restore")
			}
			for _, pattern := range order {
				method, path, _ := strings.Cut(pattern, " ")
				reach := func(run, root string) (int, string) {
					tmpl := strings.NewReplacer("RUN", run, "ROOT", root).Replace(runWrites[pattern])
					if strings.Contains(path, "{path...}") {
						return e.do(t, method, strings.Replace(path, "{path...}", tmpl, 1), "x", job...)
					}
					return e.do(t, method, path, tmpl, job...)
				}
				if status, b := reach(other, otherRoot); status != http.StatusForbidden || !strings.Contains(b, "its own run "+own) {
					t.Errorf("%s on another run: %d %s, want 403 naming its own run", pattern, status, b)
				}
				if status, b := reach(own, ownRoot); status != http.StatusOK {
					t.Errorf("%s on its own run: %d %s, want 200", pattern, status, b)
				}
			}
			if after := snapshot(); after != before {
				t.Errorf("refused writes changed the other run:\nbefore %s\nafter  %s", before, after)
			}
			// An artifact path of another run under the job's own root's
			// prefix is still another run's.
			if status, b := e.do(t, "PUT", "/api/2.0/mlflow-artifacts/artifacts/"+ownRoot+"x/f.txt", "x", job...); status != 403 {
				t.Errorf("artifact beside the run's root: %d %s, want 403", status, b)
			}

			// Every other write is refused at the edge; reads go through.
			for _, rt := range e.srv.Routes() {
				method, path := request(rt.Pattern)
				body := ""
				if method != "GET" && method != "HEAD" {
					body = "{}"
				}
				switch rt.Access {
				case httpapi.Write, httpapi.Admin:
					if status, b := e.do(t, method, path, body, job...); status != 403 || !strings.Contains(b, "job's token") && !strings.Contains(b, "needs the admin role") {
						t.Errorf("%s with a job's token: %d %s, want 403", rt.Pattern, status, b)
					}
				case httpapi.Read:
					if status, b := e.do(t, method, path, body, job...); status == 401 || status == 403 {
						t.Errorf("%s (read) with a job's token: %d %s", rt.Pattern, status, b)
					}
				}
			}
			status, b := e.do(t, "GET", "/api/forge/v1/auth/whoami", "", job...)
			if status != 200 || !strings.Contains(b, `"run_id":"`+own+`"`) {
				t.Errorf("whoami with a job's token: %d %s", status, b)
			}
			if err := auth.New(e.db).DeleteJobToken(context.Background(), "job-test-1"); err != nil {
				t.Fatal(err)
			}
			if status, b := e.do(t, "GET", mlflow+"runs/get?run_id="+own, "", job...); status != 401 {
				t.Errorf("a deleted job token: %d %s, want 401", status, b)
			}
		})
	}
}
