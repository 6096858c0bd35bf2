package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/blob/blobtest"
	"github.com/forge-mlops/forge/internal/blob/s3test"
)

func openS3(t *testing.T, srv *s3test.Server, prefix string, cacheBytes int64) *blob.S3 {
	t.Helper()
	s, err := blob.NewS3(context.Background(), blob.S3Options{Bucket: "forge", Prefix: prefix, Endpoint: srv.Endpoint,
		Region: "us-east-1", PathStyle: true, AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey,
		CacheDir: t.TempDir(), CacheBytes: cacheBytes, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Conformance(t *testing.T) {
	srv := s3test.Start(t, "forge")
	n := 0
	blobtest.Run(t, func(t *testing.T) forge.BlobStore {
		n++ // a fresh prefix per subtest: an empty store
		return openS3(t, srv, "team/"+strings.Repeat("x", n), 1<<30)
	})
}

// Bytes changed in the bucket read as corruption, never as data.
func TestS3Corruption(t *testing.T) {
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "p", 1<<30)
	blobtest.RunCorruption(t, s, func(d forge.Digest) {
		key := "p/sha256/" + string(d[:2]) + "/" + string(d[2:])
		_, err := s.Client().PutObject(context.Background(), "forge", key, strings.NewReader("the model weighTs"), 17, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}, blob.ErrCorrupt)
	// Path verifies too: no corrupted copy lands in the cache.
	info, _ := s.Put(context.Background(), strings.NewReader("other"))
	key := "p/sha256/" + string(info.Digest[:2]) + "/" + string(info.Digest[2:])
	s.Client().PutObject(context.Background(), "forge", key, strings.NewReader("OTHER"), 5, minio.PutObjectOptions{})
	if _, err := s.Path(info.Digest); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("Path of a corrupted blob: %v", err)
	}
	if _, err := os.Stat(s.CacheFile(info.Digest)); !os.IsNotExist(err) {
		t.Fatalf("a corrupted copy is in the cache: %v", err)
	}
}

// A blob larger than one request streams up as a multipart upload to a
// data object that its digest's key points at, leaving no marker or upload
// behind; the blob reads, stats and lists with its own size, a second Put
// of it keeps one data object, a corrupted data object reads as an error,
// and garbage collection removes both objects.
func TestS3LargeMultipart(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "", 1<<30)
	data := make([]byte, 21<<20)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	info, err := s.Put(ctx, io.MultiReader(bytes.NewReader(data))) // no Len: unknown size
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	if info.Digest != forge.Digest(hex.EncodeToString(h[:])) || info.Size != int64(len(data)) {
		t.Fatalf("put: %+v", info)
	}
	want := "sha256/" + string(info.Digest[:2]) + "/" + string(info.Digest[2:])
	layout := func() (ptr int64, datas []string) {
		t.Helper()
		ptr = -1
		for o := range s.Client().ListObjects(ctx, "forge", minio.ListObjectsOptions{Recursive: true}) {
			switch {
			case o.Err != nil:
				t.Fatal(o.Err)
			case o.Key == want:
				ptr = o.Size
			case strings.HasPrefix(o.Key, "data/") && o.Size == int64(len(data)):
				datas = append(datas, o.Key)
			default:
				t.Fatalf("unexpected object %s (%d bytes)", o.Key, o.Size)
			}
		}
		for u := range s.Client().ListIncompleteUploads(ctx, "forge", "", true) {
			t.Fatalf("incomplete upload left behind: %+v", u)
		}
		return ptr, datas
	}
	if ptr, datas := layout(); ptr != 0 || len(datas) != 1 {
		t.Fatalf("bucket: pointer of %d bytes, data objects %v; want an empty pointer and one data object", ptr, datas)
	}
	if again, err := s.Put(ctx, bytes.NewReader(data)); err != nil || again != (forge.BlobInfo{Digest: info.Digest, Size: info.Size, ModTime: again.ModTime}) {
		t.Fatalf("second put: %+v %v", again, err)
	}
	_, datas := layout()
	if len(datas) != 1 {
		t.Fatalf("data objects after a second put: %v, want 1", datas)
	}
	if st, err := s.Stat(ctx, info.Digest); err != nil || st.Size != info.Size {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if all, err := s.List(ctx, ""); err != nil || len(all) != 1 || all[0].Size != info.Size {
		t.Fatalf("list: %+v %v", all, err)
	}
	rc, err := s.OpenRange(ctx, info.Digest, 20<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(part, data[20<<20:20<<20+100]) {
		t.Fatal("range of a large blob differs")
	}
	if err := s.Touch(info.Digest); err != nil {
		t.Fatal(err)
	}
	p, err := s.Path(info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, data) {
		t.Fatal("cached copy differs")
	}

	// The data object's bytes changed in the bucket: an error, not data.
	bad := bytes.Clone(data)
	bad[12345] ^= 1
	if _, err := s.Client().PutObject(ctx, "forge", datas[0], bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err = s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("read of a corrupted data object: %v", err)
	}

	removed, size, err := s.RemoveIfOlder(info.Digest, time.Now().Add(time.Hour))
	if !removed || size != info.Size || err != nil {
		t.Fatalf("RemoveIfOlder = %v %d %v", removed, size, err)
	}
	for o := range s.Client().ListObjects(ctx, "forge", minio.ListObjectsOptions{Recursive: true}) {
		t.Fatalf("object left after the blob was removed: %s", o.Key)
	}
}

// A killed server leaves markers of its uploads under tmp/: the next
// start removes them, with the data objects no pointer names, and keeps
// the ones a pointer names.
func TestS3StartRemovesOrphans(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "p", 1<<30)
	data := bytes.Repeat([]byte("large "), 2<<20)
	info, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	var kept string
	for o := range c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: "p/data/", Recursive: true}) {
		kept = o.Key
	}
	put := func(key string, size int, meta map[string]string) {
		t.Helper()
		if _, err := c.PutObject(ctx, "forge", key, bytes.NewReader(make([]byte, size)), int64(size), minio.PutObjectOptions{UserMetadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	id := strings.TrimPrefix(kept, "p/data/")
	// Killed after the pointer was written, before the marker went.
	put("p/tmp/"+id, 0, map[string]string{"Forge-Digest": string(info.Digest)})
	// Killed after the upload, before the digest was known.
	put("p/tmp/aaaaaaaaaaaaaaaaaaaaaaaa", 0, nil)
	put("p/data/aaaaaaaaaaaaaaaaaaaaaaaa", 1000, nil)
	// Killed after the digest was known, before the pointer was written.
	put("p/tmp/bbbbbbbbbbbbbbbbbbbbbbbb", 0, map[string]string{"Forge-Digest": string(info.Digest)})
	put("p/data/bbbbbbbbbbbbbbbbbbbbbbbb", 1000, nil)

	s = openS3(t, srv, "p", 1<<30)
	var left []string
	for o := range c.ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: "p/", Recursive: true}) {
		left = append(left, o.Key)
	}
	want := []string{kept, "p/sha256/" + string(info.Digest[:2]) + "/" + string(info.Digest[2:])}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Fatalf("objects after the start: %v, want %v", left, want)
	}
	rc, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob after the start: %d bytes, %v", len(got), err)
	}
}

// The cache stays within its bytes, evicting the least recently used copy.
func TestS3CacheBounded(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "", 2500)
	var ds []forge.Digest
	for _, c := range []string{"a", "b", "c"} {
		info, err := s.Put(ctx, strings.NewReader(strings.Repeat(c, 1000)))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, info.Digest)
	}
	p0, err := s.Path(ds[0])
	if err != nil {
		t.Fatal(err)
	}
	s.Path(ds[1])
	s.Path(ds[0]) // a is now more recent than b
	s.Path(ds[2])
	if size, n := s.CacheUsage(); size != 2000 || n != 2 {
		t.Fatalf("cache holds %d bytes in %d files, want 2000 in 2", size, n)
	}
	if _, err := os.Stat(s.CacheFile(ds[1])); !os.IsNotExist(err) {
		t.Fatalf("least recently used copy not evicted: %v", err)
	}
	if b, _ := os.ReadFile(p0); string(b) != strings.Repeat("a", 1000) {
		t.Fatal("recently used copy evicted")
	}
}

// PutFile uploads a hashed file and keeps it as the local copy; Touch and
// RemoveIfOlder are garbage collection's operations.
func TestS3PutFileTouchRemove(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "", 1<<30)
	f := filepath.Join(t.TempDir(), "upload")
	os.WriteFile(f, []byte("parquet bytes"), 0o644)
	h := sha256.Sum256([]byte("parquet bytes"))
	d := forge.Digest(hex.EncodeToString(h[:]))
	if _, err := s.PutFile(ctx, f, d); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Path(d); err != nil || p != s.CacheFile(d) {
		t.Fatalf("Path: %s %v", p, err)
	}
	if removed, _, err := s.RemoveIfOlder(d, time.Now().Add(-time.Hour)); removed || err != nil {
		t.Fatalf("a new blob was removed: %v", err)
	}
	if err := s.Touch(d); err != nil {
		t.Fatal(err)
	}
	removed, size, err := s.RemoveIfOlder(d, time.Now().Add(time.Hour))
	if !removed || size != 13 || err != nil {
		t.Fatalf("RemoveIfOlder = %v %d %v", removed, size, err)
	}
	if _, err := s.Stat(ctx, d); !forge.IsKind(err, forge.NotFound) {
		t.Fatalf("stat after removal: %v", err)
	}
	if _, err := os.Stat(s.CacheFile(d)); !os.IsNotExist(err) {
		t.Fatal("removed blob still cached")
	}
	if err := s.Touch(d); !forge.IsKind(err, forge.NotFound) {
		t.Fatalf("touch removed: %v", err)
	}
}

// Bad settings fail at start with a message naming them.
func TestS3BadSettings(t *testing.T) {
	srv := s3test.Start(t, "forge")
	base := blob.S3Options{Bucket: "forge", Endpoint: srv.Endpoint, Region: "us-east-1", PathStyle: true,
		AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey, CacheDir: t.TempDir()}
	wrong := base
	wrong.SecretAccessKey = "nope"
	missing := base
	missing.Bucket = "absent"
	gone := base
	gone.Endpoint = "http://" + closedAddr(t)
	for name, c := range map[string]struct {
		o    blob.S3Options
		want string
	}{"credentials": {wrong, "AWS_SECRET_ACCESS_KEY"}, "bucket": {missing, "no such bucket"}, "endpoint": {gone, "s3.endpoint"}} {
		_, err := blob.NewS3(context.Background(), c.o)
		t.Logf("%s: %v", name, err)
		if err == nil || !strings.Contains(err.Error(), c.want) || name != "credentials" && strings.Contains(err.Error(), "AWS_SECRET") {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, c.want)
		}
	}
}

// A server restart in the middle is an Unavailable error while it is
// down, and the store works again once it is back.
func TestS3Restart(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "", 1<<30)
	info, err := s.Put(ctx, strings.NewReader("kept"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := s.Put(ctx, strings.NewReader("lost")); !forge.IsKind(err, forge.Unavailable) {
		t.Fatalf("put while down: %v, want Unavailable", err)
	}
	srv.Restart()
	rc, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "kept" {
		t.Fatalf("after restart: %q %v", b, err)
	}
}

// The S3 server restarts in the middle of uploads, small ones and a
// multipart one: those it cuts fail as Unavailable, every acknowledged
// blob is still there, and the unfinished upload the failed Put could not
// abort while the server was down is removed once a Put succeeds again,
// by the same store (a forge server that kept running). The unfinished
// uploads of a killed forge server are removed at its next start
// (server's TestS3Kill9MidArtifactUploads).
func TestS3RestartMidUpload(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, "forge")
	s := openS3(t, srv, "p", 1<<30)
	var acked []forge.Digest
	for i := range 20 {
		info, err := s.Put(ctx, strings.NewReader(fmt.Sprintf("acknowledged %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, info.Digest)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, pr)
		done <- err
	}()
	// 15 MiB consumed: the 8 MiB head and two 5 MiB parts are up or going.
	if _, err := pw.Write(make([]byte, 15<<20)); err != nil {
		t.Fatal(err)
	}
	// Small puts running while the server goes away.
	small := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := s.Put(ctx, strings.NewReader(fmt.Sprintf("cut %d", i)))
			small <- err
		}()
	}
	srv.Stop()
	go func() {
		pw.Write(make([]byte, 10<<20))
		pw.Close()
	}()
	if err := <-done; !forge.IsKind(err, forge.Unavailable) {
		t.Fatalf("put across a dead server: %v, want Unavailable", err)
	}
	for range 8 {
		if err := <-small; err != nil && !forge.IsKind(err, forge.Unavailable) {
			t.Fatalf("small put across a restart: %v, want success or Unavailable", err)
		}
	}
	srv.Restart()
	uploads := func() []string {
		var keys []string
		for u := range s.Client().ListIncompleteUploads(ctx, "forge", "p/", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			keys = append(keys, u.Key)
		}
		return keys
	}
	if left := uploads(); len(left) != 1 {
		t.Fatalf("unfinished uploads after the failure: %v, want the 1 that could not be aborted", left)
	}
	if _, err := s.Put(ctx, strings.NewReader("the store is back")); err != nil {
		t.Fatal(err)
	}
	// The failed upload's marker goes last, once its upload and data
	// object are gone.
	temp := func() []string {
		var keys []string
		for _, dir := range []string{"p/tmp/", "p/data/"} {
			for o := range s.Client().ListObjects(ctx, "forge", minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
				keys = append(keys, o.Key)
			}
		}
		return keys
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(uploads()) > 0 || len(temp()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("unfinished uploads %v or temporary objects %v still there once the store is back", uploads(), temp())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, d := range acked {
		rc, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != fmt.Sprintf("acknowledged %d", i) {
			t.Fatalf("acknowledged blob %d after the restart: %q %v", i, b, err)
		}
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
