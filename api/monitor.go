package api

import (
	"context"
	"net/http"
	"net/url"
)

// DriftReport compares a deployment's logged inputs in a window with its
// reference, the dataset its model was trained on.
type DriftReport struct {
	Deployment     string         `json:"deployment"`
	Model          string         `json:"model"`
	Version        int64          `json:"version"`
	Role           string         `json:"role"`      // stable, or canary: the version the report is of
	Reference      string         `json:"reference"` // DATASET@VERSION
	Window         string         `json:"window"`
	ReferenceRows  int64          `json:"reference_rows"`
	CurrentRows    int64          `json:"current_rows"`
	Features       []FeatureDrift `json:"features"`
	Drifted        int            `json:"drifted"`
	Share          float64        `json:"share"`
	ShareThreshold float64        `json:"share_threshold"`
	DatasetDrift   bool           `json:"dataset_drift"`
	// Outputs is the drift of each logged output against the model's
	// outputs on the reference (the served version run on the reference's
	// rows, once per version and reference). They are not counted in
	// Drifted and Share, which are the inputs'. OutputsError says why
	// there are none when they could not be compared.
	Outputs      []FeatureDrift `json:"outputs"`
	OutputsError string         `json:"outputs_error,omitempty"`
}

// FeatureDrift is the drift of one input. Method (ks, wasserstein,
// chisquare, jensenshannon), Statistic and Threshold say what decided
// Drifted, as Evidently's data drift preset would: tests (p-value below
// 0.05) for references of up to 1,000 rows, distances (above 0.1) beyond.
type FeatureDrift struct {
	Name            string   `json:"name"`   // the reference's column
	Column          string   `json:"column"` // the payload log's column
	Kind            string   `json:"kind"`   // numeric or categorical
	Method          string   `json:"method"`
	Statistic       float64  `json:"statistic"`
	Threshold       float64  `json:"threshold"`
	Drifted         bool     `json:"drifted"`
	PSI             *float64 `json:"psi,omitempty"`
	KS              *float64 `json:"ks,omitempty"`
	KSPValue        *float64 `json:"ks_p_value,omitempty"`
	Wasserstein     *float64 `json:"wasserstein_normed,omitempty"`
	ChiSquarePValue *float64 `json:"chisquare_p_value,omitempty"`
	JensenShannon   *float64 `json:"jensenshannon,omitempty"`
}

// DeploymentDrift computes the drift report of a deployment over window
// ("1h", "10000rows"; "" for the last hour) against reference
// (DATASET@VERSION; "" for the one lineage gives).
func (c *Client) DeploymentDrift(ctx context.Context, name, window, reference string) (DriftReport, error) {
	return c.DeploymentDriftOf(ctx, name, window, reference, "")
}

// DeploymentDriftOf is DeploymentDrift of the version of role (stable,
// canary; "" for stable).
func (c *Client) DeploymentDriftOf(ctx context.Context, name, window, reference, role string) (DriftReport, error) {
	q := url.Values{}
	if role != "" {
		q.Set("role", role)
	}
	if window != "" {
		q.Set("window", window)
	}
	if reference != "" {
		q.Set("reference", reference)
	}
	var out DriftReport
	err := c.Do(ctx, http.MethodGet, forgeDeployments+"/"+url.PathEscape(name)+"/drift", q, nil, &out)
	return out, err
}

// Feedback is ground truth for logged predictions: a label per request
// (Label) or, for a request of several rows, one per row (Labels).
type Feedback struct {
	RequestID string `json:"request_id"`
	Label     any    `json:"label,omitempty"`  // a number, a string or a bool
	Labels    []any  `json:"labels,omitempty"` // one per row of the request
}

// FeedbackRequest is POST /api/forge/v1/deployments/NAME/feedback.
type FeedbackRequest struct {
	Feedback []Feedback `json:"feedback"`
}

// FeedbackResult says how many labels were stored.
type FeedbackResult struct {
	Labels int `json:"labels"`
}

// QualityReport is a deployment's live quality: its logged predictions in
// a window joined with the labels sent for them, per model version.
type QualityReport struct {
	Deployment string           `json:"deployment"`
	Window     string           `json:"window"`
	Versions   []VersionQuality `json:"versions"`
}

// VersionQuality is the quality of one version a deployment serves.
// Task is classification (Accuracy, and AUC for two classes with scores)
// or regression (RMSE, MAE); a metric is absent without labels.
type VersionQuality struct {
	Model    string   `json:"model"`
	Version  string   `json:"version"`
	Role     string   `json:"role"`    // stable or canary
	Rows     int64    `json:"rows"`    // predictions logged in the window
	Labeled  int64    `json:"labeled"` // of them, with a label
	Task     string   `json:"task,omitempty"`
	Accuracy *float64 `json:"accuracy,omitempty"`
	AUC      *float64 `json:"auc,omitempty"`
	RMSE     *float64 `json:"rmse,omitempty"`
	MAE      *float64 `json:"mae,omitempty"`
}

// SendFeedback stores labels for a deployment's logged predictions.
func (c *Client) SendFeedback(ctx context.Context, name string, fb []Feedback) (FeedbackResult, error) {
	var out FeedbackResult
	err := c.Do(ctx, http.MethodPost, forgeDeployments+"/"+url.PathEscape(name)+"/feedback", nil, FeedbackRequest{Feedback: fb}, &out)
	return out, err
}

// DeploymentQuality computes the live quality of a deployment over window
// ("1h", "10000rows"; "" for the last hour).
func (c *Client) DeploymentQuality(ctx context.Context, name, window string) (QualityReport, error) {
	q := url.Values{}
	if window != "" {
		q.Set("window", window)
	}
	var out QualityReport
	err := c.Do(ctx, http.MethodGet, forgeDeployments+"/"+url.PathEscape(name)+"/quality", q, nil, &out)
	return out, err
}

// MonitorReport is a deployment's drift and quality over one window. A
// part that cannot be computed (no logged payloads, no reference, no
// labels yet) says why instead.
type MonitorReport struct {
	Deployment string       `json:"deployment"`
	Window     string       `json:"window"`
	ComputedAt int64        `json:"computed_at"` // ms since the epoch
	Drift      *DriftReport `json:"drift,omitempty"`
	DriftError string       `json:"drift_error,omitempty"`
	// CanaryDrift is the drift of the canary version's traffic, when the
	// deployment has a canary.
	CanaryDrift      *DriftReport   `json:"canary_drift,omitempty"`
	CanaryDriftError string         `json:"canary_drift_error,omitempty"`
	Quality          *QualityReport `json:"quality,omitempty"`
	QualityError     string         `json:"quality_error,omitempty"`
}

// MonitorReports are the latest reports of the watched deployments.
type MonitorReports struct {
	Reports []MonitorReport `json:"reports"`
}

// AlertEvent is what an alert rule posts to its webhook when a metric
// crosses its threshold (state firing) and when it is back (resolved).
type AlertEvent struct {
	Alert      string  `json:"alert"`
	State      string  `json:"state"` // firing or resolved
	Deployment string  `json:"deployment"`
	Version    string  `json:"version"`
	Metric     string  `json:"metric"`
	Value      float64 `json:"value"`
	Threshold  float64 `json:"threshold"`
	When       string  `json:"when"` // above or below
	Window     string  `json:"window"`
	At         string  `json:"at"` // RFC 3339
}

// DeploymentMonitor computes a deployment's report over window now ("" for
// the last hour); the gauges then show it.
func (c *Client) DeploymentMonitor(ctx context.Context, name, window string) (MonitorReport, error) {
	q := url.Values{}
	if window != "" {
		q.Set("window", window)
	}
	var out MonitorReport
	err := c.Do(ctx, http.MethodGet, forgeDeployments+"/"+url.PathEscape(name)+"/monitor", q, nil, &out)
	return out, err
}

// RefreshMonitor has the server's watch compute every watched deployment's
// report now (alerting as it does every interval) and returns them.
func (c *Client) RefreshMonitor(ctx context.Context) (MonitorReports, error) {
	var out MonitorReports
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/monitor/refresh", nil, nil, &out)
	return out, err
}
