package server_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/api/oip"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

// With --auth the gRPC inference service wants a token as the REST API
// does: health answers anyone, the rest needs a live read token.
func TestGRPCAuth(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth, cfg.AdminToken = true, edgeAdmin
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- s.Run(ctx, ready) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	admin := api.NewClient(s.URL(), edgeAdmin)
	reader, err := admin.CreateToken(ctx, api.CreateTokenRequest{Name: "reader", Role: "read"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oip.NewGRPCInferenceServiceClient(conn)
	with := func(secret string) context.Context {
		if secret == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
	}
	if _, err := c.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil {
		t.Errorf("ServerLive without a token: %v", err)
	}
	calls := map[string]func(context.Context) error{
		"ServerMetadata": func(ctx context.Context) error {
			_, err := c.ServerMetadata(ctx, &oip.ServerMetadataRequest{})
			return err
		},
		"ModelInfer": func(ctx context.Context) error {
			_, err := c.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "nope"})
			return err
		},
	}
	for name, call := range calls {
		if got := status.Code(call(with(""))); got != codes.Unauthenticated {
			t.Errorf("%s without a token: %v, want Unauthenticated", name, got)
		}
		if got := status.Code(call(with("nope"))); got != codes.Unauthenticated {
			t.Errorf("%s with an unknown token: %v, want Unauthenticated", name, got)
		}
		if got := status.Code(call(with(reader.Secret))); got == codes.Unauthenticated || got == codes.PermissionDenied {
			t.Errorf("%s with a read token: %v, want past the check", name, got)
		}
	}
	if err := admin.RevokeToken(ctx, "reader"); err != nil {
		t.Fatal(err)
	}
	for name, call := range calls {
		if got := status.Code(call(with(reader.Secret))); got != codes.Unauthenticated {
			t.Errorf("%s with a revoked token: %v, want Unauthenticated", name, got)
		}
	}
	// The same edge as HTTP's: a request id comes back, and calls are
	// counted on the server's one registry.
	var header metadata.MD
	if _, err := c.ServerLive(metadata.AppendToOutgoingContext(ctx, "x-request-id", "grpc-edge-1"), &oip.ServerLiveRequest{}, grpc.Header(&header)); err != nil || len(header.Get("x-request-id")) == 0 || header.Get("x-request-id")[0] != "grpc-edge-1" {
		t.Errorf("ServerLive request id: %v %v", header, err)
	}
	got, b := call(t, "GET", s.URL()+"/metrics", nil, "Authorization", "Bearer "+edgeAdmin)
	if want := `forge_grpc_requests_total{code="Unauthenticated",method="/inference.GRPCInferenceService/ModelInfer"} 3`; got != 200 || !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
