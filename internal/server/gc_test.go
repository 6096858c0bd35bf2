package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/config"
)

// TestBlobSweep stores one blob of every kind the server records (an
// artifact, a dataset version, a model version's file, a job's code bundle)
// plus one nothing records, makes them all look two days old, and sweeps:
// only the unrecorded one goes. Then a model version is deleted, and its
// file goes with the next sweep.
func TestBlobSweep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := inProcess(t, func(c *config.Server) { c.DataDir = dir })
	client := api.NewClient(base, "")
	store, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	digestOf := func(content []byte) forge.Digest {
		t.Helper()
		info, err := store.Put(ctx, bytes.NewReader(content)) // the same content: the same blob
		if err != nil {
			t.Fatal(err)
		}
		return info.Digest
	}

	// An artifact.
	run := createRun(t, base)
	artifact := []byte("an artifact's bytes")
	if err := client.Do(ctx, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/notes.txt", nil, nil, nil); err != nil {
		t.Fatal(err) // an empty artifact first: replaced below, its blob is then garbage too
	}
	resp, err := client.Request(ctx, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/notes.txt", nil, bytes.NewReader(artifact), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A dataset version, from a Parquet file DuckDB writes.
	pq := filepath.Join(t.TempDir(), "d.parquet")
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := duck.Exec("COPY (SELECT range AS x FROM range(10)) TO '" + pq + "' (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	duck.Close()
	pqBytes, _ := os.ReadFile(pq)
	if _, err := client.AddDatasetVersion(ctx, "d", bytes.NewReader(pqBytes), "test", "", ""); err != nil {
		t.Fatal(err)
	}
	// A model version.
	mlp, err := os.ReadFile("../../testdata/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UploadModelVersion(ctx, "m", []string{"../../testdata/models/mlp.onnx"}, api.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	// A job's code bundle.
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "train.py"), []byte("print('hi')\n"), 0o644)
	var bun bytes.Buffer
	bundleDigest, _, err := bundle.Create(code, &bun, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PutBundle(ctx, bundleDigest, bun.Bytes()); err != nil {
		t.Fatal(err)
	}
	// Queued only: the in-process server runs no scheduler (that is
	// Server.Run), so no log blob appears in the middle of the test.
	if _, err := client.SubmitJob(ctx, api.JobSpec{Command: []string{"python3", "train.py"}, Code: bundleDigest}); err != nil {
		t.Fatal(err)
	}
	// And one blob nothing records.
	orphan := digestOf([]byte("nobody refers to this"))

	kept := map[string]forge.Digest{"artifact": digestOf(artifact), "dataset": digestOf(pqBytes), "model": digestOf(mlp), "bundle": forge.Digest(bundleDigest)}
	age := func() {
		t.Helper()
		past := time.Now().Add(-48 * time.Hour)
		filepath.WalkDir(filepath.Join(dir, "blobs", "sha256"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				os.Chtimes(p, past, past)
			}
			return nil
		})
	}
	exists := func(d forge.Digest) bool {
		_, err := store.Stat(ctx, d)
		return err == nil
	}
	sweep := func(dry bool) api.GCReport {
		t.Helper()
		rep, err := client.CollectGarbage(ctx, api.GCRequest{DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	age()
	// Garbage: the orphan, and the empty artifact the upload replaced.
	if rep := sweep(true); rep.Garbage != 2 || rep.Removed != 0 || !exists(orphan) {
		t.Fatalf("dry run: %+v", rep)
	}
	rep := sweep(false)
	if rep.Removed != 2 || exists(orphan) {
		t.Fatalf("sweep: %+v (orphan still there: %v)", rep, exists(orphan))
	}
	for what, d := range kept {
		if !exists(d) {
			t.Errorf("the sweep removed the %s's blob %s", what, d)
		}
	}
	if status, got := call(t, "GET", base+"/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/notes.txt", nil); status != 200 || !bytes.Equal(got, artifact) {
		t.Errorf("artifact after the sweep: %d %q", status, got)
	}

	// Deleting the model version leaves its file to the next sweep.
	mustCall(t, "DELETE", base+"/api/2.0/mlflow/model-versions/delete", map[string]string{"name": "m", "version": "1"}, nil)
	age()
	if rep := sweep(false); rep.Removed != 1 || exists(kept["model"]) || !exists(kept["artifact"]) {
		t.Fatalf("sweep after deleting the version: %+v", rep)
	}

	// A grace under a minute is refused.
	status, b := call(t, "POST", base+"/api/forge/v1/admin/gc", api.GCRequest{Grace: "1s"})
	if status != 400 || !strings.Contains(string(b), "shorter than the minimum") {
		t.Fatalf("grace 1s: %d %s", status, b)
	}
}

// TestTempSwept: temporary files a killed server left in data_dir/tmp and
// the blob store's tmp are removed at start; later ones go with forge gc
// once nothing in them changed for an hour, and a dry run only counts them.
func TestTempSwept(t *testing.T) {
	dir := t.TempDir()
	tmp, blobTmp := filepath.Join(dir, "tmp"), filepath.Join(dir, "blobs", "tmp")
	write := func(p string, age time.Duration) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half an upload"), 0o644); err != nil {
			t.Fatal(err)
		}
		past := time.Now().Add(-age)
		os.Chtimes(p, past, past)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	left := []string{filepath.Join(tmp, "upload-1"), filepath.Join(tmp, "unpack-2", "model.onnx"), filepath.Join(blobTmp, "put-3")}
	for _, p := range left {
		write(p, 0)
	}
	base := inProcess(t, func(c *config.Server) { c.DataDir = dir })
	for _, p := range left {
		if exists(p) {
			t.Errorf("%s left by the last run is still there after start", p)
		}
	}

	oldFile, oldDir := filepath.Join(tmp, "upload-4"), filepath.Join(tmp, "unpack-5")
	write(oldFile, 2*time.Hour)
	write(filepath.Join(oldDir, "a"), 2*time.Hour)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(oldDir, past, past)
	// Young: a fresh upload, and an old folder something still writes in.
	young, busyDir := filepath.Join(blobTmp, "put-6"), filepath.Join(tmp, "unpack-7")
	write(young, 0)
	write(filepath.Join(busyDir, "old"), 2*time.Hour)
	write(filepath.Join(busyDir, "new"), 0)
	os.Chtimes(busyDir, past, past)

	client := api.NewClient(base, "")
	rep, err := client.CollectGarbage(context.Background(), api.GCRequest{DryRun: true})
	if err != nil || rep.Temp != 2 || !exists(oldFile) || !exists(oldDir) {
		t.Fatalf("dry run: %+v, %v (old file there: %v)", rep, err, exists(oldFile))
	}
	rep, err = client.CollectGarbage(context.Background(), api.GCRequest{})
	if err != nil || rep.Temp != 2 || rep.TempBytes != 2*int64(len("half an upload")) {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	if exists(oldFile) || exists(oldDir) {
		t.Errorf("old temporary entries kept: %v %v", exists(oldFile), exists(oldDir))
	}
	if !exists(young) || !exists(filepath.Join(busyDir, "new")) || !exists(filepath.Join(busyDir, "old")) {
		t.Error("gc removed a temporary entry that changed within the hour")
	}
}
