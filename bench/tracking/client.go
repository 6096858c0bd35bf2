package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/forge-mlops/forge/api"
)

const mlflowAPI = "/api/2.0/mlflow/"

// client speaks MLflow's REST API over keep-alive connections, as the
// mlflow Python client does through its requests.Session.
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: strings.TrimRight(base, "/"), http: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}}
}

// httpError is a non-2xx answer; its body is kept so errors can be grouped
// by message ("database is locked" above all).
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (c *client) post(ctx context.Context, endpoint string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+mlflowAPI+endpoint, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

func (c *client) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+mlflowAPI+endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

func (c *client) do(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &httpError{resp.StatusCode, strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	return jsonv2.Unmarshal(b, out) // as api.Client decodes
}

func (c *client) createExperiment(ctx context.Context, name string) (string, error) {
	var out api.CreateExperimentResponse
	err := c.post(ctx, "experiments/create", api.CreateExperimentRequest{Name: name}, &out)
	return out.ExperimentID, err
}

// createRun sends runs/create as mlflow.start_run does: the start time and
// the tags the fluent API resolves (user, source).
func (c *client) createRun(ctx context.Context, expID, name string) (string, error) {
	var out api.RunResponse
	err := c.post(ctx, "runs/create", api.CreateRunRequest{
		ExperimentID: expID, UserID: "bench", RunName: name, StartTime: api.Int64(time.Now().UnixMilli()),
		Tags: []api.KV{{Key: "mlflow.user", Value: "bench"}, {Key: "mlflow.source.name", Value: "bench/tracking"},
			{Key: "mlflow.source.type", Value: "LOCAL"}, {Key: "mlflow.runName", Value: name}},
	}, &out)
	return out.Run.Info.RunID, err
}

// logMetric is runs/log-metric with both run_id and run_uuid, as the client sends it.
func (c *client) logMetric(ctx context.Context, runID, key string, value float64, step int64) error {
	v := api.Float(value)
	return c.post(ctx, "runs/log-metric", api.LogMetricRequest{RunID: runID, RunUUID: runID, Key: key, Value: &v,
		Timestamp: api.Int64(time.Now().UnixMilli()), Step: api.Int64(step)}, nil)
}

// logBatch sends runs/log-batch as the client does: protobuf's JSON leaves
// empty lists out (a "params": null makes MLflow's server answer 500).
func (c *client) logBatch(ctx context.Context, req api.LogBatchRequest) error {
	return c.post(ctx, "runs/log-batch", struct {
		RunID   string       `json:"run_id"`
		Metrics []api.Metric `json:"metrics,omitempty"`
		Params  []api.KV     `json:"params,omitempty"`
		Tags    []api.KV     `json:"tags,omitempty"`
	}{req.RunID, req.Metrics, req.Params, req.Tags}, nil)
}

func (c *client) finishRun(ctx context.Context, runID string) error {
	return c.post(ctx, "runs/update", api.UpdateRunRequest{RunID: runID, RunUUID: runID, Status: "FINISHED",
		EndTime: api.Int64(time.Now().UnixMilli())}, nil)
}

// searchAll pages through runs/search as mlflow.search_runs does.
func (c *client) searchAll(ctx context.Context, req api.SearchRunsRequest) ([]api.Run, error) {
	var all []api.Run
	for {
		var out api.SearchRunsResponse
		if err := c.post(ctx, "runs/search", req, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Runs...)
		if out.NextPageToken == "" {
			return all, nil
		}
		req.PageToken = out.NextPageToken
	}
}

// history returns every point of a run's metric, following page tokens.
func (c *client) history(ctx context.Context, runID, key string) ([]api.Metric, error) {
	var all []api.Metric
	token := ""
	for {
		q := url.Values{"run_id": {runID}, "metric_key": {key}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out api.MetricsResponse
		if err := c.get(ctx, "metrics/get-history", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Metrics...)
		if out.NextPageToken == "" {
			return all, nil
		}
		token = out.NextPageToken
	}
}

// checkLoopback refuses a server that is not on this machine: the benchmark
// sends its traffic to 127.0.0.1 only.
func checkLoopback(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-server %q is not a URL", base)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-server %q: the benchmark only talks to a loopback address (127.0.0.1)", base)
	}
	return nil
}
