package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// Routes are MLflow's model-registry API (under /api/2.0/mlflow/ and
// /ajax-api/2.0/mlflow/, as MLflow's server does) and Forge's own model
// endpoints under /api/forge/v1/models.
func (r *Registry) Routes() []httpapi.Route {
	var out []httpapi.Route
	routes := map[string]httpapi.HandlerFunc{
		"POST registered-models/create":              r.createModel,
		"POST registered-models/rename":              r.renameModel,
		"PATCH registered-models/update":             r.updateModel,
		"DELETE registered-models/delete":            r.deleteModel,
		"GET registered-models/get":                  r.getModel,
		"GET registered-models/search":               r.searchModels,
		"POST registered-models/get-latest-versions": r.latestVersions,
		"GET registered-models/get-latest-versions":  r.latestVersions,
		"POST registered-models/set-tag":             r.setModelTag,
		"DELETE registered-models/delete-tag":        r.deleteModelTag,
		"POST registered-models/alias":               r.setAlias,
		"DELETE registered-models/alias":             r.deleteAlias,
		"GET registered-models/alias":                r.getAlias,
		"POST model-versions/create":                 r.createVersion,
		"PATCH model-versions/update":                r.updateVersion,
		"DELETE model-versions/delete":               r.deleteVersion,
		"GET model-versions/get":                     r.getVersion,
		"GET model-versions/search":                  r.searchVersions,
		"GET model-versions/get-download-uri":        r.downloadURI,
		"POST model-versions/transition-stage":       r.transitionStage,
		"POST model-versions/set-tag":                r.setVersionTag,
		"DELETE model-versions/delete-tag":           r.deleteVersionTag,
	}
	for pattern, h := range routes {
		method, path, _ := strings.Cut(pattern, " ")
		// The server mounts these again under /ajax-api/ (httpapi.WithAjaxTwins).
		access := httpapi.Write
		if method == http.MethodGet || strings.HasSuffix(path, "/search") || strings.HasSuffix(path, "/get-latest-versions") {
			access = httpapi.Read
		}
		out = append(out, httpapi.Route{Pattern: method + " /api/2.0/mlflow/" + path, Handler: httpapi.JSON(r.log, h), Access: access})
	}
	watch := httpapi.JSON(r.log, r.watch)
	return append(out,
		httpapi.Route{Pattern: "POST /api/forge/v1/models/{name}/versions", Handler: httpapi.JSON(r.log, r.upload), Access: httpapi.Write, Body: httpapi.BodyUpload},
		httpapi.Route{Pattern: "GET /api/forge/v1/models/{name}/versions/{ref}", Handler: httpapi.JSON(r.log, r.detail), Access: httpapi.Read},
		httpapi.Route{Pattern: "GET /api/forge/v1/models/{name}/versions/{ref}/files/{path...}", Handler: http.HandlerFunc(r.serveFile), Access: httpapi.Read},
		httpapi.Route{Pattern: "GET /model-versions/get-artifact", Handler: http.HandlerFunc(r.getArtifact), Access: httpapi.Read},
		httpapi.Route{Pattern: "GET /api/forge/v1/models/watch", Access: httpapi.Read, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if wantsStream(req) {
				r.watchStream(w, req)
				return
			}
			watch.ServeHTTP(w, req)
		})})
}

// decode reads a write request's JSON body. MLflow clients send DELETE
// parameters either in a body or in the query string, so a DELETE with no
// body reads the query.
func decode(req *http.Request, v any) error {
	if req.Method == http.MethodDelete && len(req.URL.Query()) > 0 {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return httpapi.DecodeError(err)
		}
		if len(bytes.TrimSpace(body)) == 0 {
			m := map[string]any{}
			for k, vs := range req.URL.Query() {
				m[k] = vs[len(vs)-1]
			}
			body, _ = json.Marshal(m)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return httpapi.Decode(req, v)
}

func modelToAPI(m Model) api.RegisteredModel {
	out := api.RegisteredModel{
		Name: m.Name, CreationTimestamp: m.CreationTimestamp, LastUpdatedTimestamp: m.LastUpdatedTimestamp,
		Description: m.Description, Tags: tagsToAPI(m.Tags),
	}
	for _, v := range m.LatestVersions {
		out.LatestVersions = append(out.LatestVersions, versionToAPI(v))
	}
	for _, a := range m.Aliases {
		out.Aliases = append(out.Aliases, api.ModelAlias{Alias: a.Alias, Version: strconv.FormatInt(a.Version, 10)})
	}
	return out
}

func versionToAPI(v Version) api.ModelVersion {
	return api.ModelVersion{
		Name: v.Name, Version: strconv.FormatInt(v.Version, 10),
		CreationTimestamp: v.CreationTimestamp, LastUpdatedTimestamp: v.LastUpdatedTimestamp,
		CurrentStage: v.Stage, Description: v.Description, Source: v.Source, RunID: v.RunID,
		Status: v.Status, StatusMessage: v.StatusMessage, Tags: tagsToAPI(v.Tags), RunLink: v.RunLink,
		Aliases: v.Aliases,
	}
}

func tagsToAPI(ts []Tag) []api.ModelTag {
	var out []api.ModelTag
	for _, t := range ts {
		out = append(out, api.ModelTag{Key: t.Key, Value: t.Value})
	}
	return out
}

func tagsFromAPI(ts []api.ModelTag) []Tag {
	var out []Tag
	for _, t := range ts {
		out = append(out, Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func (r *Registry) createModel(req *http.Request) (any, error) {
	var in api.CreateRegisteredModelRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	m, err := r.CreateModel(req.Context(), in.Name, in.Description, tagsFromAPI(in.Tags))
	if err != nil {
		return nil, err
	}
	return api.RegisteredModelResponse{RegisteredModel: modelToAPI(m)}, nil
}

func (r *Registry) renameModel(req *http.Request) (any, error) {
	var in api.RenameRegisteredModelRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	m, err := r.RenameModel(req.Context(), in.Name, in.NewName)
	if err != nil {
		return nil, err
	}
	return api.RegisteredModelResponse{RegisteredModel: modelToAPI(m)}, nil
}

func (r *Registry) updateModel(req *http.Request) (any, error) {
	var in api.UpdateRegisteredModelRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	m, err := r.UpdateModel(req.Context(), in.Name, in.Description)
	if err != nil {
		return nil, err
	}
	return api.RegisteredModelResponse{RegisteredModel: modelToAPI(m)}, nil
}

func (r *Registry) deleteModel(req *http.Request) (any, error) {
	var in api.RegisteredModelNameRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	return nil, r.DeleteModel(req.Context(), in.Name)
}

func (r *Registry) getModel(req *http.Request) (any, error) {
	name := req.URL.Query().Get("name")
	if err := httpapi.Required("name", name); err != nil {
		return nil, err
	}
	m, err := r.GetModel(req.Context(), name)
	if err != nil {
		return nil, err
	}
	return api.RegisteredModelResponse{RegisteredModel: modelToAPI(m)}, nil
}

// searchQuery reads MLflow's search parameters from the query string.
func searchQuery(q url.Values) (Query, error) {
	out := Query{Filter: q.Get("filter"), OrderBy: q["order_by"], PageToken: q.Get("page_token")}
	if s := q.Get("max_results"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return out, forge.Errorf(forge.Invalid, "invalid value %q for parameter 'max_results': want an integer", s)
		}
		if n == 0 {
			n = -1 // explicit 0 is out of range, not "the default"
		}
		out.MaxResults = n
	}
	return out, nil
}

func (r *Registry) searchModels(req *http.Request) (any, error) {
	q, err := searchQuery(req.URL.Query())
	if err != nil {
		return nil, err
	}
	ms, next, err := r.SearchModels(req.Context(), q)
	if err != nil {
		return nil, err
	}
	out := api.SearchRegisteredModelsResponse{RegisteredModels: []api.RegisteredModel{}, NextPageToken: next}
	for _, m := range ms {
		out.RegisteredModels = append(out.RegisteredModels, modelToAPI(m))
	}
	return out, nil
}

func (r *Registry) latestVersions(req *http.Request) (any, error) {
	var in api.GetLatestVersionsRequest
	if req.Method == http.MethodGet {
		in.Name, in.Stages = req.URL.Query().Get("name"), req.URL.Query()["stages"]
	} else if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	vs, err := r.LatestVersions(req.Context(), in.Name, in.Stages)
	if err != nil {
		return nil, err
	}
	return versionsResponse(vs, ""), nil
}

func versionsResponse(vs []Version, next string) api.ModelVersionsResponse {
	out := api.ModelVersionsResponse{ModelVersions: []api.ModelVersion{}, NextPageToken: next}
	for _, v := range vs {
		out.ModelVersions = append(out.ModelVersions, versionToAPI(v))
	}
	return out
}

func (r *Registry) setModelTag(req *http.Request) (any, error) {
	var in api.SetRegisteredModelTagRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	return nil, r.SetModelTag(req.Context(), in.Name, in.Key, in.Value)
}

func (r *Registry) deleteModelTag(req *http.Request) (any, error) {
	var in api.DeleteRegisteredModelTagRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	return nil, r.DeleteModelTag(req.Context(), in.Name, in.Key)
}

func (r *Registry) setAlias(req *http.Request) (any, error) {
	var in api.SetRegisteredModelAliasRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	v, err := ParseVersion(string(in.Version))
	if err != nil {
		return nil, err
	}
	if in.Force {
		return nil, r.ForceAlias(req.Context(), in.Name, in.Alias, v)
	}
	return nil, r.SetAlias(req.Context(), in.Name, in.Alias, v)
}

func (r *Registry) deleteAlias(req *http.Request) (any, error) {
	var in api.DeleteRegisteredModelAliasRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	return nil, r.DeleteAlias(req.Context(), in.Name, in.Alias)
}

func (r *Registry) getAlias(req *http.Request) (any, error) {
	q := req.URL.Query()
	if err := httpapi.Required("name", q.Get("name")); err != nil {
		return nil, err
	}
	if err := httpapi.Required("alias", q.Get("alias")); err != nil {
		return nil, err
	}
	v, err := r.VersionByAlias(req.Context(), q.Get("name"), q.Get("alias"))
	if err != nil {
		return nil, err
	}
	return api.ModelVersionResponse{ModelVersion: versionToAPI(v)}, nil
}

func (r *Registry) createVersion(req *http.Request) (any, error) {
	var in api.CreateModelVersionRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if err := httpapi.Required("name", in.Name); err != nil {
		return nil, err
	}
	if err := httpapi.Required("source", in.Source); err != nil {
		return nil, err
	}
	v, err := r.CreateVersion(req.Context(), NewVersion{
		Name: in.Name, Source: in.Source, RunID: in.RunID, RunLink: in.RunLink,
		Description: in.Description, Tags: tagsFromAPI(in.Tags),
	})
	if err != nil {
		return nil, err
	}
	return api.ModelVersionResponse{ModelVersion: versionToAPI(v)}, nil
}

// nameVersion checks and converts the name and version of a request.
func nameVersion(name string, version api.VersionString) (int64, error) {
	if err := httpapi.Required("name", name); err != nil {
		return 0, err
	}
	if err := httpapi.Required("version", string(version)); err != nil {
		return 0, err
	}
	return ParseVersion(string(version))
}

func (r *Registry) updateVersion(req *http.Request) (any, error) {
	var in api.UpdateModelVersionRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	n, err := nameVersion(in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	v, err := r.UpdateVersion(req.Context(), in.Name, n, in.Description)
	if err != nil {
		return nil, err
	}
	return api.ModelVersionResponse{ModelVersion: versionToAPI(v)}, nil
}

func (r *Registry) deleteVersion(req *http.Request) (any, error) {
	var in api.ModelVersionRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	n, err := nameVersion(in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	return nil, r.DeleteVersion(req.Context(), in.Name, n)
}

func (r *Registry) getVersion(req *http.Request) (any, error) {
	q := req.URL.Query()
	n, err := nameVersion(q.Get("name"), api.VersionString(q.Get("version")))
	if err != nil {
		return nil, err
	}
	v, err := r.GetVersion(req.Context(), q.Get("name"), n)
	if err != nil {
		return nil, err
	}
	return api.ModelVersionResponse{ModelVersion: versionToAPI(v)}, nil
}

func (r *Registry) searchVersions(req *http.Request) (any, error) {
	q, err := searchQuery(req.URL.Query())
	if err != nil {
		return nil, err
	}
	vs, next, err := r.SearchVersions(req.Context(), q)
	if err != nil {
		return nil, err
	}
	return versionsResponse(vs, next), nil
}

// downloadURI answers with the version's source, as MLflow does; Forge's
// own copy of the files is at /api/forge/v1/models/{name}/versions/{v}/files/.
func (r *Registry) downloadURI(req *http.Request) (any, error) {
	q := req.URL.Query()
	n, err := nameVersion(q.Get("name"), api.VersionString(q.Get("version")))
	if err != nil {
		return nil, err
	}
	v, err := r.GetVersion(req.Context(), q.Get("name"), n)
	if err != nil {
		return nil, err
	}
	return api.DownloadURIResponse{ArtifactURI: v.Source}, nil
}

func (r *Registry) transitionStage(req *http.Request) (any, error) {
	var in api.TransitionModelVersionStageRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	n, err := nameVersion(in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	v, err := r.TransitionStage(req.Context(), in.Name, n, in.Stage, in.ArchiveExistingVersions)
	if err != nil {
		return nil, err
	}
	return api.ModelVersionResponse{ModelVersion: versionToAPI(v)}, nil
}

func (r *Registry) setVersionTag(req *http.Request) (any, error) {
	var in api.SetModelVersionTagRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	n, err := nameVersion(in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	return nil, r.SetVersionTag(req.Context(), in.Name, n, in.Key, in.Value)
}

func (r *Registry) deleteVersionTag(req *http.Request) (any, error) {
	var in api.DeleteModelVersionTagRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	n, err := nameVersion(in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	return nil, r.DeleteVersionTag(req.Context(), in.Name, n, in.Key)
}
