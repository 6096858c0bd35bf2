package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// recording passes everything to a real executor and keeps the launches it
// was given, to check what the service fills in.
type recording struct {
	forge.Executor
	mu       sync.Mutex
	launches []forge.Launch
}

func (r *recording) Start(ctx context.Context, l *forge.Launch) (forge.Handle, error) {
	r.mu.Lock()
	r.launches = append(r.launches, *l)
	r.mu.Unlock()
	return r.Executor.Start(ctx, l)
}

// Capacity passes on the capacity of a local executor (embedding the
// interface hides it).
func (r *recording) Capacity(ctx context.Context) (forge.Resources, forge.Resources, error) {
	return r.Executor.(forge.CapacityReporter).Capacity(ctx)
}

func (r *recording) launch(jobID string) (forge.Launch, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.launches {
		if l.JobID == jobID {
			return l, true
		}
	}
	return forge.Launch{}, false
}

// Two local executors with their own roots and capacities: each job runs on
// the one it names (or the default), admission counts each one's capacity
// apart, and the launch carries the spec's image, code and timeout.
func TestRoutesToNamedExecutors(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		root := t.TempDir()
		rec := map[string]*recording{}
		e := start(t, opts{db: db, root: root, cpus: 4,
			execs: map[string]forge.Executor{"box": newExecutor(t, filepath.Join(root, "box"), 1)},
			wrap: func(name string, x forge.Executor) forge.Executor {
				rec[name] = &recording{Executor: x}
				return rec[name]
			}})
		ctx := context.Background()
		var buf bytes.Buffer
		code := t.TempDir()
		os.WriteFile(filepath.Join(code, "hello.txt"), []byte("hi"), 0o644)
		digest, _, err := bundle.Create(code, &buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.blobs.Put(ctx, &buf); err != nil {
			t.Fatal(err)
		}

		// The box's one CPU is taken ...
		busy := e.submit(t, Spec{Command: sh("exec sleep 30"), Executor: "box", CPUs: 1, Image: "python:3.11", Code: digest, Timeout: "10m"})
		busy = e.await(t, busy.ID, "running", func(j Job) bool { return j.State == Running && j.Handle != "" })
		// ... so the next box job waits, while jobs on the default still run.
		waits := e.submit(t, Spec{Command: sh("echo on box; cat hello.txt"), Executor: "box", Code: digest})
		def := e.submit(t, Spec{Command: sh("echo on local")})
		if def.Executor != "local" || def.Spec.Executor != "local" || waits.Executor != "box" {
			t.Fatalf("executors: default job %q (spec %q), box job %q", def.Executor, def.Spec.Executor, waits.Executor)
		}
		d := e.final(t, def.ID)
		if d.State != Succeeded || len(d.Attempts) != 1 || d.Attempts[0].Executor != "local" {
			t.Fatalf("default job = %+v", d)
		}
		if j, _ := e.svc.Get(ctx, waits.ID); j.State != Queued {
			t.Fatalf("box job is %s while the box is full", j.State)
		}
		if !strings.Contains(string(busy.Handle), filepath.Join(root, "box")) {
			t.Errorf("box job's handle %s: not under the box executor's root", busy.Handle)
		}
		l, ok := rec["box"].launch(busy.ID)
		if !ok || l.Image != "python:3.11" || l.Code != digest || l.Timeout != 10*time.Minute {
			t.Errorf("launch on box = %+v (found %v): want the spec's image, code and timeout", l, ok)
		}
		if _, ok := rec["local"].launch(busy.ID); ok {
			t.Error("the box job was launched on local too")
		}

		if _, err := e.svc.Cancel(ctx, busy.ID); err != nil {
			t.Fatal(err)
		}
		w := e.final(t, waits.ID)
		if w.State != Succeeded || w.Attempts[0].Executor != "box" {
			t.Fatalf("box job = %+v", w)
		}
		if out := e.logs(t, w.ID); !strings.Contains(out, "on box") || !strings.Contains(out, "hi") {
			t.Fatalf("box job log = %q", out)
		}
		if _, err := e.svc.Submit(ctx, Spec{Command: sh("true"), Executor: "box", CPUs: 2}); !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "box") {
			t.Fatalf("a job larger than the box: %v, want invalid naming box", err)
		}
	})
}

// A job on an executor that the restarted server no longer has is lost;
// the others are re-attached.
func TestRestartWithoutItsExecutor(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		root := t.TempDir()
		a := start(t, opts{db: db, root: root, execs: map[string]forge.Executor{"box": newExecutor(t, filepath.Join(root, "box"), 2)}})
		gone := a.submit(t, Spec{Command: sh("exec sleep 30"), Executor: "box"})
		stays := a.submit(t, Spec{Command: sh("sleep 1; echo done")})
		for _, id := range []string{gone.ID, stays.ID} {
			a.await(t, id, "running", func(j Job) bool { return j.State == Running && j.Handle != "" })
		}
		a.stop()
		b := start(t, opts{db: db, root: root})
		g := b.final(t, gone.ID)
		if g.State != Failed || g.Reason != forge.ReasonLost || !strings.Contains(g.Message, `"box"`) {
			t.Fatalf("job on the removed executor = %+v", g)
		}
		if s := b.final(t, stays.ID); s.State != Succeeded {
			t.Fatalf("job on local = %+v", s)
		}
		// Its processes are the operator's to stop: clean up here, and wait for
		// them to end before the temp folders are removed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.exec.Cancel(ctx, g.Attempts[0].Handle, forge.ReasonCancelled)
		b.exec.Wait(ctx, g.Attempts[0].Handle)
	})
}

func TestExecutorsHTTP(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		root := t.TempDir()
		e := start(t, opts{db: db, root: root, cpus: 4, execs: map[string]forge.Executor{"box": newExecutor(t, filepath.Join(root, "box"), 1)}})
		e.svc.cfg.Kinds["box"] = "local"
		e.svc.cfg.Probes = map[string]Probe{"box": func(ctx context.Context) (*forge.Resources, error) {
			return nil, errors.New("the box is unplugged")
		}}
		mux := http.NewServeMux()
		httpapi.Mount(mux, e.svc.Routes(slog.New(slog.DiscardHandler)))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		c := api.NewClient(srv.URL, "")
		ctx := context.Background()

		list, err := c.Executors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "box" || list[1].Name != "local" {
			t.Fatalf("executors = %+v", list)
		}
		box, loc := list[0], list[1]
		if box.Reachable || !strings.Contains(box.Error, "unplugged") || box.Default {
			t.Errorf("box = %+v: want unreachable with the probe's error, not the default", box)
		}
		if !loc.Reachable || !loc.Default || loc.Kind != "local" || loc.Total == nil || loc.Total.CPUs != 4 || loc.Free == nil {
			t.Errorf("local = %+v: want reachable, the default, with its capacity", loc)
		}

		// An executor the server does not have is the client's mistake.
		_, err = c.SubmitJob(ctx, api.JobSpec{Command: []string{"true"}, Executor: "nowhere"})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "nowhere") {
			t.Fatalf("unknown executor: %v, want 400 naming it", err)
		}
		if list, _ := c.Jobs(ctx, ""); len(list) != 0 {
			t.Fatalf("jobs after a refused submit: %+v", list)
		}

		// The code bundle is served back as stored, for pods that fetch it.
		var buf bytes.Buffer
		code := t.TempDir()
		os.WriteFile(filepath.Join(code, "train.py"), []byte("print(1)\n"), 0o644)
		digest, _, err := bundle.Create(code, &buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PutBundle(ctx, digest, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			digest string
			status int
		}{{digest, 200}, {strings.Repeat("0", 64), 404}, {"nope", 400}} {
			resp, err := http.Get(srv.URL + "/api/forge/v1/bundles/" + tc.digest)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("GET bundle %s: %d, want %d", tc.digest, resp.StatusCode, tc.status)
			}
			if tc.status == 200 {
				sum := sha256.Sum256(body)
				if hex.EncodeToString(sum[:]) != digest {
					t.Errorf("GET bundle: body's sha256 is not %s", digest)
				}
			}
		}
		if ok, err := c.HasBundle(ctx, digest); !ok || err != nil {
			t.Errorf("HEAD bundle beside GET: %v, %v", ok, err)
		}
	})
}

// failing is an executor whose starts fail for a reason of the server's.
type failing struct{ forge.Executor }

func (failing) Start(context.Context, *forge.Launch) (forge.Handle, error) {
	return "", errors.New("create attempt folder: mkdir /srv/forge-data/executor/x: no space left on device")
}

// A start that fails for an internal reason fails the job without showing
// the cause, which names the server's folders, to clients.
func TestInternalStartFailureHidesCause(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := start(t, opts{db: db, wrap: func(_ string, x forge.Executor) forge.Executor { return failing{x} }})
		j := e.final(t, e.submit(t, Spec{Command: sh("true")}).ID)
		if j.State != Failed || j.Reason != forge.ReasonLost || !strings.Contains(j.Message, "internal error") {
			t.Fatalf("job = %s %s %q, want failed, lost, an internal error", j.State, j.Reason, j.Message)
		}
		if strings.Contains(j.Message, "/srv/forge-data") {
			t.Errorf("the job's message shows the server's path: %q", j.Message)
		}
	})
}
