// Package examples runs the README's examples end to end against a real
// forge server on a fresh data dir, and checks what they leave behind.
package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
)

// server builds forge and starts `forge server` on free ports.
func server(t *testing.T) (bin, url string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "forge")
	build := exec.Command("go", "build", "-o", bin, "github.com/forge-mlops/forge/cmd/forge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build forge: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	// A relative data dir, as `make quickstart` uses: jobs run elsewhere.
	cmd := exec.Command(bin, "server", "--data-dir", "data", "--addr", addr, "--grpc-addr", freeAddr(t), "--log-level", "warn")
	cmd.Dir = dir
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	url = "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return bin, url
			}
		}
		if i > 200 {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func runScript(t *testing.T, bin, url, script string) string {
	t.Helper()
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "FORGE="+bin, "FORGE_SERVER="+url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func TestQuickstart(t *testing.T) {
	bin, url := server(t)
	ctx := context.Background()
	cl := api.NewClient(url, "")
	out := runScript(t, bin, url, "quickstart/run.sh")
	if !strings.Contains(out, "5/5 right") && !strings.Contains(out, "4/5 right") {
		t.Errorf("quickstart did not print good predictions:\n%s", out)
	}

	// The dataset is there, once.
	versions, err := cl.DatasetVersions(ctx, "cancer")
	if err != nil || len(versions) != 1 || versions[0].Rows != 569 {
		t.Fatalf("dataset versions: %+v %v", versions, err)
	}

	// Four finished runs, each with the full metric history.
	exp, err := cl.GetExperimentByName(ctx, "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.SearchRuns(ctx, api.SearchRunsRequest{ExperimentIDs: []string{exp.ExperimentID}, OrderBy: []string{"metrics.val_auc DESC"}})
	if err != nil || len(res.Runs) != 4 {
		t.Fatalf("runs: %d %v", len(res.Runs), err)
	}
	for _, r := range res.Runs {
		if r.Info.Status != "FINISHED" || metric(r, "val_auc") < 0.9 || len(r.Inputs.DatasetInputs) != 1 {
			t.Errorf("run %s: status %s val_auc %v inputs %d", r.Info.RunName, r.Info.Status, metric(r, "val_auc"), len(r.Inputs.DatasetInputs))
		}
		var hist api.MetricsResponse
		if err := cl.Do(ctx, "GET", "/api/2.0/mlflow/metrics/get-history", map[string][]string{"run_id": {r.Info.RunID}, "metric_key": {"val_auc"}}, nil, &hist); err != nil || len(hist.Metrics) != 40 {
			t.Errorf("run %s: %d points of val_auc history, want 40 (%v)", r.Info.RunName, len(hist.Metrics), err)
		}
	}

	// The champion is the best run's model.
	best := res.Runs[0].Info.RunID
	var champion struct {
		ModelVersion struct {
			Version string `json:"version"`
			RunID   string `json:"run_id"`
		} `json:"model_version"`
	}
	if err := cl.Do(ctx, "GET", "/api/2.0/mlflow/registered-models/alias", map[string][]string{"name": {"cancer-xgb"}, "alias": {"champion"}}, nil, &champion); err != nil {
		t.Fatal(err)
	}
	if champion.ModelVersion.RunID != best {
		t.Fatalf("champion is version %s of run %s, want the best run %s", champion.ModelVersion.Version, champion.ModelVersion.RunID, best)
	}

	// The endpoint answers what XGBoost itself predicts with that model file.
	dir := t.TempDir()
	if _, err := cl.DownloadModel(ctx, "cancer-xgb", "champion", dir); err != nil {
		t.Fatal(err)
	}
	want := xgboostPredict(t, filepath.Join(dir, "model.json"))
	got := infer(t, url, "cancer", "input__0", want.rows)
	for i := range want.preds {
		if math.Abs(got[i]-want.preds[i]) > 1e-6 {
			t.Fatalf("row %d: endpoint %v, xgboost %v", i, got[i], want.preds[i])
		}
	}

	// Running it again works and stores the same data once.
	runScript(t, bin, url, "quickstart/run.sh")
	if versions, _ := cl.DatasetVersions(ctx, "cancer"); len(versions) != 1 {
		t.Fatalf("a second run made %d dataset versions", len(versions))
	}
}

func TestPyTorchDDP(t *testing.T) {
	bin, url := server(t)
	out := runScript(t, bin, url, "pytorch-ddp/run.sh")
	right := strings.Count(out, "true class")
	if right != 3 {
		t.Fatalf("want 3 classified wines:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		var row, pred, truth int
		var p float64
		if n, _ := fmt.Sscanf(strings.TrimSpace(line), "wine %d: predicted class %d (p=%f), true class %d", &row, &pred, &p, &truth); n == 4 && pred != truth {
			t.Errorf("wine %d: predicted %d, true %d", row, pred, truth)
		}
	}
}

func metric(r api.Run, key string) float64 {
	for _, m := range r.Data.Metrics {
		if m.Key == key {
			return float64(m.Value)
		}
	}
	return math.NaN()
}

type reference struct {
	rows  [][]float64
	preds []float64
}

// xgboostPredict asks Debian's xgboost for predictions on the first rows of
// the breast-cancer table.
func xgboostPredict(t *testing.T, model string) reference {
	t.Helper()
	script := `
import json, sys
import numpy as np, xgboost as xgb
from sklearn.datasets import load_breast_cancer
X = load_breast_cancer().data[:20].astype(np.float32)
b = xgb.Booster(); b.load_model(sys.argv[1])
p = b.predict(xgb.DMatrix(X))
print(json.dumps({"rows": X.tolist(), "preds": p.tolist()}))
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, model).Output()
	if err != nil {
		t.Fatalf("xgboost reference: %v", err)
	}
	var ref struct {
		Rows  [][]float64 `json:"rows"`
		Preds []float64   `json:"preds"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	return reference{ref.Rows, ref.Preds}
}

func infer(t *testing.T, url, name, input string, rows [][]float64) []float64 {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{
		"name": input, "datatype": "FP32", "shape": []int{len(rows), len(rows[0])}, "data": rows}}})
	resp, err := http.Post(url+"/v2/models/"+name+"/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Outputs []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("infer: %d %v %s", resp.StatusCode, err, out.Error)
	}
	return out.Outputs[0].Data
}
