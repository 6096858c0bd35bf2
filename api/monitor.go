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
	Reference      string         `json:"reference"` // DATASET@VERSION
	Window         string         `json:"window"`
	ReferenceRows  int64          `json:"reference_rows"`
	CurrentRows    int64          `json:"current_rows"`
	Features       []FeatureDrift `json:"features"`
	Drifted        int            `json:"drifted"`
	Share          float64        `json:"share"`
	ShareThreshold float64        `json:"share_threshold"`
	DatasetDrift   bool           `json:"dataset_drift"`
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
	q := url.Values{}
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
