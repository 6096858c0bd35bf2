package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The MLflow model-registry wire types, with MLflow's field names.

// ModelTag is a tag of a registered model or a model version.
type ModelTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ModelAlias is an alias of a registered model.
type ModelAlias struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

// RegisteredModel is MLflow's registered_model.
type RegisteredModel struct {
	Name                 string         `json:"name"`
	CreationTimestamp    int64          `json:"creation_timestamp"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp"`
	Description          string         `json:"description,omitempty"`
	LatestVersions       []ModelVersion `json:"latest_versions,omitempty"`
	Tags                 []ModelTag     `json:"tags,omitempty"`
	Aliases              []ModelAlias   `json:"aliases,omitempty"`
}

// ModelVersion is MLflow's model_version. Version is a string, as in MLflow.
type ModelVersion struct {
	Name                 string     `json:"name"`
	Version              string     `json:"version"`
	CreationTimestamp    int64      `json:"creation_timestamp"`
	LastUpdatedTimestamp int64      `json:"last_updated_timestamp"`
	CurrentStage         string     `json:"current_stage"`
	Description          string     `json:"description,omitempty"`
	Source               string     `json:"source"`
	RunID                string     `json:"run_id,omitempty"`
	Status               string     `json:"status"`
	StatusMessage        string     `json:"status_message,omitempty"`
	Tags                 []ModelTag `json:"tags,omitempty"`
	RunLink              string     `json:"run_link,omitempty"`
	Aliases              []string   `json:"aliases,omitempty"`
}

// VersionString is a model version in a request: MLflow sends a string,
// and a number is accepted too.
type VersionString string

func (v *VersionString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = VersionString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("version must be a string or a number, got %s", b)
	}
	*v = VersionString(n.String())
	return nil
}

// Requests of the MLflow model-registry API.
type (
	CreateRegisteredModelRequest struct {
		Name        string     `json:"name"`
		Tags        []ModelTag `json:"tags,omitempty"`
		Description string     `json:"description,omitempty"`
	}
	RenameRegisteredModelRequest struct {
		Name    string `json:"name"`
		NewName string `json:"new_name"`
	}
	UpdateRegisteredModelRequest struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	RegisteredModelNameRequest struct {
		Name string `json:"name"`
	}
	GetLatestVersionsRequest struct {
		Name   string   `json:"name"`
		Stages []string `json:"stages,omitempty"`
	}
	SetRegisteredModelTagRequest struct {
		Name  string `json:"name"`
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	DeleteRegisteredModelTagRequest struct {
		Name string `json:"name"`
		Key  string `json:"key"`
	}
	SetRegisteredModelAliasRequest struct {
		Name    string        `json:"name"`
		Alias   string        `json:"alias"`
		Version VersionString `json:"version"`
		// Force (Forge's) moves the alias even to a version with another
		// signature, which is otherwise refused (409).
		Force bool `json:"force,omitempty"`
	}
	DeleteRegisteredModelAliasRequest struct {
		Name  string `json:"name"`
		Alias string `json:"alias"`
	}
	CreateModelVersionRequest struct {
		Name        string     `json:"name"`
		Source      string     `json:"source"`
		RunID       string     `json:"run_id,omitempty"`
		Tags        []ModelTag `json:"tags,omitempty"`
		RunLink     string     `json:"run_link,omitempty"`
		Description string     `json:"description,omitempty"`
	}
	UpdateModelVersionRequest struct {
		Name        string        `json:"name"`
		Version     VersionString `json:"version"`
		Description string        `json:"description"`
	}
	ModelVersionRequest struct {
		Name    string        `json:"name"`
		Version VersionString `json:"version"`
	}
	TransitionModelVersionStageRequest struct {
		Name                    string        `json:"name"`
		Version                 VersionString `json:"version"`
		Stage                   string        `json:"stage"`
		ArchiveExistingVersions bool          `json:"archive_existing_versions"`
	}
	SetModelVersionTagRequest struct {
		Name    string        `json:"name"`
		Version VersionString `json:"version"`
		Key     string        `json:"key"`
		Value   string        `json:"value"`
	}
	DeleteModelVersionTagRequest struct {
		Name    string        `json:"name"`
		Version VersionString `json:"version"`
		Key     string        `json:"key"`
	}
)

// Responses of the MLflow model-registry API.
type (
	RegisteredModelResponse struct {
		RegisteredModel RegisteredModel `json:"registered_model"`
	}
	SearchRegisteredModelsResponse struct {
		RegisteredModels []RegisteredModel `json:"registered_models"`
		NextPageToken    string            `json:"next_page_token,omitempty"`
	}
	ModelVersionResponse struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	ModelVersionsResponse struct {
		ModelVersions []ModelVersion `json:"model_versions"`
		NextPageToken string         `json:"next_page_token,omitempty"`
	}
	DownloadURIResponse struct {
		ArtifactURI string `json:"artifact_uri"`
	}
)

// Forge's own registry types.

// TensorSpec is one input or output of a model, in Open Inference Protocol
// terms; -1 in Shape is a dynamic dimension.
type TensorSpec struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelSignature is what a version takes and returns, and what its format
// records about itself.
type ModelSignature struct {
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
	ONNX    *struct {
		IRVersion int64  `json:"ir_version"`
		Opset     int64  `json:"opset"`
		Producer  string `json:"producer,omitempty"`
	} `json:"onnx,omitempty"`
	XGBoost *struct {
		Objective   string `json:"objective"`
		NumFeatures int    `json:"num_features"`
		NumClasses  int    `json:"num_classes"`
		NumTrees    int    `json:"num_trees"`
		Version     string `json:"xgboost_version,omitempty"`
	} `json:"xgboost,omitempty"`
}

// ModelFile is a file of a model version, stored as a blob.
type ModelFile struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// ModelLineage is where a version came from.
type ModelLineage struct {
	RunID   string `json:"run_id,omitempty"`
	Source  string `json:"source"`
	RunLink string `json:"run_link,omitempty"`
}

// ModelVersionDetail is GET /api/forge/v1/models/{name}/versions/{ref}: the
// MLflow view of a version plus what Forge knows of its files.
type ModelVersionDetail struct {
	ModelVersion ModelVersion    `json:"model_version"`
	Format       string          `json:"format"`
	ModelFile    string          `json:"model_file,omitempty"`
	Signature    *ModelSignature `json:"signature,omitempty"`
	Files        []ModelFile     `json:"files"`
	Lineage      ModelLineage    `json:"lineage"`
}

// RegisterFromRunRequest is POST /api/forge/v1/models/{name}/versions with a
// JSON body: register a run's artifacts at Path.
type RegisterFromRunRequest struct {
	RunID       string `json:"run_id"`
	Path        string `json:"path"`
	Format      string `json:"format,omitempty"`
	Description string `json:"description,omitempty"`
}

// ModelEvent is one change in the registry.
type ModelEvent struct {
	Seq       int64  `json:"seq"`
	Type      string `json:"type"` // version_created, version_deleted, alias_set, alias_deleted, stage_changed, model_renamed, model_deleted
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
	Alias     string `json:"alias,omitempty"`
	Stage     string `json:"stage,omitempty"`
	OldName   string `json:"old_name,omitempty"`
	Timestamp int64  `json:"timestamp"`
}

// WatchModelsResponse is GET /api/forge/v1/models/watch: the events after
// the asked sequence number, and the number to ask from next.
type WatchModelsResponse struct {
	Events  []ModelEvent `json:"events"`
	LastSeq int64        `json:"last_seq"`
}

const (
	mlflowRegistry = "/api/2.0/mlflow/"
	forgeModels    = "/api/forge/v1/models"
)

// CreateRegisteredModel registers a model name.
func (c *Client) CreateRegisteredModel(ctx context.Context, req CreateRegisteredModelRequest) (RegisteredModel, error) {
	var out RegisteredModelResponse
	err := c.Do(ctx, http.MethodPost, mlflowRegistry+"registered-models/create", nil, req, &out)
	return out.RegisteredModel, err
}

// GetRegisteredModel returns a registered model.
func (c *Client) GetRegisteredModel(ctx context.Context, name string) (RegisteredModel, error) {
	var out RegisteredModelResponse
	err := c.Do(ctx, http.MethodGet, mlflowRegistry+"registered-models/get", url.Values{"name": {name}}, nil, &out)
	return out.RegisteredModel, err
}

// SearchRegisteredModels returns one page of registered models.
func (c *Client) SearchRegisteredModels(ctx context.Context, filter string, maxResults int, pageToken string) (SearchRegisteredModelsResponse, error) {
	q := url.Values{}
	if filter != "" {
		q.Set("filter", filter)
	}
	if maxResults > 0 {
		q.Set("max_results", strconv.Itoa(maxResults))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	var out SearchRegisteredModelsResponse
	err := c.Do(ctx, http.MethodGet, mlflowRegistry+"registered-models/search", q, nil, &out)
	return out, err
}

// SetModelAlias points alias at version, creating or moving it.
func (c *Client) SetModelAlias(ctx context.Context, name, alias, version string) error {
	return c.Do(ctx, http.MethodPost, mlflowRegistry+"registered-models/alias", nil,
		SetRegisteredModelAliasRequest{Name: name, Alias: alias, Version: VersionString(version)}, nil)
}

// ForceModelAlias is SetModelAlias to a version whose signature differs
// from the one the alias points at.
func (c *Client) ForceModelAlias(ctx context.Context, name, alias, version string) error {
	return c.Do(ctx, http.MethodPost, mlflowRegistry+"registered-models/alias", nil,
		SetRegisteredModelAliasRequest{Name: name, Alias: alias, Version: VersionString(version), Force: true}, nil)
}

// DeleteModelAlias removes an alias.
func (c *Client) DeleteModelAlias(ctx context.Context, name, alias string) error {
	return c.Do(ctx, http.MethodDelete, mlflowRegistry+"registered-models/alias", nil,
		DeleteRegisteredModelAliasRequest{Name: name, Alias: alias}, nil)
}

// GetModelVersionByAlias returns the version an alias points at.
func (c *Client) GetModelVersionByAlias(ctx context.Context, name, alias string) (ModelVersion, error) {
	var out ModelVersionResponse
	err := c.Do(ctx, http.MethodGet, mlflowRegistry+"registered-models/alias", url.Values{"name": {name}, "alias": {alias}}, nil, &out)
	return out.ModelVersion, err
}

// SearchModelVersions returns one page of model versions.
func (c *Client) SearchModelVersions(ctx context.Context, filter string, maxResults int, pageToken string) (ModelVersionsResponse, error) {
	q := url.Values{}
	if filter != "" {
		q.Set("filter", filter)
	}
	if maxResults > 0 {
		q.Set("max_results", strconv.Itoa(maxResults))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	var out ModelVersionsResponse
	err := c.Do(ctx, http.MethodGet, mlflowRegistry+"model-versions/search", q, nil, &out)
	return out, err
}

// UploadOptions are the optional settings of UploadModelVersion.
type UploadOptions struct {
	Format      string // onnx, xgboost, other; "" detects
	Description string
	// Progress, if not nil, hears the bytes of the files as they go.
	Progress Progress
}

// UploadModelVersion registers a new version of name from local files; a
// folder is uploaded with everything under it, paths kept relative to it.
// The model name is registered if it is new.
func (c *Client) UploadModelVersion(ctx context.Context, name string, paths []string, opts UploadOptions) (ModelVersionDetail, error) {
	type item struct{ rel, local string }
	var items []item
	var total int64
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return ModelVersionDetail{}, err
		}
		if !st.IsDir() {
			items = append(items, item{filepath.Base(p), p})
			total += st.Size()
			continue
		}
		err = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			rel, err := filepath.Rel(p, f)
			items = append(items, item{filepath.ToSlash(rel), f})
			return err
		})
		if err != nil {
			return ModelVersionDetail{}, err
		}
	}
	var sent int64
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for k, v := range map[string]string{"format": opts.Format, "description": opts.Description} {
				if v != "" {
					if err := mw.WriteField(k, v); err != nil {
						return err
					}
				}
			}
			for _, it := range items {
				h := textproto.MIMEHeader{}
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, it.rel))
				h.Set("Content-Type", "application/octet-stream")
				w, err := mw.CreatePart(h)
				if err != nil {
					return err
				}
				f, err := os.Open(it.local)
				if err != nil {
					return err
				}
				var r io.Reader = f
				if opts.Progress != nil {
					r = &progressReader{r: f, done: sent, total: total, fn: opts.Progress}
				}
				n, err := io.Copy(w, r)
				sent += n
				f.Close()
				if err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	resp, err := c.Request(ctx, http.MethodPost, forgeModels+"/"+url.PathEscape(name)+"/versions", nil, pr, mw.FormDataContentType())
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if the server answered early
	if err != nil {
		return ModelVersionDetail{}, err
	}
	defer resp.Body.Close()
	var out ModelVersionDetail
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("decode upload response: %w", err)
	}
	return out, nil
}

// RegisterModelFromRun registers a new version of name from a run's artifacts.
func (c *Client) RegisterModelFromRun(ctx context.Context, name string, req RegisterFromRunRequest) (ModelVersionDetail, error) {
	var out ModelVersionDetail
	err := c.Do(ctx, http.MethodPost, forgeModels+"/"+url.PathEscape(name)+"/versions", nil, req, &out)
	return out, err
}

// GetModelVersionDetail returns a version named by number, alias or "latest".
func (c *Client) GetModelVersionDetail(ctx context.Context, name, ref string) (ModelVersionDetail, error) {
	var out ModelVersionDetail
	err := c.Do(ctx, http.MethodGet, forgeModels+"/"+url.PathEscape(name)+"/versions/"+url.PathEscape(ref), nil, nil, &out)
	return out, err
}

// DownloadModel writes a version's files under dir and checks each against
// its digest.
func (c *Client) DownloadModel(ctx context.Context, name, ref, dir string) (ModelVersionDetail, error) {
	return c.DownloadModelProgress(ctx, name, ref, dir, nil)
}

// DownloadModelProgress is DownloadModel telling progress (if not nil) the
// bytes of all the files as they come.
func (c *Client) DownloadModelProgress(ctx context.Context, name, ref, dir string, progress Progress) (ModelVersionDetail, error) {
	d, err := c.GetModelVersionDetail(ctx, name, ref)
	if err != nil {
		return d, err
	}
	var total, got int64
	for _, f := range d.Files {
		total += f.Size
	}
	if progress != nil {
		progress(0, total)
	}
	// Fetch by number: an alias could move between the calls.
	base := forgeModels + "/" + url.PathEscape(name) + "/versions/" + d.ModelVersion.Version + "/files/"
	for _, f := range d.Files {
		if !fs.ValidPath(f.Path) {
			return d, fmt.Errorf("server sent an unsafe file path %q", f.Path)
		}
		var count func(n int64)
		if progress != nil {
			start := got
			count = func(n int64) { got = start + n; progress(got, total) }
		}
		if err := c.downloadFile(ctx, base+escapePath(f.Path), filepath.Join(dir, filepath.FromSlash(f.Path)), f.Digest, count); err != nil {
			return d, fmt.Errorf("download %s: %w", f.Path, err)
		}
	}
	return d, nil
}

// OpenModelFile streams one file of a model version (by number).
func (c *Client) OpenModelFile(ctx context.Context, name, version, file string) (io.ReadCloser, error) {
	if !fs.ValidPath(file) {
		return nil, fmt.Errorf("unsafe file path %q", file)
	}
	resp, err := c.Request(ctx, http.MethodGet, forgeModels+"/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version)+"/files/"+escapePath(file), nil, nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return path.Join(parts...)
}

// downloadFile writes one file whole or not at all; count, if not nil,
// hears the bytes received so far.
func (c *Client) downloadFile(ctx context.Context, urlPath, dst, digest string, count func(int64)) error {
	resp, err := c.Request(ctx, http.MethodGet, urlPath, nil, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	var body io.Reader = resp.Body
	if count != nil {
		body = &progressReader{r: resp.Body, total: -1, fn: func(done, _ int64) { count(done) }}
	}
	_, err = io.Copy(io.MultiWriter(tmp, h), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("content hashes to %s, want %s", got, digest)
	}
	return os.Rename(tmp.Name(), dst)
}

// WatchModels returns the registry events after since, waiting up to
// timeout for one. since < 0 asks for the current sequence number only.
func (c *Client) WatchModels(ctx context.Context, since int64, timeout time.Duration) (WatchModelsResponse, error) {
	q := url.Values{"timeout": {timeout.String()}}
	if since >= 0 {
		q.Set("since", strconv.FormatInt(since, 10))
	}
	var out WatchModelsResponse
	err := c.Do(ctx, http.MethodGet, forgeModels+"/watch", q, nil, &out)
	return out, err
}
