package deploy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/blob/s3test"
)

func openS3(t *testing.T, srv *s3test.Server, prefix string) *blob.S3 {
	t.Helper()
	s, err := blob.NewS3(context.Background(), blob.S3Options{Bucket: "forge", Prefix: prefix, Endpoint: srv.Endpoint,
		Region: "us-east-1", PathStyle: true, AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey,
		CacheDir: t.TempDir(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// With its blobs in S3, a replica that has the bucket's credentials reads
// the model files from it by digest, nothing through the server; one
// without reads them through the server into its cache by digest; one
// whose store lacks them (another prefix) falls back to the server. All
// three answer as the server does.
func TestReplicaModelFiles(t *testing.T) {
	srv := s3test.Start(t, "forge")
	p := start(t, nil, openS3(t, srv, "team"))
	p.register(t, "reg", "xgb_regression.json", 0, "")
	p.deploy(t, "live", api.DeploymentSpec{Model: "reg"})
	d, err := p.api.GetModelVersionDetail(context.Background(), "reg", "1")
	if err != nil || len(d.Files) == 0 {
		t.Fatalf("version detail: %+v %v", d, err)
	}
	want, err := infer(http.DefaultClient, p.url, "live")
	if err != nil {
		t.Fatal(err)
	}

	direct := openS3(t, srv, "team")
	viaStore := &Remote{Client: api.NewClient(p.url, ""), CacheDir: t.TempDir(), Blobs: direct, Log: discard()}
	viaServer := &Remote{Client: api.NewClient(p.url, ""), CacheDir: t.TempDir(), Log: discard()}
	wrongPrefix := &Remote{Client: api.NewClient(p.url, ""), CacheDir: t.TempDir(), Blobs: openS3(t, srv, "other"), Log: discard()}
	for name, src := range map[string]*Remote{"object store": viaStore, "server": viaServer, "fallback": wrongPrefix} {
		base, c := replicaOf(t, src)
		eventually(t, name+" replica readiness", c.Ready)
		got, err := infer(http.DefaultClient, base, "live")
		if err != nil || got != want {
			t.Fatalf("%s replica answered %v (%v), server %v", name, got, err, want)
		}
	}
	// What each fetched, and from where: files by digest.
	for _, f := range d.Files {
		if _, err := os.Stat(filepath.Join(viaServer.CacheDir, "sha256", f.Digest)); err != nil {
			t.Errorf("through the server: %s is not cached by digest: %v", f.Path, err)
		}
		if _, err := os.Stat(filepath.Join(wrongPrefix.CacheDir, "sha256", f.Digest)); err != nil {
			t.Errorf("fallback: %s is not cached by digest: %v", f.Path, err)
		}
	}
	if size, n := direct.CacheUsage(); n != len(d.Files) || size == 0 {
		t.Errorf("the object store replica's cache holds %d files (%d bytes), want the version's %d", n, size, len(d.Files))
	}
	if left, _ := os.ReadDir(filepath.Join(viaStore.CacheDir, "sha256")); len(left) != 0 {
		t.Errorf("the object store replica downloaded %d files through the server", len(left))
	}
}
