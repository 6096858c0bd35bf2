package webui_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/executor/local"
	"github.com/forge-mlops/forge/internal/server"
)

const adminToken = "forge-ui-test-admin-token-0123456789"

// The test binary doubles as the job shim, as the forge binary does: the
// server runs jobs (Run starts the scheduler).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.Shim(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// startServer runs a real Forge server (SQLite in a temp dir) over HTTP.
func startServer(t *testing.T, authOn bool) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	// A root server runs jobs as forge-job, which must pass through every
	// folder above the data dir: t.TempDir's parent is 0700.
	if err := os.Chmod(filepath.Dir(cfg.DataDir), 0o711); err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth = authOn
	cfg.HTTP.DrainDelay = 0 // nothing balances load in front of a test server
	if authOn {
		cfg.AdminToken = adminToken
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Run, not just the handler: the deploy controller and the scheduler
	// are what the deployments and jobs pages show.
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("server stopped before it was ready: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + addr
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/ui/[0-9a-f]{16}/[^"]+)"`)

func TestShellAndAssetHeaders(t *testing.T) {
	for _, authOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", authOn), func(t *testing.T) {
			base := startServer(t, authOn)
			resp, body := get(t, base+"/")
			if resp.StatusCode != 200 || !strings.Contains(body, `<main id="main"`) {
				t.Fatalf("GET /: %d\n%s", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("index Cache-Control %q, want no-cache", cc)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("index CSP %q", csp)
			}
			// uPlot's CSS, the app's CSS, app.js, and every other module
			// preloaded.
			var modules int
			filepath.WalkDir("static", func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".js") {
					modules++
				}
				return err
			})
			refs := assetRef.FindAllStringSubmatch(body, -1)
			if preloads := strings.Count(body, `rel="modulepreload"`); len(refs) != 2+modules || preloads != modules-1 {
				t.Fatalf("index names %d hashed assets (%d preloaded), want %d (%d):\n%s", len(refs), preloads, 2+modules, modules-1, body)
			}
			for _, ref := range refs {
				resp, b := get(t, base+ref[1])
				if resp.StatusCode != 200 || len(b) == 0 {
					t.Fatalf("GET %s: %d", ref[1], resp.StatusCode)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
					t.Errorf("%s Cache-Control %q", ref[1], cc)
				}
			}
			// The module app.js imports, through the same hashed prefix.
			prefix := refs[0][1][:len("/ui/")+17]
			if resp, _ := get(t, base+prefix+"vendor/uPlot.esm.js"); resp.StatusCode != 200 ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("uPlot module: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			// An asset under another hash (a page from before an upgrade) is not served.
			if resp, _ := get(t, base+"/ui/0000000000000000/app.js"); resp.StatusCode != 404 {
				t.Errorf("stale hash: %d, want 404", resp.StatusCode)
			}
			// The API stays behind the token when auth is on.
			resp, _ = get(t, base+"/api/2.0/mlflow/experiments/search")
			if want := map[bool]int{false: 200, true: 401}[authOn]; resp.StatusCode != want {
				t.Errorf("API without a token: %d, want %d", resp.StatusCode, want)
			}
		})
	}
}
