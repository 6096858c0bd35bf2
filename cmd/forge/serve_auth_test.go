package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/api/oip"
	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/server"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A `forge serve --auth` replica applies forge server's access rules to
// every serving route and gRPC method it declares, checking tokens with
// the server: a table walk with no token, an unknown, revoked and expired
// one, and each role (a job's token too), over REST and gRPC, on SQLite
// and PostgreSQL behind the server. It has forge server's edge as well:
// request ids and metrics on both.
func TestServeReplicaAuth(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { replicaWalk(t, backend == "postgres") })
	}
}

func replicaWalk(t *testing.T, postgres bool) {
	const admin = "replica-admin-secret-0123456789"
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	cfg.Auth, cfg.AdminToken = true, admin
	if postgres {
		cfg.DB = sqlstoretest.PostgresURL(t)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	ready := make(chan string, 1)
	go func() { done <- srv.Run(ctx, ready) }()
	<-ready
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: cfg.DB, DataDir: cfg.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ac := api.NewClient(srv.URL(), admin)
	secrets := map[string]string{"none": "", "unknown": "forge_not-a-token", "admin": admin}
	for _, name := range []string{"read", "write", "revoked", "expired"} {
		role := name
		if name == "revoked" || name == "expired" {
			role = "admin" // refused for what they are, not for their role
		}
		tk, err := ac.CreateToken(ctx, api.CreateTokenRequest{Name: name, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = tk.Secret
	}
	if err := ac.RevokeToken(ctx, "revoked"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "UPDATE tokens SET expires_at = 1 WHERE name = 'expired'"); err != nil {
		t.Fatal(err)
	}
	if secrets["job"], err = auth.New(db).CreateJobToken(ctx, "job-replica-1", "some-run", 0); err != nil {
		t.Fatal(err)
	}

	rest, grpcAddr := freePort(t), freePort(t)
	var out, errOut lockedWriter
	go func() {
		done <- run(ctx, []string{"serve", "--server", srv.URL(), "--token", admin, "--auth", "--addr", rest, "--grpc-addr", grpcAddr,
			"--cache-dir", t.TempDir(), "--log-level", "error"}, &out, &errOut)
	}()
	t.Cleanup(func() { cancel(); <-done; <-done })
	base := "http://" + rest
	for deadline := time.Now().Add(20 * time.Second); ; {
		// Ready: it has loaded the (no) deployments it follows.
		resp, err := http.Get(base + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not up: %v\n%s", err, errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// What a replica declares: the serving component's routes and gRPC
	// methods, and its /metrics.
	decl := serve.New(serve.Options{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	routes := append(decl.Routes(), httpapi.Route{Pattern: "GET /metrics", Access: httpapi.Read})
	refusedAs := map[string]bool{"none": true, "unknown": true, "revoked": true, "expired": true}
	wild := regexp.MustCompile(`\{[^}]*\}`)
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		named := wild.MatchString(path) // names a model no one deployed: 404 past the edge
		path = wild.ReplaceAllString(path, "x")
		for _, who := range []string{"none", "unknown", "revoked", "expired", "read", "write", "admin", "job"} {
			req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
			if secrets[who] != "" {
				req.Header.Set("Authorization", "Bearer "+secrets[who])
			}
			req.Header.Set("X-Request-Id", "walk-"+who)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("X-Request-Id"); got != "walk-"+who {
				t.Errorf("%s as %s: X-Request-Id %q", rt.Pattern, who, got)
			}
			switch {
			case rt.Access != httpapi.Public && refusedAs[who]:
				if resp.StatusCode != 401 {
					t.Errorf("%s as %s: %d %s, want 401", rt.Pattern, who, resp.StatusCode, b)
				}
			case named:
				if resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode >= 500 {
					t.Errorf("%s as %s: %d %s, want past the edge", rt.Pattern, who, resp.StatusCode, b)
				}
			case method == "GET" && resp.StatusCode != 200:
				t.Errorf("%s as %s: %d %s, want 200", rt.Pattern, who, resp.StatusCode, b)
			}
		}
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oip.NewGRPCInferenceServiceClient(conn)
	calls := map[string]func(context.Context) error{
		oip.GRPCInferenceService_ServerLive_FullMethodName: func(ctx context.Context) error {
			_, err := c.ServerLive(ctx, &oip.ServerLiveRequest{})
			return err
		},
		oip.GRPCInferenceService_ServerReady_FullMethodName: func(ctx context.Context) error {
			_, err := c.ServerReady(ctx, &oip.ServerReadyRequest{})
			return err
		},
		oip.GRPCInferenceService_ServerMetadata_FullMethodName: func(ctx context.Context) error {
			_, err := c.ServerMetadata(ctx, &oip.ServerMetadataRequest{})
			return err
		},
		oip.GRPCInferenceService_ModelReady_FullMethodName: func(ctx context.Context) error {
			_, err := c.ModelReady(ctx, &oip.ModelReadyRequest{Name: "x"})
			return err
		},
		oip.GRPCInferenceService_ModelMetadata_FullMethodName: func(ctx context.Context) error {
			_, err := c.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: "x"})
			return err
		},
		oip.GRPCInferenceService_ModelInfer_FullMethodName: func(ctx context.Context) error {
			_, err := c.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "x"})
			return err
		},
	}
	access := decl.GRPCAccess()
	if len(access) != len(calls) {
		t.Fatalf("the replica declares %d gRPC methods, the test calls %d", len(access), len(calls))
	}
	for method, need := range access {
		call := calls[method]
		if call == nil {
			t.Fatalf("the test does not call %s", method)
		}
		for _, who := range []string{"none", "unknown", "revoked", "expired", "read", "write", "admin", "job"} {
			ctx := metadata.AppendToOutgoingContext(ctx, "x-request-id", "walk-"+who)
			if secrets[who] != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secrets[who])
			}
			code := status.Code(call(ctx))
			switch {
			case need != httpapi.Public && refusedAs[who]:
				if code != codes.Unauthenticated {
					t.Errorf("gRPC %s as %s: %v, want Unauthenticated", method, who, code)
				}
			case strings.Contains(method, "/Model"):
				if code == codes.Unauthenticated || code == codes.PermissionDenied || code == codes.Internal {
					t.Errorf("gRPC %s as %s: %v, want past the check", method, who, code)
				}
			case code != codes.OK:
				t.Errorf("gRPC %s as %s: %v, want OK", method, who, code)
			}
		}
	}

	// The replica counts both edges on its one registry.
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+secrets["read"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`forge_grpc_requests_total{code="Unauthenticated",method="/inference.GRPCInferenceService/ModelInfer"} 4`,
		`forge_http_requests_total{code="401",method="GET",route="GET /v2/models/{name}"} 4`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the replica's /metrics lacks %s", want)
		}
	}
}

// lockedWriter is a buffer a running command and the test share.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
