package server_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// logsScript is a job that uses the token its environment gives it: it logs
// a metric to its own run, then to the run named by OTHER_RUN, then tries
// to create a registered model and to submit a job, and prints each status
// and the token (for the test to try after the job ends).
const logsScript = `
import json, os, urllib.request, urllib.error
uri, token = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"]
def post(path, body, tok=token):
    req = urllib.request.Request(uri + path, data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
metric = lambda run: {"run_id": run, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
print("own=%d other=%d registry=%d jobs=%d same=%s token=%s" % (
    post("/api/2.0/mlflow/runs/log-metric", metric(os.environ["MLFLOW_RUN_ID"])),
    post("/api/2.0/mlflow/runs/log-metric", metric(os.environ["OTHER_RUN"])),
    post("/api/2.0/mlflow/registered-models/create", {"name": "from-job"}, os.environ["FORGE_TOKEN"]),
    post("/api/forge/v1/jobs", {"command": ["true"]}),
    token == os.environ["FORGE_TOKEN"], token))
`

// waitJob waits for the job to end and returns it with its log.
func waitJob(t *testing.T, c *api.Client, id string) (api.Job, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Final() {
			rc, err := c.JobLogs(ctx, id, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			return j, string(b)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s did not end: %+v", id, j)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A real job, on the local executor of a real forge server with access
// control: the token in its environment writes its own run (200), not
// another run (403) nor the registry or jobs (403), and is refused once
// the job has ended (401). A job printing its environment shows none of
// the server's settings or secrets.
func TestJobTokenAndEnvironment(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			const admin = "job-env-admin-secret-0123456789"
			t.Setenv("FORGE_ADMIN_TOKEN", admin)
			t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-leak")
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIADONOTLEAK")
			t.Setenv("FORGE_LOG_FORMAT", "text")
			t.Setenv("FORGE_DUCKDB_THREADS", "1")
			password := ""
			if backend == "postgres" {
				// The test cluster trusts local connections: the password
				// is ignored by PostgreSQL, and must not reach a job.
				password = "pg-s3cret-password"
				t.Setenv("FORGE_DB", strings.Replace(sqlstoretest.PostgresURL(t), "postgres://forge@", "postgres://forge:"+password+"@", 1))
			}
			// Jobs run as run_as (forge-job under root): the folders above
			// the data dir must let it through.
			// (t.TempDir's own parent is 0700.)
			parent, err := os.MkdirTemp("", "forge-jobenv-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(parent) })
			if err := os.Chmod(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			p, _ := startForge(t, "--data-dir", filepath.Join(parent, "data"), "--auth")
			c := api.NewClient(p.url, admin)
			ctx := context.Background()

			status, b := call(t, "POST", p.url+mlflow+"runs/create", map[string]string{"experiment_id": "0"}, "Authorization", "Bearer "+admin)
			other := regexp.MustCompile(`"run_id":"([0-9a-f]+)"`).FindStringSubmatch(string(b))
			if status != 200 || other == nil {
				t.Fatalf("create the other run: %d %s", status, b)
			}
			j, err := c.SubmitJob(ctx, api.JobSpec{Name: "logs", Command: []string{"/usr/bin/python3", "-c", logsScript},
				Env: map[string]string{"OTHER_RUN": other[1]}})
			if err != nil {
				t.Fatal(err)
			}
			j, out := waitJob(t, c, j.ID)
			m := regexp.MustCompile(`own=(\d+) other=(\d+) registry=(\d+) jobs=(\d+) same=(\w+) token=(\S+)`).FindStringSubmatch(out)
			if j.State != "succeeded" || m == nil {
				t.Fatalf("job: %+v\n%s", j, out)
			}
			if m[1] != "200" || m[2] != "403" || m[3] != "403" || m[4] != "403" || m[5] != "True" {
				t.Errorf("with its token the job got: own run %s, other run %s, registry %s, jobs %s (want 200, 403, 403, 403); FORGE_TOKEN is the same: %s", m[1], m[2], m[3], m[4], m[5])
			}
			token := m[6]
			if token == admin {
				t.Fatal("the job got the admin token")
			}
			run, err := c.GetRun(ctx, j.RunID)
			if err != nil || len(run.Data.Metrics) != 1 || run.Data.Metrics[0].Key != "loss" {
				t.Errorf("the job's run: %+v %v, want its metric", run.Data, err)
			}
			if run, err := c.GetRun(ctx, other[1]); err != nil || len(run.Data.Metrics) != 0 {
				t.Errorf("the other run: %+v %v, want no metric", run.Data, err)
			}
			if status, b := call(t, "GET", p.url+mlflow+"runs/get?run_id="+j.RunID, nil, "Authorization", "Bearer "+token); status != 401 {
				t.Errorf("the job's token after the job ended: %d %s, want 401", status, b)
			}

			j, err = c.SubmitJob(ctx, api.JobSpec{Name: "env", Command: []string{"env"}, Env: map[string]string{"MINE": "yes"}})
			if err != nil {
				t.Fatal(err)
			}
			j, out = waitJob(t, c, j.ID)
			if j.State != "succeeded" {
				t.Fatalf("env job: %+v\n%s", j, out)
			}
			for _, secret := range []string{admin, "aws-secret-do-not-leak", "AKIADONOTLEAK", "AWS_", "FORGE_ADMIN_TOKEN", "FORGE_DB", "FORGE_LOG_FORMAT", "FORGE_DUCKDB_THREADS"} {
				if strings.Contains(out, secret) {
					t.Errorf("the job's environment has the server's %q:\n%s", secret, out)
				}
			}
			if password != "" && strings.Contains(out, password) {
				t.Errorf("the job's environment has the database password:\n%s", out)
			}
			// The only FORGE_* variables are the contract's.
			contract := map[string]bool{"FORGE_JOB_ID": true, "FORGE_ATTEMPT": true, "FORGE_SERVER": true, "FORGE_TOKEN": true}
			for _, name := range regexp.MustCompile(`(?m)\] (FORGE_\w+)=`).FindAllStringSubmatch(out, -1) {
				if !contract[name[1]] {
					t.Errorf("the job's environment has %s, not part of the contract", name[1])
				}
			}
			for _, want := range []string{"MINE=yes", "MLFLOW_RUN_ID=" + j.RunID, "MLFLOW_TRACKING_TOKEN=forge_job_", "FORGE_TOKEN=forge_job_", "FORGE_JOB_ID=" + j.ID, "PATH="} {
				if !strings.Contains(out, want) {
					t.Errorf("the job's environment lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
