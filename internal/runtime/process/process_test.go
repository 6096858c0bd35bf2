package process_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/runtime/process"
	"github.com/forge-mlops/forge/internal/serve"
)

// Version writes a model version holding the test predictor and its
// manifest, with env added to the predictor's environment.
func Version(t testing.TB, env map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/predictor.py")
	if err != nil {
		t.Fatal(err)
	}
	man, _ := json.Marshal(process.Manifest{Command: []string{"/usr/bin/python3", "predictor.py"}, Env: env, ReadyTimeout: "20s"})
	if err := os.WriteFile(filepath.Join(dir, "predictor.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, process.ManifestFile), man, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newServer(t *testing.T, rt *process.Runtime) *serve.Server {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := serve.New(serve.Options{Runtimes: map[string]forge.Runtime{"other": rt}}, log, prometheus.NewRegistry())
	t.Cleanup(func() { s.Close() })
	return s
}

func double(ctx context.Context, s *serve.Server, name string) ([]float32, error) {
	in := []float32{1, 2.5, -3}
	resp, err := s.Infer(ctx, name, "", &serve.Request{Inputs: []forge.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 3}, Data: in}}})
	if err != nil {
		return nil, err
	}
	return resp.Outputs[0].Data.([]float32), nil
}

// TestInferAndRestart: a predictor loaded through the server answers with
// its signature; killed with SIGKILL, it is restarted on a new process, the
// requests meanwhile are Unavailable, and it answers again.
func TestInferAndRestart(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := newServer(t, &process.Runtime{WorkDir: t.TempDir()})
	ctx := context.Background()
	src := forge.ModelSource{Name: "double", Version: "1", Files: os.DirFS(Version(t, map[string]string{"PID_FILE": pidFile}))}
	if err := s.Load(ctx, src, serve.LoadOptions{Format: "other"}); err != nil {
		t.Fatal(err)
	}
	md, err := s.ModelMetadata("double", "")
	if err != nil || md.Platform != "process" || len(md.Inputs) != 1 || md.Inputs[0].Name != "x" || !slices.Equal(md.Inputs[0].Shape, []int64{-1, 3}) {
		t.Fatalf("metadata %+v, %v", md, err)
	}
	want := []float32{2, 5, -6}
	if got, err := double(ctx, s, "double"); err != nil || !slices.Equal(got, want) {
		t.Fatalf("infer: %v, %v; want %v", got, err, want)
	}
	if _, err := s.Infer(ctx, "double", "", &serve.Request{Inputs: []forge.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: []float32{1, 2}}}}); !forge.IsKind(err, forge.Invalid) {
		t.Errorf("wrong shape: %v, want Invalid", err)
	}

	pid := readPID(t, pidFile)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sawDown := false
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := double(ctx, s, "double")
		if err == nil {
			if !slices.Equal(got, want) {
				t.Fatalf("after restart: %v, want %v", got, want)
			}
			if sawDown {
				break
			}
		} else if forge.IsKind(err, forge.Unavailable) {
			sawDown = true
		} else {
			t.Fatalf("during restart: %v, want Unavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not answering again 20s after the kill (saw it down: %v, last error %v)", sawDown, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if next := readPID(t, pidFile); next == pid {
		t.Errorf("still pid %d after the kill", pid)
	}

	// Close stops the predictor: its process is gone afterwards.
	pid = readPID(t, pidFile)
	if err := s.Unload("double", "1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("predictor %d still runs after unload", pid)
	}
}

func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestNeverReady: a predictor that never becomes ready fails to load with
// the end of its stderr in the error, and the version is listed as failed.
func TestNeverReady(t *testing.T) {
	s := newServer(t, &process.Runtime{WorkDir: t.TempDir(), ReadyTimeout: 2 * time.Second, Grace: 500 * time.Millisecond})
	dir := Version(t, map[string]string{"MODE": "never_ready"})
	// The manifest's own timeout would win over the runtime's: drop it.
	man, _ := json.Marshal(process.Manifest{Command: []string{"/usr/bin/python3", "predictor.py"}, Env: map[string]string{"MODE": "never_ready"}})
	os.WriteFile(filepath.Join(dir, process.ManifestFile), man, 0o644)
	err := s.Load(context.Background(), forge.ModelSource{Name: "slow", Version: "1", Files: os.DirFS(dir)}, serve.LoadOptions{Format: "other"})
	if err == nil || !strings.Contains(err.Error(), "checkpoint.bin is missing") || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("load: %v; want a not-ready error with the predictor's stderr", err)
	}
	if ok, _ := s.ModelReady("slow", ""); ok {
		t.Error("the failed version is ready")
	}
}

// TestBadManifest: versions without a usable manifest or command are
// Invalid and say what is missing.
func TestBadManifest(t *testing.T) {
	rt := &process.Runtime{WorkDir: t.TempDir()}
	for _, tc := range []struct{ name, manifest, want string }{
		{"none", "", "forge-serve.json"},
		{"no command", `{"port_env":"PORT"}`, "no command"},
		{"missing program", `{"command":["./no-such-program"]}`, "no-such-program"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.manifest != "" {
				os.WriteFile(filepath.Join(dir, process.ManifestFile), []byte(tc.manifest), 0o644)
			}
			_, err := rt.Load(context.Background(), forge.ModelSource{Name: "m", Version: "1", Files: os.DirFS(dir)})
			if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load: %v; want Invalid mentioning %q", err, tc.want)
			}
		})
	}
}
