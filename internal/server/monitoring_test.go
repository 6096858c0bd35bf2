package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
)

// infer sends rows of 30 features drawn from the training distribution
// (plus shift per feature) to deployment name as one request with id.
func (m *monitored) infer(t *testing.T, name, id string, rows int, shift map[int]float64) {
	t.Helper()
	data := make([]string, 0, rows*monFeatures)
	for range rows {
		for j := range monFeatures {
			data = append(data, fmt.Sprintf("%.7g", m.rng.NormFloat64()+shift[j]))
		}
	}
	body := fmt.Sprintf(`{"id":%q,"inputs":[{"name":"input__0","datatype":"FP32","shape":[%d,%d],"data":[%s]}]}`, id, rows, monFeatures, strings.Join(data, ","))
	if code, out := call(t, "POST", m.base+"/v2/models/"+name+"/infer", rawJSON(body)); code != 200 {
		t.Fatalf("infer: %d %s", code, out)
	}
}

// A deployment that logs its own payloads names the logged inputs after
// its reference's columns (lineage's by default); a reference that cannot
// name the model's inputs is refused, and nothing is stored.
func TestDeploymentPayloadLog(t *testing.T) {
	m := startMonitored(t, 0) // the server logs nothing by default
	ctx := context.Background()
	cols := make([]string, monFeatures)
	for j := range cols {
		cols[j] = fmt.Sprintf("f%02d", j)
	}
	m.addCSV(t, "narrow", "a,b\n1,2\n3,4\n")
	words := slices.Clone(cols)
	words[5] = "colour"
	m.addCSV(t, "words", strings.Join(words, ",")+"\n"+strings.Repeat("1,", 5)+"red"+strings.Repeat(",1", 24)+"\n")
	clash := slices.Clone(cols)
	clash[2] = "request_id"
	m.addCSV(t, "clash", strings.Join(clash, ",")+"\n"+strings.TrimSuffix(strings.Repeat("1,", 30), ",")+"\n")
	for _, tc := range []struct {
		spec api.DeploymentSpec
		want string
	}{
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "narrow@1"}, "reference narrow@1 has 2 columns but model cancer version 1 takes 30 inputs per row"},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "words@1"}, `column "colour" (input 6 of model cancer version 1) is not a number`},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "clash@1"}, `column "request_id" would clash`},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "nope@1"}, "reference nope@1"},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 0.5, Reference: "train"}, `invalid reference "train"`},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 1.5}, "payload log rate 1.5 is out of range"},
	} {
		_, err := m.c.PutDeployment(ctx, "cancer-api", tc.spec)
		if httpStatus(err) != 400 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("deploy %+v: %v, want 400 saying %q", tc.spec, err, tc.want)
		}
		if _, err := m.c.GetDeployment(ctx, "cancer-api"); httpStatus(err) != 404 {
			t.Fatalf("after a refused deploy: %v, want no deployment stored", err)
		}
	}

	d, err := m.c.PutDeployment(ctx, "cancer-api", api.DeploymentSpec{Model: "cancer", Ref: "1", LogPayloads: 1})
	if err != nil || d.Status == nil || !d.Status.Ready {
		t.Fatalf("deploy: %+v %v", d, err)
	}
	if !slices.Equal(d.PayloadColumns, cols) || d.LogPayloads != 1 || d.Reference != "" {
		t.Fatalf("deployment logs %v at %v (reference %q), want the reference's columns f00..f29 at 1 with lineage's reference", d.PayloadColumns, d.LogPayloads, d.Reference)
	}
	m.infer(t, "cancer-api", "req-a", 3, nil)
	m.infer(t, "cancer-api", "req-b", 2, nil)
	m.s.FlushPayloads()

	// The logged rows: one per request row, with the request id, time,
	// model version, the inputs under the reference's names and the output.
	pq := filepath.Join(m.dir, "logged.parquet")
	f, err := os.Create(pq)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.c.GetDataset(ctx, "payloads.cancer-api", f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := m.eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, ids, bad int
	var names string
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT request_id),
		count(*) FILTER (WHERE version <> '1' OR model <> 'cancer' OR deployment <> 'cancer-api' OR timestamp IS NULL OR f29 IS NULL OR out_output__0 IS NULL)
		FROM read_parquet('`+pq+`')`).Scan(&n, &ids, &bad); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM read_parquet('`+pq+`'))`).Scan(&names); err != nil {
		t.Fatal(err)
	}
	want := "timestamp,model,version,request_id,deployment,row," + strings.Join(cols, ",") + ",out_output__0"
	if n != 5 || ids != 2 || bad != 0 || names != want {
		t.Errorf("logged %d rows of %d requests (%d incomplete), columns %s; want 5 rows of 2 requests, all complete, columns %s", n, ids, bad, names, want)
	}
}

// inferScores sends rows like infer and returns the version that answered
// and its scores, one per row.
func (m *monitored) inferScores(t *testing.T, name, id string, rows int) (string, []float64) {
	t.Helper()
	data := make([]string, 0, rows*monFeatures)
	for range rows * monFeatures {
		data = append(data, fmt.Sprintf("%.7g", m.rng.NormFloat64()))
	}
	body := fmt.Sprintf(`{"id":%q,"inputs":[{"name":"input__0","datatype":"FP32","shape":[%d,%d],"data":[%s]}]}`, id, rows, monFeatures, strings.Join(data, ","))
	code, out := call(t, "POST", m.base+"/v2/models/"+name+"/infer", rawJSON(body))
	if code != 200 {
		t.Fatalf("infer: %d %s", code, out)
	}
	var resp struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.Outputs) != 1 || len(resp.Outputs[0].Data) != rows {
		t.Fatalf("infer answer %s: %v", out, err)
	}
	return resp.ModelVersion, resp.Outputs[0].Data
}

// aucOf is the Mann-Whitney AUC of scores against 0/1 labels, ties at
// their mean rank, computed pair by pair.
func aucOf(scores []float64, labels []int) float64 {
	var wins float64
	var pos, neg int
	for i := range scores {
		if labels[i] != 1 {
			neg++
			continue
		}
		pos++
		for j := range scores {
			if labels[j] == 0 {
				switch {
				case scores[i] > scores[j]:
					wins++
				case scores[i] == scores[j]:
					wins += 0.5
				}
			}
		}
	}
	return wins / float64(pos*neg)
}

// Labels sent late for logged predictions give each version its live
// accuracy and AUC; flipping k of one version's n labels lowers its
// accuracy by exactly k/n. Bad feedback is refused and stores nothing.
func TestDeploymentFeedback(t *testing.T) {
	m := startMonitored(t, 0)
	ctx := context.Background()
	run := createRun(t, m.base)
	model, err := os.ReadFile("../../testdata/models/xgb_binary.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := put(t, m.base+"/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/model/model.json", model); code != 200 {
		t.Fatalf("upload the model: %d %s", code, body)
	}
	if v, err := m.c.RegisterModelFromRun(ctx, "cancer", api.RegisterFromRunRequest{RunID: run, Path: "model", Format: "xgboost"}); err != nil || v.ModelVersion.Version != "2" {
		t.Fatalf("register version 2: %+v %v", v, err)
	}
	if _, err := m.c.PutDeployment(ctx, "cancer-api", api.DeploymentSpec{Model: "cancer", Ref: "1", CanaryModel: "cancer", CanaryRef: "2",
		CanaryPercent: 50, LogPayloads: 1, Reference: "train@1"}); err != nil {
		t.Fatal(err)
	}
	type pred struct {
		id, version string
		score       float64
		label       int
	}
	var preds []pred
	for i := range 200 {
		id := fmt.Sprintf("r%03d", i)
		v, s := m.inferScores(t, "cancer-api", id, 1)
		l := 0
		if s[0] >= 0.5 {
			l = 1
		}
		preds = append(preds, pred{id, v, s[0], l})
	}
	bv, batch := m.inferScores(t, "cancer-api", "batch", 4)
	m.s.FlushPayloads()

	send := func() {
		t.Helper()
		var fb []api.Feedback
		for _, p := range preds {
			fb = append(fb, api.Feedback{RequestID: p.id, Label: p.label})
		}
		// A request of four rows takes a label per row: all right.
		var bl []any
		for _, s := range batch {
			bl = append(bl, s >= 0.5)
		}
		fb = append(fb, api.Feedback{RequestID: "batch", Labels: bl})
		if res, err := m.c.SendFeedback(ctx, "cancer-api", fb); err != nil || res.Labels != 204 {
			t.Fatalf("feedback: %+v %v, want 204 labels stored", res, err)
		}
	}
	quality := func() map[string]api.VersionQuality {
		t.Helper()
		r, err := m.c.DeploymentQuality(ctx, "cancer-api", "1h")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]api.VersionQuality{}
		for _, v := range r.Versions {
			out[v.Version] = v
		}
		return out
	}
	send()
	q := quality()
	n := map[string]int64{}
	for _, p := range preds {
		n[p.version]++
	}
	n[bv] += 4
	for v, role := range map[string]string{"1": "stable", "2": "canary"} {
		got := q[v]
		if got.Role != role || got.Rows != n[v] || got.Labeled != n[v] || got.Task != "classification" || got.Accuracy == nil || *got.Accuracy != 1 {
			t.Errorf("version %s with labels equal to its predictions: %+v (accuracy %v), want %s, %d rows all labeled, accuracy 1", v, got, deref(got.Accuracy), role, n[v])
		}
	}
	// Drift per version too: each role's report reads its own version's rows.
	for v, role := range map[string]string{"1": "stable", "2": "canary"} {
		r, err := m.c.DeploymentDriftOf(ctx, "cancer-api", "1h", "", role)
		if err != nil || r.Role != role || fmt.Sprint(r.Version) != v || r.CurrentRows != n[v] || len(r.Features) != monFeatures || r.Reference != "train@1" {
			t.Errorf("drift of the %s: role %q version %d, %d rows, %d features against %s (%v); want version %s, %d rows, %d features against train@1",
				role, r.Role, r.Version, r.CurrentRows, len(r.Features), r.Reference, err, v, n[v], monFeatures)
		}
	}
	if rep, err := m.c.DeploymentMonitor(ctx, "cancer-api", "1h"); err != nil || rep.Drift == nil || rep.CanaryDrift == nil || rep.CanaryDrift.Version != 2 || rep.Drift.Version != 1 {
		t.Errorf("monitor report: %+v %v, want the stable's drift (version 1) and the canary's (version 2)", rep, err)
	}
	if _, err := m.c.DeploymentDriftOf(ctx, "cancer-api", "1h", "", "blue"); httpStatus(err) != 400 || !strings.Contains(err.Error(), `invalid role "blue"`) {
		t.Errorf("role blue: %v, want invalid naming the role", err)
	}

	// Flip 30 of version 1's labels.
	flipped := 0
	var scores1 []float64
	var labels1 []int
	for i := range preds {
		if preds[i].version == "1" && flipped < 30 {
			preds[i].label = 1 - preds[i].label
			flipped++
		}
		if preds[i].version == "1" {
			scores1, labels1 = append(scores1, preds[i].score), append(labels1, preds[i].label)
		}
	}
	if bv == "1" {
		for _, s := range batch {
			l := 0
			if s >= 0.5 {
				l = 1
			}
			scores1, labels1 = append(scores1, s), append(labels1, l)
		}
	}
	send()
	q = quality()
	wantAcc := 1 - 30/float64(n["1"])
	if got := q["1"]; got.Accuracy == nil || math.Abs(*got.Accuracy-wantAcc) > 1e-12 || got.AUC == nil || math.Abs(*got.AUC-aucOf(scores1, labels1)) > 1e-12 {
		t.Errorf("version 1 after 30 of %d labels flipped: accuracy %v, AUC %v; want %v, %v", n["1"], deref(got.Accuracy), deref(got.AUC), wantAcc, aucOf(scores1, labels1))
	}
	if got := q["2"]; got.Accuracy == nil || *got.Accuracy != 1 {
		t.Errorf("version 2 untouched: accuracy %v, want 1", deref(got.Accuracy))
	}
	_, metrics := call(t, "GET", m.base+"/metrics", nil)
	if want := `forge_deployment_quality{deployment="cancer-api",metric="accuracy",version="1"} ` + fmt.Sprint(*q["1"].Accuracy); !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// Bad feedback: nothing of it is stored.
	for _, tc := range []struct {
		fb     []api.Feedback
		status int
		want   string
	}{
		{[]api.Feedback{{RequestID: preds[0].id, Label: 1 - preds[0].label}, {RequestID: "never-sent", Label: 1}}, 404, `unknown request id "never-sent"`},
		{[]api.Feedback{{RequestID: preds[0].id, Label: "yes"}}, 400, `label "yes" is text, but the model predicts numbers`},
		{[]api.Feedback{{RequestID: "batch", Labels: []any{1, 0}}}, 400, `request "batch" logged 4 rows but has 2 labels`},
		{[]api.Feedback{{RequestID: preds[0].id}}, 400, "no label"},
		{nil, 400, "no feedback"},
	} {
		_, err := m.c.SendFeedback(ctx, "cancer-api", tc.fb)
		if httpStatus(err) != tc.status || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("feedback %+v: %v, want %d saying %q", tc.fb, err, tc.status, tc.want)
		}
	}
	if again := quality(); deref(again["1"].Accuracy) != deref(q["1"].Accuracy) || again["1"].Labeled != q["1"].Labeled {
		t.Errorf("after refused feedback: %+v, want unchanged %+v", again["1"], q["1"])
	}
	if _, err := m.c.DeploymentQuality(ctx, "cancer-api", "yesterday"); httpStatus(err) != 400 || !strings.Contains(err.Error(), `invalid window "yesterday"`) {
		t.Errorf("quality over window yesterday: %v, want 400 naming it", err)
	}
	if _, err := m.c.SendFeedback(ctx, "nope", []api.Feedback{{RequestID: "x", Label: 1}}); httpStatus(err) != 404 {
		t.Errorf("feedback for an unknown deployment: %v, want 404", err)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
