// Package serve is Forge's inference server: it loads model versions through
// the forge.Runtime implementations, warms them, batches their requests, and
// answers the Open Inference Protocol (KServe v2) over REST and gRPC, with
// Triton-named Prometheus metrics.
//
// The same Server runs inside `forge server` and in `forge serve`. Names in
// requests resolve first to routes (a deployment: weighted model versions,
// swapped atomically), then to models (the highest ready version, or the one
// named). A version being unloaded drains: requests in flight finish, new
// ones resolve again and land on whatever the routes now say.
package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
)

// Options configures a Server. Zero values take the defaults noted.
type Options struct {
	// Runtimes by format name ("onnx", "xgboost"); Load picks one from
	// LoadOptions.Format or from the model file present.
	Runtimes map[string]forge.Runtime
	// MaxBodyBytes bounds a REST request body (default 64 MiB).
	MaxBodyBytes int64
	// Name and Version are what server metadata reports.
	Name, Version string
	// Payload turns on payload logging when it has Datasets and Engine.
	Payload PayloadOptions
}

// LoadOptions configures one model version.
type LoadOptions struct {
	// Format names the runtime; empty: detected from the files
	// (model.onnx: onnx, model.json: xgboost).
	Format string
	Batch  BatchOptions
	// PayloadSampleRate, if not nil, is this version's share of requests
	// logged (0 to 1), instead of the server's PayloadOptions.SampleRate.
	PayloadSampleRate *float64
}

// BatchOptions configures dynamic batching. MaxBatchSize <= 1 turns it off:
// each request runs on its own, on the caller's goroutine.
type BatchOptions struct {
	// MaxBatchSize is the most rows one model run takes.
	MaxBatchSize int
	// MaxQueueDelay is how long the first request of a batch waits for
	// others. 0: it runs at once, and requests that arrive while batches
	// run are concatenated for the next run.
	MaxQueueDelay time.Duration
	// QueueSize bounds the requests waiting (default 1024); more are refused
	// with Unavailable.
	QueueSize int
	// Workers is how many batches run at once (default 1).
	Workers int
}

// formatFiles maps a format to the model file that identifies it.
var formatFiles = []struct{ format, file string }{{"onnx", "model.onnx"}, {"xgboost", "model.json"}}

// Target is one model version a route sends traffic to, with its share.
type Target struct {
	Model, Version string
	Weight         int
}

// Server serves loaded model versions. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	payload *payloadLog // nil: payload logging is off

	// gate, when set, must also say ready: a deployment controller's
	// "stored deployments loaded" (see GateReady).
	gate atomic.Pointer[func() bool]
	// stopping is set when the process begins to shut down: readiness
	// goes false so balancers stop sending, while requests are still served.
	stopping atomic.Bool
	// unrouted, when set, says why a name with no route and no model
	// cannot be served yet (see GateUnrouted).
	unrouted atomic.Pointer[func(name string) error]

	// routePayloads: route name -> *RoutePayloads, read on every request
	// without a lock.
	routePayloads sync.Map

	mu     sync.RWMutex
	models map[string]map[string]*version // name -> version -> state
	routes map[string]*route
}

type route struct {
	targets []*version
	m       []*versionMetrics // per target, labelled with the route's name
	cum     []int             // running sum of weights
}

// state of a version; a version leaves the maps when unloaded.
const (
	loading int32 = iota
	ready
	failed
	unloaded
)

type version struct {
	name, version, platform string
	state                   atomic.Int32
	err                     error // why loading failed; set before state
	model                   forge.Model
	sig                     forge.Signature
	inputAt                 map[string]int
	outputAt                map[string]int
	// allBinary[b] is Response.Binary for a request that names no outputs
	// and sets binary_data_output to b: shared, never modified.
	allBinary   [2][]bool
	fp64AsFP32  bool // the runtime converts FP64 input (XGBoost)
	batch       *batcher
	m           *versionMetrics
	payloadRate float64

	// drain is held for reading by every request in flight; Unload takes it
	// for writing, so it waits for them and holds new ones back until the
	// state says unloaded and they resolve again.
	drain sync.RWMutex
}

// New returns a Server with no models. Metrics register with reg.
func New(opts Options, log *slog.Logger, reg prometheus.Registerer) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	if opts.Name == "" {
		opts.Name = "forge"
	}
	s := &Server{
		opts:    opts,
		log:     log,
		metrics: newMetrics(reg),
		models:  map[string]map[string]*version{},
		routes:  map[string]*route{},
	}
	if opts.Payload.Datasets != nil && opts.Payload.Engine != nil {
		s.payload = newPayloadLog(opts.Payload, log.With("part", "payload-log"), reg)
	}
	return s
}

// FlushPayloads writes the payloads logged so far to their datasets.
func (s *Server) FlushPayloads() {
	if s.payload != nil {
		s.payload.sync()
	}
}

// Load loads one model version, warms it with a zero-filled request, and
// makes it ready. Until then the version is listed but not ready, and the
// server is not ready. A version that fails stays listed as failed, with
// the reason in its metadata, and the error is returned.
func (s *Server) Load(ctx context.Context, src forge.ModelSource, opts LoadOptions) error {
	if src.Name == "" || src.Version == "" {
		return forge.Errorf(forge.Invalid, "a model version needs a name and a version")
	}
	v := &version{name: src.Name, version: src.Version}
	s.mu.Lock()
	vs := s.models[src.Name]
	if vs == nil {
		vs = map[string]*version{}
		s.models[src.Name] = vs
	}
	if old := vs[src.Version]; old != nil && old.state.Load() != failed {
		s.mu.Unlock()
		return forge.Errorf(forge.AlreadyExists, "model %s version %s is already loaded", src.Name, src.Version)
	}
	vs[src.Version] = v
	s.mu.Unlock()

	start := time.Now()
	err := s.load(ctx, v, src, opts)
	if err != nil {
		v.err = err
		if !v.state.CompareAndSwap(loading, failed) {
			return forge.Errorf(forge.Conflict, "model %s version %s was unloaded while loading", src.Name, src.Version)
		}
		s.log.Warn("model failed to load", "model", src.Name, "version", src.Version, "err", err)
		return fmt.Errorf("load model %s version %s: %w", src.Name, src.Version, err)
	}
	if !v.state.CompareAndSwap(loading, ready) {
		// Unloaded while loading: Unload left the model to us.
		if v.batch != nil {
			v.batch.close()
		}
		v.model.Close()
		return forge.Errorf(forge.Conflict, "model %s version %s was unloaded while loading", src.Name, src.Version)
	}
	s.log.Info("model ready", "model", src.Name, "version", src.Version, "platform", v.platform, "took", time.Since(start))
	return nil
}

func (s *Server) load(ctx context.Context, v *version, src forge.ModelSource, opts LoadOptions) error {
	format := opts.Format
	if format == "" && src.Files != nil {
		for _, f := range formatFiles {
			if _, err := fs.Stat(src.Files, f.file); err == nil {
				format = f.format
				break
			}
		}
	}
	rt := s.opts.Runtimes[format]
	if rt == nil {
		return forge.Errorf(forge.Invalid, "no runtime for format %q (model files: model.onnx or model.json)", format)
	}
	model, err := rt.Load(ctx, src)
	if err != nil {
		return err
	}
	v.model, v.platform, v.sig = model, rt.Platform(), model.Signature()
	v.fp64AsFP32 = format == "xgboost"
	v.inputAt = index(v.sig.Inputs)
	v.outputAt = index(v.sig.Outputs)
	v.allBinary = [2][]bool{make([]bool, len(v.sig.Outputs)), make([]bool, len(v.sig.Outputs))}
	for i := range v.allBinary[1] {
		v.allBinary[1][i] = true
	}
	v.m = s.metrics.forVersion(v.name, v.version, "")
	if err := warm(ctx, model); err != nil {
		model.Close()
		return fmt.Errorf("warm-up inference: %w", err)
	}
	v.payloadRate = s.opts.Payload.SampleRate
	if opts.PayloadSampleRate != nil {
		v.payloadRate = *opts.PayloadSampleRate
	}
	if opts.Batch.MaxBatchSize > 1 && batchable(v.sig) {
		v.batch = newBatcher(model, opts.Batch, v.m)
	}
	return nil
}

func index(ts []forge.TensorSpec) map[string]int {
	m := make(map[string]int, len(ts))
	for i, t := range ts {
		m[t.Name] = i
	}
	return m
}

// batchable reports whether every input and output has a dynamic first
// dimension, the batch axis requests can be concatenated along.
func batchable(sig forge.Signature) bool {
	for _, ts := range [][]forge.TensorSpec{sig.Inputs, sig.Outputs} {
		for _, t := range ts {
			if len(t.Shape) == 0 || t.Shape[0] != -1 {
				return false
			}
		}
	}
	return len(sig.Inputs) > 0
}

// warm runs one inference on zeros (dynamic dimensions 1), so the first
// real request does not pay for lazy initialization. Inputs of unknown rank
// cannot be made up; such models are not warmed.
func warm(ctx context.Context, m forge.Model) error {
	sig := m.Signature()
	inputs := make([]forge.Tensor, len(sig.Inputs))
	for i, in := range sig.Inputs {
		if in.Shape == nil || !knownDatatype(in.Datatype) {
			return nil
		}
		shape := make([]int64, len(in.Shape))
		for j, d := range in.Shape {
			shape[j] = max(d, 1)
		}
		n, _ := elements(shape)
		data := makeData(in.Datatype, n)
		inputs[i] = forge.Tensor{Name: in.Name, Datatype: in.Datatype, Shape: shape, Data: data}
	}
	_, err := m.Infer(ctx, inputs)
	return err
}

// Unload removes a model version once the requests in flight on it finish.
// A version a route still sends traffic to cannot be unloaded: route away
// from it first.
func (s *Server) Unload(name, ver string) error {
	s.mu.Lock()
	v := s.models[name][ver]
	if v == nil {
		s.mu.Unlock()
		return forge.Errorf(forge.NotFound, "model %s version %s is not loaded", name, ver)
	}
	for rn, r := range s.routes {
		if slices.Contains(r.targets, v) {
			s.mu.Unlock()
			return forge.Errorf(forge.Conflict, "model %s version %s still serves route %s", name, ver, rn)
		}
	}
	delete(s.models[name], ver)
	if len(s.models[name]) == 0 {
		delete(s.models, name)
	}
	s.mu.Unlock()

	v.drain.Lock()
	prev := v.state.Swap(unloaded)
	v.drain.Unlock()
	if prev == loading {
		// Load is still running; it owns the model and its outcome.
		return nil
	}
	if v.batch != nil {
		v.batch.close()
	}
	if v.model != nil {
		if err := v.model.Close(); err != nil {
			return fmt.Errorf("unload model %s version %s: %w", name, ver, err)
		}
	}
	s.log.Info("model unloaded", "model", name, "version", ver)
	return nil
}

// Route makes name send requests to targets in proportion to their
// weights, replacing what it sent before in one step. Every target must be
// loaded and ready, so no request meets a cold model. To roll out: Load the
// new version, Route to it, then Unload the old one, which drains.
func (s *Server) Route(name string, targets []Target) error {
	if name == "" || len(targets) == 0 {
		return forge.Errorf(forge.Invalid, "a route needs a name and at least one target")
	}
	r := &route{}
	total := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range targets {
		if t.Weight <= 0 {
			return forge.Errorf(forge.Invalid, "route %s: target %s version %s has weight %d; weights must be positive", name, t.Model, t.Version, t.Weight)
		}
		v := s.models[t.Model][t.Version]
		if v == nil {
			return forge.Errorf(forge.NotFound, "route %s: model %s version %s is not loaded", name, t.Model, t.Version)
		}
		if v.state.Load() != ready {
			return forge.Errorf(forge.Unavailable, "route %s: model %s version %s is not ready", name, t.Model, t.Version)
		}
		total += t.Weight
		r.targets = append(r.targets, v)
		r.m = append(r.m, s.metrics.forVersion(v.name, v.version, name))
		r.cum = append(r.cum, total)
	}
	s.routes[name] = r
	return nil
}

// SetRoutePayloads makes route name log its requests as p says, instead of
// as its versions do; nil goes back to the versions' setting.
func (s *Server) SetRoutePayloads(name string, p *RoutePayloads) {
	if p == nil {
		s.routePayloads.Delete(name)
		return
	}
	s.routePayloads.Store(name, p)
}

// Unroute removes a route; requests for name then resolve to a model of
// that name, if any.
func (s *Server) Unroute(name string) {
	s.mu.Lock()
	delete(s.routes, name)
	s.mu.Unlock()
}

// GateReady makes Ready (REST /v2/health/ready and gRPC ServerReady alike)
// also wait for ready: the inference server by itself would say ready with
// no models loaded yet.
func (s *Server) GateReady(ready func() bool) { s.gate.Store(&ready) }

// GateUnrouted sets what a request for a name that has neither a route nor
// a model gets: fn returns an error for a name that is known but not
// served yet (a stored deployment whose versions are still loading after a
// restart, as forge.Unavailable), or nil for a name nobody knows, which
// stays NotFound.
func (s *Server) GateUnrouted(fn func(name string) error) { s.unrouted.Store(&fn) }

// Stop marks the server stopping: Ready answers false from now on, and
// inference is still served until the listeners close.
func (s *Server) Stop() { s.stopping.Store(true) }

// Ready reports whether every loaded version is ready: none is loading and
// none failed (Triton's strict readiness), and the server is not stopping.
func (s *Server) Ready() bool {
	if s.stopping.Load() {
		return false
	}
	if g := s.gate.Load(); g != nil && !(*g)() {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, vs := range s.models {
		for _, v := range vs {
			if v.state.Load() != ready {
				return false
			}
		}
	}
	return true
}

// ModelState is one version's state, for listings.
type ModelState struct {
	Name, Version, Platform string
	State                   string // LOADING, READY, FAILED
	Reason                  string
}

// Models lists every version, sorted.
func (s *Server) Models() []ModelState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []ModelState
	for _, vs := range s.models {
		for _, v := range vs {
			out = append(out, v.describe())
		}
	}
	slices.SortFunc(out, func(a, b ModelState) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), compareVersions(a.Version, b.Version))
	})
	return out
}

func (v *version) describe() ModelState {
	st := ModelState{Name: v.name, Version: v.version}
	state := v.state.Load()
	if state != loading {
		// Load writes platform before it publishes the state; reading it
		// while loading would race.
		st.Platform = v.platform
	}
	switch state {
	case loading:
		st.State = "LOADING"
	case ready:
		st.State = "READY"
	case failed:
		st.State, st.Reason = "FAILED", forge.Message(v.err)
		if forge.KindOf(v.err) == forge.Internal {
			st.Reason = v.err.Error()
		}
	default:
		st.State = "UNAVAILABLE"
	}
	return st
}

// compareVersions orders numeric versions numerically, others as strings.
func compareVersions(a, b string) int {
	x, errx := strconv.ParseInt(a, 10, 64)
	y, erry := strconv.ParseInt(b, 10, 64)
	if errx == nil && erry == nil {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}

// pick resolves name (and version, if given) to a version, without taking
// it: routes first, then models, whose default is the highest ready version.
func (s *Server) pick(name, ver string) (*version, *versionMetrics, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.routes[name]; r != nil {
		if ver != "" {
			for i, v := range r.targets {
				if v.version == ver {
					return v, r.m[i], nil
				}
			}
			return nil, nil, forge.Errorf(forge.NotFound, "deployment %s does not serve version %s", name, ver)
		}
		if len(r.targets) == 1 {
			return r.targets[0], r.m[0], nil
		}
		x := rand.IntN(r.cum[len(r.cum)-1])
		i, _ := slices.BinarySearch(r.cum, x+1)
		return r.targets[i], r.m[i], nil
	}
	vs := s.models[name]
	if vs == nil {
		if fn := s.unrouted.Load(); fn != nil {
			if err := (*fn)(name); err != nil {
				return nil, nil, err
			}
		}
		return nil, nil, forge.Errorf(forge.NotFound, "unknown model %q", name)
	}
	if ver != "" {
		v := vs[ver]
		if v == nil {
			return nil, nil, forge.Errorf(forge.NotFound, "unknown version %s of model %q", ver, name)
		}
		return v, v.m, nil
	}
	var best, any *version
	for _, v := range vs {
		if any == nil || compareVersions(v.version, any.version) > 0 {
			any = v
		}
		if v.state.Load() == ready && (best == nil || compareVersions(v.version, best.version) > 0) {
			best = v
		}
	}
	if best == nil {
		return any, any.m, nil
	}
	return best, best.m, nil
}

// acquire resolves and takes a ready version for one request; the caller
// must call release. A version unloaded under it is resolved again.
func (s *Server) acquire(name, ver string) (*version, *versionMetrics, error) {
	for range 3 {
		v, m, err := s.pick(name, ver)
		if err != nil {
			return nil, nil, err
		}
		v.drain.RLock()
		switch v.state.Load() {
		case ready:
			return v, m, nil
		case unloaded:
			v.drain.RUnlock()
			continue
		}
		v.drain.RUnlock()
		return nil, nil, v.notReady()
	}
	return nil, nil, forge.Errorf(forge.Unavailable, "model %s is being replaced; retry", name)
}

func (v *version) release() { v.drain.RUnlock() }

func (v *version) notReady() error {
	st := v.describe()
	if st.Reason != "" {
		return forge.Errorf(forge.Unavailable, "model %s version %s is not ready: it failed to load: %s", v.name, v.version, st.Reason)
	}
	return forge.Errorf(forge.Unavailable, "model %s version %s is not ready (%s)", v.name, v.version, st.State)
}

// Metadata describes what a name resolves to.
type Metadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []forge.TensorSpec
	Outputs  []forge.TensorSpec
	// State and Reason say why a version is not ready.
	State, Reason string
}

// ModelMetadata describes the model or route called name.
func (s *Server) ModelMetadata(name, ver string) (Metadata, error) {
	v, _, err := s.pick(name, ver)
	if err != nil {
		return Metadata{}, err
	}
	md := Metadata{Name: name, Platform: v.platform}
	s.mu.RLock()
	if r := s.routes[name]; r != nil {
		for _, t := range r.targets {
			md.Versions = append(md.Versions, t.version)
		}
	} else {
		for vv := range s.models[name] {
			md.Versions = append(md.Versions, vv)
		}
		slices.SortFunc(md.Versions, compareVersions)
	}
	s.mu.RUnlock()
	if st := v.describe(); st.State != "READY" {
		md.State, md.Reason = st.State, st.Reason
		return md, nil
	}
	md.Inputs, md.Outputs = v.sig.Inputs, v.sig.Outputs
	return md, nil
}

// ModelReady reports whether name (and version) resolve to a ready version.
func (s *Server) ModelReady(name, ver string) (bool, error) {
	v, _, err := s.pick(name, ver)
	if err != nil {
		return false, err
	}
	return v.state.Load() == ready, nil
}

// Close unloads every version.
func (s *Server) Close() error {
	s.mu.Lock()
	s.routes = map[string]*route{}
	var all [][2]string
	for n, vs := range s.models {
		for v := range vs {
			all = append(all, [2]string{n, v})
		}
	}
	s.mu.Unlock()
	var err error
	for _, nv := range all {
		if e := s.Unload(nv[0], nv[1]); e != nil && !forge.IsKind(e, forge.NotFound) {
			err = errors.Join(err, e)
		}
	}
	if s.payload != nil {
		s.payload.close()
		s.payload = nil
	}
	return err
}
