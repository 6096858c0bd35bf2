package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/executor/local"
	"github.com/forge-mlops/forge/internal/server"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the job shim, as the forge binary does.
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.Shim(os.Args[2:]))
	}
	code := sqlstoretest.Main(m)
	if forgeBin.dir != "" {
		os.RemoveAll(forgeBin.dir)
	}
	os.Exit(code)
}

// forgeBin is the forge binary, built once per test binary: the tests that
// need a real process (signals, kill -9, exit codes) run it.
var forgeBin struct {
	once      sync.Once
	dir, path string
	err       error
}

func forgePath(t *testing.T) string {
	t.Helper()
	forgeBin.once.Do(func() {
		// World-readable, so a test can run it as an unprivileged user.
		forgeBin.dir, forgeBin.err = os.MkdirTemp("", "forge-server-test-")
		if forgeBin.err != nil {
			return
		}
		os.Chmod(forgeBin.dir, 0o755)
		forgeBin.path = filepath.Join(forgeBin.dir, "forge")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(gobin, "build", "-o", forgeBin.path, "github.com/forge-mlops/forge/cmd/forge").CombinedOutput()
		if err != nil {
			forgeBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if forgeBin.err != nil {
		t.Fatal(forgeBin.err)
	}
	return forgeBin.path
}

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// forgeProc is a `forge server` child process.
type forgeProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startForge runs `forge server --addr FREE --log-level warn ARGS...` and
// waits until /readyz answers 200. It returns the process and how long it
// took from exec to ready.
func startForge(t *testing.T, args ...string) (*forgeProc, time.Duration) {
	t.Helper()
	return startForgeAt(t, freeAddr(t), args...)
}

// startForgeAt is startForge on the given address (a restarted server
// where the last one was).
func startForgeAt(t *testing.T, addr string, args ...string) (*forgeProc, time.Duration) {
	t.Helper()
	bin := forgePath(t)
	p := &forgeProc{url: "http://" + addr, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"server", "--addr", addr, "--grpc-addr", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.exited:
			t.Fatalf("forge server exited before ready: %v\n%s", p.err, p.stderr)
		default:
		}
		resp, err := hc.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, time.Since(start)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("forge server not ready after 20s\n%s", p.stderr)
	return nil, 0
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *forgeProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// term sends SIGTERM and waits (bounded) for a clean exit.
func (p *forgeProc) term(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("forge server did not exit 30s after SIGTERM\n%s", p.stderr)
	}
	if p.err != nil {
		t.Fatalf("forge server exited with %v after SIGTERM\n%s", p.err, p.stderr)
	}
}

// runForge runs a one-shot forge command with extra environment variables
// and returns its output and exit code.
func runForge(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runForgeAs(t, nil, env, args...)
}

// runForgeAs is runForge as another user, when cred is not nil.
func runForgeAs(t *testing.T, cred *syscall.Credential, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, forgePath(t), args...)
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("forge %v: %v", args, err)
	}
	return o.String(), e.String(), 0
}

// call sends one request with an optional JSON body and returns the status
// and the body.
func call(t *testing.T, method, url string, in any, header ...string) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustCall is call that requires a 200 and decodes the body into out.
func mustCall(t *testing.T, method, url string, in, out any) {
	t.Helper()
	status, b := call(t, method, url, in)
	if status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, url, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
}

const mlflow = "/api/2.0/mlflow/"

func createRun(t *testing.T, base string) string {
	t.Helper()
	var out api.RunResponse
	mustCall(t, "POST", base+mlflow+"runs/create", api.CreateRunRequest{ExperimentID: "0"}, &out)
	return out.Run.Info.RunID
}

// inProcess serves a server.New with the given changes to the defaults on a
// httptest server.
func inProcess(t *testing.T, change func(*config.Server)) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	if change != nil {
		change(&cfg)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(logOut(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts.URL
}

func TestStartupToReady(t *testing.T) {
	forgePath(t) // build outside the measurement
	dir := filepath.Join(t.TempDir(), "fresh")
	p, took := startForge(t, "--data-dir", dir)
	t.Logf("startup to ready on an empty data dir: %s (exec to /readyz 200)", took.Round(100*time.Microsecond))
	if _, err := os.Stat(filepath.Join(dir, "forge.db")); err != nil {
		t.Fatalf("no database after start: %v", err)
	}
	status, b := call(t, "GET", p.url+"/health", nil)
	if status != 200 || string(b) != "OK" {
		t.Fatalf("/health: %d %q", status, b)
	}
	p.term(t)
}

func TestGracefulShutdownDrainsUpload(t *testing.T) {
	dir := t.TempDir()
	p, _ := startForge(t, "--data-dir", dir)
	run := createRun(t, p.url)
	var got api.RunResponse
	mustCall(t, "GET", p.url+mlflow+"runs/get?run_id="+run, nil, &got)
	path := strings.TrimPrefix(got.Run.Info.ArtifactURI, "mlflow-artifacts:/") + "/slow.bin"
	url := p.url + "/api/2.0/mlflow-artifacts/artifacts/" + path

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", url, pr)
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	first := bytes.Repeat([]byte("a"), 64<<10)
	rest := bytes.Repeat([]byte("b"), 64<<10)
	if _, err := pw.Write(first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server is now inside the handler, reading
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // shutdown has begun; the upload is still open
	select {
	case <-p.exited:
		t.Fatalf("server exited with an upload in flight: %v\n%s", p.err, p.stderr)
	default:
	}
	if _, err := pw.Write(rest); err != nil {
		t.Fatalf("upload cut off after SIGTERM: %v", err)
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("in-flight upload after SIGTERM: status %d, err %v", r.status, r.err)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not exit after draining")
	}
	if p.err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.stderr)
	}
	// The drained upload is stored: read it back from a restarted server.
	p2, _ := startForge(t, "--data-dir", dir)
	status, body := call(t, "GET", p2.url+"/api/2.0/mlflow-artifacts/artifacts/"+path, nil)
	if status != 200 || !bytes.Equal(body, append(first, rest...)) {
		t.Fatalf("artifact after restart: status %d, %d bytes, want %d", status, len(body), len(first)+len(rest))
	}
	p2.term(t)
}

// unsized hides a reader's length so the client sends it chunked.
type unsized struct{ io.Reader }

func TestBodyLimit(t *testing.T) {
	const limit = 4096
	base := inProcess(t, func(c *config.Server) { c.HTTP.MaxBodyBytes, c.HTTP.MaxUploadBytes = limit, 2*limit })
	run := createRun(t, base)
	big := api.LogBatchRequest{RunID: run}
	for i := range 200 {
		big.Metrics = append(big.Metrics, api.Metric{Key: "m", Value: 1, Timestamp: 1, Step: api.Int64(i)})
	}
	body, _ := json.Marshal(big)
	if len(body) <= limit {
		t.Fatalf("test body of %d bytes is not over the limit", len(body))
	}
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"content-length", func() io.Reader { return bytes.NewReader(body) }},
		{"chunked", func() io.Reader { return unsized{bytes.NewReader(body)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", base+mlflow+"runs/log-batch", tc.body())
			req.Header.Set("Content-Type", "application/json")
			if tc.name == "chunked" && req.ContentLength != 0 {
				t.Fatal("request would not be chunked")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("log-batch of %d bytes: %d %s, want 413", len(body), resp.StatusCode, b)
			}
			var m api.MetricsResponse
			mustCall(t, "GET", base+mlflow+"metrics/get-history?metric_key=m&run_id="+run, nil, &m)
			if len(m.Metrics) != 0 {
				t.Fatalf("%d points stored from a refused batch", len(m.Metrics))
			}
		})
	}
	t.Run("artifact-chunked", func(t *testing.T) {
		url := base + "/api/2.0/mlflow-artifacts/artifacts/0/" + run + "/artifacts/big.bin"
		req, _ := http.NewRequest("PUT", url, unsized{bytes.NewReader(make([]byte, 3*limit))})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("oversized upload: %d, want 413", resp.StatusCode)
		}
		if status, b := call(t, "GET", url, nil); status != http.StatusNotFound {
			t.Fatalf("refused upload is readable: %d %q", status, b)
		}
	})
}

func TestMalformedJSON(t *testing.T) {
	base := inProcess(t, nil)
	for _, body := range []string{`{"experiment_id": "0",`, `{"experiment_id": 0}`, `not json`, `{"experiment_id": "0"} {}`} {
		req, _ := http.NewRequest("POST", base+mlflow+"runs/create", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			ErrorCode string `json:"error_code"`
			Message   string `json:"message"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.ErrorCode != "INVALID_PARAMETER_VALUE" || e.Message == "" {
			t.Errorf("runs/create with %q: %d %+v, want 400 INVALID_PARAMETER_VALUE", body, resp.StatusCode, e)
		}
	}
	var out api.SearchRunsResponse
	mustCall(t, "POST", base+mlflow+"runs/search", api.SearchRunsRequest{ExperimentIDs: []string{"0"}}, &out)
	if len(out.Runs) != 0 {
		t.Fatalf("%d runs created by malformed requests", len(out.Runs))
	}
}

func TestMetricsEndpoint(t *testing.T) {
	base := inProcess(t, nil)
	createRun(t, base)
	call(t, "GET", base+mlflow+"runs/get?run_id=nope", nil)
	status, b := call(t, "GET", base+"/metrics", nil)
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	text := string(b)
	for _, want := range []string{
		`forge_http_requests_total{code="200",method="POST",route="POST /api/2.0/mlflow/runs/create"} 1`,
		`forge_http_requests_total{code="404",method="GET",route="GET /api/2.0/mlflow/runs/get"} 1`,
		`forge_http_request_duration_seconds_bucket{method="POST",route="POST /api/2.0/mlflow/runs/create"`,
		"go_goroutines ", "go_memstats_alloc_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func basic(user, pw string) string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// badStart runs `forge server` that must refuse to start: a non-zero exit,
// one line on stderr containing want, and the data dir left as it was.
func badStart(t *testing.T, env []string, dataDir, want string, args ...string) {
	t.Helper()
	badStartAs(t, nil, env, dataDir, want, args...)
}

func badStartAs(t *testing.T, cred *syscall.Credential, env []string, dataDir, want string, args ...string) {
	t.Helper()
	args = append([]string{"server", "--addr", freeAddr(t), "--grpc-addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)
	_, stderr, code := runForgeAs(t, cred, env, args...)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code == 0 || len(lines) != 1 || !strings.Contains(stderr, want) {
		t.Errorf("forge %v (env %v): exit %d, stderr %q; want non-zero and one line with %q", args, env, code, stderr, want)
	}
	if _, err := os.Stat(dataDir); err == nil {
		entries, _ := os.ReadDir(dataDir)
		if len(entries) != 0 {
			t.Errorf("forge %v left %d entries in the data dir, first %s", args, len(entries), entries[0].Name())
		}
	}
}

func TestConfigErrors(t *testing.T) {
	fixtures, _ := filepath.Abs("../config/testdata")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"flag log level", nil, []string{"--log-level", "loud"}, "log_level"},
		{"flag addr", nil, []string{"--addr", "nowhere"}, "addr"},
		{"flag body limit", nil, []string{"--max-body-bytes", "0"}, "http.max_body_bytes"},
		{"flag shutdown timeout", nil, []string{"--shutdown-timeout", "-1s"}, "http.shutdown_timeout"},
		{"flag db", nil, []string{"--db", "mysql://x"}, "db"},
		{"env log format", []string{"FORGE_LOG_FORMAT=xml"}, nil, "log_format"},
		{"env auth", []string{"FORGE_AUTH=maybe"}, nil, "FORGE_AUTH"},
		{"env body limit", []string{"FORGE_MAX_BODY_BYTES=lots"}, nil, "FORGE_MAX_BODY_BYTES"},
		{"yaml log level", nil, []string{"--config", filepath.Join(fixtures, "bad-log-level.yaml")}, "log_level"},
		{"yaml unknown field", nil, []string{"--config", filepath.Join(fixtures, "unknown-field.yaml")}, "listen"},
		{"yaml timeout", nil, []string{"--config", filepath.Join(fixtures, "negative-timeout.yaml")}, "http.read_timeout"},
		{"yaml threads", nil, []string{"--config", filepath.Join(fixtures, "zero-threads.yaml")}, "duckdb.threads"},
		{"yaml missing file", nil, []string{"--config", filepath.Join(fixtures, "absent.yaml")}, "absent.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			badStart(t, tc.env, dataDir, tc.want, tc.args...)
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("data dir created despite a bad config")
			}
		})
	}
}

func TestUnreachablePostgres(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	db := "postgres://forge@" + freeAddr(t) + "/forge?sslmode=disable&connect_timeout=5"
	badStart(t, nil, dataDir, "connect to postgres", "--db", db)
	if _, err := os.Stat(dataDir); err == nil {
		t.Errorf("data dir created although the database is unreachable")
	}
}

func TestDataDirNotWritable(t *testing.T) {
	t.Run("read-only folder", func(t *testing.T) {
		parent, err := os.MkdirTemp("", "forge-ro-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(parent) })
		os.Chmod(parent, 0o755)
		dataDir := filepath.Join(parent, "data")
		if err := os.Mkdir(dataDir, 0o555); err != nil {
			t.Fatal(err)
		}
		var cred *syscall.Credential
		if os.Geteuid() == 0 {
			// root writes anywhere: run the server as nobody, as a service would.
			cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		}
		badStartAs(t, cred, nil, dataDir, "not writable")
	})
	t.Run("path through a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, []byte("x"), 0o644)
		badStart(t, nil, filepath.Join(file, "data"), "create data dir")
	})
}

func logOut() io.Writer {
	if os.Getenv("FORGE_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
