package auth

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

const (
	// SessionCookie holds a browser session's secret.
	SessionCookie = "forge_session"
	// CSRFHeader must be "1" on a request that is not GET or HEAD and is
	// authenticated by the session cookie: a cross-site form cannot set it.
	CSRFHeader = "X-Forge-CSRF"
	// sessionTTL is how long a browser session lasts, at most; never past
	// its token's expiry.
	sessionTTL = 12 * time.Hour
)

// FromRequest takes the token from "Authorization: Bearer T" (what MLflow
// clients send for MLFLOW_TRACKING_TOKEN) or from Basic auth with the token
// as password (any user name).
func FromRequest(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw
	}
	return ""
}

// authenticate says who sent r: by its Authorization header, else by its
// session cookie (byCookie).
func (t *Tokens) authenticate(r *http.Request) (id Identity, byCookie bool, err error) {
	if secret := FromRequest(r); secret != "" {
		id, err := t.Check(r.Context(), secret)
		return id, false, err
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		id, err := t.session(r.Context(), c.Value)
		return id, true, err
	}
	id, err = t.Check(r.Context(), "")
	return id, false, err
}

// session is who the session with secret belongs to.
func (t *Tokens) session(ctx context.Context, secret string) (Identity, error) {
	id, err := t.lookup(ctx, `SELECT t.id, t.name, t.role, t.expires_at, t.revoked_at, t.run_id FROM sessions s
		JOIN tokens t ON t.id = s.token_id WHERE s.hash = ? AND s.expires_at > ?`, hash(secret), t.now().UnixMilli())
	if err != nil && forge.IsKind(err, forge.Unauthorized) {
		return Identity{}, forge.Errorf(forge.Unauthorized, "the session has ended: sign in again")
	}
	return id, err
}

// Guard is the access check httpapi.Edge puts in front of every route
// that is not public: the caller needs a live token (or session) whose role
// allows the route's access. No token, or an unknown, revoked or expired
// one, is 401; a role too low is 403 naming the role needed.
func (t *Tokens) Guard(log *slog.Logger) func(httpapi.Access, http.Handler) http.Handler {
	return guard(t.authenticate, log)
}

func guard(authenticate func(*http.Request) (Identity, bool, error), log *slog.Logger) func(httpapi.Access, http.Handler) http.Handler {
	return func(access httpapi.Access, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, byCookie, err := authenticate(r)
			if err == nil {
				err = allow(id, access, byCookie, r)
			}
			if err != nil {
				if forge.KindOf(err) == forge.Unauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="forge"`)
				}
				httpapi.WriteError(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
		})
	}
}

func allow(id Identity, access httpapi.Access, byCookie bool, r *http.Request) error {
	if byCookie && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(CSRFHeader) != "1" {
		return forge.Errorf(forge.Forbidden, "a request signed in by session cookie must send the header %s: 1", CSRFHeader)
	}
	return Permit(id, access)
}

// Permit is nil when id may reach what needs access, else Forbidden with
// the role needed. A job's token (Identity.Run set) reaches no write but
// the WriteRun routes, whose handlers check the run (MayWriteRun).
func Permit(id Identity, access httpapi.Access) error {
	if !id.Role.Allows(access) {
		return forge.Errorf(forge.Forbidden, "this needs the %s role; token %q has the %s role", access, id.Name, id.Role)
	}
	if id.Run != "" && (access == httpapi.Write || access == httpapi.Admin) {
		return forge.Errorf(forge.Forbidden, "token %q is a job's token: it may write only to its own run %s", id.Name, id.Run)
	}
	return nil
}
