package serve

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge/internal/httpapi"
)

func state(s *Server, name, ver string) string {
	for _, m := range s.Models() {
		if m.Name == name && m.Version == ver {
			return m.State
		}
	}
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRepositoryPollAndControl: polling loads a NAME/VERSION folder that
// appears and unloads one that goes; Triton's repository extension loads,
// reloads a failed model, unloads (which polling then respects) and lists.
func TestRepositoryPollAndControl(t *testing.T) {
	dir := repo(t, map[string]string{"a/1": "xgb_binary.json"})
	s := New(Options{Runtimes: runtimes(t), Version: "test"}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	t.Cleanup(func() { s.Close() })
	r := s.NewRepository(dir, LoadOptions{})
	mux := http.NewServeMux()
	httpapi.Mount(mux, append(s.Routes(), r.Routes()...))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	post := func(path string) (int, string) {
		resp, err := http.Post(hs.URL+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if err := r.Scan(context.Background()); err != nil || state(s, "a", "1") != "READY" {
		t.Fatalf("first scan: %v, a/1 %q", err, state(s, "a", "1"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 20*time.Millisecond); close(done) }()

	copyFixture := func(nv, fixture string) {
		os.MkdirAll(filepath.Join(dir, nv), 0o755)
		b, _ := os.ReadFile(filepath.Join(fixtures, fixture))
		if err := os.WriteFile(filepath.Join(dir, nv, "model.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFixture("b/1", "xgb_regression.json")
	waitFor(t, "b/1 to load by polling", func() bool { return state(s, "b", "1") == "READY" })
	os.RemoveAll(filepath.Join(dir, "a"))
	waitFor(t, "a/1 to unload once its folder is gone", func() bool { return state(s, "a", "1") == "" })
	cancel()
	<-done

	if code, body := post("/v2/repository/models/b/unload"); code != 200 {
		t.Fatalf("unload b: %d %s", code, body)
	}
	if err := r.Scan(context.Background()); err != nil || state(s, "b", "1") != "" {
		t.Errorf("scan after unload: %v, b/1 %q; want it left unloaded", err, state(s, "b", "1"))
	}
	if code, body := post("/v2/repository/models/b/load"); code != 200 || state(s, "b", "1") != "READY" {
		t.Errorf("load b: %d %s, state %q", code, body, state(s, "b", "1"))
	}
	if code, body := post("/v2/repository/models/nope/load"); code != 404 || !strings.Contains(body, "no folder nope/VERSION") {
		t.Errorf("load of a model not in the folder: %d %s", code, body)
	}
	if code, _ := post("/v2/repository/models/nope/unload"); code != 404 {
		t.Errorf("unload of an unknown model: %d", code)
	}

	// A broken model fails, is not retried by a scan, and loads once fixed.
	os.MkdirAll(filepath.Join(dir, "c", "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "c", "1", "model.json"), []byte(`{"not": "xgboost"}`), 0o644)
	if err := r.Scan(context.Background()); err == nil || state(s, "c", "1") != "FAILED" {
		t.Fatalf("scan with a broken model: %v, state %q", err, state(s, "c", "1"))
	}
	_, body := post("/v2/repository/index")
	var index []repositoryIndexJSON
	if err := json.Unmarshal([]byte(body), &index); err != nil || len(index) != 2 || index[0] != (repositoryIndexJSON{"b", "1", "READY", ""}) || index[1].State != "FAILED" || index[1].Reason == "" {
		t.Errorf("index: %s (%v)", body, err)
	}
	copyFixture("c/1", "xgb_binary.json")
	if code, body := post("/v2/repository/models/c/load"); code != 200 || state(s, "c", "1") != "READY" {
		t.Errorf("reload of a fixed model: %d %s, state %q", code, body, state(s, "c", "1"))
	}
}
