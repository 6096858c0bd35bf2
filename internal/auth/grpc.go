package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// GRPC is the same access check as Guard for gRPC: the token comes from
// the "authorization" metadata ("Bearer T"), and access names what each
// full method ("/pkg.Service/Method") needs, as its REST twin does. A
// method access does not name is refused. Refusals are UNAUTHENTICATED or
// PERMISSION_DENIED, through httpapi's error table.
func (t *Tokens) GRPC(access map[string]httpapi.Access) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return interceptors(t.Check, access)
}

func interceptors(checkToken func(context.Context, string) (Identity, error), access map[string]httpapi.Access) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context, method string) (context.Context, error) {
		ctx, err := grpcCheck(ctx, checkToken, access, method)
		if err != nil {
			return nil, httpapi.GRPCError(err)
		}
		return ctx, nil
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
	return unary, stream
}

func grpcCheck(ctx context.Context, checkToken func(context.Context, string) (Identity, error), access map[string]httpapi.Access, method string) (context.Context, error) {
	need, ok := access[method]
	if !ok {
		return nil, forge.Errorf(forge.Forbidden, "method %s declares no access", method)
	}
	if need == httpapi.Public {
		return ctx, nil
	}
	secret := ""
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 && len(v[0]) > 7 && strings.EqualFold(v[0][:7], "bearer ") {
		secret = strings.TrimSpace(v[0][7:])
	}
	if secret == "" {
		return nil, forge.Errorf(forge.Unauthorized, "authentication required: send metadata authorization: Bearer <token>")
	}
	id, err := checkToken(ctx, secret)
	if err != nil {
		return nil, err
	}
	if err := Permit(id, need); err != nil {
		return nil, err
	}
	return WithIdentity(ctx, id), nil
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
