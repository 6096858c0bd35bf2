package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// upload registers a version of {name}: from the files of a multipart body
// (each part named "file", its filename the path in the version, plus
// optional "format" and "description" fields), or from a run's artifacts
// with a JSON api.RegisterFromRunRequest.
func (r *Registry) upload(req *http.Request) (any, error) {
	ctx := req.Context()
	name := req.PathValue("name")
	nv := NewVersion{Name: name, CreateModel: true}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		var in api.RegisterFromRunRequest
		if err := httpapi.Decode(req, &in); err != nil {
			return nil, err
		}
		if err := httpapi.Required("run_id", in.RunID); err != nil {
			return nil, err
		}
		nv.Source = "runs:/" + in.RunID + "/" + strings.Trim(in.Path, "/")
		nv.RunID, nv.Format, nv.Description = in.RunID, in.Format, in.Description
	} else {
		dir, err := os.MkdirTemp(r.tempDir(), "forge-upload-")
		if err != nil {
			return nil, fmt.Errorf("spool upload: %w", err)
		}
		defer os.RemoveAll(dir)
		if err := spool(req, dir, &nv); err != nil {
			return nil, err
		}
		if len(nv.Uploads) == 0 {
			return nil, forge.Errorf(forge.Invalid, "the upload has no file parts (want multipart parts named \"file\")")
		}
	}
	v, err := r.CreateVersion(ctx, nv)
	if err != nil {
		return nil, err
	}
	return r.versionDetail(ctx, v)
}

// spool writes each file part to dir and reads the small form fields.
func spool(req *http.Request, dir string, nv *NewVersion) error {
	mr, err := req.MultipartReader()
	if err != nil {
		return forge.Errorf(forge.Invalid, "read multipart body: %s", err.Error())
	}
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return httpapi.DecodeError(err)
		}
		switch part.FormName() {
		case "file":
			// FileName() drops folders; the raw header keeps them.
			_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
			p, err := cleanPath(params["filename"])
			if err != nil {
				return err
			}
			local := filepath.Join(dir, strconv.Itoa(i))
			f, err := os.Create(local)
			if err != nil {
				return fmt.Errorf("spool upload: %w", err)
			}
			_, err = io.Copy(f, part)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return httpapi.DecodeError(err)
			}
			nv.Uploads = append(nv.Uploads, Upload{Path: p, File: local})
		case "format", "description":
			b, err := io.ReadAll(io.LimitReader(part, maxDescLen+1))
			if err != nil {
				return httpapi.DecodeError(err)
			}
			if part.FormName() == "format" {
				nv.Format = string(b)
			} else {
				nv.Description = string(b)
			}
		default:
			return forge.Errorf(forge.Invalid, "unknown multipart field %q (want file, format or description)", part.FormName())
		}
	}
}

// versionDetail is a version with its files, in Forge's wire form.
func (r *Registry) versionDetail(ctx context.Context, v Version) (api.ModelVersionDetail, error) {
	files, err := r.Files(ctx, v.Name, v.Version)
	if err != nil {
		return api.ModelVersionDetail{}, err
	}
	out := api.ModelVersionDetail{
		ModelVersion: versionToAPI(v), Format: v.Format, ModelFile: v.ModelFile,
		Files:   []api.ModelFile{},
		Lineage: api.ModelLineage{RunID: v.RunID, Source: v.Source, RunLink: v.RunLink},
	}
	for _, f := range files {
		out.Files = append(out.Files, api.ModelFile{Path: f.Path, Digest: string(f.Digest), Size: f.Size})
	}
	if s := v.Signature; s != nil {
		out.Signature = &api.ModelSignature{Inputs: tensorsToAPI(s.Inputs), Outputs: tensorsToAPI(s.Outputs)}
		if s.ONNX != nil {
			out.Signature.ONNX = (*struct {
				IRVersion int64  `json:"ir_version"`
				Opset     int64  `json:"opset"`
				Producer  string `json:"producer,omitempty"`
			})(s.ONNX)
		}
		if s.XGBoost != nil {
			out.Signature.XGBoost = (*struct {
				Objective   string `json:"objective"`
				NumFeatures int    `json:"num_features"`
				NumClasses  int    `json:"num_classes"`
				NumTrees    int    `json:"num_trees"`
				Version     string `json:"xgboost_version,omitempty"`
			})(s.XGBoost)
		}
	}
	return out, nil
}

func tensorsToAPI(ts []Tensor) []api.TensorSpec {
	out := make([]api.TensorSpec, len(ts))
	for i, t := range ts {
		out[i] = api.TensorSpec(t)
	}
	return out
}

func (r *Registry) detail(req *http.Request) (any, error) {
	v, err := r.Resolve(req.Context(), req.PathValue("name"), req.PathValue("ref"))
	if err != nil {
		return nil, err
	}
	return r.versionDetail(req.Context(), v)
}

// serveFile streams one file of a version from the blob store.
func (r *Registry) serveFile(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	fail := func(err error) { httpapi.WriteError(w, req, r.log, err) }
	v, err := r.Resolve(ctx, req.PathValue("name"), req.PathValue("ref"))
	if err != nil {
		fail(err)
		return
	}
	files, err := r.Files(ctx, v.Name, v.Version)
	if err != nil {
		fail(err)
		return
	}
	want := req.PathValue("path")
	for _, f := range files {
		if f.Path != want {
			continue
		}
		w.Header().Set("X-Forge-Digest", string(f.Digest))
		httpapi.ServeBlob(w, req, r.log, f.Path, r.blobs, f.Digest, f.Size)
		return
	}
	fail(forge.Errorf(forge.NotFound, "model %s version %d has no file %q", v.Name, v.Version, want))
}

const (
	defaultWatchTimeout = 30 * time.Second
	maxWatchTimeout     = 5 * time.Minute
	watchBatch          = 500
)

// watch long-polls for registry events after ?since=SEQ, waiting up to
// ?timeout= (a Go duration or seconds). Without since it answers at once
// with the current sequence number, to start following from.
func (r *Registry) watch(req *http.Request) (any, error) {
	ctx := req.Context()
	q := req.URL.Query()
	timeout := defaultWatchTimeout
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, serr := strconv.ParseFloat(s, 64)
			if serr != nil {
				return nil, forge.Errorf(forge.Invalid, "invalid timeout %q: want a duration such as 30s", s)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		timeout = max(0, min(d, maxWatchTimeout))
	}
	out := api.WatchModelsResponse{Events: []api.ModelEvent{}}
	if q.Get("since") == "" {
		head, err := r.Head(ctx)
		out.LastSeq = head
		return out, err
	}
	since, err := strconv.ParseInt(q.Get("since"), 10, 64)
	if err != nil || since < 0 {
		return nil, forge.Errorf(forge.Invalid, "invalid since %q: want a sequence number", q.Get("since"))
	}
	out.LastSeq = since
	evs, err := r.Watch(ctx, since, watchBatch, timeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil, forge.Errorf(forge.Unavailable, "watch cancelled")
		}
		return nil, err
	}
	for _, e := range evs {
		out.Events = append(out.Events, eventOut(e))
		out.LastSeq = e.Seq
	}
	return out, nil
}

func eventOut(e Event) api.ModelEvent {
	ev := api.ModelEvent{Seq: e.Seq, Type: e.Type, Name: e.Model, Alias: e.Alias, Stage: e.Stage, OldName: e.OldName, Timestamp: e.Timestamp}
	if e.Version > 0 {
		ev.Version = strconv.FormatInt(e.Version, 10)
	}
	return ev
}

// getArtifact is MLflow's UI download of a file of a model version
// (/model-versions/get-artifact?name=&version=&path=), served from Forge's
// copy of the version's files.
func (r *Registry) getArtifact(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	fail := func(err error) { httpapi.WriteError(w, req, r.log, err) }
	q := req.URL.Query()
	if !q.Has("path") {
		fail(httpapi.MissingParam("path"))
		return
	}
	p, err := httpapi.SafePath(q.Get("path"))
	if err != nil {
		fail(err)
		return
	}
	n, err := nameVersion(q.Get("name"), api.VersionString(q.Get("version")))
	if err != nil {
		fail(err)
		return
	}
	files, err := r.Files(ctx, q.Get("name"), n)
	if err != nil {
		fail(err)
		return
	}
	for _, f := range files {
		if f.Path != strings.Trim(p, "/") {
			continue
		}
		httpapi.ServeBlob(w, req, r.log, f.Path, r.blobs, f.Digest, f.Size)
		return
	}
	fail(forge.Errorf(forge.NotFound, "model %s version %d has no file %q", q.Get("name"), n, p))
}
