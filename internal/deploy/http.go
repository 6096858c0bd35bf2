package deploy

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Build makes the deployments of a Forge server over its parts: the
// store, a controller serving them on srv, and the API under
// /api/forge/v1/deployments. The caller mounts the API's routes, runs the
// controller's Run beside the HTTP server and folds its Ready into readiness.
func Build(db *sqlstore.DB, reg Registry, blobs forge.BlobStore, srv *serve.Server, dataDir string, log *slog.Logger) (*Controller, *API) {
	store := NewStore(db)
	src := &Local{Store: store, Registry: reg, Blobs: blobs, CacheDir: filepath.Join(dataDir, "deploy-cache"), Log: log}
	c := NewController(src, srv, log)
	return c, NewAPI(store, src, c, log)
}

// API is the deployments' HTTP API.
type API struct {
	store *Store
	src   Source
	ctl   *Controller
	log   *slog.Logger
	// References, when set, checks the reference of a deployment that
	// logs payloads and names its logged columns before it is stored.
	References References
}

// References finds a deployment's reference dataset (ref, or lineage's
// when "") and checks that its columns can name the inputs of every
// version it serves, returning those names, in order.
type References interface {
	PayloadColumns(ctx context.Context, ref string, versions []Resolved) ([]string, error)
}

// NewAPI returns the API; src resolves refs to check them before storing.
func NewAPI(store *Store, src Source, ctl *Controller, log *slog.Logger) *API {
	return &API{store: store, src: src, ctl: ctl, log: log}
}

// Routes are the deployments API.
func (a *API) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /api/forge/v1/deployments", Handler: httpapi.JSON(a.log, a.list), Access: httpapi.Read},
		{Pattern: "GET /api/forge/v1/deployments/{name}", Handler: httpapi.JSON(a.log, a.get), Access: httpapi.Read},
		{Pattern: "PUT /api/forge/v1/deployments/{name}", Handler: httpapi.JSON(a.log, a.put), Access: httpapi.Write},
		{Pattern: "DELETE /api/forge/v1/deployments/{name}", Handler: httpapi.JSON(a.log, a.delete), Access: httpapi.Write},
	}
}

// FromAPI reads a deployment from its wire form.
func FromAPI(name string, s api.DeploymentSpec) Deployment {
	return Deployment{Name: name, Model: s.Model, Ref: s.Ref, CanaryModel: s.CanaryModel, CanaryRef: s.CanaryRef,
		CanaryPercent: s.CanaryPercent, MaxBatchSize: s.MaxBatchSize,
		MaxQueueDelay: time.Duration(s.MaxQueueDelayMicroseconds) * time.Microsecond,
		PayloadRate:   s.LogPayloads, Reference: s.Reference, PayloadTo: s.LogPayloadsTo}
}

func (a *API) toAPI(d Deployment) api.Deployment {
	out := api.Deployment{Name: d.Name, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeploymentSpec: api.DeploymentSpec{
		Model: d.Model, Ref: d.Ref, CanaryModel: d.CanaryModel, CanaryRef: d.CanaryRef, CanaryPercent: d.CanaryPercent,
		MaxBatchSize: d.MaxBatchSize, MaxQueueDelayMicroseconds: d.MaxQueueDelay.Microseconds(),
		LogPayloads: d.PayloadRate, Reference: d.Reference, LogPayloadsTo: d.PayloadTo}, PayloadColumns: d.PayloadColumns}
	if st, ok := a.ctl.Status(d.Name); ok {
		s := &api.DeploymentStatus{Ready: st.Ready, Error: st.Error, Targets: []api.DeploymentTarget{}}
		for _, t := range st.Targets {
			s.Targets = append(s.Targets, api.DeploymentTarget{Model: t.Model, Version: t.Version, Weight: t.Weight, State: t.State})
		}
		out.Status = s
	}
	return out
}

const maxWait = 5 * time.Minute

func (a *API) list(r *http.Request) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	var ds []Deployment
	var err error
	if rev := q.Get("revision"); rev != "" {
		wait, werr := time.ParseDuration(q.Get("wait"))
		if werr != nil {
			secs, serr := strconv.ParseFloat(q.Get("wait"), 64)
			if serr != nil {
				return nil, forge.Errorf(forge.Invalid, "invalid wait %q: want a duration such as 30s", q.Get("wait"))
			}
			wait = time.Duration(secs * float64(time.Second))
		}
		ds, err = a.store.WaitChange(ctx, rev, max(0, min(wait, maxWait)))
		if err != nil && ctx.Err() != nil {
			return nil, forge.Errorf(forge.Unavailable, "watch cancelled")
		}
	} else {
		ds, err = a.store.List(ctx)
	}
	if err != nil {
		return nil, err
	}
	out := api.DeploymentList{Deployments: []api.Deployment{}, Revision: Revision(ds)}
	for _, d := range ds {
		out.Deployments = append(out.Deployments, a.toAPI(d))
	}
	return out, nil
}

func (a *API) get(r *http.Request) (any, error) {
	d, err := a.store.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return a.toAPI(d), nil
}

// syncTimeout bounds how long a write waits for the models to load before
// it answers; the loading goes on, and the status tells how it ends.
const syncTimeout = 2 * time.Minute

// put checks that every ref resolves now (an unknown model or version is
// refused, not stored), stores the deployment and waits for the controller
// to serve it, so the answer carries the outcome.
func (a *API) put(r *http.Request) (any, error) {
	ctx := r.Context()
	var spec api.DeploymentSpec
	if err := httpapi.Decode(r, &spec); err != nil {
		return nil, err
	}
	d := FromAPI(r.PathValue("name"), spec)
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var resolved []Resolved
	for _, ref := range d.refs() {
		res, err := a.src.Resolve(ctx, ref.model, ref.ref)
		if err != nil {
			return nil, err
		}
		resolved = append(resolved, res)
	}
	if a.References != nil && (d.PayloadRate > 0 || d.Reference != "") {
		cols, err := a.References.PayloadColumns(ctx, d.Reference, resolved)
		if err != nil {
			return nil, err
		}
		d.PayloadColumns = cols
	}
	d, err := a.store.Put(ctx, d)
	if err != nil {
		return nil, err
	}
	a.sync(ctx)
	return a.toAPI(d), nil
}

func (a *API) delete(r *http.Request) (any, error) {
	if err := a.store.Delete(r.Context(), r.PathValue("name")); err != nil {
		return nil, err
	}
	a.sync(r.Context())
	return nil, nil
}

func (a *API) sync(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if err := a.ctl.Sync(ctx); err != nil {
		a.log.Warn("deployment stored; not served yet", "err", err)
	}
}
