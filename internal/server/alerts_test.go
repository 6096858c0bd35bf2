package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
)

// inferBatch sends rows like infer and returns the scores.
func (m *monitored) inferBatch(t *testing.T, name, id string, rows int, shift map[int]float64) []float64 {
	t.Helper()
	data := make([]string, 0, rows*monFeatures)
	for range rows {
		for j := range monFeatures {
			data = append(data, fmt.Sprintf("%.7g", m.rng.NormFloat64()+shift[j]))
		}
	}
	body := fmt.Sprintf(`{"id":%q,"inputs":[{"name":"input__0","datatype":"FP32","shape":[%d,%d],"data":[%s]}]}`, id, rows, monFeatures, strings.Join(data, ","))
	code, out := call(t, "POST", m.base+"/v2/models/"+name+"/infer", rawJSON(body))
	var resp struct {
		Outputs []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if code != 200 || json.Unmarshal(out, &resp) != nil || len(resp.Outputs) != 1 || len(resp.Outputs[0].Data) != rows {
		t.Fatalf("infer: %d %s", code, out)
	}
	return resp.Outputs[0].Data
}

// Alert rules post to their webhook when a report crosses the threshold
// and again when it clears, from the watch's own pass (triggered here by
// the refresh API rather than the interval's ticker).
func TestMonitorAlerts(t *testing.T) {
	events := make(chan api.AlertEvent, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev api.AlertEvent
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&ev) != nil {
			http.Error(w, "bad event", 400)
			return
		}
		events <- ev
	}))
	defer recv.Close()
	m := startMonitored(t, 0, func(c *config.Server) {
		c.Monitor.Interval = time.Hour // only the refresh API runs a pass in this test
		c.Monitor.Alerts = []config.Alert{
			{Name: "accuracy-low", Metric: "accuracy", Threshold: 0.9, Window: "2000rows", Webhook: recv.URL + "/hook"},
			{Name: "drift", Deployment: "cancer-api", Metric: "drifted_features", Threshold: 1, Window: "2000rows", Webhook: recv.URL + "/hook"},
		}
	})
	ctx := context.Background()
	if _, err := m.c.PutDeployment(ctx, "cancer-api", api.DeploymentSpec{Model: "cancer", LogPayloads: 1}); err != nil {
		t.Fatal(err)
	}
	// phase sends 2,000 rows in four requests and labels them: the
	// prediction's class, but for the first flip rows.
	phase := func(prefix string, shift map[int]float64, flip int) []api.Feedback {
		var fb []api.Feedback
		for i := range 4 {
			id := fmt.Sprintf("%s%d", prefix, i)
			var labels []any
			for _, s := range m.inferBatch(t, "cancer-api", id, 500, shift) {
				l := 0
				if s >= 0.5 {
					l = 1
				}
				if flip > 0 {
					l, flip = 1-l, flip-1
				}
				labels = append(labels, l)
			}
			fb = append(fb, api.Feedback{RequestID: id, Labels: labels})
		}
		// No flush here: feedback for a prediction still in the server's
		// buffer has it written first.
		if _, err := m.c.SendFeedback(ctx, "cancer-api", fb); err != nil {
			t.Fatal(err)
		}
		return fb
	}
	refresh := func() []string {
		t.Helper()
		if _, err := m.c.RefreshMonitor(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			select {
			case ev := <-events:
				if ev.Deployment != "cancer-api" || ev.Version != "1" || ev.Window != "2000rows" || ev.At == "" {
					t.Errorf("event %+v", ev)
				}
				got = append(got, fmt.Sprintf("%s %s %s %v", ev.Alert, ev.State, ev.When, ev.Value))
			default:
				return got // the pass posts before it finishes
			}
		}
	}
	check := func(step string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Errorf("%s: events %q, want %q", step, got, want)
		}
	}

	phase("shifted", map[int]float64{3: 1, 17: -1.5}, 0)
	check("two features shifted, labels right", refresh(), "drift firing above 2")
	check("nothing changed", refresh())
	fb := phase("calm", nil, 800)
	check("calm traffic, 800 of 2,000 labels wrong", refresh(), "accuracy-low firing below 0.6", "drift resolved above 0")
	for i := range fb {
		for j, l := range fb[i].Labels {
			if i*500+j < 800 {
				fb[i].Labels[j] = 1 - l.(int)
			}
		}
	}
	if _, err := m.c.SendFeedback(ctx, "cancer-api", fb); err != nil {
		t.Fatal(err)
	}
	check("labels corrected", refresh(), "accuracy-low resolved below 1")

	// The pass's reports are served, and the gauges show them.
	var latest api.MonitorReports
	mustCall(t, "GET", m.base+"/api/forge/v1/monitor", nil, &latest)
	if len(latest.Reports) != 1 || latest.Reports[0].Window != "1h" || latest.Reports[0].Drift == nil || latest.Reports[0].Quality == nil {
		t.Errorf("latest reports: %+v, want cancer-api's over 1h with drift and quality", latest)
	}
	_, metrics := call(t, "GET", m.base+"/metrics", nil)
	for _, want := range []string{`forge_deployment_quality{deployment="cancer-api",metric="accuracy",version="1"} 1`, `forge_deployment_drift_share{deployment="cancer-api",version="1"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	r, err := m.c.DeploymentMonitor(ctx, "cancer-api", "2000rows")
	if err != nil || r.Drift == nil || r.Drift.Drifted != 0 || r.Quality == nil || len(r.Quality.Versions) != 1 || *r.Quality.Versions[0].Accuracy != 1 {
		t.Errorf("report over 2000rows: %+v %v", r, err)
	}
	if _, err := m.c.DeploymentMonitor(ctx, "cancer-api", "soon"); httpStatus(err) != 400 {
		t.Errorf("window soon: %v, want 400", err)
	}
}
