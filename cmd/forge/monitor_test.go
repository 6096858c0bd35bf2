package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
)

// The CLI passes the window and reference on and prints a line per
// feature with its statistic, threshold and verdict, then the share. The
// report itself is tested end to end in internal/server (TestDeploymentDrift).
func TestMonitorDriftCLI(t *testing.T) {
	ks, psi := 0.31, 0.7
	report := api.DriftReport{Deployment: "cancer-api", Model: "cancer", Version: 2, Reference: "train@1", Window: "500rows",
		ReferenceRows: 800, CurrentRows: 500, Drifted: 1, Share: 0.5, ShareThreshold: 0.5, DatasetDrift: true,
		Features: []api.FeatureDrift{
			{Name: "age", Column: "in_input_0", Kind: "numeric", Method: "ks", Statistic: 0.0001, Threshold: 0.05, Drifted: true, KS: &ks, PSI: &psi},
			{Name: "color", Column: "in_input_1", Kind: "categorical", Method: "chisquare", Statistic: 0.6, Threshold: 0.05},
		},
		Outputs: []api.FeatureDrift{{Name: "out_probability", Column: "out_probability", Kind: "numeric", Method: "ks", Statistic: 0.002, Threshold: 0.05, Drifted: true}}}
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/forge/v1/deployments/cancer-api/drift" {
			http.Error(w, `{"error":"not found"}`, 404)
			return
		}
		query = r.URL.RawQuery
		json.NewEncoder(w).Encode(report)
	}))
	defer srv.Close()

	out, _, err := dataCLI(srv.URL, "monitor", "drift", "cancer-api", "--window", "500rows", "--reference", "train@1")
	if err != nil {
		t.Fatal(err)
	}
	if query != "reference=train%401&window=500rows" {
		t.Errorf("query %q", query)
	}
	for _, want := range []string{
		"deployment cancer-api: cancer version 2, window 500rows (500 rows) against train@1 (800 rows)",
		"age", "ks", "0.0001", "< 0.05", "yes", "0.7",
		"1 of 2 features drifted (share 0.5, dataset drift at >= 0.5): DATASET DRIFT",
		"outputs, against the model's outputs on the reference:", "OUTPUT", "out_probability", "0.002",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || !strings.Contains(lines[3], "color") || !strings.Contains(lines[3], "no") {
		t.Errorf("the color line:\n%s", out)
	}

	out, _, err = dataCLI(srv.URL, "monitor", "drift", "cancer-api", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got api.DriftReport
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Features[0].Name != "age" || !got.DatasetDrift {
		t.Errorf("-o json: %v %+v", err, got)
	}
	if query != "window=1h" {
		t.Errorf("default window: query %q", query)
	}

	if _, _, err := dataCLI(srv.URL, "monitor", "drift"); err == nil || !strings.Contains(err.Error(), "usage: forge monitor drift") {
		t.Errorf("no deployment: %v", err)
	}
}

// forge feedback sends one label (read as JSON when it is: 1 is a number,
// cat is text) or a file of JSON lines.
func TestFeedbackCLI(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.FeedbackRequest
		if r.Method != "POST" || r.URL.Path != "/api/forge/v1/deployments/cancer-api/feedback" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":"bad"}`, 400)
			return
		}
		b, _ := json.Marshal(req)
		got = append(got, string(b))
		json.NewEncoder(w).Encode(api.FeedbackResult{Labels: len(req.Feedback)})
	}))
	defer srv.Close()
	for _, args := range [][]string{{"feedback", "cancer-api", "r1", "1"}, {"feedback", "cancer-api", "r2", "cat"}} {
		if out, _, err := dataCLI(srv.URL, args...); err != nil || !strings.Contains(out, "stored 1 labels for deployment cancer-api") {
			t.Fatalf("%v: %q %v", args, out, err)
		}
	}
	file := t.TempDir() + "/labels.jsonl"
	if err := os.WriteFile(file, []byte(`{"request_id":"r3","label":true}`+"\n\n"+`{"request_id":"r4","labels":[0,1]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := dataCLI(srv.URL, "feedback", "cancer-api", "--file", file); err != nil || !strings.Contains(out, "stored 2 labels") {
		t.Fatalf("--file: %q %v", out, err)
	}
	want := []string{
		`{"feedback":[{"request_id":"r1","label":1}]}`,
		`{"feedback":[{"request_id":"r2","label":"cat"}]}`,
		`{"feedback":[{"request_id":"r3","label":true},{"request_id":"r4","labels":[0,1]}]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// forge monitor DEPLOYMENT prints the drift table and a line of quality
// per version; a part the server could not compute says why.
func TestMonitorShowCLI(t *testing.T) {
	acc, auc := 0.85, 0.9
	report := api.MonitorReport{Deployment: "cancer-api", Window: "1h",
		DriftError: "model cancer version 1 has no reference dataset",
		Quality: &api.QualityReport{Deployment: "cancer-api", Window: "1h", Versions: []api.VersionQuality{
			{Model: "cancer", Version: "1", Role: "stable", Rows: 200, Labeled: 150, Task: "classification", Accuracy: &acc, AUC: &auc},
			{Model: "cancer", Version: "2", Role: "canary", Rows: 20},
		}}}
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/forge/v1/deployments/cancer-api/monitor" {
			http.Error(w, `{"error":"not found"}`, 404)
			return
		}
		query = r.URL.RawQuery
		json.NewEncoder(w).Encode(report)
	}))
	defer srv.Close()
	for _, args := range [][]string{{"monitor", "cancer-api", "--window", "30m"}, {"monitor", "show", "cancer-api", "--window", "30m"}} {
		out, _, err := dataCLI(srv.URL, args...)
		if err != nil {
			t.Fatal(err)
		}
		if query != "window=30m" {
			t.Errorf("%v: query %q", args, query)
		}
		lines := strings.Split(out, "\n")
		for _, want := range []string{"not computed: model cancer version 1 has no reference dataset", "Quality (window 1h)"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
		if len(lines) < 7 || !strings.Contains(lines[5], "stable") || !strings.Contains(lines[5], "0.85") || !strings.Contains(lines[5], "0.9") ||
			!strings.Contains(lines[6], "canary") || !strings.Contains(lines[6], "-") {
			t.Errorf("%v: version lines:\n%s", args, out)
		}
	}
}
