package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/deploy"
)

// Watch configures the background refresh (Monitor.Run): every Interval,
// the report of each deployment that logs payloads, over Window and over
// each alert's window, and the alerts' webhooks when one crosses.
type Watch struct {
	Interval time.Duration // default 1m
	Window   Window
	Alerts   []config.Alert
	// AllDeployments: the server logs every model's payloads
	// (serve.payload_sample_rate), so every deployment is watched.
	AllDeployments bool
	Client         *http.Client // for the webhooks; default: a 10s timeout
	// Ticks, when set, replaces the Interval's ticker (for tests).
	Ticks <-chan time.Time
}

// watchState is the Run loop's, shared with the handlers.
type watchState struct {
	mu      sync.Mutex
	running bool
	want    int64 // passes asked for
	done    int64 // passes asked for that have finished
	passes  int64 // passes run, asked for or ticked
	doneCh  chan struct{}
	latest  map[string]api.MonitorReport // deployment -> over Watch.Window
	kick    chan struct{}
	firing  map[alertKey]bool // owned by the Run goroutine
	outputs *refOutputs
	// observed: the latest drift report by deployment and role, which
	// the gauges show (under mu).
	observed map[string]map[string]api.DriftReport
}

type alertKey struct{ alert, deployment, version string }

func (m *Monitor) state() *watchState { return m.ws }

// Run computes the reports every Watch.Interval (and when Sync asks) until
// ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	ws := m.state()
	ws.mu.Lock()
	ws.running = true
	ws.mu.Unlock()
	defer func() {
		ws.mu.Lock()
		ws.running = false
		ws.mu.Unlock()
	}()
	ticks := m.Watch.Ticks
	if ticks == nil {
		iv := m.Watch.Interval
		if iv <= 0 {
			iv = time.Minute
		}
		t := time.NewTicker(iv)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		case <-ws.kick:
		}
		ws.mu.Lock()
		want := ws.want
		ws.mu.Unlock()
		m.refresh(ctx)
		ws.mu.Lock()
		ws.done = want
		ws.passes++
		close(ws.doneCh)
		ws.doneCh = make(chan struct{})
		ws.mu.Unlock()
	}
}

// Sync asks Run for a pass and waits until one that began after the call
// has finished. Run must be running.
func (m *Monitor) Sync(ctx context.Context) error {
	ws := m.state()
	ws.mu.Lock()
	if !ws.running {
		ws.mu.Unlock()
		return forge.Errorf(forge.Unavailable, "the monitor is not running")
	}
	ws.want++
	want := ws.want
	ws.mu.Unlock()
	select {
	case ws.kick <- struct{}{}:
	default:
	}
	for {
		ws.mu.Lock()
		done, ch := ws.done, ws.doneCh
		ws.mu.Unlock()
		if done >= want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Latest returns the reports of the last pass, by deployment.
func (m *Monitor) Latest() []api.MonitorReport {
	ws := m.state()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make([]api.MonitorReport, 0, len(ws.latest))
	for _, r := range ws.latest {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b api.MonitorReport) int { return cmpString(a.Deployment, b.Deployment) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// refresh computes every watched deployment's reports and alerts on them.
func (m *Monitor) refresh(ctx context.Context) {
	m.flush()
	ds, err := m.Deployments.List(ctx)
	if err != nil {
		m.Log.Warn("monitor: list deployments", "err", err)
		return
	}
	latest := map[string]api.MonitorReport{}
	for _, d := range ds {
		if d.PayloadRate == 0 && !m.Watch.AllDeployments {
			continue
		}
		windows := []Window{m.Watch.Window}
		for _, a := range m.Watch.Alerts {
			if a.Deployment != "" && a.Deployment != d.Name {
				continue
			}
			if w, err := ParseWindow(a.Window); err == nil && !slices.Contains(windows, w) {
				windows = append(windows, w)
			}
		}
		for i, w := range windows {
			r, err := m.Report(ctx, d.Name, w)
			if err != nil {
				m.Log.Warn("monitor: report", "deployment", d.Name, "window", w, "err", err)
				continue
			}
			if i == 0 {
				latest[d.Name] = r
			}
			m.alert(ctx, d, r)
		}
		if ctx.Err() != nil {
			return
		}
	}
	ws := m.state()
	ws.mu.Lock()
	ws.latest = latest
	ws.mu.Unlock()
}

// Report computes the drift and quality of deployment name over w; a
// part that cannot be computed says why.
func (m *Monitor) Report(ctx context.Context, name string, w Window) (api.MonitorReport, error) {
	d, err := m.Deployments.Get(ctx, name)
	if err != nil {
		return api.MonitorReport{}, err
	}
	r := api.MonitorReport{Deployment: name, Window: w.String(), ComputedAt: m.now().UnixMilli()}
	if dr, err := m.Drift(ctx, name, w, ""); err != nil {
		r.DriftError = forge.Message(err)
	} else {
		r.Drift = &dr
	}
	if d.CanaryModel == "" {
		m.forgetCanary(name)
	} else if dr, err := m.DriftOf(ctx, name, w, "", true); err != nil {
		r.CanaryDriftError = forge.Message(err)
	} else {
		r.CanaryDrift = &dr
	}
	if q, err := m.Quality(ctx, name, w); err != nil {
		r.QualityError = forge.Message(err)
	} else {
		r.Quality = &q
	}
	return r, nil
}

// values are the metric's values in r, by model version.
func values(r api.MonitorReport, metric string) map[string]float64 {
	out := map[string]float64{}
	for _, d := range []*api.DriftReport{r.Drift, r.CanaryDrift} {
		if d == nil {
			continue
		}
		v := strconv.FormatInt(d.Version, 10)
		switch metric {
		case "drift_share":
			out[v] = d.Share
		case "drifted_features":
			out[v] = float64(d.Drifted)
		case "drifted_outputs":
			n := 0
			for _, o := range d.Outputs {
				if o.Drifted {
					n++
				}
			}
			if len(d.Outputs) > 0 {
				out[v] = float64(n)
			}
		}
	}
	if q := r.Quality; q != nil {
		for _, vq := range q.Versions {
			var x *float64
			switch metric {
			case "accuracy":
				x = vq.Accuracy
			case "auc":
				x = vq.AUC
			case "rmse":
				x = vq.RMSE
			case "mae":
				x = vq.MAE
			}
			if x != nil {
				out[vq.Version] = *x
			}
		}
	}
	return out
}

// alert posts an event for each rule over r's window whose state changed:
// firing when its metric crossed the threshold, resolved when it is back.
// A metric the report lacks (no labels yet) changes nothing; a webhook
// that fails is tried again on the next pass.
func (m *Monitor) alert(ctx context.Context, d deploy.Deployment, r api.MonitorReport) {
	ws := m.state()
	for _, a := range m.Watch.Alerts {
		w, err := ParseWindow(a.Window)
		if err != nil || w.String() != r.Window || (a.Deployment != "" && a.Deployment != d.Name) {
			continue
		}
		for version, x := range values(r, a.Metric) {
			fire := x > a.Threshold
			if a.When == "below" {
				fire = x < a.Threshold
			}
			k := alertKey{a.Name, d.Name, version}
			if ws.firing[k] == fire {
				continue
			}
			state := "resolved"
			if fire {
				state = "firing"
			}
			ev := api.AlertEvent{Alert: a.Name, State: state, Deployment: d.Name, Version: version, Metric: a.Metric, Value: x,
				Threshold: a.Threshold, When: a.When, Window: r.Window, At: m.now().UTC().Format(time.RFC3339)}
			if err := m.post(ctx, a.Webhook, ev); err != nil {
				m.Log.Warn("monitor: alert webhook", "alert", a.Name, "deployment", d.Name, "state", state, "err", err)
				continue
			}
			ws.firing[k] = fire
		}
	}
}

func (m *Monitor) post(ctx context.Context, url string, ev api.AlertEvent) error {
	b, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c := m.Watch.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", url, resp.Status)
	}
	return nil
}

func (m *Monitor) passes() int64 {
	m.ws.mu.Lock()
	defer m.ws.mu.Unlock()
	return m.ws.passes
}
