package auth_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// The gRPC interceptor refuses as the HTTP guard does: UNAUTHENTICATED
// without a live token, PERMISSION_DENIED for a role too low or a method
// that declares no access.
func TestGRPCInterceptor(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		tokens := auth.New(db)
		reader, err := tokens.Create(ctx, "reader", auth.RoleRead, 0)
		if err != nil {
			t.Fatal(err)
		}
		unary, _ := tokens.GRPC(map[string]httpapi.Access{"/t.S/Live": httpapi.Public, "/t.S/Read": httpapi.Read, "/t.S/Admin": httpapi.Admin})
		var seen string
		handler := func(ctx context.Context, req any) (any, error) { seen = auth.TokenName(ctx); return "ok", nil }
		call := func(method, authz string) codes.Code {
			c := ctx
			if authz != "" {
				c = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authz))
			}
			_, err := unary(c, nil, &grpc.UnaryServerInfo{FullMethod: method}, handler)
			return status.Code(err)
		}
		for _, tc := range []struct {
			method, authz string
			want          codes.Code
		}{
			{"/t.S/Live", "", codes.OK},
			{"/t.S/Read", "", codes.Unauthenticated},
			{"/t.S/Read", "Bearer nope", codes.Unauthenticated},
			{"/t.S/Read", "Bearer " + reader.Secret, codes.OK},
			{"/t.S/Admin", "Bearer " + reader.Secret, codes.PermissionDenied},
			{"/t.S/Undeclared", "Bearer " + reader.Secret, codes.PermissionDenied},
		} {
			if got := call(tc.method, tc.authz); got != tc.want {
				t.Errorf("%s with %q: %v, want %v", tc.method, tc.authz, got, tc.want)
			}
		}
		if call("/t.S/Read", "Bearer "+reader.Secret); seen != "reader" {
			t.Errorf("handler saw token %q, want reader", seen)
		}
		if err := tokens.Revoke(ctx, "reader"); err != nil {
			t.Fatal(err)
		}
		if got := call("/t.S/Read", "Bearer "+reader.Secret); got != codes.Unauthenticated {
			t.Errorf("revoked token: %v, want Unauthenticated", got)
		}
	})
}
