package api

import (
	"context"
	"net/http"
	"net/url"
)

const mlflowAPI = "/api/2.0/mlflow/"

// CreateExperiment creates an experiment and returns its id.
func (c *Client) CreateExperiment(ctx context.Context, name string) (string, error) {
	var out CreateExperimentResponse
	err := c.Do(ctx, http.MethodPost, mlflowAPI+"experiments/create", nil, CreateExperimentRequest{Name: name}, &out)
	return out.ExperimentID, err
}

// GetExperimentByName finds an experiment by name.
func (c *Client) GetExperimentByName(ctx context.Context, name string) (Experiment, error) {
	var out ExperimentResponse
	err := c.Do(ctx, http.MethodGet, mlflowAPI+"experiments/get-by-name", url.Values{"experiment_name": {name}}, nil, &out)
	return out.Experiment, err
}

// SearchExperiments lists experiments, following pages.
func (c *Client) SearchExperiments(ctx context.Context, req SearchExperimentsRequest) ([]Experiment, error) {
	var all []Experiment
	for {
		var out SearchExperimentsResponse
		if err := c.Do(ctx, http.MethodPost, mlflowAPI+"experiments/search", nil, req, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Experiments...)
		if out.NextPageToken == "" {
			return all, nil
		}
		req.PageToken = out.NextPageToken
	}
}

// GetRun returns a run.
func (c *Client) GetRun(ctx context.Context, id string) (Run, error) {
	var out RunResponse
	err := c.Do(ctx, http.MethodGet, mlflowAPI+"runs/get", url.Values{"run_id": {id}}, nil, &out)
	return out.Run, err
}

// SearchRuns returns one page of runs.
func (c *Client) SearchRuns(ctx context.Context, req SearchRunsRequest) (SearchRunsResponse, error) {
	var out SearchRunsResponse
	err := c.Do(ctx, http.MethodPost, mlflowAPI+"runs/search", nil, req, &out)
	return out, err
}
