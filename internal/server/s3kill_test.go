package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob/s3test"
	"github.com/forge-mlops/forge/internal/bundle"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// The server on PostgreSQL + S3 is killed (kill -9) while writers upload
// a run's artifacts, small ones in one request and 12 MiB ones as
// multipart uploads: after a restart on the same database and bucket
// every acknowledged artifact downloads intact, every listed one too (no
// record without its blob), and the unfinished multipart uploads and
// temporary objects the kill left in the bucket are gone.
func TestS3Kill9MidArtifactUploads(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	args := []string{"--data-dir", t.TempDir(), "--db", sqlstoretest.PostgresURL(t), "--blob", "s3://forge/team",
		"--s3-endpoint", srv.Endpoint, "--s3-region", "us-east-1", "--s3-path-style"}
	p, _ := startForge(t, args...)
	run := createRun(t, p.url)
	base := p.url + "/api/2.0/mlflow-artifacts/artifacts/0/" + run + "/artifacts/"

	var mu sync.Mutex
	acked := map[string][32]byte{} // path -> sha256 of what the server acknowledged
	var largeAcked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: time.Minute}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				size := 1000 + i*37
				large := w%2 == 1 && i%2 == 0
				if large {
					size = 12<<20 + i
				}
				data := bytes.Repeat([]byte{byte(w), byte(i), byte(i >> 8), 7}, size/4+1)[:size]
				name := fmt.Sprintf("w%d/f%d.bin", w, i)
				req, _ := http.NewRequest("PUT", base+name, bytes.NewReader(data))
				resp, err := hc.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return
				}
				mu.Lock()
				acked[name] = sha256.Sum256(data)
				mu.Unlock()
				if large {
					largeAcked.Add(1)
				}
			}
		}()
	}
	// Kill it once large uploads have been acknowledged and another one is
	// on its way up as a multipart upload the S3 server has begun.
	s3c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	uploading := func() int {
		n := 0
		for u := range s3c.ListIncompleteUploads(ctx, "forge", "team/", true) {
			if u.Err == nil {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Minute)
	for largeAcked.Load() < 2 || uploading() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no multipart upload under way after 2 minutes (%d large acknowledged)", largeAcked.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()
	close(stop)
	wg.Wait()

	left := uploading()
	if left == 0 {
		t.Fatal("the kill left no unfinished multipart upload: the test did not kill mid-upload")
	}
	t.Logf("%d artifacts acknowledged (%d large), %d unfinished multipart uploads left by the kill", len(acked), largeAcked.Load(), left)

	p, _ = startForgeAt(t, strings.TrimPrefix(p.url, "http://"), args...)
	base = p.url + "/api/2.0/mlflow-artifacts/artifacts/0/" + run + "/artifacts/"
	for name, sum := range acked {
		status, b := call(t, "GET", base+name, nil)
		if status != 200 || sha256.Sum256(b) != sum {
			t.Errorf("acknowledged artifact %s after the restart: %d, %d bytes", name, status, len(b))
		}
	}
	// Every recorded file has its blob: nothing half-written.
	var files []api.FileInfo
	for _, dir := range []string{"w0", "w1", "w2", "w3"} {
		status, b := call(t, "GET", p.url+"/api/2.0/mlflow/artifacts/list?run_id="+run+"&path="+dir, nil)
		var out api.ListArtifactsResponse
		if status != 200 || json.Unmarshal(b, &out) != nil {
			t.Fatalf("list %s: %d %s", dir, status, b)
		}
		files = append(files, out.Files...)
	}
	for _, f := range files {
		status, b := call(t, "GET", base+f.Path, nil)
		if status != 200 || int64(len(b)) != f.FileSize {
			t.Errorf("listed artifact %s: %d, %d bytes (listed %d)", f.Path, status, len(b), f.FileSize)
		}
	}
	if len(files) < len(acked) {
		t.Errorf("%d files listed, %d acknowledged", len(files), len(acked))
	}
	for u := range s3c.ListIncompleteUploads(ctx, "forge", "team/", true) {
		t.Errorf("unfinished multipart upload left after the restart: %s (%v)", u.Key, u.Err)
	}
	for o := range s3c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: "team/tmp/", Recursive: true}) {
		t.Errorf("temporary object left after the restart: %s (%v)", o.Key, o.Err)
	}
	// Every large blob's data object is named by its digest's pointer:
	// none of the uploads the kill cut is left behind.
	named := map[string]bool{}
	for o := range s3c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: "team/sha256/", Recursive: true}) {
		if o.Err != nil || o.Size != 0 {
			continue
		}
		st, err := s3c.StatObject(ctx, "forge", o.Key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		named["team/"+st.UserMetadata["Forge-Object"]] = true
	}
	for o := range s3c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: "team/data/", Recursive: true}) {
		if !named[o.Key] {
			t.Errorf("data object no pointer names left after the restart: %s (%v)", o.Key, o.Err)
		}
	}
	if largeAcked.Load() > 0 && len(named) == 0 {
		t.Error("no large artifact is stored as a pointer to a data object")
	}
}

// A job on a server whose blobs are in S3: its code bundle is stored in
// the bucket, the job runs it, and its log is kept there once it ends;
// the log reads back through the API from the bucket.
func TestS3JobBundleAndLog(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	// Jobs may run as forge-job: the folders above the data dir let it through.
	parent, err := os.MkdirTemp("", "forge-s3job-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	os.Chmod(parent, 0o755)
	p, _ := startForge(t, "--data-dir", filepath.Join(parent, "data"), "--blob", "s3://forge/team",
		"--s3-endpoint", srv.Endpoint, "--s3-region", "us-east-1", "--s3-path-style")
	c := api.NewClient(p.url, "")
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "train.py"), []byte("print('trained from a bundle in S3')\n"), 0o644)
	var bun bytes.Buffer
	digest, _, err := bundle.Create(code, &bun, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutBundle(ctx, digest, bun.Bytes()); err != nil {
		t.Fatal(err)
	}
	j, err := c.SubmitJob(ctx, api.JobSpec{Command: []string{"/usr/bin/python3", "train.py"}, Code: digest})
	if err != nil {
		t.Fatal(err)
	}
	j, log := waitJob(t, c, j.ID)
	if j.State != "succeeded" || !strings.Contains(log, "trained from a bundle in S3") {
		t.Fatalf("job %s: %s, log %q", j.ID, j.State, log)
	}
	keys := map[string]bool{}
	s3c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	for o := range s3c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: "team/sha256/", Recursive: true}) {
		keys[strings.Replace(strings.TrimPrefix(o.Key, "team/sha256/"), "/", "", 1)] = true
	}
	if !keys[digest] {
		t.Errorf("the code bundle %s is not in the bucket (%v)", digest, keys)
	}
	var logDigest string
	for _, a := range j.Attempts {
		logDigest = a.LogDigest
	}
	if logDigest == "" || !keys[logDigest] {
		t.Errorf("the job's log (%q) is not in the bucket (%v)", logDigest, keys)
	}
	if _, err := os.Stat(filepath.Join(parent, "data", "blobs")); !os.IsNotExist(err) {
		t.Errorf("a local blob folder exists with blob on S3: %v", err)
	}
}
