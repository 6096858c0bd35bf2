package serve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// Repository keeps a server in step with a model repository folder laid
// out as NAME/VERSION/model.onnx (model.json, forge-serve.json), the way
// Triton's model control does: Scan loads the versions that appeared and
// unloads those whose folder went (--model-control-mode=poll when run every
// few seconds), and the repository extension's routes load and unload a
// model on request. A version that failed to load is not retried by Scan
// (it would fail again each poll); POST .../NAME/load retries it.
type Repository struct {
	s    *Server
	dir  string
	opts LoadOptions

	mu       sync.Mutex          // one scan, load or unload at a time
	loaded   map[[2]string]bool  // versions this repository loaded
	unloaded map[string]struct{} // models unloaded on request: Scan leaves them be
}

// NewRepository serves the repository folder dir on s.
func (s *Server) NewRepository(dir string, opts LoadOptions) *Repository {
	return &Repository{s: s, dir: dir, opts: opts, loaded: map[[2]string]bool{}, unloaded: map[string]struct{}{}}
}

// folders lists NAME -> VERSIONs present in the repository.
func (r *Repository) folders() (map[string][]string, error) {
	names, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, forge.WrapError(forge.Invalid, err, "read model repository %s", r.dir)
	}
	out := map[string][]string{}
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		versions, err := os.ReadDir(filepath.Join(r.dir, n.Name()))
		if err != nil {
			continue
		}
		for _, v := range versions {
			if v.IsDir() {
				out[n.Name()] = append(out[n.Name()], v.Name())
			}
		}
	}
	return out, nil
}

// Scan loads the versions that are in the folder and not on the server,
// and unloads the ones it loaded whose folder is gone. Load errors are
// joined in the result; the other versions are served.
func (r *Repository) Scan(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	present, err := r.folders()
	if err != nil {
		return err
	}
	var errs []error
	for name, versions := range present {
		if _, off := r.unloaded[name]; off {
			continue
		}
		for _, v := range versions {
			if err := r.load(ctx, name, v, false); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for k := range r.loaded {
		if !slices.Contains(present[k[0]], k[1]) {
			if err := r.s.Unload(k[0], k[1]); err != nil && !forge.IsKind(err, forge.NotFound) {
				errs = append(errs, err)
				continue
			}
			delete(r.loaded, k)
		}
	}
	return errors.Join(errs...)
}

// load loads one version unless the server has it; retry says to replace
// a version that failed.
func (r *Repository) load(ctx context.Context, name, ver string, retry bool) error {
	for _, m := range r.s.Models() {
		if m.Name == name && m.Version == ver {
			if m.State != "FAILED" || !retry {
				return nil
			}
			r.s.Unload(name, ver)
		}
	}
	src := forge.ModelSource{Name: name, Version: ver, Files: os.DirFS(filepath.Join(r.dir, name, ver))}
	err := r.s.Load(ctx, src, r.opts)
	if err == nil || !forge.IsKind(err, forge.AlreadyExists) {
		r.loaded[[2]string{name, ver}] = true
	}
	if forge.IsKind(err, forge.AlreadyExists) {
		return nil
	}
	return err
}

// Run scans every interval until ctx ends.
func (r *Repository) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Scan(ctx); err != nil && ctx.Err() == nil {
				r.s.log.Warn("model repository scan", "dir", r.dir, "err", err)
			}
		}
	}
}

// LoadModel loads (or reloads, if failed) every version of name in the
// folder, and lets Scan follow it again.
func (r *Repository) LoadModel(ctx context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	present, err := r.folders()
	if err != nil {
		return err
	}
	versions := present[name]
	if len(versions) == 0 {
		return forge.Errorf(forge.NotFound, "model repository %s has no folder %s/VERSION", r.dir, name)
	}
	delete(r.unloaded, name)
	var errs []error
	for _, v := range versions {
		if err := r.load(ctx, name, v, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UnloadModel unloads every version of name, which Scan then leaves out
// until LoadModel.
func (r *Repository) UnloadModel(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	found := false
	var errs []error
	for _, m := range r.s.Models() {
		if m.Name != name {
			continue
		}
		found = true
		if err := r.s.Unload(name, m.Version); err != nil && !forge.IsKind(err, forge.NotFound) {
			errs = append(errs, err)
			continue
		}
		delete(r.loaded, [2]string{name, m.Version})
	}
	if !found {
		return forge.Errorf(forge.NotFound, "unknown model %q", name)
	}
	r.unloaded[name] = struct{}{}
	return errors.Join(errs...)
}

type repositoryIndexJSON struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Routes are Triton's model repository extension:
//
//	POST /v2/repository/index                the folder's models and their state
//	POST /v2/repository/models/{name}/load   load (or reload) every version of name
//	POST /v2/repository/models/{name}/unload unload every version of name
func (r *Repository) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "POST /v2/repository/index", Access: httpapi.Read, Summary: "List the model repository's models and their state",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				present, err := r.folders()
				if err != nil {
					r.s.writeError(w, req, err)
					return
				}
				states := map[[2]string]ModelState{}
				for _, m := range r.s.Models() {
					states[[2]string{m.Name, m.Version}] = m
				}
				out := []repositoryIndexJSON{}
				for _, name := range slices.Sorted(maps.Keys(present)) {
					for _, v := range present[name] {
						st := states[[2]string{name, v}]
						if st.State == "" {
							st.State = "UNAVAILABLE"
						}
						out = append(out, repositoryIndexJSON{name, v, st.State, st.Reason})
					}
				}
				writeJSON(w, http.StatusOK, out)
			})},
		{Pattern: "POST /v2/repository/models/{name}/load", Access: httpapi.Write, Summary: "Load every version of a model from the repository folder",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if err := r.LoadModel(req.Context(), req.PathValue("name")); err != nil {
					r.s.writeError(w, req, fmt.Errorf("load %s: %w", req.PathValue("name"), err))
					return
				}
				writeJSON(w, http.StatusOK, struct{}{})
			})},
		{Pattern: "POST /v2/repository/models/{name}/unload", Access: httpapi.Write, Summary: "Unload every version of a model",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if err := r.UnloadModel(req.PathValue("name")); err != nil {
					r.s.writeError(w, req, err)
					return
				}
				writeJSON(w, http.StatusOK, struct{}{})
			})},
	}
}
