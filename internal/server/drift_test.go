package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/server"
)

// A model trained on a dataset, deployed with every request logged:
// traffic drawn like the training data shows no drift; traffic with two
// features shifted shows exactly those two drifted, through the drift API
// with the reference found by lineage.
// monitored is a server with a model trained on a dataset "train" of 30
// standard normal features f00..f29 and a label, registered from the
// run that used it as input (so lineage finds it).
type monitored struct {
	s    *server.Server
	base string
	c    *api.Client
	eng  *duckq.Engine
	dir  string
	rng  *rand.Rand
}

const monFeatures, monRefRows = 30, 10000

func startMonitored(t *testing.T, sampleRate float64, opts ...func(*config.Server)) *monitored {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	cfg.Serve.PayloadSampleRate = sampleRate
	for _, o := range opts {
		o(&cfg)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- s.Run(ctx, ready) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	base := s.URL()
	c := api.NewClient(base, "")

	// The training data: 30 standard normal features and a label, 10,000
	// rows (over 1,000: distances decide, Wasserstein normed > 0.1).
	const features, refRows = monFeatures, monRefRows
	rng := rand.New(rand.NewPCG(20, 1))
	dir := t.TempDir()
	var csv strings.Builder
	for j := range features {
		fmt.Fprintf(&csv, "f%02d,", j)
	}
	csv.WriteString("label\n")
	for range refRows {
		for range features {
			fmt.Fprintf(&csv, "%.9g,", rng.NormFloat64())
		}
		fmt.Fprintf(&csv, "%d\n", rng.IntN(2))
	}
	csvPath, pqPath := filepath.Join(dir, "train.csv"), filepath.Join(dir, "train.parquet")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Convert(ctx, duckq.Source{Path: csvPath, Format: duckq.FormatCSV}, pqPath, duckq.ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pqPath)
	if err != nil {
		t.Fatal(err)
	}
	added, err := c.AddDatasetVersion(ctx, "train", f, "test", "", "")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	// A run that used it and logged the model, registered from the run.
	run := createRun(t, base)
	mustCall(t, "POST", base+mlflow+"runs/log-inputs", map[string]any{"run_id": run, "datasets": []any{
		map[string]any{"dataset": map[string]any{"name": "train", "digest": added.Version.Digest, "source_type": "forge",
			"source": "forge:" + added.Version.Name + "@" + fmt.Sprint(added.Version.Version)}}}}, nil)
	model, err := os.ReadFile("../../testdata/models/xgb_binary.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := put(t, base+"/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/model/model.json", model); code != 200 {
		t.Fatalf("upload the model: %d %s", code, body)
	}
	if _, err := c.RegisterModelFromRun(ctx, "cancer", api.RegisterFromRunRequest{RunID: run, Path: "model", Format: "xgboost"}); err != nil {
		t.Fatal(err)
	}
	return &monitored{s: s, base: base, c: c, eng: eng, dir: dir, rng: rng}
}

// addCSV adds a CSV's text as a dataset's next version.
func (m *monitored) addCSV(t *testing.T, name, text string) {
	t.Helper()
	pq := filepath.Join(m.dir, name+".parquet")
	if _, err := m.eng.Convert(context.Background(), duckq.Source{Path: writeFile(t, m.dir, name+".csv", text), Format: duckq.FormatCSV}, pq, duckq.ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(pq)
	defer f.Close()
	if _, err := m.c.AddDatasetVersion(context.Background(), name, f, "test", "", ""); err != nil {
		t.Fatal(err)
	}
}

func TestDeploymentDrift(t *testing.T) {
	m := startMonitored(t, 1)
	s, base, c, rng := m.s, m.base, m.c, m.rng
	ctx := context.Background()
	// With windows of 5,000 rows, a feature drawn alike stays near 0.02 (at
	// 1,000 rows against 2,000, one of 30 crossed 0.1 by chance).
	const features, refRows, window = monFeatures, monRefRows, 5000
	if d, err := c.PutDeployment(ctx, "cancer-api", api.DeploymentSpec{Model: "cancer", Ref: "latest"}); err != nil || d.Status == nil || !d.Status.Ready {
		t.Fatalf("deploy: %+v %v", d.Status, err)
	}

	// send infers rows in batches of 500 rows; shift is added to the
	// features it names.
	shifted := map[int]float64{}
	send := func(rows int) {
		t.Helper()
		for b := 0; b < rows; b += 500 {
			data := make([]string, 0, 500*features)
			for range 500 {
				for j := range features {
					data = append(data, fmt.Sprintf("%.7g", rng.NormFloat64()+shifted[j]))
				}
			}
			body := fmt.Sprintf(`{"inputs":[{"name":"input__0","datatype":"FP32","shape":[500,%d],"data":[%s]}]}`, features, strings.Join(data, ","))
			code, out := call(t, "POST", base+"/v2/models/cancer-api/infer", rawJSON(body))
			if code != 200 {
				t.Fatalf("infer: %d %s", code, out)
			}
		}
		s.FlushPayloads()
	}
	report := func(window string) api.DriftReport {
		t.Helper()
		r, err := c.DeploymentDrift(ctx, "cancer-api", window, "")
		if err != nil {
			t.Fatalf("drift over %s: %v", window, err)
		}
		if r.Reference != "train@1" || r.ReferenceRows != refRows || len(r.Features) != features {
			t.Fatalf("drift over %s: reference %s (%d rows), %d features; want train@1, %d rows, %d features",
				window, r.Reference, r.ReferenceRows, len(r.Features), refRows, features)
		}
		return r
	}
	drifted := func(r api.DriftReport) []string {
		var out []string
		for _, f := range r.Features {
			if f.Method != "wasserstein" {
				t.Errorf("%s: method %s, want wasserstein (reference over 1,000 rows)", f.Name, f.Method)
			}
			if f.Drifted {
				out = append(out, f.Name)
			}
		}
		return out
	}

	send(window)
	rowsWindow := fmt.Sprint(window) + "rows"
	r := report(rowsWindow)
	if got := drifted(r); len(got) != 0 || r.CurrentRows != window || r.DatasetDrift {
		t.Errorf("in-distribution traffic: drifted %v, %d rows, dataset drift %v; want none, %d, false", got, r.CurrentRows, r.DatasetDrift, window)
	}
	if f := r.Features[0]; f.Name != "f00" || f.Column != "in_input__0_0" || f.KS == nil || f.PSI == nil {
		t.Errorf("first feature: %+v, want f00 from in_input__0_0 with KS and PSI", f)
	}
	// The outputs, against the model's outputs on the reference.
	outputs := func(r api.DriftReport) (names, drifted []string) {
		t.Helper()
		if r.OutputsError != "" || len(r.Outputs) == 0 {
			t.Fatalf("outputs: %v (%q), want them compared", r.Outputs, r.OutputsError)
		}
		for _, o := range r.Outputs {
			t.Logf("output %s (%s): %s %g drifted %v", o.Name, o.Kind, o.Method, o.Statistic, o.Drifted)
			names = append(names, o.Name)
			if o.Drifted {
				drifted = append(drifted, o.Name)
			}
		}
		return names, drifted
	}
	if names, got := outputs(r); len(got) != 0 {
		t.Errorf("in-distribution traffic: outputs %v drifted, want none of %v", got, names)
	}

	shifted[3], shifted[17] = 1, -1.5
	send(window)
	r = report(rowsWindow)
	if got := drifted(r); strings.Join(got, ",") != "f03,f17" || r.Drifted != 2 || r.DatasetDrift {
		t.Errorf("traffic with f03 and f17 shifted: drifted %v (%d), dataset drift %v; want f03,f17, 2, false", got, r.Drifted, r.DatasetDrift)
	}
	outputs(r)
	// The gauges show the latest report.
	code, metrics := call(t, "GET", base+"/metrics", nil)
	for _, want := range []string{
		`forge_feature_drift{deployment="cancer-api",feature="f03",method="wasserstein",version="1"} ` + fmt.Sprint(r.Features[3].Statistic),
		`forge_deployment_drift_share{deployment="cancer-api",version="1"} ` + fmt.Sprint(r.Share),
	} {
		if code != 200 || !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
	// The last hour holds both windows.
	if r := report("1h"); r.CurrentRows != 2*window {
		t.Errorf("window 1h: %d rows, want %d", r.CurrentRows, 2*window)
	}
	// Every feature shifted: the model's outputs move with them.
	for j := range features {
		shifted[j] = 2
	}
	send(window)
	r = report(rowsWindow)
	if names, got := outputs(r); len(got) != len(names) {
		t.Errorf("traffic with every feature shifted by 2: outputs %v drifted, want all of %v", got, names)
	}
	code, metrics = call(t, "GET", base+"/metrics", nil)
	if o := r.Outputs[0]; code != 200 || !strings.Contains(string(metrics), fmt.Sprintf(`forge_output_drift{deployment="cancer-api",method="%s",output="%s",version="1"} %v`, o.Method, o.Name, o.Statistic)) {
		t.Errorf("/metrics (%d) lacks forge_output_drift of %s = %v", code, o.Name, o.Statistic)
	}

	// Bad input: a window that does not parse, an unknown deployment, a
	// reference that cannot name the 30 inputs.
	if _, err := c.DeploymentDrift(ctx, "cancer-api", "yesterday", ""); httpStatus(err) != 400 || !strings.Contains(err.Error(), `invalid window "yesterday"`) {
		t.Errorf("window yesterday: %v, want invalid naming the window", err)
	}
	if _, err := c.DeploymentDrift(ctx, "nope", "1h", ""); httpStatus(err) != 404 {
		t.Errorf("unknown deployment: %v, want not found", err)
	}
	m.addCSV(t, "narrow", "a,b\n1,2\n3,4\n")
	if _, err := c.DeploymentDrift(ctx, "cancer-api", "1h", "narrow@1"); httpStatus(err) != 400 || !strings.Contains(err.Error(), "has 2 columns") {
		t.Errorf("a 2-column reference: %v, want invalid saying so", err)
	}
}

// httpStatus is the HTTP status of an API error, 0 for others.
func httpStatus(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func put(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(string(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
