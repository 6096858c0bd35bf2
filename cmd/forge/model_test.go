package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

const modelFixtures = "../../testdata/models"

// cliRuns is a run-artifact store over the real blob store.
type cliRuns struct {
	blobs forge.BlobStore
	files map[string][]registry.File
}

func (s *cliRuns) ListRunArtifacts(ctx context.Context, runID, p string) ([]registry.File, error) {
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

// registryServer serves the registry on db and a blob folder; the run
// r1 has the XGBoost multiclass model under model/.
func registryServer(t *testing.T, db *sqlstore.DB) string {
	t.Helper()
	blobs, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(modelFixtures, "xgb_multiclass.json"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := blobs.Put(context.Background(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	runs := &cliRuns{blobs: blobs, files: map[string][]registry.File{
		"r1": {{Path: "model/model.json", Digest: info.Digest, Size: info.Size}},
	}}
	log := slog.New(slog.DiscardHandler)
	reg := registry.New(db, blobs, runs, log)
	reg.TempDir = t.TempDir()
	mux := http.NewServeMux()
	httpapi.Mount(mux, reg.Routes())
	srv := httptest.NewServer(httpapi.Chain(mux, httpapi.WithRequestID, httpapi.Recover(log)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// forge runs the CLI in-process against server.
func forgeCLI(t *testing.T, server string, args ...string) (string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	err := run(context.Background(), append(args, "--server", server), &out, &errw)
	return out.String(), err
}

func TestModelCLI(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		srv := registryServer(t, db)
		mustRun := func(args ...string) string {
			t.Helper()
			out, err := forgeCLI(t, srv, args...)
			if err != nil {
				t.Fatalf("forge %s: %v", strings.Join(args, " "), err)
			}
			return out
		}

		out := mustRun("model", "register", "iris", "--file", filepath.Join(modelFixtures, "mlp.onnx"), "--description", "an MLP")
		for _, want := range []string{"registered iris version 1 (format onnx)", "input", "FP32", "[-1 4]", "[-1 3]", "opset"} {
			if !strings.Contains(out, want) {
				t.Errorf("register output lacks %q:\n%s", want, out)
			}
		}
		out = mustRun("model", "register", "iris", "--run", "r1", "--path", "model", "-o", "json")
		var d api.ModelVersionDetail
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("register -o json: %v\n%s", err, out)
		}
		if d.ModelVersion.Version != "2" || d.Format != "xgboost" || d.Lineage.RunID != "r1" || d.Signature.XGBoost.NumClasses != 3 {
			t.Fatalf("register from run: %+v", d)
		}

		// A truncated model is refused and uses no version number.
		bad := filepath.Join(t.TempDir(), "model.onnx")
		onnxBytes, _ := os.ReadFile(filepath.Join(modelFixtures, "mlp.onnx"))
		os.WriteFile(bad, onnxBytes[:300], 0o644)
		if _, err := forgeCLI(t, srv, "model", "register", "iris", "--file", bad); err == nil || !strings.Contains(err.Error(), "model.onnx: not a valid ONNX model") {
			t.Fatalf("truncated model: %v", err)
		}
		if _, err := forgeCLI(t, srv, "model", "register", "iris"); err == nil {
			t.Fatal("register without --file or --run accepted")
		}

		mustRun("model", "alias", "iris", "champion", "1")
		if _, err := forgeCLI(t, srv, "model", "alias", "iris", "champion", "3"); err == nil || !strings.Contains(err.Error(), "version=3") {
			t.Fatalf("alias to a missing version: %v", err)
		}
		out = mustRun("model", "show", "iris@champion")
		t.Logf("forge model show iris@champion:\n%s", out)
		for _, want := range []string{"version:     1", "aliases:     champion", "format:      onnx (mlp.onnx)", "source:    upload:mlp.onnx", "output", "mlp.onnx", "description: an MLP"} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		out = mustRun("model", "show", "iris")
		if !strings.Contains(out, "version:     2") || !strings.Contains(out, "run:       r1") || !strings.Contains(out, "multi:softprob") {
			t.Errorf("show latest:\n%s", out)
		}
		out = mustRun("model", "show", "iris@2", "-o", "json")
		if err := json.Unmarshal([]byte(out), &d); err != nil || d.ModelFile != "model.json" || d.Files[0].Path != "model.json" {
			t.Fatalf("show -o json: %v %+v", err, d)
		}
		if _, err := forgeCLI(t, srv, "model", "show", "iris@nobody"); err == nil || !strings.Contains(err.Error(), "RESOURCE_DOES_NOT_EXIST") {
			t.Fatalf("unknown alias: %v", err)
		}
		if _, err := forgeCLI(t, srv, "model", "show", "nope"); err == nil || !strings.Contains(err.Error(), "RESOURCE_DOES_NOT_EXIST") {
			t.Fatalf("unknown model: %v", err)
		}

		out = mustRun("model", "ls")
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "iris") || !strings.Contains(lines[1], "champion=1") {
			t.Fatalf("ls:\n%s", out)
		}
		var models []api.RegisteredModel
		if err := json.Unmarshal([]byte(mustRun("model", "ls", "-o", "json")), &models); err != nil || len(models) != 1 {
			t.Fatalf("ls -o json: %v %v", err, models)
		}

		dir := t.TempDir()
		var dl api.ModelVersionDetail
		if err := json.Unmarshal([]byte(mustRun("model", "download", "iris@champion", "--out", dir, "-o", "json")), &dl); err != nil || len(dl.Files) == 0 {
			t.Fatalf("download -o json: %+v %v", dl, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "mlp.onnx"))
		if err != nil || !bytes.Equal(got, onnxBytes) {
			t.Fatalf("downloaded file differs: %v", err)
		}
		mustRun("model", "alias", "-d", "iris", "champion")

		// watch: the history from the start, then a wait for the next event.
		out = mustRun("model", "watch", "--since", "0", "--count", "4")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.Contains(lines[0], "version_created") || !strings.Contains(lines[0], "iris@1") ||
			!strings.Contains(lines[2], "alias_set") || !strings.Contains(lines[2], "iris@1 alias champion") || !strings.Contains(lines[3], "alias_deleted") {
			t.Fatalf("watch --since 0:\n%s", out)
		}
		// The next event after 4: waits for it.
		next := make(chan string, 1)
		go func() {
			out, err := forgeCLI(t, srv, "model", "watch", "--since", "4", "--count", "1", "-o", "json")
			if err != nil {
				out = err.Error()
			}
			next <- out
		}()
		mustRun("model", "alias", "iris", "prod", "2")
		var ev api.ModelEvent
		if out := <-next; json.Unmarshal([]byte(out), &ev) != nil || ev.Seq != 5 || ev.Type != "alias_set" || ev.Alias != "prod" || ev.Version != "2" {
			t.Fatalf("watch --since 4: %s", out)
		}
		// From now (the default): it sees an event made after it started, and
		// not the earlier ones. It starts at an unknown moment, so keep making
		// events until it reports one.
		go func() {
			out, err := forgeCLI(t, srv, "model", "watch", "--count", "1", "-o", "json")
			if err != nil {
				out = err.Error()
			}
			next <- out
		}()
		var out2 string
		for i := 0; out2 == ""; i++ {
			if i == 50 {
				t.Fatal("watch from now reported nothing")
			}
			mustRun("model", "alias", "iris", "canary", "1")
			select {
			case out2 = <-next:
			case <-time.After(200 * time.Millisecond):
			}
		}
		if json.Unmarshal([]byte(out2), &ev) != nil || ev.Seq <= 5 || ev.Type != "alias_set" || ev.Alias != "canary" {
			t.Fatalf("watch from now: %s", out2)
		}
		if _, err := forgeCLI(t, srv, "model", "download", "iris@champion", "--out", dir); err == nil {
			t.Fatal("download through a deleted alias worked")
		}
	})
}
