package deploy

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/serve"
)

// resyncInterval bounds how long a missed change (or a transient failure
// such as a download that broke) goes unnoticed.
const resyncInterval = 30 * time.Second

// Status is what the controller made of one deployment.
type Status struct {
	Ready   bool
	Error   string
	Targets []Target
}

// Target is one version a deployment sends traffic to.
type Target struct {
	Model, Version string
	Weight         int
	State          string // READY, LOADING, FAILED, UNAVAILABLE
}

type key struct{ model, version string }

// Controller makes an inference server serve the deployments of a Source.
// Run does the work; the other methods are safe to call from handlers.
type Controller struct {
	src Source
	srv *serve.Server
	log *slog.Logger
	// OpenSink opens where deployments publish their payload rows
	// (--log-payloads-to); nil: nowhere. Set before Run.
	OpenSink SinkOpener

	kick chan struct{}

	mu      sync.Mutex
	want    int64 // syncs asked for
	done    int64 // syncs finished
	doneCh  chan struct{}
	synced  bool
	running bool
	status  map[string]Status
	listed  bool            // the deployments have been read once
	known   map[string]bool // the names read last
	// states of the versions this controller loads, kept here rather than
	// asked of the server so that a status read never waits on a load.
	states map[key]string

	// Owned by the Run goroutine.
	loaded map[key]bool
	failed map[key]error             // load failures; retried when a deployment using it changes
	routes map[string][]serve.Target // what each route was last set to
	seen   map[string]Deployment
	sinks  map[string]openSink
}

// NewController returns a controller that serves src's deployments on srv.
func NewController(src Source, srv *serve.Server, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		src: src, srv: srv, log: log,
		kick:   make(chan struct{}, 1),
		doneCh: make(chan struct{}),
		status: map[string]Status{},
		states: map[key]string{},
		loaded: map[key]bool{},
		failed: map[key]error{},
		routes: map[string][]serve.Target{},
		seen:   map[string]Deployment{},
		sinks:  map[string]openSink{},
	}
	// The server is not ready before the stored deployments are loaded,
	// and a deployment that is not served yet is loading, not unknown.
	srv.GateReady(c.Ready)
	srv.GateUnrouted(c.unrouted)
	return c
}

// unrouted says why name, which the server has no route for, is not
// served: before the deployments are first read, any name may be one that
// is loading; after, a stored deployment is loading, or failed to load.
// A name that is no deployment gets nil, and stays unknown.
func (c *Controller) unrouted(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.listed:
		return forge.Errorf(forge.Unavailable, "deployment %s: loading (the server is reading its deployments)", name)
	case !c.known[name]:
		return nil
	case c.status[name].Error != "":
		return forge.Errorf(forge.Unavailable, "deployment %s is not served: %s", name, c.status[name].Error)
	}
	return forge.Errorf(forge.Unavailable, "deployment %s: loading", name)
}

// Ready reports whether the deployments stored at start have been loaded
// (or have failed, which their status reports): until then the server must
// not take traffic.
func (c *Controller) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// Status returns the status of one deployment, and whether there is one.
func (c *Controller) Status(name string) (Status, bool) {
	c.mu.Lock()
	st, ok := c.status[name]
	c.mu.Unlock()
	if !ok {
		return Status{}, false
	}
	// The states are read now, not when the status was made.
	c.mu.Lock()
	st.Targets = slices.Clone(st.Targets)
	for i, t := range st.Targets {
		st.Targets[i].State = cmpOr(c.states[key{t.Model, t.Version}], "UNAVAILABLE")
		if st.Targets[i].State != "READY" {
			st.Ready = false
		}
	}
	c.mu.Unlock()
	return st, true
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Sync asks for a pass over every deployment and waits until one that
// started after the call has finished. Run must be running.
func (c *Controller) Sync(ctx context.Context) error {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return forge.Errorf(forge.Unavailable, "the deployment controller is not running")
	}
	c.want++
	want := c.want
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	for {
		c.mu.Lock()
		done, ch := c.done, c.doneCh
		c.mu.Unlock()
		if done >= want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run serves the deployments until ctx is done: once at start, then on
// every change the source reports, and every resyncInterval.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	defer c.closeSinks()
	changed := make(chan struct{}, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.src.Watch(wctx, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	backoff := time.Second
	for {
		c.mu.Lock()
		want := c.want
		c.mu.Unlock()
		err := c.reconcile(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		if err == nil {
			c.synced = true
		}
		c.done = want
		close(c.doneCh)
		c.doneCh = make(chan struct{})
		c.mu.Unlock()
		var retry <-chan time.Time
		if err != nil {
			c.log.Warn("read deployments; retrying", "err", err, "in", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-c.kick:
		case <-resync.C:
		case <-retry:
		}
	}
}

// reconcile brings the server in line with the deployments: load what is
// new, then switch routes, then unload what nothing routes to. Only a
// failure to read the deployments is returned; a deployment that cannot be
// served keeps its old route, if any, and reports why.
func (c *Controller) reconcile(ctx context.Context) error {
	ds, err := c.src.List(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, d := range ds {
		want[d.Name] = true
	}
	c.mu.Lock()
	c.listed, c.known = true, want
	c.mu.Unlock()
	status := map[string]Status{}
	for _, d := range ds {
		if prev, ok := c.seen[d.Name]; !ok || !prev.equal(d) {
			// A changed deployment is a request to try again.
			for _, r := range d.refs() {
				for k := range c.failed {
					if k.model == r.model {
						delete(c.failed, k)
					}
				}
			}
		}
		c.seen[d.Name] = d
		status[d.Name] = c.apply(ctx, d)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for name := range c.routes {
		if !want[name] {
			c.srv.Unroute(name)
			c.srv.SetRoutePayloads(name, nil)
			c.closeSink(name)
			delete(c.routes, name)
		}
	}
	for name := range c.seen {
		if !want[name] {
			delete(c.seen, name)
		}
	}
	used := map[key]bool{}
	for _, ts := range c.routes {
		for _, t := range ts {
			used[key{t.Model, t.Version}] = true
		}
	}
	for _, k := range slices.Collect(maps.Keys(c.loaded)) {
		if used[k] {
			continue
		}
		// Unload waits for the requests in flight on the version.
		if err := c.srv.Unload(k.model, k.version); err != nil && !forge.IsKind(err, forge.NotFound) {
			c.log.Warn("unload model", "model", k.model, "version", k.version, "err", err)
			continue
		}
		delete(c.loaded, k)
		c.setState(k, "")
	}
	c.mu.Lock()
	c.status = status
	c.mu.Unlock()
	return nil
}

// apply resolves, loads and routes one deployment.
func (c *Controller) apply(ctx context.Context, d Deployment) Status {
	fail := func(err error) Status {
		st := Status{Error: forge.Message(err)}
		if forge.KindOf(err) == forge.Internal {
			// The cause (a folder of the data dir, an OS error) is for the
			// server's log, not for whoever lists deployments.
			st.Error = "internal error loading the deployment (the server's log has the cause)"
		}
		// What the deployment still serves: its last good route.
		for _, t := range c.routes[d.Name] {
			st.Targets = append(st.Targets, Target{Model: t.Model, Version: t.Version, Weight: t.Weight})
		}
		c.log.Warn("deployment not served as specified", "deployment", d.Name, "err", err)
		return st
	}
	var targets []serve.Target
	for _, r := range d.refs() {
		res, err := c.src.Resolve(ctx, r.model, r.ref)
		if err != nil {
			return fail(err)
		}
		if err := c.ensureLoaded(ctx, key{res.Model, res.Version}, res, d); err != nil {
			return fail(err)
		}
		targets = append(targets, serve.Target{Model: res.Model, Version: res.Version, Weight: r.weight})
	}
	if len(targets) == 2 && targets[0].Model == targets[1].Model && targets[0].Version == targets[1].Version {
		// A canary on the primary's own version: one target, all traffic.
		targets = []serve.Target{{Model: targets[0].Model, Version: targets[0].Version, Weight: 100}}
	}
	if !slices.Equal(targets, c.routes[d.Name]) {
		if err := c.srv.Route(d.Name, targets); err != nil {
			return fail(err)
		}
		c.routes[d.Name] = targets
		c.log.Info("deployment routed", "deployment", d.Name, "targets", targets)
	}
	if d.PayloadRate > 0 {
		c.srv.SetRoutePayloads(d.Name, &serve.RoutePayloads{Rate: d.PayloadRate, Dataset: PayloadDataset(d.Name), Columns: d.PayloadColumns,
			Sink: c.sink(d)})
	} else {
		c.srv.SetRoutePayloads(d.Name, nil)
		c.closeSink(d.Name)
	}
	st := Status{Ready: true}
	for _, t := range targets {
		st.Targets = append(st.Targets, Target{Model: t.Model, Version: t.Version, Weight: t.Weight})
	}
	return st
}

func (c *Controller) ensureLoaded(ctx context.Context, k key, res Resolved, d Deployment) error {
	if c.loaded[k] {
		return nil
	}
	if err := c.failed[k]; err != nil {
		return err
	}
	files, err := c.src.Open(ctx, res)
	if err != nil {
		return err
	}
	src := forge.ModelSource{Name: k.model, Version: k.version, Files: withModelFile(files, res), Signature: res.Signature}
	// A version shared by deployments is loaded once, with the batching
	// settings of the first deployment that needs it.
	opts := serve.LoadOptions{Format: res.Format, Batch: serve.BatchOptions{MaxBatchSize: d.MaxBatchSize, MaxQueueDelay: d.MaxQueueDelay}}
	c.setState(k, "LOADING")
	err = c.srv.Load(ctx, src, opts)
	if forge.IsKind(err, forge.AlreadyExists) {
		err = nil
	}
	if err != nil {
		if ctx.Err() == nil {
			c.failed[k] = err
		}
		// The failure is kept here and in the deployment's status; the
		// server drops the version, so one broken model does not make the
		// whole server unready.
		if uerr := c.srv.Unload(k.model, k.version); uerr != nil && !forge.IsKind(uerr, forge.NotFound) {
			err = errors.Join(err, uerr)
		}
		c.setState(k, "")
		return err
	}
	c.loaded[k] = true
	c.setState(k, "READY")
	return nil
}

// setState records a version's state; "" forgets it.
func (c *Controller) setState(k key, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state == "" {
		delete(c.states, k)
	} else {
		c.states[k] = state
	}
}
