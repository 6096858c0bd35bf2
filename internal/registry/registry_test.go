package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

const fixtures = "../../testdata/models"

// runStore is a run-artifact store over the real blob store, as the
// tracking package keeps one: (run, path) -> digest.
type runStore struct {
	blobs forge.BlobStore
	mu    sync.Mutex
	files map[string][]registry.File
}

func (s *runStore) ListRunArtifacts(ctx context.Context, runID, p string) ([]registry.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs, ok := s.files[runID]
	if !ok {
		return nil, forge.Errorf(forge.NotFound, "run %s not found", runID)
	}
	var out []registry.File
	for _, f := range fs {
		if p == "" || f.Path == p || strings.HasPrefix(f.Path, p+"/") {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *runStore) add(t *testing.T, runID, p string, content []byte) {
	t.Helper()
	info, err := s.blobs.Put(context.Background(), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[runID] = append(s.files[runID], registry.File{Path: p, Digest: info.Digest, Size: info.Size})
}

func (s *runStore) deleteRun(runID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, runID)
}

type env struct {
	t      *testing.T
	db     *sqlstore.DB
	reg    *registry.Registry
	blobs  *blob.Local
	runs   *runStore
	srv    *httptest.Server
	client *api.Client
}

func newEnv(t *testing.T, db *sqlstore.DB) *env {
	t.Helper()
	blobs, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	runs := &runStore{blobs: blobs, files: map[string][]registry.File{}}
	log := slog.New(slog.DiscardHandler)
	reg := registry.New(db, blobs, runs, log)
	reg.TempDir = t.TempDir()
	mux := http.NewServeMux()
	httpapi.Mount(mux, reg.Routes())
	srv := httptest.NewServer(httpapi.Chain(mux, httpapi.WithRequestID, httpapi.Recover(log)))
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, reg: reg, blobs: blobs, runs: runs, srv: srv, client: api.NewClient(srv.URL, "")}
}

// call sends a raw request (a JSON body, or the query for GET) and returns
// the status and the decoded JSON answer.
func (e *env) call(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("%s %s: decode answer: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// must is call that expects 200.
func (e *env) must(method, path string, body any) map[string]any {
	e.t.Helper()
	status, out := e.call(method, path, body)
	if status != http.StatusOK {
		e.t.Fatalf("%s %s: status %d: %v", method, path, status, out)
	}
	return out
}

// refused checks that a call fails with the status and MLflow error code.
func (e *env) refused(method, path string, body any, status int, code string) string {
	e.t.Helper()
	got, out := e.call(method, path, body)
	if got != status || out["error_code"] != code {
		e.t.Fatalf("%s %s: got %d %v, want %d %s", method, path, got, out, status, code)
	}
	msg, _ := out["message"].(string)
	return msg
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reference reads what the generating library recorded about a fixture.
func reference(t *testing.T, model string) map[string]any {
	t.Helper()
	var ref map[string]any
	b := fixture(t, strings.TrimSuffix(strings.TrimSuffix(model, ".onnx"), ".json")+".reference.json")
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func num(v any) int64 { return int64(v.(float64)) }

func TestRunSource(t *testing.T) {
	for _, tc := range []struct {
		source, runID string
		run, path     string
		ok            bool
	}{
		{"runs:/abc/model", "", "abc", "model", true},
		{"runs:/abc/model/sub/", "", "abc", "model/sub", true},
		{"runs:/abc", "", "abc", "", true},
		{"mlflow-artifacts:/1/abc/artifacts/model", "", "abc", "model", true},
		{"mlflow-artifacts://host:5000/1/abc/artifacts/model/m.onnx", "", "abc", "model/m.onnx", true},
		{"mlflow-artifacts:/1/abc/artifacts", "", "abc", "", true},
		{"mlflow-artifacts:/1/abc/other/model", "", "", "", false},
		{"s3://bucket/1/abc/artifacts/model", "abc", "abc", "model", true},
		{"s3://bucket/1/abcd/artifacts/model", "abc", "", "", false},
		{"s3://bucket/model", "", "", "", false},
	} {
		run, p, ok := registry.RunSource(tc.source, tc.runID)
		if run != tc.run || p != tc.path || ok != tc.ok {
			t.Errorf("RunSource(%q, %q) = %q, %q, %v; want %q, %q, %v", tc.source, tc.runID, run, p, ok, tc.run, tc.path, tc.ok)
		}
	}
}

// Moving an alias from many goroutines at once: every reader always finds
// the alias on one of the versions, and the alias ends where the last
// committed move (the last alias_set event) put it.
func TestConcurrentAliasMoves(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			if _, err := e.reg.CreateVersion(ctx, registry.NewVersion{Name: "m", CreateModel: true, Format: registry.FormatOther,
				Uploads: []registry.Upload{{Path: "w.bin", File: writeTemp(t, fmt.Sprint(i))}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.reg.SetAlias(ctx, "m", "champion", 1); err != nil {
			t.Fatal(err)
		}
		start, err := e.reg.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for g := 0; g < 12; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					if err := e.reg.SetAlias(ctx, "m", "champion", int64((g+i)%3+1)); err != nil {
						errs <- err
					}
				}
			}()
		}
		stop := make(chan struct{})
		var rg sync.WaitGroup
		rg.Add(1)
		reads := 0
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, err := e.reg.VersionByAlias(ctx, "m", "champion")
				if err != nil || v.Version < 1 || v.Version > 3 {
					errs <- fmt.Errorf("read during moves: version %d, err %v", v.Version, err)
					return
				}
				reads++
			}
		}()
		wg.Wait()
		close(stop)
		rg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		evs, err := e.reg.Events(ctx, start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 60 {
			t.Fatalf("got %d alias events, want 60", len(evs))
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq <= evs[i-1].Seq {
				t.Fatalf("events out of order: %d after %d", evs[i].Seq, evs[i-1].Seq)
			}
		}
		v, err := e.reg.VersionByAlias(ctx, "m", "champion")
		if err != nil {
			t.Fatal(err)
		}
		if last := evs[len(evs)-1]; last.Type != registry.EventAliasSet || last.Version != v.Version {
			t.Fatalf("alias is on version %d, the last event says %+v", v.Version, last)
		}
		m, err := e.reg.GetModel(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Aliases) != 1 || m.Aliases[0].Version != v.Version {
			t.Fatalf("model aliases %+v, want one on version %d", m.Aliases, v.Version)
		}
		t.Logf("%d reads during 60 moves", reads)
	})
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sseEvent is one server-sent event as a client reads it.
type sseEvent struct{ id, event, data string }

// readEvents reads server-sent events from r into a channel, skipping
// comments and the retry field.
func readEvents(r io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return ch
}

// The watch as server-sent events: changes arrive as they happen on one
// open response, and a reconnection with Last-Event-ID resumes after it.
func TestWatchStream(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		open := func(lastID string) (*http.Response, <-chan sseEvent) {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/forge/v1/models/watch", nil)
			req.Header.Set("Accept", "text/event-stream")
			if lastID != "" {
				req.Header.Set("Last-Event-ID", lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			return resp, readEvents(resp.Body)
		}
		next := func(ch <-chan sseEvent) sseEvent {
			t.Helper()
			select {
			case ev, ok := <-ch:
				if !ok {
					t.Fatal("the stream ended")
				}
				return ev
			case <-time.After(10 * time.Second):
				t.Fatal("no event within 10s")
			}
			return sseEvent{}
		}
		resp, events := open("")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if _, err := e.client.UploadModelVersion(ctx, "s", []string{filepath.Join(fixtures, "mlp.onnx")}, api.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.client.SetModelAlias(ctx, "s", "prod", "1"); err != nil {
			t.Fatal(err)
		}
		first, second := next(events), next(events)
		var ev api.ModelEvent
		if err := json.Unmarshal([]byte(second.data), &ev); err != nil {
			t.Fatal(err)
		}
		if first.event != "version_created" || second.event != "alias_set" || ev.Alias != "prod" || ev.Version != "1" || second.id != fmt.Sprint(ev.Seq) {
			t.Fatalf("events %+v then %+v (%+v)", first, second, ev)
		}
		// A reconnection after the first event gets the second again, then new ones.
		_, again := open(first.id)
		if got := next(again); got != second {
			t.Fatalf("resumed after %s: got %+v, want %+v", first.id, got, second)
		}
		if err := e.client.DeleteModelAlias(ctx, "s", "prod"); err != nil {
			t.Fatal(err)
		}
		if a, b := next(events), next(again); a.event != "alias_deleted" || a != b {
			t.Fatalf("after the alias was deleted: %+v and %+v", a, b)
		}
		// A bad Last-Event-ID is refused before the stream starts.
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/forge/v1/models/watch", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", "x")
		bad, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		bad.Body.Close()
		if bad.StatusCode != 400 {
			t.Fatalf("bad Last-Event-ID: status %d", bad.StatusCode)
		}
	})
}

// A watcher wakes on a change at once, and times out quietly without one.
func TestWatch(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		head, err := e.client.WatchModels(ctx, -1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if head.LastSeq != 0 || len(head.Events) != 0 {
			t.Fatalf("empty registry: got %+v", head)
		}
		got := make(chan api.WatchModelsResponse, 1)
		go func() {
			w, err := e.client.WatchModels(ctx, head.LastSeq, 20*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- w
		}()
		time.Sleep(100 * time.Millisecond) // let the watcher wait first
		began := time.Now()
		if _, err := e.client.UploadModelVersion(ctx, "w", []string{filepath.Join(fixtures, "mlp.onnx")}, api.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		w := <-got
		if len(w.Events) != 1 || w.Events[0].Type != "version_created" || w.Events[0].Name != "w" || w.Events[0].Version != "1" {
			t.Fatalf("watch: got %+v", w)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("watcher woke after %v", took)
		}
		if err := e.client.SetModelAlias(ctx, "w", "prod", "1"); err != nil {
			t.Fatal(err)
		}
		w2, err := e.client.WatchModels(ctx, w.LastSeq, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(w2.Events) != 1 || w2.Events[0].Type != "alias_set" || w2.Events[0].Alias != "prod" || w2.Events[0].Version != "1" {
			t.Fatalf("watch after alias: %+v", w2)
		}
		w3, err := e.client.WatchModels(ctx, w2.LastSeq, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(w3.Events) != 0 || w3.LastSeq != w2.LastSeq {
			t.Fatalf("idle watch: %+v", w3)
		}
		// Deleting the version deletes its alias: both are events.
		e.must("DELETE", "/api/2.0/mlflow/model-versions/delete", map[string]any{"name": "w", "version": "1"})
		w4, err := e.client.WatchModels(ctx, w2.LastSeq, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(w4.Events) != 2 || w4.Events[0].Type != "alias_deleted" || w4.Events[1].Type != "version_deleted" {
			t.Fatalf("watch after delete: %+v", w4)
		}
		// A second registry on the same database (another replica) sees
		// the events by polling.
		other := registry.New(db, e.blobs, nil, nil)
		evs, err := other.Watch(ctx, 0, 100, time.Second)
		if err != nil || len(evs) != 4 {
			t.Fatalf("other replica: %d events, %v", len(evs), err)
		}
	})
}
