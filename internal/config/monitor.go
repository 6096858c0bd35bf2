package config

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// Monitor configures the watch over deployments: how often their drift
// and quality reports are computed again, over which window, and the
// alert rules that post to a webhook when a report crosses a threshold
// and again when it clears.
type Monitor struct {
	// Interval between two reports of each deployment (default 1m).
	Interval time.Duration `yaml:"interval"`
	// Window of the reports: a duration (1h) or a row count (10000rows).
	Window string  `yaml:"window"`
	Alerts []Alert `yaml:"alerts"`
}

// Alert fires when Metric of a deployment's report over Window is past
// Threshold (below it for accuracy and auc, above it for the others, or
// as When says), and clears when it is back.
type Alert struct {
	Name       string `yaml:"name"`
	Deployment string `yaml:"deployment"` // "": every deployment
	// Metric is drift_share (share of features drifted), drifted_features,
	// drifted_outputs, accuracy, auc, rmse or mae (per model version).
	Metric    string  `yaml:"metric"`
	Threshold float64 `yaml:"threshold"`
	When      string  `yaml:"when"`   // above or below
	Window    string  `yaml:"window"` // "": monitor.window
	Webhook   string  `yaml:"webhook"`
}

// AlertMetrics are the metrics an alert may watch, and the side of the
// threshold that fires by default.
var AlertMetrics = map[string]string{"drift_share": "above", "drifted_features": "above", "drifted_outputs": "above",
	"accuracy": "below", "auc": "below", "rmse": "above", "mae": "above"}

var windowRe = regexp.MustCompile(`^[0-9]*[1-9][0-9]*\s*rows?$`)

func validWindow(s string) bool {
	if windowRe.MatchString(s) {
		return true
	}
	d, err := time.ParseDuration(s)
	return err == nil && d > 0
}

func (m *Monitor) validate() error {
	if m.Interval <= 0 {
		return &FieldError{"monitor.interval", "must be a positive duration"}
	}
	if !validWindow(m.Window) {
		return &FieldError{"monitor.window", fmt.Sprintf("%q: want a duration such as 1h or a row count such as 10000rows", m.Window)}
	}
	names := map[string]bool{}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		field := func(f string) string { return fmt.Sprintf("monitor.alerts[%d].%s", i, f) }
		if a.Name == "" || names[a.Name] {
			return &FieldError{field("name"), fmt.Sprintf("%q: want a name no other alert has", a.Name)}
		}
		names[a.Name] = true
		side, ok := AlertMetrics[a.Metric]
		if !ok {
			return &FieldError{field("metric"), fmt.Sprintf("%q: want drift_share, drifted_features, drifted_outputs, accuracy, auc, rmse or mae", a.Metric)}
		}
		if a.When == "" {
			a.When = side
		}
		if a.When != "above" && a.When != "below" {
			return &FieldError{field("when"), fmt.Sprintf("%q: want above or below", a.When)}
		}
		if a.Window == "" {
			a.Window = m.Window
		}
		if !validWindow(a.Window) {
			return &FieldError{field("window"), fmt.Sprintf("%q: want a duration such as 1h or a row count such as 10000rows", a.Window)}
		}
		if u, err := url.Parse(a.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{field("webhook"), fmt.Sprintf("%q: want an http:// or https:// URL", a.Webhook)}
		}
	}
	return nil
}
