package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/forge-mlops/forge"
)

// GRPCError is err as a gRPC status with the code of its kind (the one
// table, kinds) and the message a client may see (ClientMessage); the
// cause stays inside for the edge to log.
func GRPCError(err error) error {
	if err == nil {
		return nil
	}
	var g *grpcError
	if errors.As(err, &g) {
		return err
	}
	return &grpcError{cause: err, st: status.New(Render(forge.KindOf(err)).GRPC, ClientMessage(err))}
}

type grpcError struct {
	cause error
	st    *status.Status
}

func (e *grpcError) Error() string              { return e.st.Message() }
func (e *grpcError) GRPCStatus() *status.Status { return e.st }
func (e *grpcError) Unwrap() error              { return e.cause }

// GRPCOptions are the parts of a gRPC server's edge.
type GRPCOptions struct {
	// Log gets the access log, panics and the causes of errors; the same
	// logger as the HTTP access log's.
	Log *slog.Logger
	// Registerer gets the request metrics: the server's one registry.
	Registerer prometheus.Registerer
	// MaxRecvBytes caps a request message; 0: gRPC's default.
	MaxRecvBytes int64
	// Unary and Stream check access (auth.Tokens.GRPC); nil: off.
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
}

// NewGRPCServer is a gRPC server behind the same edge as HTTP's, as
// interceptors, unary and streaming alike, outermost first: request id
// (metadata x-request-id in and out), access log, metrics, panic recovery
// (codes.Internal, logged with its stack), error rendering (the client's
// message from the one error table, the cause logged), then access.
// forge server and forge serve both build theirs here.
func NewGRPCServer(o GRPCOptions) *grpc.Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m := newGRPCMetrics(o.Registerer)
	unary := []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		ctx = grpcRequestID(ctx)
		grpc.SetHeader(ctx, metadata.Pairs("x-request-id", RequestID(ctx)))
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				err = grpcPanic(ctx, o.Log, info.FullMethod, v)
			}
			err = grpcDone(ctx, o.Log, m, info.FullMethod, start, err)
		}()
		return handler(ctx, req)
	}}
	stream := []grpc.StreamServerInterceptor{func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ctx := grpcRequestID(ss.Context())
		ss.SetHeader(metadata.Pairs("x-request-id", RequestID(ctx)))
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				err = grpcPanic(ctx, o.Log, info.FullMethod, v)
			}
			err = grpcDone(ctx, o.Log, m, info.FullMethod, start, err)
		}()
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}}
	if o.Unary != nil {
		unary = append(unary, o.Unary)
	}
	if o.Stream != nil {
		stream = append(stream, o.Stream)
	}
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
	if o.MaxRecvBytes > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(int(min(o.MaxRecvBytes, 1<<31-1))))
	}
	return grpc.NewServer(opts...)
}

// grpcRequestID is ctx with the call's request id: the client's
// x-request-id (if sane), else a new one.
func grpcRequestID(ctx context.Context) context.Context {
	id := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
			id = v[0]
		}
	}
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return context.WithValue(ctx, requestIDKey, id)
}

func grpcPanic(ctx context.Context, log *slog.Logger, method string, v any) error {
	log.ErrorContext(ctx, "panic", "method", method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "request_id", RequestID(ctx))
	return status.Error(codes.Internal, "internal error (request id "+RequestID(ctx)+")")
}

// grpcDone renders err for the client, logs its cause and the call, and
// counts it.
func grpcDone(ctx context.Context, log *slog.Logger, m *grpcMetrics, method string, start time.Time, err error) error {
	if cause := grpcCause(err); cause != nil {
		switch kind := forge.KindOf(cause); {
		case errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded):
			log.DebugContext(ctx, "request ended by its context", "method", method, "request_id", RequestID(ctx), "err", cause)
			err = status.FromContextError(cause).Err()
		case kind == forge.Internal:
			log.ErrorContext(ctx, "request failed", "method", method, "request_id", RequestID(ctx), "err", cause)
			err = status.Error(codes.Internal, "internal error (request id "+RequestID(ctx)+")")
		default:
			log.DebugContext(ctx, "request refused", "method", method, "request_id", RequestID(ctx), "err", cause)
			err = GRPCError(cause)
		}
	}
	code := status.Code(err)
	d := time.Since(start)
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	log.LogAttrs(ctx, slog.LevelInfo, "grpc",
		slog.String("method", method), slog.String("code", code.String()),
		slog.Duration("duration", d), slog.String("request_id", RequestID(ctx)), slog.String("remote", remote))
	m.requests.WithLabelValues(method, code.String()).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
	return err
}

// grpcCause is the error behind err to render and log: the cause inside
// GRPCError, or a plain error a handler returned; nil for no error or a
// status made elsewhere (gRPC's own), which goes out as it is.
func grpcCause(err error) error {
	var g *grpcError
	if errors.As(err, &g) {
		return g.cause
	}
	if _, isStatus := status.FromError(err); err != nil && !isStatus {
		return err
	}
	return nil
}

type grpcMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newGRPCMetrics(reg prometheus.Registerer) *grpcMetrics {
	m := &grpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forge_grpc_requests_total", Help: "gRPC calls by full method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "forge_grpc_request_duration_seconds", Help: "gRPC call latency by full method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
