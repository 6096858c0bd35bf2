package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DeploymentSpec is what a deployment serves: a model version named by
// number, alias or "latest" (an alias or "latest" is followed as it moves),
// an optional canary taking CanaryPercent of the requests, and dynamic
// batching settings.
type DeploymentSpec struct {
	Model                     string `json:"model"`
	Ref                       string `json:"ref"`
	CanaryModel               string `json:"canary_model,omitempty"`
	CanaryRef                 string `json:"canary_ref,omitempty"`
	CanaryPercent             int    `json:"canary_percent,omitempty"`
	MaxBatchSize              int    `json:"max_batch_size,omitempty"`
	MaxQueueDelayMicroseconds int64  `json:"max_queue_delay_microseconds,omitempty"`
	// LogPayloads is the share of requests (0 to 1) logged with their
	// responses to the dataset payloads.NAME, inputs in columns named
	// after the reference's; 0: the server's serve.payload_sample_rate.
	LogPayloads float64 `json:"log_payloads,omitempty"`
	// Reference is the dataset version (DATASET@VERSION) the traffic is
	// compared with; "": the one the served version's run used as input.
	Reference string `json:"reference,omitempty"`
	// LogPayloadsTo is a Kafka topic (kafka://BROKER[,BROKER]/TOPIC) or a
	// NATS subject or JetStream stream (nats://HOST:PORT/NAME) the logged
	// rows are also published to, one JSON object per row, as the dataset
	// has them; needs LogPayloads. No credentials: the server's config has them.
	LogPayloadsTo string `json:"log_payloads_to,omitempty"`
}

// Deployment is a stored deployment and, when the server serves it, how
// that goes.
type Deployment struct {
	Name string `json:"name"`
	DeploymentSpec
	// PayloadColumns name the logged inputs, in order: the reference's
	// columns, checked against the model's inputs when it was stored.
	PayloadColumns []string          `json:"payload_columns,omitempty"`
	CreatedAt      int64             `json:"created_at"` // ms since the epoch
	UpdatedAt      int64             `json:"updated_at"`
	Status         *DeploymentStatus `json:"status,omitempty"`
}

// DeploymentStatus is what the serving side made of a deployment.
type DeploymentStatus struct {
	// Ready: every target is loaded, warm and receiving its share.
	Ready bool `json:"ready"`
	// Error is why the deployment does not serve its spec (a ref that does
	// not resolve, a model that fails to load). The targets, if any, are
	// what it still serves meanwhile.
	Error   string             `json:"error,omitempty"`
	Targets []DeploymentTarget `json:"targets"`
}

// DeploymentTarget is one model version a deployment sends traffic to.
type DeploymentTarget struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	Weight  int    `json:"weight"` // percent of the requests
	State   string `json:"state"`  // READY, LOADING, FAILED, UNAVAILABLE
}

// DeploymentList is GET /api/forge/v1/deployments. Revision changes
// whenever a deployment is created, changed or deleted.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
	Revision    string       `json:"revision"`
}

const forgeDeployments = "/api/forge/v1/deployments"

// PutDeployment creates or replaces a deployment and returns it once the
// server has tried to serve it, with the outcome in its status.
func (c *Client) PutDeployment(ctx context.Context, name string, spec DeploymentSpec) (Deployment, error) {
	var out Deployment
	err := c.Do(ctx, http.MethodPut, forgeDeployments+"/"+url.PathEscape(name), nil, spec, &out)
	return out, err
}

// GetDeployment returns one deployment with its status.
func (c *Client) GetDeployment(ctx context.Context, name string) (Deployment, error) {
	var out Deployment
	err := c.Do(ctx, http.MethodGet, forgeDeployments+"/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// ListDeployments returns every deployment. With a revision and a wait, it
// long-polls: the server answers when the list's revision differs from the
// one given, or when wait passes.
func (c *Client) ListDeployments(ctx context.Context, revision string, wait time.Duration) (DeploymentList, error) {
	q := url.Values{}
	if revision != "" && wait > 0 {
		q.Set("revision", revision)
		q.Set("wait", wait.String())
	}
	var out DeploymentList
	err := c.Do(ctx, http.MethodGet, forgeDeployments, q, nil, &out)
	return out, err
}

// DeleteDeployment removes a deployment; its name stops answering.
func (c *Client) DeleteDeployment(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, forgeDeployments+"/"+url.PathEscape(name), nil, nil, nil)
}
