package webui_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/duckq"
)

// addDataset stores a small dataset version through the API, as `forge
// data add` does (CSV converted to Parquet on the client).
func addDataset(t *testing.T, c *api.Client, name, content string) {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "iris.csv")
	if err := os.WriteFile(csv, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{MemoryLimit: "256MB", Threads: 1, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pq := filepath.Join(dir, "iris.parquet")
	if _, err := eng.Convert(context.Background(), duckq.Source{Path: csv}, pq, duckq.ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pq)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.AddDatasetVersion(context.Background(), name, f, "iris.csv", "", "ui-test"); err != nil {
		t.Fatal(err)
	}
}

// The pages past runs: experiments managed from the page, datasets with
// their profile, models with versions and aliases, deployments with their
// status, and a running job cancelled from its page.
func TestBrowserPages(t *testing.T) {
	base := startServer(t, false)
	c := api.NewClient(base, "")
	ctx := browser(t)
	bg := context.Background()

	t.Run("experiments created renamed deleted", func(t *testing.T) {
		var names string
		run(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#new-experiment`),
			chromedp.SendKeys(`#new-experiment`, "from-the-page"), chromedp.Click(`#create-experiment button`),
			chromedp.Poll(`((document.querySelector('#experiments tbody') || {}).textContent || '').includes('from-the-page')`, nil),
			chromedp.Text(`#experiments tbody`, &names))
		if !strings.Contains(names, "from-the-page") {
			t.Fatalf("after create the list shows %q", names)
		}
		// A name that exists already is refused where it was typed.
		var msg string
		run(t, ctx, chromedp.SetValue(`#new-experiment`, "from-the-page"), chromedp.Click(`#create-experiment button`),
			chromedp.WaitVisible(`#experiment-error .error`), chromedp.Text(`#experiment-error .error`, &msg))
		if !strings.Contains(msg, "from-the-page") {
			t.Errorf("duplicate name refused with %q", msg)
		}
		screenshot(t, ctx, "duplicate")
		created, err := c.GetExperimentByName(bg, "from-the-page")
		if err != nil {
			t.Fatal(err)
		}
		row := `#experiments tr[data-experiment="` + created.ExperimentID + `"]`
		var defaultDelete int
		run(t, ctx, chromedp.Evaluate(`document.querySelectorAll('#experiments tr[data-experiment="0"] .delete').length`, &defaultDelete))
		if defaultDelete != 0 {
			t.Error("the Default experiment, which cannot be deleted, offers Delete")
		}
		run(t, ctx, chromedp.Click(row+` .rename`), chromedp.WaitVisible(`.rename-input`),
			chromedp.SetValue(`.rename-input`, "renamed-on-the-page"), chromedp.Click(`form.inline button`),
			chromedp.Poll(`document.querySelector('#experiments tbody').textContent.includes('renamed-on-the-page')`, nil))
		exp, err := c.GetExperimentByName(bg, "renamed-on-the-page")
		if err != nil {
			t.Fatalf("renamed on the page but not on the server: %v", err)
		}
		if exp.ExperimentID != created.ExperimentID {
			t.Errorf("rename made experiment %s, want %s renamed", exp.ExperimentID, created.ExperimentID)
		}
		sel := row + ` .delete`
		run(t, ctx, chromedp.Click(sel), chromedp.Poll(`document.querySelector('`+strings.ReplaceAll(sel, `"`, `\"`)+`').textContent === 'Confirm delete'`, nil),
			chromedp.Click(sel), chromedp.Poll(`!document.querySelector('#experiments tbody').textContent.includes('renamed-on-the-page')`, nil))
		got, err := c.GetExperimentByName(bg, "renamed-on-the-page")
		if err != nil || got.LifecycleStage != "deleted" {
			t.Errorf("after delete on the page the server has %+v (%v), want lifecycle deleted", got, err)
		}
	})

	t.Run("datasets: profile, diff and a query", func(t *testing.T) {
		addDataset(t, c, "iris", "sepal,species\n5.1,setosa\n4.9,setosa\n6.3,virginica\n")
		var rows, cols string
		var bars int
		run(t, ctx, chromedp.Navigate(base+"/#/datasets"), chromedp.WaitVisible(`#datasets tr[data-dataset="iris"] a`),
			chromedp.Text(`#datasets tr[data-dataset="iris"] td:nth-child(3)`, &rows),
			chromedp.Click(`#datasets tr[data-dataset="iris"] a`), chromedp.WaitVisible(`#columns tr[data-column="species"]`),
			chromedp.Text(`#columns`, &cols), chromedp.Evaluate(`document.querySelectorAll('#columns tr[data-column="species"] .hist .bar').length`, &bars))
		if rows != "3" || !strings.Contains(cols, "setosa (2)") || !strings.Contains(cols, "sepal") || bars != 2 {
			t.Errorf("datasets list rows %q; profile %q with %d species bars, want 2", rows, cols, bars)
		}
		screenshot(t, ctx, "dataset")
		// A second version whose sepal moved: the diff flags it.
		var b strings.Builder
		b.WriteString("sepal,species\n")
		for i := 0; i < 200; i++ {
			b.WriteString(fmt.Sprintf("%d.5,setosa\n", 10+i%5))
		}
		addDataset(t, c, "iris", b.String())
		var psiClass, schema string
		run(t, ctx, chromedp.Navigate(base+"/#/datasets/iris?v=2"), chromedp.WaitVisible(`#diff-columns tr[data-column="sepal"]`),
			chromedp.Evaluate(`document.querySelector('#diff-columns tr[data-column="sepal"]').className`, &psiClass),
			chromedp.Text(`#diff`, &schema))
		if psiClass != "shifted" || !strings.Contains(schema, "3 rows") || !strings.Contains(schema, "200 rows") {
			t.Errorf("diff: sepal row class %q; %q", psiClass, schema)
		}
		// A bad query says why where it was typed; a good one is a table.
		var msg, count, cell string
		run(t, ctx, chromedp.SetValue(`#sql`, `SELECT nope FROM "iris@2"`), chromedp.Click(`#run-sql`),
			chromedp.WaitVisible(`#sql-result .error`), chromedp.Text(`#sql-result .error`, &msg),
			chromedp.SetValue(`#sql`, `SELECT species, count(*) AS n FROM "iris@1" GROUP BY species ORDER BY n DESC`), chromedp.Click(`#run-sql`),
			chromedp.WaitVisible(`#sql-rows tbody tr`), chromedp.Text(`#sql-count`, &count), chromedp.Text(`#sql-rows tbody tr td`, &cell))
		if !strings.Contains(msg, "nope") || count != "2 rows" || cell != "setosa" {
			t.Errorf("query: error %q; then %q, first cell %q", msg, count, cell)
		}
		screenshot(t, ctx, "query")
	})

	t.Run("models and deployments", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "model.bin"), []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UploadModelVersion(bg, "churn", []string{filepath.Join(dir, "model.bin")}, api.UploadOptions{Format: "other"}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetModelAlias(bg, "churn", "champion", "1"); err != nil {
			t.Fatal(err)
		}
		var aliases string
		run(t, ctx, chromedp.Navigate(base+"/#/models"), chromedp.WaitVisible(`#models tr[data-model="churn"] a`),
			chromedp.Click(`#models tr[data-model="churn"] a`), chromedp.WaitVisible(`#versions tr[data-version="1"]`),
			chromedp.Text(`#versions tr[data-version="1"] td:nth-child(2)`, &aliases))
		if aliases != "@champion" {
			t.Errorf("version 1 aliases %q, want @champion", aliases)
		}
		screenshot(t, ctx, "model")
		// Move the alias to a second version, confirming first.
		if _, err := c.UploadModelVersion(bg, "churn", []string{filepath.Join(dir, "model.bin")}, api.UploadOptions{Format: "other"}); err != nil {
			t.Fatal(err)
		}
		var ask string
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(`#alias-form`), chromedp.SendKeys(`#alias-name`, "champion"),
			chromedp.SetValue(`#alias-version`, "2"), chromedp.Click(`#alias-move`),
			chromedp.Poll(`document.getElementById('alias-move').textContent.startsWith('Move')`, nil), chromedp.Text(`#alias-move`, &ask))
		if ask != "Move @champion from v1 to v2?" {
			t.Errorf("confirmation %q", ask)
		}
		if v, err := c.GetModelVersionByAlias(bg, "churn", "champion"); err != nil || v.Version != "1" {
			t.Fatalf("the alias moved before the confirmation: %+v %v", v, err)
		}
		run(t, ctx, chromedp.Click(`#alias-move`), chromedp.WaitVisible(`#versions tr[data-version="2"]`),
			chromedp.Poll(`document.querySelector('#versions tr[data-version="2"] td:nth-child(2)').textContent === '@champion'`, nil))
		if v, err := c.GetModelVersionByAlias(bg, "churn", "champion"); err != nil || v.Version != "2" {
			t.Errorf("after the confirmation the alias is at %+v (%v), want v2", v, err)
		}
		screenshot(t, ctx, "alias-moved")
		// A model that cannot be served: the deployment says why.
		if _, err := c.PutDeployment(bg, "churn-api", api.DeploymentSpec{Model: "churn", Ref: "champion"}); err != nil {
			t.Fatal(err)
		}
		d, err := c.GetDeployment(bg, "churn-api")
		if err != nil {
			t.Fatal(err)
		}
		var row string
		run(t, ctx, chromedp.Navigate(base+"/#/deployments"), chromedp.WaitVisible(`#deployments tr[data-deployment="churn-api"]`),
			chromedp.Text(`#deployments tr[data-deployment="churn-api"]`, &row))
		if !strings.Contains(row, "churn@champion") || !strings.Contains(row, "/v2/models/churn-api/infer") {
			t.Errorf("deployment row %q", row)
		}
		if d.Status != nil && d.Status.Error != "" && !strings.Contains(row, d.Status.Error) {
			t.Errorf("deployment row %q does not show the server's error %q", row, d.Status.Error)
		}
		screenshot(t, ctx, "deployments")
	})

	t.Run("a long history is drawn from buckets", func(t *testing.T) {
		var r api.RunResponse
		if err := c.Do(bg, "POST", "/api/2.0/mlflow/runs/create", nil, map[string]any{"experiment_id": "0", "run_name": "long-history"}, &r); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			var ms []map[string]any
			for j := 0; j < 1000; j++ {
				step := i*1000 + j
				ms = append(ms, map[string]any{"key": "loss", "value": 1 / float64(step+1), "step": step, "timestamp": 1764750000000 + int64(step)*10})
			}
			if err := c.Do(bg, "POST", "/api/2.0/mlflow/runs/log-batch", nil, map[string]any{"run_id": r.Run.Info.RunID, "metrics": ms}, nil); err != nil {
				t.Fatal(err)
			}
		}
		var info string
		var got int
		run(t, ctx, chromedp.Navigate(base+"/#/runs/"+r.Run.Info.RunID), chromedp.WaitVisible(`#charts canvas`),
			chromedp.Text(`#charts .chart-info`, &info),
			chromedp.Evaluate(`performance.getEntriesByType('resource').filter(e => e.name.includes('/metrics/')).map(e => e.name).filter(n => n.includes('get-history')).length`, &got))
		if !strings.Contains(info, "10,000 points") || !strings.Contains(info, "1,000 positions") {
			t.Errorf("chart info %q, want 10,000 points drawn at 1,000 positions", info)
		}
		if got != 0 {
			t.Errorf("the chart downloaded the full history (%d get-history calls)", got)
		}
		// Log scale and the wall-time axis redraw without an error.
		run(t, ctx, chromedp.Click(`#charts .log-y`), chromedp.SetValue(`#charts .x-axis`, "time"),
			chromedp.Evaluate(`document.querySelector('#charts .x-axis').dispatchEvent(new Event('change'))`, nil),
			chromedp.WaitVisible(`#charts canvas`))
		screenshot(t, ctx, "long-history-log-time")
	})

	t.Run("a run's artifacts and lineage", func(t *testing.T) {
		var r api.RunResponse
		if err := c.Do(bg, "POST", "/api/2.0/mlflow/runs/create", nil, map[string]any{"experiment_id": "0", "run_name": "with-files",
			"tags": []map[string]string{{"key": "forge.job_id", "value": "job-123"}, {"key": "forge.input.train", "value": "iris@1 sha256:abc"}}}, &r); err != nil {
			t.Fatal(err)
		}
		root := strings.TrimPrefix(r.Run.Info.ArtifactURI, "mlflow-artifacts:")
		// A 1x1 red PNG.
		png := []byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde,
			0, 0, 0, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0, 0, 0x03, 0x01, 0x01, 0, 0x18, 0xdd, 0x8d, 0xb0, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}
		for p, body := range map[string][]byte{
			"metrics.json":         []byte(`{"auc":0.91,"f1":0.8}`),
			"eval/predictions.csv": []byte("id,label,score\n1,cat,0.9\n2,\"dog, big\",0.2\n"),
			"plots/roc.png":        png,
			xss + ".txt":           []byte(xss),
		} {
			u := "/api/2.0/mlflow-artifacts/artifacts" + root + "/" + (&url.URL{Path: p}).EscapedPath()
			resp, err := c.Request(bg, "PUT", u, nil, strings.NewReader(string(body)), "application/octet-stream")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("PUT %s: %s", u, resp.Status)
			}
		}
		var files, inputs, job string
		run(t, ctx, chromedp.Navigate(base+"/#/runs/"+r.Run.Info.RunID), chromedp.WaitVisible(`#artifact-tree button.file`),
			chromedp.Text(`#artifact-tree`, &files), chromedp.Text(`#inputs`, &inputs), chromedp.Text(`#run-job`, &job))
		if !strings.Contains(files, "metrics.json") || !strings.Contains(files, "eval/") || !strings.Contains(inputs, "iris@1") || job != "job-123" {
			t.Errorf("tree %q, inputs %q, job %q", files, inputs, job)
		}
		var text string
		run(t, ctx, chromedp.Click(`#artifact-tree button[data-path="metrics.json"]`), chromedp.WaitVisible(`#artifact-text`),
			chromedp.Text(`#artifact-text`, &text))
		if !strings.Contains(text, "\"auc\": 0.91") {
			t.Errorf("JSON preview %q, want it indented", text)
		}
		var cell string
		run(t, ctx, chromedp.Click(`#artifact-tree button[data-path="eval"]`), chromedp.WaitVisible(`#artifact-tree button[data-path="eval/predictions.csv"]`),
			chromedp.Click(`#artifact-tree button[data-path="eval/predictions.csv"]`), chromedp.WaitVisible(`#artifact-csv`),
			chromedp.Text(`#artifact-csv tbody tr:nth-child(2) td:nth-child(2)`, &cell))
		if cell != "dog, big" {
			t.Errorf("CSV preview cell %q, want the quoted field", cell)
		}
		var width int
		run(t, ctx, chromedp.Click(`#artifact-tree button[data-path="plots"]`), chromedp.WaitVisible(`#artifact-tree button[data-path="plots/roc.png"]`),
			chromedp.Click(`#artifact-tree button[data-path="plots/roc.png"]`), chromedp.WaitVisible(`#artifact-preview img`),
			chromedp.Poll(`document.querySelector('#artifact-preview img').naturalWidth`, &width))
		if width != 1 {
			t.Errorf("image preview width %d, want 1", width)
		}
		var fired bool
		var imgs int
		run(t, ctx, chromedp.Click(`#artifact-tree button.file:last-of-type`), chromedp.Evaluate(`[...document.querySelectorAll('#artifact-tree button.file')].find(b => b.textContent.startsWith('<img')).click()`, nil),
			chromedp.WaitVisible(`#artifact-text`), chromedp.Evaluate(`window.__xss === 1`, &fired),
			chromedp.Evaluate(`document.querySelectorAll('#main img:not(.artifact-img)').length`, &imgs))
		if fired || imgs != 0 {
			t.Errorf("a stored HTML file name or content ran (%v) or made %d img elements", fired, imgs)
		}
		screenshot(t, ctx, "artifacts")
	})

	t.Run("a deployment served, tried and measured", func(t *testing.T) {
		model, err := filepath.Abs("../../testdata/models/xgb_binary.json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UploadModelVersion(bg, "cancer", []string{model}, api.UploadOptions{Format: "xgboost"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutDeployment(bg, "cancer-api", api.DeploymentSpec{Model: "cancer", Ref: "latest"}); err != nil {
			t.Fatal(err)
		}
		var state, reply string
		run(t, ctx, chromedp.Navigate(base+"/#/deployments"), chromedp.WaitVisible(`#deployments tr[data-deployment="cancer-api"] a`),
			chromedp.Click(`#deployments tr[data-deployment="cancer-api"] a`), chromedp.WaitVisible(`#try-send`),
			chromedp.Text(`#deployment-status`, &state),
			chromedp.Click(`#try-send`), chromedp.WaitVisible(`#try-response`), chromedp.Text(`#try-response`, &reply))
		if state != "ready" || !strings.Contains(reply, `"outputs"`) {
			t.Errorf("status %q; try-it answered %q", state, reply)
		}
		// The request just sent shows in the traffic table (polled).
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(`#deployment-stats tr[data-version="1"]`),
			chromedp.Poll(`Number(document.querySelector('#deployment-stats tr[data-version="1"] .requests').textContent) >= 1`, nil))
		// A bad request: the server's error where the form is.
		var msg string
		run(t, ctx, chromedp.SetValue(`#try-body`, `{"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]}`),
			chromedp.Click(`#try-send`), chromedp.WaitVisible(`#try-result .error`), chromedp.Text(`#try-result .error`, &msg))
		if !strings.Contains(msg, "nope") {
			t.Errorf("a bad request shows %q, want the server's message naming the input", msg)
		}
		screenshot(t, ctx, "deployment")
		// The model's page: its signature and the deployment serving it.
		var sig, used string
		run(t, ctx, chromedp.Navigate(base+"/#/models/cancer?v=1"), chromedp.WaitVisible(`#signature`),
			chromedp.Text(`#signature`, &sig), chromedp.Text(`#model-deployments`, &used))
		if !strings.Contains(sig, "FP32") || !strings.Contains(used, "cancer-api") {
			t.Errorf("cancer v1: signature %q, deployments %q", sig, used)
		}
		screenshot(t, ctx, "model-version")
	})

	t.Run("a job's log followed as lines arrive", func(t *testing.T) {
		// The job may run as another user (run_as): the gate's folder and
		// those above it must let it look (t.TempDir's parent is 0700).
		dir, err := os.MkdirTemp("", "forge-ui-gate-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		gate := filepath.Join(dir, "go")
		j, err := c.SubmitJob(bg, api.JobSpec{Name: "chatty", Command: []string{"sh", "-c",
			"echo first line; while [ ! -e " + gate + " ]; do sleep 0.1; done; echo second line"}})
		if err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(base+"/#/jobs/"+j.ID),
			chromedp.Poll(`document.getElementById('job-log') && document.getElementById('job-log').textContent.includes('first line')`, nil))
		var mid string
		run(t, ctx, chromedp.Text(`#job-log`, &mid))
		if strings.Contains(mid, "second line") {
			t.Fatalf("the second line shows before the job wrote it: %q", mid)
		}
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		var attempts string
		run(t, ctx, chromedp.Poll(`document.getElementById('job-log').textContent.includes('second line') && document.getElementById('job-state').textContent === 'succeeded'`, nil),
			chromedp.Text(`#attempts`, &attempts))
		if !strings.Contains(attempts, "local") {
			t.Errorf("attempts table %q, want the local executor's attempt", attempts)
		}
		screenshot(t, ctx, "followed")
	})

	t.Run("a multi-process job's processes", func(t *testing.T) {
		// Two nodes of two: rank 3 fails, forge stops the others.
		j, err := c.SubmitJob(bg, api.JobSpec{Name: "ddp", Nodes: 2, ProcsPerNode: 2, Command: []string{"sh", "-c",
			`echo "hello from $RANK of $WORLD_SIZE"; echo "rank $RANK done"; if [ "$RANK" = 3 ]; then sleep 0.5; exit 3; fi; exec sleep 60`}})
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/#/jobs/"+j.ID),
			chromedp.Poll(`!!document.getElementById('job-state') && document.getElementById('job-state').textContent === 'failed' && document.querySelectorAll('#processes tbody tr').length === 4 &&
				[...document.querySelectorAll('#processes tbody tr')].every(r => r.cells[4].textContent === '2' && r.cells[5].textContent !== '')`, nil),
			chromedp.Evaluate(`[...document.querySelectorAll('#processes tbody tr')].map(r => [...r.cells].map(c => c.textContent).join('|'))`, &rows))
		got, err := c.Job(bg, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for r := range 4 {
			exit := "signal 15"
			if r == 3 {
				exit = "3"
			}
			want = append(want, fmt.Sprintf("%d|%d|%d|PID|2|%s|rank %d done", r, r/2, r%2, exit, r))
		}
		for i := range rows {
			if f := strings.Split(rows[i], "|"); len(f) == 7 {
				if pid, err := strconv.Atoi(f[3]); err == nil && pid > 0 {
					f[3] = "PID"
				}
				rows[i] = strings.Join(f, "|")
			}
		}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") || got.State != "failed" {
			t.Errorf("processes table:\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
		}
		screenshot(t, ctx, "processes")
	})

	t.Run("a running job cancelled from its page", func(t *testing.T) {
		j, err := c.SubmitJob(bg, api.JobSpec{Name: "long", Command: []string{"sleep", "600"}})
		if err != nil {
			t.Fatal(err)
		}
		var command string
		run(t, ctx, chromedp.Navigate(base+"/#/jobs/"+j.ID), chromedp.WaitVisible(`#cancel-job`),
			chromedp.Text(`#job-command`, &command), chromedp.Click(`#cancel-job`),
			chromedp.Poll(`document.getElementById('job-state').textContent === 'cancelled' && !document.getElementById('cancel-job')`, nil),
			// It wrote nothing, and has ended.
			chromedp.Poll(`document.getElementById('job-log').textContent === '(no output)'`, nil))
		if command != "sleep 600" {
			t.Errorf("job command shown as %q", command)
		}
		got, err := c.Job(bg, j.ID)
		if err != nil || got.State != "cancelled" {
			t.Errorf("server has the job %s (%v), want cancelled", got.State, err)
		}
		screenshot(t, ctx, "cancelled")
	})
}

// A read token sees the pages without the write actions, and signs out.
func TestBrowserReadRole(t *testing.T) {
	base := startServer(t, true)
	admin := api.NewClient(base, adminToken)
	if _, err := admin.CreateExperiment(context.Background(), "visible"); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(context.Background(), api.CreateTokenRequest{Name: "viewer", Role: "read"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	var user string
	var forms int
	run(t, ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#signin #token`),
		chromedp.SendKeys(`#token`, tok.Secret), chromedp.Click(`#signin button`),
		chromedp.WaitVisible(`#experiments`), chromedp.WaitVisible(`#signout`), chromedp.Text(`#user`, &user),
		chromedp.Evaluate(`document.querySelectorAll('#create-experiment, #experiments .rename, #experiments .delete').length`, &forms))
	if user != "viewer (read)" || forms != 0 {
		t.Errorf("signed in as %q with %d write controls, want viewer (read) and none", user, forms)
	}
	screenshot(t, ctx, "reader")
	run(t, ctx, chromedp.Click(`#signout`), chromedp.WaitVisible(`#signin #token`))
	// The header is redrawn once whoami answers, which may be after the
	// sign-in form shows: wait for it (bounded), do not sample once.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Run(wctx, chromedp.Poll(`document.getElementById('signout') === null`, nil)); err != nil {
		t.Errorf("after sign out the page still shows a sign-out button (%v)", err)
	}
}
