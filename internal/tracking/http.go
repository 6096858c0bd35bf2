package tracking

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// API serves MLflow's tracking REST API 2.0 and its artifact proxy.
type API struct {
	store     *Store
	artifacts *Artifacts
	log       *slog.Logger
	noProxy   bool
}

// DisableArtifactProxy turns the artifact proxy's routes off, as MLflow's
// --no-serve-artifacts does: they answer 503 saying so.
func (a *API) DisableArtifactProxy() { a.noProxy = true }

// NewAPI returns the tracking API over a store and an artifact root.
func NewAPI(store *Store, artifacts *Artifacts, log *slog.Logger) *API {
	return &API{store: store, artifacts: artifacts, log: log}
}

// Routes are MLflow's tracking API and artifact proxy. Searches are reads
// even when they are POSTs.
func (a *API) Routes() []httpapi.Route {
	var routes []httpapi.Route
	h := func(pattern string, fn httpapi.HandlerFunc) {
		access := httpapi.Write
		if strings.HasPrefix(pattern, "GET ") || strings.HasSuffix(pattern, "/search") {
			access = httpapi.Read
		}
		routes = append(routes, httpapi.Route{Pattern: pattern, Handler: httpapi.JSON(a.log, fn), Access: access})
	}
	// Writes to one run: a job's token gets past the edge for its own run,
	// and each handler checks the run (auth.MayWriteRun).
	run := func(pattern string, fn httpapi.HandlerFunc) {
		routes = append(routes, httpapi.Route{Pattern: pattern, Handler: httpapi.JSON(a.log, fn), Access: httpapi.WriteRun})
	}
	const p = "/api/2.0/mlflow/"
	h("POST "+p+"experiments/create", a.createExperiment)
	h("GET "+p+"experiments/get", a.getExperiment)
	h("GET "+p+"experiments/get-by-name", a.getExperimentByName)
	h("POST "+p+"experiments/search", a.searchExperiments)
	h("GET "+p+"experiments/search", a.searchExperiments)
	h("POST "+p+"experiments/delete", a.deleteExperiment)
	h("POST "+p+"experiments/restore", a.restoreExperiment)
	h("POST "+p+"experiments/update", a.updateExperiment)
	h("POST "+p+"experiments/set-experiment-tag", a.setExperimentTag)

	h("POST "+p+"runs/create", a.createRun)
	h("GET "+p+"runs/get", a.getRun)
	run("POST "+p+"runs/update", a.updateRun)
	run("POST "+p+"runs/delete", a.deleteRun)
	run("POST "+p+"runs/restore", a.restoreRun)
	run("POST "+p+"runs/log-metric", a.logMetric)
	run("POST "+p+"runs/log-parameter", a.logParam)
	run("POST "+p+"runs/log-batch", a.logBatch)
	run("POST "+p+"runs/log-model", a.logModel)
	run("POST "+p+"runs/log-inputs", a.logInputs)
	run("POST "+p+"runs/set-tag", a.setTag)
	run("POST "+p+"runs/delete-tag", a.deleteTag)
	h("POST "+p+"runs/search", a.searchRuns)
	h("GET "+p+"metrics/get-history", a.metricHistory)
	h("GET "+p+"metrics/get-history-bulk-interval", a.metricHistoryBulk)
	h("GET "+p+"artifacts/list", a.listRunArtifacts)

	const ap = "/api/2.0/mlflow-artifacts/artifacts"
	proxy := []httpapi.Route{
		{Pattern: "PUT " + ap + "/{path...}", Handler: http.HandlerFunc(a.uploadArtifact), Access: httpapi.WriteRun, Body: httpapi.BodyUpload},
		{Pattern: "GET " + ap + "/{path...}", Handler: http.HandlerFunc(a.downloadArtifact), Access: httpapi.Read},
		{Pattern: "DELETE " + ap + "/{path...}", Handler: httpapi.JSON(a.log, a.deleteArtifact), Access: httpapi.WriteRun},
		{Pattern: "GET " + ap, Handler: httpapi.JSON(a.log, a.listArtifacts), Access: httpapi.Read},
	}
	for i := range proxy {
		if a.noProxy {
			proxy[i].Handler = proxyOff
		}
	}
	routes = append(routes, proxy...)
	routes = append(routes, a.bucketRoutes()...)
	routes = append(routes, a.rangeRoutes()...)
	routes = append(routes, a.loggedModelRoutes()...)
	return append(routes, a.uiRoutes()...)
}

// proxyOff answers for the artifact proxy when it is off, in MLflow's words.
var proxyOff = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, "Endpoint: %s disabled due to the mlflow server running with `--no-serve-artifacts`. "+
		"To enable artifacts server functionality, run `mlflow server` with `--serve-artifacts`", r.URL.Path)
})

func runID(id, uuid string) (string, error) {
	if id == "" {
		id = uuid
	}
	return id, httpapi.Required("run_id", id)
}

func (a *API) createExperiment(r *http.Request) (any, error) {
	var req api.CreateExperimentRequest
	if err := httpapi.BindChecked(r, &req, createExperimentSchema...); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", req.Name); err != nil {
		return nil, err
	}
	id, err := a.store.CreateExperiment(r.Context(), req.Name, req.ArtifactLocation, kvsIn(req.Tags))
	if err != nil {
		return nil, err
	}
	return api.CreateExperimentResponse{ExperimentID: id}, nil
}

func (a *API) getExperiment(r *http.Request) (any, error) {
	var req api.ExperimentIDRequest
	if err := httpapi.BindChecked(r, &req, experimentIDSchema...); err != nil {
		return nil, err
	}
	if err := httpapi.Required("experiment_id", req.ExperimentID); err != nil {
		return nil, err
	}
	e, err := a.store.GetExperiment(r.Context(), req.ExperimentID)
	if err != nil {
		return nil, err
	}
	return api.ExperimentResponse{Experiment: experimentOut(e)}, nil
}

func (a *API) getExperimentByName(r *http.Request) (any, error) {
	var req api.GetExperimentByNameRequest
	if err := httpapi.BindChecked(r, &req, byNameSchema...); err != nil {
		return nil, err
	}
	if err := httpapi.Required("experiment_name", req.ExperimentName); err != nil {
		return nil, err
	}
	e, err := a.store.GetExperimentByName(r.Context(), req.ExperimentName)
	if err != nil {
		return nil, err
	}
	return api.ExperimentResponse{Experiment: experimentOut(e)}, nil
}

func (a *API) searchExperiments(r *http.Request) (any, error) {
	var req api.SearchExperimentsRequest
	if err := httpapi.BindChecked(r, &req, searchExpSchema...); err != nil {
		return nil, err
	}
	view, err := ParseViewType(req.ViewType)
	if err != nil {
		return nil, err
	}
	exps, next, err := a.store.SearchExperiments(r.Context(), Query{Filter: req.Filter, OrderBy: req.OrderBy,
		MaxResults: int(req.MaxResults), PageToken: req.PageToken, View: view})
	if err != nil {
		return nil, err
	}
	out := api.SearchExperimentsResponse{Experiments: []api.Experiment{}, NextPageToken: next}
	for _, e := range exps {
		out.Experiments = append(out.Experiments, experimentOut(e))
	}
	return out, nil
}

func (a *API) experimentID(r *http.Request) (string, error) {
	var req api.ExperimentIDRequest
	if err := httpapi.BindChecked(r, &req, experimentIDSchema...); err != nil {
		return "", err
	}
	return req.ExperimentID, httpapi.Required("experiment_id", req.ExperimentID)
}

func (a *API) deleteExperiment(r *http.Request) (any, error) {
	id, err := a.experimentID(r)
	if err != nil {
		return nil, err
	}
	return nil, a.store.DeleteExperiment(r.Context(), id)
}

func (a *API) restoreExperiment(r *http.Request) (any, error) {
	id, err := a.experimentID(r)
	if err != nil {
		return nil, err
	}
	return nil, a.store.RestoreExperiment(r.Context(), id)
}

func (a *API) updateExperiment(r *http.Request) (any, error) {
	var req api.UpdateExperimentRequest
	if err := httpapi.BindChecked(r, &req, updateExpSchema...); err != nil {
		return nil, err
	}
	if err := httpapi.Required("experiment_id", req.ExperimentID); err != nil {
		return nil, err
	}
	return nil, a.store.RenameExperiment(r.Context(), req.ExperimentID, req.NewName)
}

func (a *API) setExperimentTag(r *http.Request) (any, error) {
	var req api.SetExperimentTagRequest
	if err := httpapi.BindChecked(r, &req, expTagSchema...); err != nil {
		return nil, err
	}
	if err := httpapi.Required("experiment_id", req.ExperimentID); err != nil {
		return nil, err
	}
	if err := httpapi.Required("key", req.Key); err != nil {
		return nil, err
	}
	return nil, a.store.SetExperimentTag(r.Context(), req.ExperimentID, KV{req.Key, req.Value})
}

func (a *API) createRun(r *http.Request) (any, error) {
	var req api.CreateRunRequest
	if err := httpapi.BindChecked(r, &req, createRunSchema...); err != nil {
		return nil, err
	}
	run, err := a.store.CreateRun(r.Context(), CreateRunOptions{ExperimentID: req.ExperimentID, UserID: req.UserID,
		Name: req.RunName, StartTime: int64(req.StartTime), Tags: kvsIn(req.Tags)})
	if err != nil {
		return nil, err
	}
	return api.RunResponse{Run: runOut(run)}, nil
}

func (a *API) getRun(r *http.Request) (any, error) {
	var req api.RunIDRequest
	if err := httpapi.BindChecked(r, &req, runIDSchema...); err != nil {
		return nil, err
	}
	id, err := runID(req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	run, err := a.store.GetRun(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return api.RunResponse{Run: runOut(run)}, nil
}

func (a *API) updateRun(r *http.Request) (any, error) {
	var req api.UpdateRunRequest
	if err := httpapi.BindChecked(r, &req, updateRunSchema...); err != nil {
		return nil, err
	}
	id, err := writeRunID(r, req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	run, err := a.store.UpdateRun(r.Context(), id, req.Status, int64(req.EndTime), req.RunName)
	if err != nil {
		return nil, err
	}
	return api.UpdateRunResponse{RunInfo: runOut(run).Info}, nil
}

// writeRunIDOnly reads a body that names only a run to write.
func (a *API) writeRunIDOnly(r *http.Request) (string, error) {
	var req api.RunIDRequest
	if err := httpapi.BindChecked(r, &req, runIDSchema...); err != nil {
		return "", err
	}
	return writeRunID(r, req.RunID, req.RunUUID)
}

func (a *API) deleteRun(r *http.Request) (any, error) {
	id, err := a.writeRunIDOnly(r)
	if err != nil {
		return nil, err
	}
	return nil, a.store.DeleteRun(r.Context(), id)
}

func (a *API) restoreRun(r *http.Request) (any, error) {
	id, err := a.writeRunIDOnly(r)
	if err != nil {
		return nil, err
	}
	return nil, a.store.RestoreRun(r.Context(), id)
}

func (a *API) logMetric(r *http.Request) (any, error) {
	var req api.LogMetricRequest
	if err := httpapi.BindChecked(r, &req, logMetricSchema...); err != nil {
		return nil, err
	}
	id, err := writeRunID(r, req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	if err := httpapi.Required("key", req.Key); err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, httpapi.MissingParam("value")
	}
	m := Metric{Key: req.Key, Value: float64(*req.Value), Timestamp: int64(req.Timestamp), Step: int64(req.Step)}
	if m.Timestamp == 0 {
		m.Timestamp = nowMillis()
	}
	return nil, a.store.LogBatch(r.Context(), id, []Metric{m}, nil, nil)
}

func (a *API) logParam(r *http.Request) (any, error) {
	var req api.LogParamRequest
	if err := httpapi.BindChecked(r, &req, keyValueSchema...); err != nil {
		return nil, err
	}
	id, err := writeRunID(r, req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	if err := httpapi.Required("key", req.Key); err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, httpapi.MissingParam("value")
	}
	return nil, a.store.LogBatch(r.Context(), id, nil, []KV{{req.Key, *req.Value}}, nil)
}

func (a *API) setTag(r *http.Request) (any, error) {
	var req api.SetTagRequest
	if err := httpapi.BindChecked(r, &req, keyValueSchema...); err != nil {
		return nil, err
	}
	id, err := writeRunID(r, req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	if err := httpapi.Required("key", req.Key); err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, httpapi.MissingParam("value")
	}
	return nil, a.store.LogBatch(r.Context(), id, nil, nil, []KV{{req.Key, *req.Value}})
}

func (a *API) deleteTag(r *http.Request) (any, error) {
	var req api.DeleteTagRequest
	if err := httpapi.BindChecked(r, &req, deleteTagSchema...); err != nil {
		return nil, err
	}
	if _, err := writeRunID(r, req.RunID, ""); err != nil {
		return nil, err
	}
	if err := httpapi.Required("key", req.Key); err != nil {
		return nil, err
	}
	return nil, a.store.DeleteTag(r.Context(), req.RunID, req.Key)
}

func (a *API) logBatch(r *http.Request) (any, error) {
	var req api.LogBatchRequest
	if err := httpapi.BindChecked(r, &req, logBatchSchema...); err != nil {
		return nil, err
	}
	if _, err := writeRunID(r, req.RunID, ""); err != nil {
		return nil, err
	}
	now := nowMillis()
	metrics := make([]Metric, len(req.Metrics))
	for i, m := range req.Metrics {
		metrics[i] = Metric{Key: m.Key, Value: float64(m.Value), Timestamp: int64(m.Timestamp), Step: int64(m.Step)}
		if metrics[i].Timestamp == 0 {
			metrics[i].Timestamp = now
		}
	}
	return nil, a.store.LogBatch(r.Context(), req.RunID, metrics, kvsIn(req.Params), kvsIn(req.Tags))
}

func (a *API) logModel(r *http.Request) (any, error) {
	var req api.LogModelRequest
	if err := httpapi.BindChecked(r, &req, logModelSchema...); err != nil {
		return nil, err
	}
	if _, err := writeRunID(r, req.RunID, ""); err != nil {
		return nil, err
	}
	if err := httpapi.Required("model_json", req.ModelJSON); err != nil {
		return nil, err
	}
	return nil, a.store.LogModel(r.Context(), req.RunID, req.ModelJSON)
}

func (a *API) logInputs(r *http.Request) (any, error) {
	var req api.LogInputsRequest
	if err := httpapi.BindChecked(r, &req, logInputsSchema...); err != nil {
		return nil, err
	}
	if _, err := writeRunID(r, req.RunID, ""); err != nil {
		return nil, err
	}
	inputs := make([]DatasetInput, len(req.Datasets))
	for i, d := range req.Datasets {
		inputs[i] = DatasetInput{Name: d.Dataset.Name, Digest: d.Dataset.Digest, SourceType: d.Dataset.SourceType,
			Source: d.Dataset.Source, Schema: d.Dataset.Schema, Profile: d.Dataset.Profile, Tags: kvsIn(d.Tags)}
	}
	return nil, a.store.LogInputs(r.Context(), req.RunID, inputs)
}

func (a *API) searchRuns(r *http.Request) (any, error) {
	var req api.SearchRunsRequest
	if err := httpapi.BindChecked(r, &req, searchRunsSchema...); err != nil {
		return nil, err
	}
	view, err := ParseViewType(req.RunViewType)
	if err != nil {
		return nil, err
	}
	runs, next, err := a.store.SearchRuns(r.Context(), Query{ExperimentIDs: req.ExperimentIDs, Filter: req.Filter,
		OrderBy: req.OrderBy, MaxResults: int(req.MaxResults), PageToken: req.PageToken, View: view})
	if err != nil {
		return nil, err
	}
	out := api.SearchRunsResponse{NextPageToken: next}
	for _, run := range runs {
		out.Runs = append(out.Runs, runOut(run))
	}
	return out, nil
}

func (a *API) metricHistory(r *http.Request) (any, error) {
	var req api.GetMetricHistoryRequest
	if err := httpapi.BindChecked(r, &req, historySchema...); err != nil {
		return nil, err
	}
	id, err := runID(req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	if err := httpapi.Required("metric_key", req.MetricKey); err != nil {
		return nil, err
	}
	ms, next, err := a.store.MetricHistory(r.Context(), id, req.MetricKey, int(req.MaxResults), req.PageToken)
	if err != nil {
		return nil, err
	}
	return api.MetricsResponse{Metrics: metricsOut(ms), NextPageToken: next}, nil
}

func (a *API) metricHistoryBulk(r *http.Request) (any, error) {
	var req api.GetMetricHistoryBulkIntervalRequest
	if err := httpapi.BindChecked(r, &req, bulkSchema...); err != nil {
		return nil, err
	}
	if err := httpapi.Required("metric_key", req.MetricKey); err != nil {
		return nil, err
	}
	ms, err := a.store.MetricHistoryBulkInterval(r.Context(), req.RunIDs, req.MetricKey, int64(req.StartStep), int64(req.EndStep), int(req.MaxResults))
	if err != nil {
		return nil, err
	}
	return api.MetricsResponse{Metrics: metricsOut(ms)}, nil
}

func (a *API) listRunArtifacts(r *http.Request) (any, error) {
	var req api.ListArtifactsRequest
	if err := httpapi.BindChecked(r, &req, listArtifactsSchema...); err != nil {
		return nil, err
	}
	id, err := runID(req.RunID, req.RunUUID)
	if err != nil {
		return nil, err
	}
	run, err := a.store.GetRun(r.Context(), id)
	if err != nil {
		return nil, err
	}
	root, err := RunArtifactRoot(run.ArtifactURI)
	if err != nil {
		return nil, err
	}
	rel, err := CleanPath(req.Path)
	if err != nil {
		return nil, err
	}
	dir := root
	if rel != "" {
		dir = root + "/" + rel
	}
	files, err := a.artifacts.List(r.Context(), dir)
	if err != nil {
		return nil, err
	}
	out := api.ListArtifactsResponse{RootURI: run.ArtifactURI}
	for _, f := range files {
		p := f.Path
		if rel != "" {
			p = rel + "/" + f.Path
		}
		out.Files = append(out.Files, api.FileInfo{Path: p, IsDir: f.IsDir, FileSize: f.Size})
	}
	return out, nil
}

func (a *API) uploadArtifact(w http.ResponseWriter, r *http.Request) {
	err := a.mayWriteArtifact(r, r.PathValue("path"))
	if err == nil {
		_, err = a.artifacts.Put(r.Context(), r.PathValue("path"), r.Body)
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = httpapi.DecodeError(err) // a body over the limit is the client's fault
	}
	if err != nil {
		httpapi.WriteError(w, r, a.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *API) downloadArtifact(w http.ResponseWriter, r *http.Request) {
	a.artifacts.Serve(w, r, a.log, r.PathValue("path"))
}

func (a *API) deleteArtifact(r *http.Request) (any, error) {
	if err := a.mayWriteArtifact(r, r.PathValue("path")); err != nil {
		return nil, err
	}
	return nil, a.artifacts.Delete(r.Context(), r.PathValue("path"))
}

func (a *API) listArtifacts(r *http.Request) (any, error) {
	p := r.URL.Query().Get("path")
	files, err := a.artifacts.List(r.Context(), p)
	if err != nil {
		return nil, err
	}
	out := api.ListArtifactsResponse{}
	for _, f := range files {
		out.Files = append(out.Files, api.FileInfo{Path: f.Path, IsDir: f.IsDir, FileSize: f.Size})
	}
	return out, nil
}

func kvsIn(in []api.KV) []KV {
	out := make([]KV, len(in))
	for i, kv := range in {
		out[i] = KV{kv.Key, kv.Value}
	}
	return out
}

func kvsOut(in []KV) []api.KV {
	if len(in) == 0 {
		return nil
	}
	out := make([]api.KV, len(in))
	for i, kv := range in {
		out[i] = api.KV{Key: kv.Key, Value: kv.Value}
	}
	return out
}

func experimentOut(e Experiment) api.Experiment {
	return api.Experiment{ExperimentID: e.ID, Name: e.Name, ArtifactLocation: e.ArtifactLocation,
		LifecycleStage: e.LifecycleStage, LastUpdateTime: e.LastUpdateTime, CreationTime: e.CreationTime, Tags: kvsOut(e.Tags)}
}

func metricsOut(ms []Metric) []api.Metric {
	out := make([]api.Metric, len(ms))
	for i, m := range ms {
		out[i] = api.Metric{Key: m.Key, Value: api.Float(m.Value), Timestamp: api.Int64(m.Timestamp), Step: api.Int64(m.Step), RunID: m.RunID}
	}
	return out
}

func runOut(r Run) api.Run {
	out := api.Run{
		Info: api.RunInfo{RunID: r.ID, RunUUID: r.ID, RunName: r.Name, ExperimentID: r.ExperimentID, UserID: r.UserID,
			Status: r.Status, StartTime: r.StartTime, EndTime: r.EndTime, ArtifactURI: r.ArtifactURI, LifecycleStage: r.LifecycleStage},
		Data: api.RunData{Params: kvsOut(r.Params), Tags: kvsOut(r.Tags)},
	}
	if len(r.Metrics) > 0 {
		out.Data.Metrics = metricsOut(r.Metrics)
	}
	for _, in := range r.Inputs {
		out.Inputs.DatasetInputs = append(out.Inputs.DatasetInputs, api.DatasetInput{Tags: kvsOut(in.Tags),
			Dataset: api.InputDataset{Name: in.Name, Digest: in.Digest, SourceType: in.SourceType, Source: in.Source, Schema: in.Schema, Profile: in.Profile}})
	}
	return out
}

func nowMillis() int64 { return sqlstore.Now() }
