package tracking

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// The routes MLflow's server has only for its web UI: under /ajax-api/
// (beside the twin of the whole REST API, see httpapi.WithAjaxTwins) and
// the download path /get-artifact. Their checks and texts are MLflow's.

const (
	maxBulkRuns          = 100
	maxBulkHistory       = 25000
	maxSearchDatasetExps = 20
	maxUIUpload          = 10 << 20
)

func (a *API) uiRoutes() []httpapi.Route {
	const p = httpapi.MLflowAjaxPrefix + "mlflow/"
	js := func(fn httpapi.HandlerFunc) http.Handler { return httpapi.JSON(a.log, fn) }
	return []httpapi.Route{
		{Pattern: "GET " + p + "metrics/get-history-bulk", Handler: js(a.historyBulk), Access: httpapi.Read},
		{Pattern: "POST " + p + "experiments/search-datasets", Handler: js(a.searchDatasets), Access: httpapi.Read},
		{Pattern: "POST " + p + "runs/create-promptlab-run", Handler: js(a.createPromptlabRun), Access: httpapi.Write},
		{Pattern: "POST " + p + "upload-artifact", Handler: http.HandlerFunc(a.uiUpload), Access: httpapi.Write, Body: httpapi.BodyUpload},
		{Pattern: "GET " + p + "gateway-proxy", Handler: js(gatewayProxy), Access: httpapi.Read},
		{Pattern: "POST " + p + "gateway-proxy", Handler: js(gatewayProxy), Access: httpapi.Write},
		{Pattern: "GET /get-artifact", Handler: http.HandlerFunc(a.getArtifact), Access: httpapi.Read},
	}
}

func invalid(format string, args ...any) error { return forge.Errorf(forge.Invalid, format, args...) }

func (a *API) historyBulk(r *http.Request) (any, error) {
	q := r.URL.Query()
	runs := q["run_id"]
	if len(runs) == 0 {
		return nil, invalid("GetMetricHistoryBulk request must specify at least one run_id.")
	}
	if len(runs) > maxBulkRuns {
		return nil, invalid("GetMetricHistoryBulk request cannot specify more than %d run_ids. Received %d run_ids.", maxBulkRuns, len(runs))
	}
	if !q.Has("metric_key") {
		return nil, invalid("GetMetricHistoryBulk request must specify a metric_key.")
	}
	key := q.Get("metric_key")
	max := maxBulkHistory
	if s := q.Get("max_results"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, httpapi.InvalidParam("max_results", s, "str")
		}
		max = min(n, maxBulkHistory)
	}
	sort.Strings(runs)
	out := []api.Metric{}
	for _, id := range runs {
		ms, _, err := a.store.MetricHistory(r.Context(), id, key, max, "")
		if forge.KindOf(err) == forge.NotFound {
			continue // MLflow answers no metrics for a run it does not have
		}
		if err != nil {
			return nil, err
		}
		sort.SliceStable(ms, func(i, j int) bool {
			x, y := ms[i], ms[j]
			if x.Timestamp != y.Timestamp {
				return x.Timestamp < y.Timestamp
			}
			if x.Step != y.Step {
				return x.Step < y.Step
			}
			return x.Value < y.Value
		})
		for i := range ms {
			ms[i].RunID = id
		}
		out = append(out, metricsOut(ms)...)
	}
	return api.MetricsResponse{Metrics: out}, nil
}

// DatasetSummary is a dataset some run of an experiment used, in a context.
type DatasetSummary struct {
	ExperimentID string `json:"experiment_id"`
	Name         string `json:"name"`
	Digest       string `json:"digest"`
	Context      string `json:"context,omitempty"`
}

func (a *API) searchDatasets(r *http.Request) (any, error) {
	var req struct {
		ExperimentIDs []string `json:"experiment_ids"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.ExperimentIDs) == 0 {
		return nil, invalid("SearchDatasets request must specify at least one experiment_id.")
	}
	if len(req.ExperimentIDs) > maxSearchDatasetExps {
		return nil, invalid("SearchDatasets request cannot specify more than %d experiment_ids. Received %d experiment_ids.",
			maxSearchDatasetExps, len(req.ExperimentIDs))
	}
	out, err := a.store.SearchDatasets(r.Context(), req.ExperimentIDs)
	return map[string]any{"dataset_summaries": out}, err
}

// SearchDatasets lists the datasets the runs of the experiments logged as
// inputs, once per experiment, dataset and context, as MLflow's UI shows
// them (at most 1,000, like MLflow). Ids that are not numbers match nothing.
func (s *Store) SearchDatasets(ctx context.Context, experimentIDs []string) ([]DatasetSummary, error) {
	var ids []any
	for _, id := range experimentIDs {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			ids = append(ids, n)
		}
	}
	out := []DatasetSummary{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.db.Query(ctx, `SELECT DISTINCT r.experiment_id, i.dataset_name, i.dataset_digest, i.context
		FROM run_inputs i JOIN runs r ON r.run_uuid = i.run_uuid WHERE r.experiment_id IN (`+sqlstore.Placeholders(len(ids))+`)
		ORDER BY r.experiment_id, i.dataset_name, i.dataset_digest, i.context LIMIT 1000`, ids...)
	if err != nil {
		return nil, fmt.Errorf("search datasets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d DatasetSummary
		var exp int64
		if err := rows.Scan(&exp, &d.Name, &d.Digest, &d.Context); err != nil {
			return nil, err
		}
		d.ExperimentID = strconv.FormatInt(exp, 10)
		out = append(out, d)
	}
	return out, rows.Err()
}

type promptlabRequest struct {
	ExperimentID          string    `json:"experiment_id"`
	RunName               string    `json:"run_name"`
	Tags                  []api.KV  `json:"tags"`
	PromptTemplate        string    `json:"prompt_template"`
	PromptParameters      []api.KV  `json:"prompt_parameters"`
	ModelRoute            string    `json:"model_route"`
	ModelParameters       []api.KV  `json:"model_parameters"`
	ModelInput            string    `json:"model_input"`
	ModelOutput           string    `json:"model_output"`
	ModelOutputParameters []api.KV  `json:"model_output_parameters"`
	MLflowVersion         string    `json:"mlflow_version"`
	UserID                string    `json:"user_id"`
	StartTime             api.Int64 `json:"start_time"`
}

// createPromptlabRun records a prompt-engineering run from the UI as
// MLflow does: the run, its model parameters, route and template as
// params, its tags, and eval_results_table.json; then it is FINISHED.
// MLflow also writes a promptlab model under model/; Forge does not.
func (a *API) createPromptlabRun(r *http.Request) (any, error) {
	var req promptlabRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"experiment_id", req.ExperimentID != ""}, {"prompt_template", req.PromptTemplate != ""},
		{"prompt_parameters", len(req.PromptParameters) > 0}, {"model_route", req.ModelRoute != ""},
		{"model_input", req.ModelInput != ""}, {"mlflow_version", req.MLflowVersion != ""}} {
		if !f.set {
			return nil, invalid("CreatePromptlabRun request must specify %s.", f.name)
		}
	}
	if req.UserID == "" {
		req.UserID = "unknown"
	}
	ctx := r.Context()
	run, err := a.store.CreateRun(ctx, CreateRunOptions{ExperimentID: req.ExperimentID, UserID: req.UserID,
		Name: req.RunName, StartTime: int64(req.StartTime), Tags: kvsIn(req.Tags)})
	if err != nil {
		return nil, err
	}
	params := append(kvsIn(req.ModelParameters), KV{"model_route", req.ModelRoute}, KV{"prompt_template", req.PromptTemplate})
	tags := []KV{{"mlflow.loggedArtifacts", `[{"path": "eval_results_table.json", "type": "table"}]`},
		{"mlflow.runSourceType", "PROMPT_ENGINEERING"}}
	if err := a.store.LogBatch(ctx, run.ID, nil, params, tags); err != nil {
		return nil, err
	}
	var table struct {
		Columns []string `json:"columns"`
		Data    [][]any  `json:"data"`
	}
	row := []any{}
	for _, p := range req.PromptParameters {
		table.Columns, row = append(table.Columns, p.Key), append(row, p.Value)
	}
	table.Columns, row = append(table.Columns, "prompt", "output"), append(row, req.ModelInput, req.ModelOutput)
	for _, p := range req.ModelOutputParameters {
		table.Columns, row = append(table.Columns, p.Key), append(row, p.Value)
	}
	table.Data = [][]any{row}
	b, err := json.Marshal(table)
	if err != nil {
		return nil, err
	}
	root, err := RunArtifactRoot(run.ArtifactURI)
	if err != nil {
		return nil, err
	}
	if _, err := a.artifacts.Put(ctx, root+"/eval_results_table.json", bytes.NewReader(b)); err != nil {
		return nil, err
	}
	run, err = a.store.UpdateRun(ctx, run.ID, "FINISHED", nowMillis(), "")
	if err != nil {
		return nil, err
	}
	run, err = a.store.GetRun(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	return api.RunResponse{Run: runOut(run)}, nil
}

// uiUpload is the UI's upload of one file into a run's artifacts.
func (a *API) uiUpload(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		q := r.URL.Query()
		id := q.Get("run_uuid")
		if id == "" {
			return invalid("Request must specify run_uuid.")
		}
		p := q.Get("path")
		if p == "" {
			return invalid("Request must specify path.")
		}
		p, err := httpapi.SafePath(p)
		if err != nil {
			return err
		}
		if r.ContentLength > maxUIUpload {
			return invalid("Artifact size is too large. Max size is 10MB.")
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUIUpload))
		if err != nil {
			return invalid("Artifact size is too large. Max size is 10MB.")
		}
		if len(data) == 0 {
			return invalid("Request must specify data.")
		}
		root, err := a.runRoot(r.Context(), id)
		if err != nil {
			return err
		}
		_, err = a.artifacts.Put(r.Context(), root+"/"+p, bytes.NewReader(data))
		return err
	}()
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json") // MLflow answers an empty body
	w.WriteHeader(http.StatusOK)
}

func (a *API) runRoot(ctx context.Context, id string) (string, error) {
	run, err := a.store.GetRun(ctx, id)
	if err != nil {
		return "", err
	}
	return RunArtifactRoot(run.ArtifactURI)
}

// getArtifact is the UI's download of a run's artifact.
func (a *API) getArtifact(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("run_id")
	if id == "" {
		id = q.Get("run_uuid")
	}
	fail := func(err error) { httpapi.WriteError(w, r, a.log, err) }
	if !q.Has("path") {
		fail(httpapi.MissingParam("path"))
		return
	}
	p, err := httpapi.SafePath(q.Get("path"))
	if err != nil {
		fail(err)
		return
	}
	if id == "" {
		fail(httpapi.RunNotFound("None")) // MLflow's words for no run id
		return
	}
	root, err := a.runRoot(r.Context(), id)
	if err != nil {
		fail(err)
		return
	}
	a.artifacts.Serve(w, r, a.log, root+"/"+p)
}

// gatewayProxy answers for MLflow's AI gateway, which Forge does not run:
// the UI's listing of endpoints is empty, as MLflow's is with no gateway
// configured; a call to an endpoint is refused, saying why (MLflow answers
// it with the same empty listing, which a caller cannot tell from success).
func gatewayProxy(r *http.Request) (any, error) {
	path := r.URL.Query().Get("gateway_path")
	if r.Method == http.MethodPost {
		var req struct {
			GatewayPath string `json:"gateway_path"`
		}
		if err := httpapi.Decode(r, &req); err != nil {
			return nil, err
		}
		path = req.GatewayPath
	}
	switch path {
	case "", "api/2.0/endpoints", "api/2.0/endpoints/":
		return map[string]any{"endpoints": []any{}}, nil
	}
	return nil, forge.Errorf(forge.Unavailable, "this server has no AI gateway (MLflow's deployments server) configured: cannot proxy %q", path)
}
