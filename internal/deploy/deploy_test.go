package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/runtime/process"
	"github.com/forge-mlops/forge/internal/runtime/xgbrt"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

const fixtures = "../../testdata/models"

// shift is added to the base score of the second version of the fixture
// model: a reg:squarederror model's output moves by exactly that much, so
// every answer says which version gave it.
const shift = 1000

// row is the first reference input without a missing value, and want what
// xgboost 1.7.4 computed for it (version 1; version 2 adds shift).
var row, want = func() ([]float64, float64) {
	b, err := os.ReadFile(filepath.Join(fixtures, "xgb_regression.reference.json"))
	if err != nil {
		panic(err)
	}
	var ref struct {
		Inputs  [][]*float64
		Outputs [][]float64
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		panic(err)
	}
next:
	for i, in := range ref.Inputs {
		out := make([]float64, len(in))
		for j, v := range in {
			if v == nil {
				continue next
			}
			out[j] = *v
		}
		return out, ref.Outputs[i][0]
	}
	panic("no complete reference row")
}()

// plane is a Forge server's serving side, built from the real pieces.
type plane struct {
	db    *sqlstore.DB
	blobs forge.BlobStore
	reg   *registry.Registry
	srv   *serve.Server
	ctl   *Controller
	url   string
	api   *api.Client
	stop  func()
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newServer() *serve.Server {
	rts := map[string]forge.Runtime{"xgboost": xgbrt.Runtime{}, "other": &process.Runtime{ReadyTimeout: 20 * time.Second}}
	return serve.New(serve.Options{Runtimes: rts, Version: "test"},
		discard(), prometheus.NewRegistry())
}

// start mounts everything over db and blobs (fresh ones when nil), as
// `forge server` does, and runs the controller.
func start(t *testing.T, db *sqlstore.DB, blobs forge.BlobStore) *plane {
	t.Helper()
	if db == nil {
		db = sqlstoretest.OpenSQLite(t)
	}
	if blobs == nil {
		local, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		blobs = local
	}
	p := &plane{db: db, blobs: blobs, srv: newServer()}
	p.reg = registry.New(db, blobs, nil, discard())
	mux := http.NewServeMux()
	httpapi.Mount(mux, p.reg.Routes())
	httpapi.Mount(mux, p.srv.Routes())
	var dapi *API
	p.ctl, dapi = Build(db, p.reg, blobs, p.srv, t.TempDir(), discard())
	httpapi.Mount(mux, dapi.Routes())
	hs := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.ctl.Run(ctx); close(done) }()
	p.stop = sync.OnceFunc(func() { cancel(); <-done; hs.Close(); p.srv.Close() })
	t.Cleanup(p.stop)
	p.url, p.api = hs.URL, api.NewClient(hs.URL, "")
	return p
}

// register adds a version of model from a fixture file; with a base score
// shift, from a copy of it whose base score is moved by that much.
func (p *plane) register(t *testing.T, model, fixture string, baseShift float64, format string) string {
	t.Helper()
	// Files keep the names they are uploaded with, as the CLI sends them.
	file := fixture
	b, err := os.ReadFile(filepath.Join(fixtures, fixture))
	if err != nil {
		b, file = []byte(fixture), "opaque.bin" // not a fixture: the content itself
	}
	if baseShift != 0 {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		param := m["learner"].(map[string]any)["learner_model_param"].(map[string]any)
		var base float64
		fmt.Sscan(param["base_score"].(string), &base)
		param["base_score"] = fmt.Sprintf("%g", base+baseShift)
		b, _ = json.Marshal(m)
	}
	f := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := p.reg.CreateVersion(context.Background(), registry.NewVersion{Name: model, CreateModel: true, Format: format,
		Uploads: []registry.Upload{{Path: file, File: f}}})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(v.Version)
}

func (p *plane) deploy(t *testing.T, name string, spec api.DeploymentSpec) api.Deployment {
	t.Helper()
	d, err := p.api.PutDeployment(context.Background(), name, spec)
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return d
}

var inferBody = func() []byte {
	b, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{
		"name": "input__0", "datatype": "FP32", "shape": []int{1, len(row)}, "data": row}}})
	return b
}()

// infer asks base for one prediction of name; an error is a failed request.
func infer(c *http.Client, base, name string) (float64, error) {
	resp, err := c.Post(base+"/v2/models/"+name+"/infer", "application/json", bytes.NewReader(inferBody))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Outputs []struct{ Data []float64 }
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1 {
		return 0, fmt.Errorf("bad response %s (%v)", b, err)
	}
	return out.Outputs[0].Data[0], nil
}

// version tells which version gave an answer: 1 or 2, 0 for neither.
func version(y float64) int {
	switch {
	case math.Abs(y-want) < 1e-3:
		return 1
	case math.Abs(y-(want+shift)) < 1e-2:
		return 2
	}
	return 0
}

func mustInfer(t *testing.T, base, name string) int {
	t.Helper()
	y, err := infer(http.DefaultClient, base, name)
	if err != nil {
		t.Fatalf("infer %s: %v", name, err)
	}
	v := version(y)
	if v == 0 {
		t.Fatalf("infer %s = %v, want %v (v1) or %v (v2)", name, y, want, want+shift)
	}
	return v
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeployByVersionAndAlias(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		p.register(t, "reg", "xgb_regression.json", shift, "")
		if err := p.reg.SetAlias(context.Background(), "reg", "prod", 1); err != nil {
			t.Fatal(err)
		}
		d := p.deploy(t, "pinned", api.DeploymentSpec{Model: "reg", Ref: "2"})
		if d.Status == nil || !d.Status.Ready || len(d.Status.Targets) != 1 || d.Status.Targets[0].Version != "2" {
			t.Fatalf("deploy by version: status %+v", d.Status)
		}
		p.deploy(t, "prod", api.DeploymentSpec{Model: "reg", Ref: "prod"})
		p.deploy(t, "newest", api.DeploymentSpec{Model: "reg"})
		if got := mustInfer(t, p.url, "pinned"); got != 2 {
			t.Errorf("pinned served version %d, want 2", got)
		}
		if got := mustInfer(t, p.url, "prod"); got != 1 {
			t.Errorf("prod (alias at 1) served version %d, want 1", got)
		}
		if got := mustInfer(t, p.url, "newest"); got != 2 {
			t.Errorf("newest (latest) served version %d, want 2", got)
		}
		// Both versions serve several deployments and are loaded once each.
		if ms := p.srv.Models(); len(ms) != 2 {
			t.Errorf("loaded versions %+v, want reg 1 and 2 once each", ms)
		}
		// A third version moves "latest"; the pinned one stays.
		p.register(t, "reg", "xgb_regression.json", 0, "")
		eventually(t, "newest to follow latest", func() bool {
			st, _ := p.ctl.Status("newest")
			return st.Ready && st.Targets[0].Version == "3"
		})
		if got := mustInfer(t, p.url, "pinned"); got != 2 {
			t.Errorf("pinned served version %d after a new version, want 2", got)
		}

		l, err := p.api.ListDeployments(context.Background(), "", 0)
		if err != nil || len(l.Deployments) != 3 || l.Revision == "" {
			t.Fatalf("list: %+v, %v", l, err)
		}
		if err := p.api.DeleteDeployment(context.Background(), "pinned"); err != nil {
			t.Fatal(err)
		}
		if _, err := infer(http.DefaultClient, p.url, "pinned"); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("a deleted deployment answered: %v", err)
		}
		// Version 2 served only "pinned": it is unloaded.
		for _, m := range p.srv.Models() {
			if m.Version == "2" {
				t.Errorf("version 2 still loaded after its only deployment was deleted: %+v", p.srv.Models())
			}
		}
	})
}

// TestAliasMoveUnderLoad moves the alias a deployment follows while 8
// clients send requests: none may fail, and the new version answers after.
func TestAliasMoveUnderLoad(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		p.register(t, "reg", "xgb_regression.json", shift, "")
		ctx := context.Background()
		if err := p.reg.SetAlias(ctx, "reg", "champion", 1); err != nil {
			t.Fatal(err)
		}
		p.deploy(t, "live", api.DeploymentSpec{Model: "reg", Ref: "champion", MaxBatchSize: 8})

		var stop atomic.Bool
		var total, failed atomic.Int64
		var seen [3]atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					y, err := infer(client, p.url, "live")
					total.Add(1)
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					seen[version(y)].Add(1)
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		if err := p.reg.SetAlias(ctx, "reg", "champion", 2); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the deployment to follow the alias", func() bool {
			st, _ := p.ctl.Status("live")
			return st.Ready && st.Targets[0].Version == "2"
		})
		before := seen[2].Load()
		time.Sleep(200 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		t.Logf("%d requests: %d v1, %d v2, %d failed", total.Load(), seen[1].Load(), seen[2].Load(), failed.Load())
		if failed.Load() > 0 {
			t.Fatalf("%d of %d requests failed during the switch; first: %v", failed.Load(), total.Load(), firstErr.Load())
		}
		if seen[0].Load() > 0 {
			t.Fatalf("%d answers came from neither version", seen[0].Load())
		}
		if seen[1].Load() == 0 || seen[2].Load() == before {
			t.Fatalf("want answers from v1 before and v2 after the switch: v1 %d, v2 %d (%d at the switch)", seen[1].Load(), seen[2].Load(), before)
		}
		if got := mustInfer(t, p.url, "live"); got != 2 {
			t.Errorf("after the switch version %d answered, want 2", got)
		}
		eventually(t, "version 1 to unload", func() bool { return len(p.srv.Models()) == 1 })
	})
}

// TestCanarySplit checks the share of a canary against a binomial: counts
// within 4 standard deviations.
func TestCanarySplit(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		p.register(t, "reg", "xgb_regression.json", shift, "")
		d := p.deploy(t, "split", api.DeploymentSpec{Model: "reg", Ref: "1", CanaryModel: "reg", CanaryRef: "2", CanaryPercent: 20})
		if len(d.Status.Targets) != 2 || d.Status.Targets[0].Weight != 80 || d.Status.Targets[1].Weight != 20 {
			t.Fatalf("canary targets %+v", d.Status.Targets)
		}
		const n, share = 2000, 0.2
		canary := 0
		for range n {
			if mustInfer(t, p.url, "split") == 2 {
				canary++
			}
		}
		mean, sigma := n*share, math.Sqrt(n*share*(1-share))
		t.Logf("canary answered %d of %d (expected %.0f ± %.1f)", canary, n, mean, sigma)
		if math.Abs(float64(canary)-mean) > 4*sigma {
			t.Fatalf("canary answered %d of %d requests, want %.0f ± %.0f", canary, n, mean, 4*sigma)
		}
	})
}

// TestRestart: a new controller over the same database serves the stored
// deployments, and is not ready until it does.
func TestRestart(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		p.register(t, "reg", "xgb_regression.json", shift, "")
		p.deploy(t, "a", api.DeploymentSpec{Model: "reg", Ref: "1"})
		p.deploy(t, "b", api.DeploymentSpec{Model: "reg", Ref: "2", MaxBatchSize: 4, MaxQueueDelayMicroseconds: 500})
		p.stop()

		q := start(t, db, p.blobs)
		eventually(t, "readiness after restart", func() bool {
			resp, err := http.Get(q.url + "/v2/health/ready")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		if got := mustInfer(t, q.url, "a"); got != 1 {
			t.Errorf("a served version %d after restart, want 1", got)
		}
		if got := mustInfer(t, q.url, "b"); got != 2 {
			t.Errorf("b served version %d after restart, want 2", got)
		}
		d, err := q.api.GetDeployment(context.Background(), "b")
		if err != nil || d.MaxBatchSize != 4 || d.MaxQueueDelayMicroseconds != 500 || !d.Status.Ready {
			t.Errorf("b after restart: %+v %+v, %v", d, d.Status, err)
		}
	})
}

func TestReadyWaitsForLoad(t *testing.T) {
	srv := newServer()
	c := NewController(&Local{}, srv, nil)
	mux := http.NewServeMux()
	httpapi.Mount(mux, srv.Routes())
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/health/ready", nil))
	if rec.Code != 503 || c.Ready() || srv.Ready() {
		t.Fatalf("a controller that has not loaded its deployments answered %d, ready %v", rec.Code, c.Ready())
	}
}

// TestBrokenDeployment: a version no runtime can load is stored and
// reported with its error; the other deployments keep serving, and the
// server stays ready.
func TestBrokenDeployment(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		p.register(t, "opaque", "not a model this server can run", 0, registry.FormatOther)
		p.deploy(t, "good", api.DeploymentSpec{Model: "reg"})
		d := p.deploy(t, "bad", api.DeploymentSpec{Model: "opaque", Ref: "1"})
		if d.Status == nil || d.Status.Ready || !strings.Contains(d.Status.Error, "forge-serve.json") {
			t.Fatalf("broken deployment status %+v", d.Status)
		}
		got, err := p.api.GetDeployment(context.Background(), "bad")
		if err != nil || got.Status.Error != d.Status.Error {
			t.Fatalf("show bad: %+v, %v", got.Status, err)
		}
		if _, err := infer(http.DefaultClient, p.url, "bad"); err == nil {
			t.Error("the broken deployment answered")
		}
		if v := mustInfer(t, p.url, "good"); v != 1 {
			t.Errorf("good served version %d", v)
		}
		resp, err := http.Get(p.url + "/v2/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !p.ctl.Ready() {
			t.Errorf("one broken deployment made the server unready (%d)", resp.StatusCode)
		}
	})
}

func TestBadInput(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		p := start(t, db, nil)
		p.register(t, "reg", "xgb_regression.json", 0, "")
		for _, tc := range []struct {
			name   string
			spec   api.DeploymentSpec
			status int
		}{
			{"x", api.DeploymentSpec{Model: "nope"}, 404},
			{"x", api.DeploymentSpec{Model: "reg", Ref: "7"}, 404},
			{"x", api.DeploymentSpec{Model: "reg", Ref: "no-such-alias"}, 404},
			{"x", api.DeploymentSpec{Model: "reg", CanaryModel: "reg", CanaryRef: "1", CanaryPercent: 150}, 400},
			{"x", api.DeploymentSpec{Model: "reg", CanaryModel: "reg", CanaryRef: "1", CanaryPercent: 0}, 400},
			{"x", api.DeploymentSpec{Model: "reg", CanaryModel: "nope", CanaryRef: "1", CanaryPercent: 10}, 404},
			{"x", api.DeploymentSpec{Model: "reg", CanaryPercent: 10}, 400},
			{"x", api.DeploymentSpec{Model: "reg", MaxBatchSize: -1}, 400},
			{"x", api.DeploymentSpec{Model: ""}, 400},
			{"-bad", api.DeploymentSpec{Model: "reg"}, 400},
		} {
			_, err := p.api.PutDeployment(context.Background(), tc.name, tc.spec)
			var e *api.Error
			if !errorAs(err, &e) || e.Status != tc.status {
				t.Errorf("put %s %+v: %v, want status %d", tc.name, tc.spec, err, tc.status)
			}
		}
		if l, _ := p.api.ListDeployments(context.Background(), "", 0); len(l.Deployments) != 0 {
			t.Errorf("refused deployments were stored: %+v", l.Deployments)
		}
		if _, err := p.api.GetDeployment(context.Background(), "nope"); !isStatus(err, 404) {
			t.Errorf("get unknown: %v", err)
		}
		if err := p.api.DeleteDeployment(context.Background(), "nope"); !isStatus(err, 404) {
			t.Errorf("delete unknown: %v", err)
		}
		resp, err := http.Get(p.url + "/api/forge/v1/deployments?revision=x&wait=soon")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("bad wait: %d", resp.StatusCode)
		}
	})
}

func isStatus(err error, status int) bool {
	var e *api.Error
	return errorAs(err, &e) && e.Status == status
}
