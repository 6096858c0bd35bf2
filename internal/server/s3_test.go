package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob/s3test"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

// TestS3Blobs runs the server with its blobs in a bucket of a real S3
// server: an artifact logged through the MLflow API and a dataset version
// go to the bucket under their digests, the dataset is queried (DuckDB
// reads it from the local cache) and both download back intact.
func TestS3Blobs(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	dir := t.TempDir()
	base := inProcess(t, func(c *config.Server) {
		c.DataDir = dir
		c.Blob = "s3://forge/team"
		c.S3 = config.S3{Endpoint: srv.Endpoint, Region: "us-east-1", PathStyle: true,
			AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey}
	})
	client := api.NewClient(base, "")

	run := createRun(t, base)
	artifact := []byte("an artifact's bytes, in S3")
	resp, err := client.Request(ctx, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/notes.txt", nil, bytes.NewReader(artifact), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

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
	// The server keeps no blob folder of its own.
	if _, err := os.Stat(filepath.Join(dir, "blobs")); !os.IsNotExist(err) {
		t.Fatalf("a local blob folder exists with blob on S3: %v", err)
	}
	// Drop the local copy the upload left: the query must fetch it.
	os.RemoveAll(filepath.Join(dir, "blob-cache", "sha256"))
	os.MkdirAll(filepath.Join(dir, "blob-cache", "sha256"), 0o755)

	stream, err := client.Query(ctx, api.QueryRequest{SQL: `SELECT sum(x) FROM "d@1"`})
	if err != nil {
		t.Fatal(err)
	}
	var sum any
	for stream.Next() {
		sum = stream.Row()[0]
	}
	stream.Close()
	if err := stream.Err(); err != nil || sum == nil || strings.TrimSpace(toString(sum)) != "45" {
		t.Fatalf("query over the S3 dataset: %v %v", sum, err)
	}

	status, got := call(t, "GET", base+"/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/notes.txt", nil)
	if status != 200 || !bytes.Equal(got, artifact) {
		t.Fatalf("artifact download: %d %q", status, got)
	}
	// A Range request reads that part of the object, and says so.
	req, _ := http.NewRequest("GET", base+"/api/2.0/mlflow-artifacts/artifacts/0/"+run+"/artifacts/notes.txt", nil)
	req.Header.Set("Range", "bytes=3-10")
	rresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rresp.Body)
	rresp.Body.Close()
	if rresp.StatusCode != 206 || !bytes.Equal(part, artifact[3:11]) || rresp.Header.Get("Content-Range") != fmt.Sprintf("bytes 3-10/%d", len(artifact)) {
		t.Fatalf("ranged artifact download: %d %q %q", rresp.StatusCode, part, rresp.Header.Get("Content-Range"))
	}
	req.Header.Set("Range", "bytes=1000-")
	if rresp, err = http.DefaultClient.Do(req); err != nil || rresp.StatusCode != 416 {
		t.Fatalf("range past the end: %v %v", rresp.StatusCode, err)
	}
	rresp.Body.Close()
	var buf bytes.Buffer
	if _, _, err := client.GetDataset(ctx, "d@1", &buf); err != nil || !bytes.Equal(buf.Bytes(), pqBytes) {
		t.Fatalf("dataset download: %d bytes, %v", buf.Len(), err)
	}

	// Both are objects in the bucket, under the prefix and their digests.
	s3c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for o := range s3c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys[o.Key] = true
	}
	// forge gc lists the bucket: an object nothing records is young
	// (just stored), the two recorded ones are referenced.
	if _, err := s3c.PutObject(ctx, "forge", "team/sha256/00/"+strings.Repeat("0", 62), bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := client.CollectGarbage(ctx, api.GCRequest{})
	if err != nil || rep.Blobs != 3 || rep.Referenced != 2 || rep.Young != 1 || rep.Removed != 0 {
		t.Fatalf("gc on S3: %+v %v", rep, err)
	}
	for what, b := range map[string][]byte{"artifact": artifact, "dataset": pqBytes} {
		h := sha256.Sum256(b)
		d := hex.EncodeToString(h[:])
		if k := "team/sha256/" + d[:2] + "/" + d[2:]; !keys[k] {
			t.Errorf("the %s is not in the bucket as %s (objects: %v)", what, k, keys)
		}
	}
}

// With the S3 server down, an artifact upload answers 503 and records
// nothing; once it is back, the same upload succeeds.
func TestS3UnavailableAtRunTime(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	base := inProcess(t, func(c *config.Server) {
		c.Blob = "s3://forge"
		c.S3 = config.S3{Endpoint: srv.Endpoint, Region: "us-east-1", PathStyle: true,
			AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey}
	})
	client := api.NewClient(base, "")
	run := createRun(t, base)
	url := "/api/2.0/mlflow-artifacts/artifacts/0/" + run + "/artifacts/model.bin"
	kept := "/api/2.0/mlflow-artifacts/artifacts/0/" + run + "/artifacts/kept.txt"
	resp, err := client.Request(ctx, "PUT", kept, nil, strings.NewReader("stored before"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pq := parquetBytes(t)
	srv.Stop()
	// Every blob write and read answers 503 with a retry hint.
	for what, req := range map[string]*http.Request{
		"artifact upload":   mustRequest(t, "PUT", base+url, strings.NewReader("weights"), "application/octet-stream"),
		"large upload":      mustRequest(t, "PUT", base+url, bytes.NewReader(make([]byte, 9<<20)), "application/octet-stream"),
		"artifact download": mustRequest(t, "GET", base+kept, nil, ""),
		"dataset upload":    mustRequest(t, "POST", base+"/api/forge/v1/datasets/d/versions", bytes.NewReader(pq), "application/vnd.apache.parquet"),
	} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s with S3 down: %v", what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("ETag") != "" {
			t.Errorf("%s with S3 down: %d (Retry-After %q) %s, want 503 with Retry-After", what, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	// Nothing half-written: no artifact record, no dataset version.
	if status, b := call(t, "GET", base+"/api/2.0/mlflow/artifacts/list?run_id="+run, nil); status != 200 || strings.Contains(string(b), "model.bin") {
		t.Fatalf("the failed upload left a record: %d %s", status, b)
	}
	if status, b := call(t, "GET", base+"/api/forge/v1/datasets/d/versions/1", nil); status != 404 {
		t.Fatalf("the failed dataset upload left a version: %d %s", status, b)
	}
	srv.Restart()
	resp, err = client.Request(ctx, "PUT", url, nil, strings.NewReader("weights"), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, b := call(t, "GET", base+url, nil); status != 200 || string(b) != "weights" {
		t.Fatalf("after S3 is back: %d %q", status, b)
	}
}

func toString(v any) string { return fmt.Sprint(v) }

// A missing bucket, wrong credentials or an endpoint nobody answers on
// stop the server at start, with a message naming the setting.
func TestS3BadStart(t *testing.T) {
	srv := s3test.Start(t, "forge")
	gone := "http://" + freeAddr(t)
	for name, tc := range map[string]struct {
		blob, endpoint, secret, want string
	}{
		"bucket":      {"s3://absent/x", srv.Endpoint, s3test.SecretKey, "no such bucket"},
		"credentials": {"s3://forge/x", srv.Endpoint, "wrong", "AWS_SECRET_ACCESS_KEY"},
		"endpoint":    {"s3://forge/x", gone, s3test.SecretKey, "s3.endpoint " + gone},
	} {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Blob = tc.blob
		cfg.S3 = config.S3{Endpoint: tc.endpoint, Region: "us-east-1", PathStyle: true, AccessKeyID: s3test.AccessKey, SecretAccessKey: tc.secret}
		s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			s.Close()
			t.Fatalf("%s: the server started", name)
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "wrong") {
			t.Errorf("%s: %v, want a message with %q and no secret", name, err, tc.want)
		}
	}
}

func mustRequest(t *testing.T, method, url string, body io.Reader, ctype string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req
}

// parquetBytes is a small Parquet file (10 rows).
func parquetBytes(t *testing.T) []byte {
	t.Helper()
	pq := filepath.Join(t.TempDir(), "d.parquet")
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	if _, err := duck.Exec("COPY (SELECT range AS x FROM range(10)) TO '" + pq + "' (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pq)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
