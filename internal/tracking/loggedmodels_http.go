package tracking

import (
	"encoding/json"
	"net/http"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// The wire shapes of MLflow 3's logged-model API.
type (
	loggedModelInfo struct {
		ModelID                string   `json:"model_id"`
		ExperimentID           string   `json:"experiment_id"`
		Name                   string   `json:"name"`
		CreationTimestampMs    int64    `json:"creation_timestamp_ms"`
		LastUpdatedTimestampMs int64    `json:"last_updated_timestamp_ms"`
		ArtifactURI            string   `json:"artifact_uri"`
		Status                 string   `json:"status"`
		CreatorID              string   `json:"creator_id,omitempty"`
		ModelType              string   `json:"model_type,omitempty"`
		SourceRunID            string   `json:"source_run_id,omitempty"`
		StatusMessage          string   `json:"status_message,omitempty"`
		Tags                   []api.KV `json:"tags,omitempty"`
	}
	loggedModelData struct {
		Params  []api.KV     `json:"params,omitempty"`
		Metrics []api.Metric `json:"metrics,omitempty"`
	}
	loggedModelJSON struct {
		Info loggedModelInfo `json:"info"`
		Data loggedModelData `json:"data"`
	}
	loggedModelResponse struct {
		Model loggedModelJSON `json:"model"`
	}
)

func loggedModelOut(m LoggedModel) loggedModelJSON {
	return loggedModelJSON{
		Info: loggedModelInfo{ModelID: m.ID, ExperimentID: m.ExperimentID, Name: m.Name, CreationTimestampMs: m.CreationTime,
			LastUpdatedTimestampMs: m.LastUpdatedTime, ArtifactURI: m.ArtifactURI, Status: m.Status, CreatorID: m.CreatorID,
			ModelType: m.ModelType, SourceRunID: m.SourceRunID, StatusMessage: m.StatusMessage, Tags: kvsOut(m.Tags)},
		Data: loggedModelData{Params: kvsOut(m.Params)},
	}
}

func (a *API) loggedModelRoutes() []httpapi.Route {
	const p = "/api/2.0/mlflow/logged-models"
	js := func(fn httpapi.HandlerFunc) http.Handler { return httpapi.JSON(a.log, fn) }
	return []httpapi.Route{
		{Pattern: "POST " + p, Handler: js(a.createLoggedModel), Access: httpapi.Write},
		{Pattern: "POST " + p + "/search", Handler: js(a.searchLoggedModels), Access: httpapi.Read},
		{Pattern: "GET " + p + "/{model_id}", Handler: js(a.getLoggedModel), Access: httpapi.Read},
		{Pattern: "PATCH " + p + "/{model_id}", Handler: js(a.finalizeLoggedModel), Access: httpapi.Write},
		{Pattern: "DELETE " + p + "/{model_id}", Handler: js(a.deleteLoggedModel), Access: httpapi.Write},
		{Pattern: "PATCH " + p + "/{model_id}/tags", Handler: js(a.setLoggedModelTags), Access: httpapi.Write},
		{Pattern: "DELETE " + p + "/{model_id}/tags/{tag_key}", Handler: js(a.deleteLoggedModelTag), Access: httpapi.Write},
		{Pattern: "POST " + p + "/{model_id}/params", Handler: js(a.logLoggedModelParams), Access: httpapi.Write},
		{Pattern: "GET " + p + "/{model_id}/artifacts/directories", Handler: js(a.listLoggedModelArtifacts), Access: httpapi.Read},
		{Pattern: "GET " + p + "/{model_id}/artifacts/files", Handler: http.HandlerFunc(a.getLoggedModelArtifact), Access: httpapi.Read},
		{Pattern: "POST /api/2.0/mlflow/runs/log-outputs", Handler: js(a.logOutputs), Access: httpapi.Write},
	}
}

func (a *API) createLoggedModel(r *http.Request) (any, error) {
	var req struct {
		ExperimentID string   `json:"experiment_id"`
		Name         string   `json:"name"`
		ModelType    string   `json:"model_type"`
		SourceRunID  string   `json:"source_run_id"`
		Params       []api.KV `json:"params"`
		Tags         []api.KV `json:"tags"`
	}
	if err := httpapi.BindChecked(r, &req, reqd("experiment_id"), str("name"), str("model_type"), str("source_run_id"),
		array("params"), array("tags")); err != nil {
		return nil, err
	}
	m, err := a.store.CreateLoggedModel(r.Context(), NewLoggedModel{ExperimentID: req.ExperimentID, Name: req.Name,
		ModelType: req.ModelType, SourceRunID: req.SourceRunID, Tags: kvsIn(req.Tags), Params: kvsIn(req.Params)})
	if err != nil {
		return nil, err
	}
	return loggedModelResponse{loggedModelOut(m)}, nil
}

func (a *API) getLoggedModel(r *http.Request) (any, error) {
	m, err := a.store.GetLoggedModel(r.Context(), r.PathValue("model_id"))
	if err != nil {
		return nil, err
	}
	return loggedModelResponse{loggedModelOut(m)}, nil
}

func (a *API) finalizeLoggedModel(r *http.Request) (any, error) {
	var req struct {
		Status string `json:"status"`
	}
	if err := httpapi.BindChecked(r, &req, reqd("status")); err != nil {
		return nil, err
	}
	m, err := a.store.FinalizeLoggedModel(r.Context(), r.PathValue("model_id"), req.Status)
	if err != nil {
		return nil, err
	}
	return loggedModelResponse{loggedModelOut(m)}, nil
}

func (a *API) deleteLoggedModel(r *http.Request) (any, error) {
	return nil, a.store.DeleteLoggedModel(r.Context(), r.PathValue("model_id"))
}

func (a *API) setLoggedModelTags(r *http.Request) (any, error) {
	var req struct {
		Tags []api.KV `json:"tags"`
	}
	if err := httpapi.BindChecked(r, &req, array("tags")); err != nil {
		return nil, err
	}
	return nil, a.store.SetLoggedModelTags(r.Context(), r.PathValue("model_id"), kvsIn(req.Tags))
}

func (a *API) deleteLoggedModelTag(r *http.Request) (any, error) {
	return nil, a.store.DeleteLoggedModelTag(r.Context(), r.PathValue("model_id"), r.PathValue("tag_key"))
}

func (a *API) logLoggedModelParams(r *http.Request) (any, error) {
	var req struct {
		Params []api.KV `json:"params"`
	}
	if err := httpapi.BindChecked(r, &req, array("params")); err != nil {
		return nil, err
	}
	return nil, a.store.LogLoggedModelParams(r.Context(), r.PathValue("model_id"), kvsIn(req.Params))
}

func (a *API) searchLoggedModels(r *http.Request) (any, error) {
	var req struct {
		ExperimentIDs []string           `json:"experiment_ids"`
		Filter        string             `json:"filter"`
		Datasets      []json.RawMessage  `json:"datasets"`
		MaxResults    api.Int64          `json:"max_results"`
		OrderBy       []loggedModelOrder `json:"order_by"`
		PageToken     string             `json:"page_token"`
	}
	if err := httpapi.BindChecked(r, &req, array("experiment_ids"), str("filter"), array("datasets"), num("max_results"),
		array("order_by"), str("page_token")); err != nil {
		return nil, err
	}
	if len(req.Datasets) > 0 {
		return nil, forge.Errorf(forge.Invalid, "invalid datasets: datasets select logged models by their metrics' datasets, and %s", noModelMetrics)
	}
	order, err := orderClauses(req.OrderBy)
	if err != nil {
		return nil, err
	}
	ms, next, err := a.store.SearchLoggedModels(r.Context(), Query{ExperimentIDs: req.ExperimentIDs, Filter: req.Filter,
		OrderBy: order, MaxResults: int(req.MaxResults), PageToken: req.PageToken})
	if err != nil {
		return nil, err
	}
	out := struct {
		Models        []loggedModelJSON `json:"models"`
		NextPageToken string            `json:"next_page_token,omitempty"`
	}{Models: []loggedModelJSON{}, NextPageToken: next}
	for _, m := range ms {
		out.Models = append(out.Models, loggedModelOut(m))
	}
	return out, nil
}

// modelRoot is where a logged model's files are under the proxy.
func (a *API) modelRoot(r *http.Request) (string, error) {
	m, err := a.store.GetLoggedModel(r.Context(), r.PathValue("model_id"))
	if err != nil {
		return "", err
	}
	return RunArtifactRoot(m.ArtifactURI)
}

func (a *API) listLoggedModelArtifacts(r *http.Request) (any, error) {
	root, err := a.modelRoot(r)
	if err != nil {
		return nil, err
	}
	rel, err := httpapi.SafePath(r.URL.Query().Get("artifact_directory_path"))
	if err != nil {
		return nil, err
	}
	if rel, err = CleanPath(rel); err != nil {
		return nil, err
	}
	dir := root
	if rel != "" {
		dir += "/" + rel
	}
	files, err := a.artifacts.List(r.Context(), dir)
	if err != nil {
		return nil, err
	}
	out := api.ListArtifactsResponse{}
	for _, f := range files {
		p := f.Path
		if rel != "" {
			p = rel + "/" + p
		}
		out.Files = append(out.Files, api.FileInfo{Path: p, IsDir: f.IsDir, FileSize: f.Size})
	}
	return out, nil
}

func (a *API) getLoggedModelArtifact(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) { httpapi.WriteError(w, r, a.log, err) }
	root, err := a.modelRoot(r)
	if err != nil {
		fail(err)
		return
	}
	q := r.URL.Query()
	if !q.Has("artifact_file_path") {
		fail(httpapi.MissingParam("artifact_file_path"))
		return
	}
	p, err := httpapi.SafePath(q.Get("artifact_file_path"))
	if err != nil {
		fail(err)
		return
	}
	a.artifacts.Serve(w, r, a.log, root+"/"+p)
}

func (a *API) logOutputs(r *http.Request) (any, error) {
	var req struct {
		RunID  string `json:"run_id"`
		Models []struct {
			ModelID string    `json:"model_id"`
			Step    api.Int64 `json:"step"`
		} `json:"models"`
	}
	if err := httpapi.BindChecked(r, &req, reqd("run_id"), array("models")); err != nil {
		return nil, err
	}
	ids, steps := make([]string, len(req.Models)), make([]int64, len(req.Models))
	for i, m := range req.Models {
		if m.ModelID == "" {
			return nil, httpapi.MissingParam("model_id")
		}
		ids[i], steps[i] = m.ModelID, int64(m.Step)
	}
	return nil, a.store.LogOutputs(r.Context(), req.RunID, ids, steps)
}
