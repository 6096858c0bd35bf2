package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// Remote checks tokens with a Forge server (GET /api/forge/v1/auth/whoami
// with the caller's token): what a `forge serve` replica, which has no
// database, uses to apply the same access rules. Answers are kept for TTL,
// so a revoked token still works on a replica for up to TTL.
type Remote struct {
	Server string
	TTL    time.Duration

	mu    sync.Mutex
	cache map[string]remoteAnswer
}

type remoteAnswer struct {
	id  Identity
	err error
	at  time.Time
}

// maxCached bounds the answers kept, against callers sending endless new
// tokens.
const maxCached = 10000

// Check says who secret belongs to, as the server answers.
func (r *Remote) Check(ctx context.Context, secret string) (Identity, error) {
	if secret == "" {
		return Identity{}, forge.Errorf(forge.Unauthorized, "authentication required: send Authorization: Bearer <token>")
	}
	key := hash(secret)
	r.mu.Lock()
	a, ok := r.cache[key]
	r.mu.Unlock()
	if ok && time.Since(a.at) < r.TTL {
		return a.id, a.err
	}
	var who api.Identity
	err := api.NewClient(r.Server, secret).Do(ctx, http.MethodGet, "/api/forge/v1/auth/whoami", nil, nil, &who)
	var ae *api.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		err = forge.Errorf(forge.Unauthorized, "%s", ae.Message)
	case err != nil:
		// Not remembered: the next request asks again.
		return Identity{}, forge.WrapError(forge.Unavailable, err, "cannot check the token with the Forge server")
	}
	id := Identity{Name: who.Name, Role: Role(who.Role), Run: who.RunID}
	if err == nil && !who.Auth {
		id.Role = RoleAdmin // the server itself lets everyone in
	}
	r.mu.Lock()
	if r.cache == nil || len(r.cache) >= maxCached {
		r.cache = map[string]remoteAnswer{}
	}
	r.cache[key] = remoteAnswer{id: id, err: err, at: time.Now()}
	r.mu.Unlock()
	return id, err
}

// Guard is the HTTP access check with tokens checked by the server; a
// replica has no sessions, only bearer tokens.
func (r *Remote) Guard(log *slog.Logger) func(httpapi.Access, http.Handler) http.Handler {
	return guard(func(req *http.Request) (Identity, bool, error) {
		id, err := r.Check(req.Context(), FromRequest(req))
		return id, false, err
	}, log)
}

// GRPC is the gRPC access check with tokens checked by the server.
func (r *Remote) GRPC(access map[string]httpapi.Access) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return interceptors(r.Check, access)
}
