package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

// forgeServer runs a whole forge server in the test, local executor and
// all, and returns its URL; tweak, if any, changes its config first.
func forgeServer(t *testing.T, tweak ...func(*config.Server)) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	// Jobs run as the test's own user: t.TempDir() is 0700, out of reach
	// of the unprivileged user a root server would switch to.
	cfg.RunAs = strconv.Itoa(os.Geteuid())
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- srv.Run(ctx, ready) }()
	<-ready
	t.Cleanup(func() { cancel(); <-done })
	return srv.URL()
}

var (
	submittedRx = regexp.MustCompile(`job ([0-9a-z]+) \(([a-z]+-[a-z]+-[0-9]+)\) submitted`)
	runLinkRx   = regexp.MustCompile(`run ([0-9a-f]{32}): (http://\S+)/#/runs/([0-9a-f]{32})`)
)

// TestRunWaitArtifactsAndLogs is the tour's path: forge run --wait names the
// job and its run readably and prints the run's ID and link; the run's
// artifacts list and download; jobs logs -f of the ended job ends with its
// state.
func TestRunWaitArtifactsAndLogs(t *testing.T) {
	cleanEnv(t)
	url := forgeServer(t)
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"run", "--wait", "--no-code", "--server", url, "--", "sh", "-c", "echo hello from the job"}, &out, &errOut); err != nil {
		t.Fatalf("run --wait: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "hello from the job") {
		t.Errorf("log not streamed: %q", out.String())
	}
	sub := submittedRx.FindStringSubmatch(errOut.String())
	link := runLinkRx.FindStringSubmatch(errOut.String())
	if sub == nil || link == nil || link[1] != link[3] || link[2] != url {
		t.Fatalf("stderr names no job, readable name and run link:\n%s", errOut.String())
	}
	jobID, name, runID := sub[1], sub[2], link[1]
	cl := api.NewClient(url, "")
	r, err := cl.GetRun(ctx, runID)
	if err != nil || r.Info.RunName != name {
		t.Fatalf("run %s is named %q (%v), want the job's %q", runID, r.Info.RunName, err, name)
	}

	// Artifacts, logged as MLflow clients do.
	root := strings.TrimPrefix(r.Info.ArtifactURI, "mlflow-artifacts:")
	for p, body := range map[string]string{"model/model.json": `{"learner":{}}`, "model/conf/params.yaml": "lr: 0.1\n", "metrics.txt": "auc 0.97\n"} {
		req, _ := http.NewRequest("PUT", url+"/api/2.0/mlflow-artifacts/artifacts"+root+"/"+p, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("upload %s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
	ls, _, err := runCLI(t, "artifacts", "ls", runID, "--server", url)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "artifacts_ls.txt", ls)
	ls, _, _ = runCLI(t, "artifacts", "ls", runID, "model", "--server", url)
	golden(t, "artifacts_ls_model.txt", ls)

	dir := t.TempDir()
	var screen bytes.Buffer // as if stderr were a terminal
	c := &cli{stdout: io.Discard, stderr: io.Discard, env: os.LookupEnv, now: time.Now, progress: &screen}
	if err := c.run(ctx, []string{"artifacts", "get", runID, "model", "--out", filepath.Join(dir, "m"), "--server", url}); err != nil {
		t.Fatal(err)
	}
	// One bar for the folder's files, to their last byte (14 + 8 bytes).
	if !strings.Contains(screen.String(), "downloading model (2 files)  [") || !strings.Contains(screen.String(), "100%  22 B / 22 B") {
		t.Errorf("artifacts get drew:\n%q", screen.String())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "m", "conf", "params.yaml")); string(b) != "lr: 0.1\n" {
		t.Errorf("folder download: params.yaml = %q", b)
	}
	if _, _, err := runCLI(t, "artifacts", "get", runID, "metrics.txt", "--out", filepath.Join(dir, "metrics.txt"), "--server", url); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "metrics.txt")); string(b) != "auc 0.97\n" {
		t.Errorf("file download = %q", b)
	}
	if _, _, err := runCLI(t, "artifacts", "get", runID, "nope.bin", "--server", url); err == nil || !strings.Contains(err.Error(), "has no artifact nope.bin") {
		t.Errorf("get of a missing artifact: %v", err)
	}

	logs, logErr, err := runCLI(t, "jobs", "logs", "-f", jobID, "--server", url)
	if err != nil || !strings.Contains(logs, "hello from the job") || !strings.Contains(logErr, "job "+jobID+" succeeded (exit 0") {
		t.Errorf("jobs logs -f of an ended job: %v, stdout %q, stderr %q", err, logs, logErr)
	}
	// -o json: one object a line, the rank split off, the end state last.
	logs, _, err = runCLI(t, "jobs", "logs", "-f", jobID, "-o", "json", "--server", url)
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	var first struct {
		Rank *int
		Line string
	}
	var last struct{ State string }
	if err != nil || len(lines) < 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Rank == nil || *first.Rank != 0 ||
		first.Line != "hello from the job" || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || last.State != "succeeded" {
		t.Errorf("jobs logs -f -o json: %v\n%s", err, logs)
	}
}

// TestRunWaitInterrupted: Ctrl-C on forge run --wait leaves the job
// running, says how to cancel it, and exits 130.
func TestRunWaitInterrupted(t *testing.T) {
	cleanEnv(t)
	url := forgeServer(t)
	cl := api.NewClient(url, "")
	ctx, interrupt := context.WithCancel(context.Background())
	var out, errOut lockedWriter
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--wait", "--no-code", "--server", url, "--", "sh", "-c", "echo started; sleep 60"}, &out, &errOut)
	}()
	var job api.Job
	for deadline := time.Now().Add(20 * time.Second); ; {
		if jobs, err := cl.Jobs(context.Background(), "running"); err == nil && len(jobs) == 1 && strings.Contains(out.String(), "started") {
			job = jobs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job never ran; stderr %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// While it runs, the job's state change was said.
	waitFor := time.Now().Add(10 * time.Second)
	for !strings.Contains(errOut.String(), "job "+job.ID+": running (attempt 1)") {
		if time.Now().After(waitFor) {
			t.Fatalf("no state change on stderr: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	interrupt()
	err := <-done
	if code := exitCode(err, io.Discard); code != 130 {
		t.Errorf("exit %d (%v), want 130", code, err)
	}
	if want := "Cancel it with: forge jobs cancel " + job.ID; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
	j, err := cl.Job(context.Background(), job.ID)
	if err != nil || j.State != "running" {
		t.Errorf("job after Ctrl-C: %s %v, want still running", j.State, err)
	}
	cl.CancelJob(context.Background(), job.ID)
}

// TestRunLeavesOutDataDir: forge run from the folder where forge server
// keeps ./forge-data ships the code, not the server's data, and says so.
func TestRunLeavesOutDataDir(t *testing.T) {
	cleanEnv(t)
	code := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(code, "forge-data")
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	// Jobs run as the test's own user: t.TempDir() is 0700, out of reach
	// of the unprivileged user a root server would switch to.
	cfg.RunAs = strconv.Itoa(os.Geteuid())
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- srv.Run(ctx, ready) }()
	<-ready
	t.Cleanup(func() { cancel(); <-done })
	os.WriteFile(filepath.Join(code, "train.py"), []byte("print('hi')\n"), 0o644)
	var out, errOut bytes.Buffer
	var screen lockedWriter // as if stderr were a terminal
	c := &cli{stdout: &out, stderr: &errOut, env: os.LookupEnv, now: time.Now, progress: &screen}
	err = c.run(context.Background(), []string{"run", "--wait", "-C", code, "--server", srv.URL(), "--", "sh", "-c", "ls -A"})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	// The bundle's upload is drawn to its last byte; the job's states are
	// said from queued to succeeded.
	if !regexp.MustCompile(`uploading code [0-9a-f]{12}  \[=+\]  100%  `).MatchString(screen.String()) {
		t.Errorf("no upload progress:\n%q", screen.String())
	}
	if !regexp.MustCompile(`(?s)submitted: queued\n.*: succeeded \(attempt 1, took [0-9.]+m?s\)\n`).MatchString(errOut.String()) {
		t.Errorf("stderr does not say the job's states:\n%s", errOut.String())
	}
	if !strings.Contains(errOut.String(), "left out forge-data/ from the code: it is a Forge data folder") {
		t.Errorf("stderr does not say what was left out:\n%s", errOut.String())
	}
	if !strings.Contains(out.String(), "train.py") || strings.Contains(out.String(), "forge-data") {
		t.Errorf("the job's folder holds:\n%s", out.String())
	}
}

// TestRunsCompareRepeatedNames: runs with the same name are told apart in
// the compare table's header by their ids.
func TestRunsCompareRepeatedNames(t *testing.T) {
	cleanEnv(t)
	url := forgeServer(t)
	cl := api.NewClient(url, "")
	ctx := context.Background()
	var ids []string
	for _, lr := range []string{"0.1", "0.3"} {
		var out api.RunResponse
		if err := cl.Do(ctx, "POST", "/api/2.0/mlflow/runs/create", nil, api.CreateRunRequest{ExperimentID: "0", RunName: "python3"}, &out); err != nil {
			t.Fatal(err)
		}
		id := out.Run.Info.RunID
		if err := cl.Do(ctx, "POST", "/api/2.0/mlflow/runs/log-parameter", nil, map[string]string{"run_id": id, "key": "lr", "value": lr}, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// runs ls --columns shows params, which the default table leaves out.
	ls, _, err := runCLI(t, "runs", "ls", "--columns", "params.lr,metrics.auc", "--order-by", "params.lr", "--server", url)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(ls), "\n")
	if len(lines) != 3 || !strings.HasSuffix(strings.TrimSpace(lines[0]), "params.lr  metrics.auc") ||
		!strings.HasSuffix(strings.TrimSpace(lines[1]), "0.1        -") || !strings.HasSuffix(strings.TrimSpace(lines[2]), "0.3        -") {
		t.Errorf("runs ls --columns:\n%s", ls)
	}
	if _, _, err := runCLI(t, "runs", "ls", "--columns", "lr", "--server", url); err == nil || !strings.Contains(err.Error(), "want metrics.KEY, params.KEY or tags.KEY") {
		t.Errorf("--columns lr: %v", err)
	}
	out, _, err := runCLI(t, "runs", "compare", ids[0], ids[1], "--server", url)
	if err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(out, "\n", 2)[0]
	if !strings.Contains(header, "python3 ("+ids[0][:8]+")") || !strings.Contains(header, "python3 ("+ids[1][:8]+")") {
		t.Errorf("compare header does not tell the runs apart:\n%s", out)
	}
}

// TestStateLine: what forge run --wait says of each state a job goes
// through, a retry included.
func TestStateLine(t *testing.T) {
	three := 3
	failed := api.JobAttempt{Attempt: 1, StartedAt: 1000, FinishedAt: 5100, ExitCode: &three, Reason: "exited"}
	for _, tc := range []struct {
		job  api.Job
		want string
	}{
		{api.Job{State: "queued"}, "queued"},
		{api.Job{State: "running", Attempt: 1, Attempts: []api.JobAttempt{{Attempt: 1, StartedAt: 1000}}}, "running (attempt 1)"},
		{api.Job{State: "queued", Attempt: 1, Attempts: []api.JobAttempt{failed}}, "queued for attempt 2 (attempt 1: exited, exit 3)"},
		{api.Job{State: "running", Attempt: 2, Attempts: []api.JobAttempt{failed, {Attempt: 2, StartedAt: 6000}}}, "running (attempt 2)"},
		{api.Job{State: "failed", Attempt: 1, Attempts: []api.JobAttempt{failed}}, "failed (attempt 1, took 4.1s)"},
		{api.Job{State: "cancelled"}, "cancelled (attempt 1)"},
	} {
		if got := stateLine(tc.job); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.job.State, got, tc.want)
		}
	}
}
