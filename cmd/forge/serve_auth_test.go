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
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/server"
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
// every serving route, over REST and gRPC, checking tokens with the server.
func TestServeReplicaAuth(t *testing.T) {
	const admin = "replica-admin-secret-0123456789"
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	cfg.Auth, cfg.AdminToken = true, admin
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	ready := make(chan string, 1)
	go func() { done <- srv.Run(ctx, ready) }()
	<-ready
	ac := api.NewClient(srv.URL(), admin)
	reader, err := ac.CreateToken(ctx, api.CreateTokenRequest{Name: "reader", Role: "read"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := ac.CreateToken(ctx, api.CreateTokenRequest{Name: "revoked", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.RevokeToken(ctx, "revoked"); err != nil {
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
		resp, err := http.Get(base + "/v2/health/live")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not up: %v\n%s", err, errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	routes := append(serve.New(serve.Options{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry()).Routes(),
		httpapi.Route{Pattern: "GET /metrics", Access: httpapi.Read})
	wild := regexp.MustCompile(`\{[^}]*\}`)
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = wild.ReplaceAllString(path, "x")
		for who, secret := range map[string]string{"none": "", "revoked": revoked.Secret, "read": reader.Secret} {
			req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
			if secret != "" {
				req.Header.Set("Authorization", "Bearer "+secret)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			refused := resp.StatusCode == 401 || resp.StatusCode == 403
			switch {
			case rt.Access == httpapi.Public || who == "read":
				if refused {
					t.Errorf("%s as %s: %d, want past the edge", rt.Pattern, who, resp.StatusCode)
				}
			case resp.StatusCode != 401:
				t.Errorf("%s as %s: %d, want 401", rt.Pattern, who, resp.StatusCode)
			}
		}
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oip.NewGRPCInferenceServiceClient(conn)
	with := func(secret string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
	}
	if _, err := c.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil {
		t.Errorf("gRPC ServerLive without a token: %v", err)
	}
	if _, err := c.ServerMetadata(ctx, &oip.ServerMetadataRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC ServerMetadata without a token: %v, want Unauthenticated", err)
	}
	if _, err := c.ServerMetadata(with(revoked.Secret), &oip.ServerMetadataRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC ServerMetadata with a revoked token: %v, want Unauthenticated", err)
	}
	if _, err := c.ServerMetadata(with(reader.Secret), &oip.ServerMetadataRequest{}); err != nil {
		t.Errorf("gRPC ServerMetadata with a read token: %v", err)
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
