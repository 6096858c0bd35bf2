package deploy

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// slowOpen holds every model's files back until release is closed, as a
// big model being fetched after a restart does.
type slowOpen struct {
	Source
	release chan struct{}
}

func (s slowOpen) Open(ctx context.Context, r Resolved) (fs.FS, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Source.Open(ctx, r)
}

// After a restart, a stored deployment whose model is still loading
// answers 503 "loading" with Retry-After, not 404 "unknown model"; a name
// that is no deployment stays 404; once loaded, the deployment serves.
func TestRestartWhileLoading(t *testing.T) {
	db := sqlstoretest.OpenSQLite(t)
	p := start(t, db, nil)
	p.register(t, "reg", "xgb_regression.json", 0, "")
	p.deploy(t, "a", api.DeploymentSpec{Model: "reg", Ref: "1"})
	p.stop()

	srv := newServer()
	release := make(chan struct{})
	src := slowOpen{Source: &Local{Store: NewStore(db), Registry: p.reg, Blobs: p.blobs, CacheDir: t.TempDir()}, release: release}
	ctl := NewController(src, srv, discard())
	mux := http.NewServeMux()
	httpapi.Mount(mux, srv.Routes())
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; srv.Close() }()

	post := func(name string) (int, string, string) {
		resp, err := http.Post(hs.URL+"/v2/models/"+name+"/infer", "application/json", bytes.NewReader(inferBody))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Retry-After")
	}
	// Once the deployments are read, a name that is none is unknown again.
	eventually(t, "the deployments to be read", func() bool {
		code, _, _ := post("nope")
		return code == 404
	})
	code, body, retry := post("a")
	if code != 503 || !strings.Contains(body, "loading") || retry == "" {
		t.Errorf("a while loading: %d %s (Retry-After %q), want 503 loading with Retry-After", code, body, retry)
	}
	close(release)
	eventually(t, "a to serve", func() bool {
		code, _, _ := post("a")
		return code == 200
	})
	if got := mustInfer(t, hs.URL, "a"); got != 1 {
		t.Errorf("a served version %d, want 1", got)
	}
}
