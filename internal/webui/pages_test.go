package webui_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/duckq"
)

// addDataset stores a small dataset version through the API, as `forge
// data add` does (CSV converted to Parquet on the client).
func addDataset(t *testing.T, c *api.Client, name string) {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "iris.csv")
	if err := os.WriteFile(csv, []byte("sepal,species\n5.1,setosa\n4.9,setosa\n6.3,virginica\n"), 0o644); err != nil {
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

	t.Run("datasets and a profile", func(t *testing.T) {
		addDataset(t, c, "iris")
		var rows, cols string
		run(t, ctx, chromedp.Navigate(base+"/#/datasets"), chromedp.WaitVisible(`#datasets tr[data-dataset="iris"] a`),
			chromedp.Text(`#datasets tr[data-dataset="iris"] td:nth-child(3)`, &rows),
			chromedp.Click(`#datasets tr[data-dataset="iris"] a`), chromedp.WaitVisible(`#columns tr[data-column="species"]`),
			chromedp.Text(`#columns`, &cols))
		if rows != "3" || !strings.Contains(cols, "setosa (2)") || !strings.Contains(cols, "sepal") {
			t.Errorf("datasets list rows %q; profile %q", rows, cols)
		}
		screenshot(t, ctx, "dataset")
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

	t.Run("a running job cancelled from its page", func(t *testing.T) {
		j, err := c.SubmitJob(bg, api.JobSpec{Name: "long", Command: []string{"sleep", "600"}})
		if err != nil {
			t.Fatal(err)
		}
		var command string
		run(t, ctx, chromedp.Navigate(base+"/#/jobs/"+j.ID), chromedp.WaitVisible(`#cancel-job`),
			chromedp.Text(`#job-command`, &command), chromedp.Click(`#cancel-job`),
			chromedp.Poll(`document.getElementById('job-state').textContent === 'cancelled' && !document.getElementById('cancel-job')`, nil))
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
	var still bool
	run(t, ctx, chromedp.Evaluate(`document.getElementById('signout') !== null`, &still))
	if still {
		t.Error("after sign out the page still shows a sign-out button")
	}
}
