package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api/oip"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// edgeService answers ModelMetadata by the model's name: "panic" panics,
// "internal" fails with a cause the client must not see, "missing" is
// NotFound; anything else answers with the request id it was given.
type edgeService struct {
	oip.UnimplementedGRPCInferenceServiceServer
}

func (edgeService) ModelMetadata(ctx context.Context, r *oip.ModelMetadataRequest) (*oip.ModelMetadataResponse, error) {
	switch r.GetName() {
	case "panic":
		panic("boom in the handler")
	case "internal":
		return nil, fmt.Errorf("query models: dial postgres://forge:db-s3cret@db: refused")
	case "missing":
		return nil, httpapi.GRPCError(forge.Errorf(forge.NotFound, "no model missing"))
	}
	return &oip.ModelMetadataResponse{Name: httpapi.RequestID(ctx)}, nil
}

// A stream method on its own service: "panic" in the first message panics.
var streamDesc = grpc.ServiceDesc{
	ServiceName: "test.Edge",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{StreamName: "Echo", ServerStreams: true, ClientStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			var in oip.ModelMetadataRequest
			if err := ss.RecvMsg(&in); err != nil {
				return err
			}
			if in.GetName() == "panic" {
				panic("boom in the stream")
			}
			return ss.SendMsg(&oip.ModelMetadataResponse{Name: httpapi.RequestID(ss.Context())})
		}}},
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The gRPC edge does what HTTP's middleware does: request ids in and out,
// an access log line and metrics per call, panics as Internal (logged with
// their stack, the server still serving), and errors rendered from the one
// table with the cause logged but not shown.
func TestGRPCEdge(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	gs := httpapi.NewGRPCServer(httpapi.GRPCOptions{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registerer: reg})
	oip.RegisterGRPCInferenceServiceServer(gs, edgeService{})
	gs.RegisterService(&streamDesc, struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := oip.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	meta := func(ctx context.Context, name string) (*oip.ModelMetadataResponse, string, error) {
		var header metadata.MD
		resp, err := c.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: name}, grpc.Header(&header))
		id := ""
		if v := header.Get("x-request-id"); len(v) > 0 {
			id = v[0]
		}
		return resp, id, err
	}

	resp, id, err := meta(metadata.AppendToOutgoingContext(ctx, "x-request-id", "client-chose-this"), "ok")
	if err != nil || id != "client-chose-this" || resp.GetName() != "client-chose-this" {
		t.Errorf("the client's request id: header %q, handler saw %q, %v", id, resp.GetName(), err)
	}
	resp, id, err = meta(ctx, "ok")
	if err != nil || len(id) != 16 || resp.GetName() != id {
		t.Errorf("a new request id: header %q, handler saw %q, %v", id, resp.GetName(), err)
	}

	_, id, err = meta(ctx, "panic")
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "request id "+id) {
		t.Errorf("a panic: %v, want Internal naming request id %q", err, id)
	}
	if !strings.Contains(logs.String(), "boom in the handler") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("the panic is not logged with its stack:\n%s", logs.String())
	}
	_, id, err = meta(ctx, "internal")
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "s3cret") || !strings.Contains(st.Message(), id) {
		t.Errorf("an internal error: %v, want Internal without its cause", err)
	}
	if !strings.Contains(logs.String(), "db-s3cret") {
		t.Errorf("the internal error's cause is not logged:\n%s", logs.String())
	}
	_, _, err = meta(ctx, "missing")
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no model missing" {
		t.Errorf("not found: %v", err)
	}
	if _, err := c.ServerLive(ctx, &oip.ServerLiveRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("an unimplemented method: %v", err)
	}

	// Streams: the same request id, recovery and accounting.
	stream := func(name string) (string, error) {
		s, err := conn.NewStream(metadata.AppendToOutgoingContext(ctx, "x-request-id", "stream-"+name), &streamDesc.Streams[0], "/test.Edge/Echo")
		if err != nil {
			return "", err
		}
		if err := s.SendMsg(&oip.ModelMetadataRequest{Name: name}); err != nil {
			return "", err
		}
		s.CloseSend()
		var out oip.ModelMetadataResponse
		if err := s.RecvMsg(&out); err != nil {
			return "", err
		}
		if h, _ := s.Header(); len(h.Get("x-request-id")) == 0 || h.Get("x-request-id")[0] != out.GetName() {
			return "", fmt.Errorf("header %v, handler saw %q", h, out.GetName())
		}
		return out.GetName(), nil
	}
	if got, err := stream("ok"); err != nil || got != "stream-ok" {
		t.Errorf("stream: %q %v", got, err)
	}
	if _, err := stream("panic"); status.Code(err) != codes.Internal || !strings.Contains(logs.String(), "boom in the stream") {
		t.Errorf("a panic in a stream: %v\n%s", err, logs.String())
	}
	// Still serving after the panics.
	if _, _, err := meta(ctx, "ok"); err != nil {
		t.Errorf("after the panics: %v", err)
	}

	for _, want := range []string{"msg=grpc method=/inference.GRPCInferenceService/ModelMetadata code=NotFound", "request_id=client-chose-this", "msg=grpc method=/test.Edge/Echo code=Internal"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the access log lacks %q:\n%s", want, logs.String())
		}
	}
	for _, tc := range []struct {
		method, code string
		want         float64
	}{
		{"/inference.GRPCInferenceService/ModelMetadata", "OK", 3},
		{"/inference.GRPCInferenceService/ModelMetadata", "Internal", 2},
		{"/inference.GRPCInferenceService/ModelMetadata", "NotFound", 1},
		{"/test.Edge/Echo", "OK", 1},
		{"/test.Edge/Echo", "Internal", 1},
	} {
		if got := grpcCalls(t, reg, tc.method, tc.code); got != tc.want {
			t.Errorf("forge_grpc_requests_total{method=%q,code=%q} = %v, want %v", tc.method, tc.code, got, tc.want)
		}
	}
}

// grpcCalls is forge_grpc_requests_total for method and code.
func grpcCalls(t *testing.T, reg *prometheus.Registry, method, code string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "forge_grpc_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
