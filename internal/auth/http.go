package auth

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// Routes are the token API (admins only) and the browser's session. With
// enabled false (the server runs without access control) whoami answers
// that everyone is admin.
func (t *Tokens) Routes(enabled bool, log *slog.Logger) []httpapi.Route {
	const p = "/api/forge/v1"
	return []httpapi.Route{
		{Pattern: "POST " + p + "/tokens", Access: httpapi.Admin, Summary: "create a token", Handler: httpapi.JSON(log, t.create)},
		{Pattern: "GET " + p + "/tokens", Access: httpapi.Admin, Summary: "list tokens", Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
			list, err := t.List(r.Context())
			return map[string]any{"tokens": list}, err
		})},
		{Pattern: "DELETE " + p + "/tokens/{name}", Access: httpapi.Admin, Summary: "revoke a token", Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
			return nil, t.Revoke(r.Context(), r.PathValue("name"))
		})},
		// The session routes check the token themselves.
		{Pattern: "POST " + p + "/auth/session", Access: httpapi.Public, Summary: "sign in: a session cookie for a token", Handler: t.signIn(enabled, log)},
		{Pattern: "DELETE " + p + "/auth/session", Access: httpapi.Public, Summary: "sign out", Handler: t.signOut(log)},
		{Pattern: "GET " + p + "/auth/whoami", Access: httpapi.Public, Summary: "who the caller is", Handler: httpapi.JSON(log, func(r *http.Request) (any, error) {
			if !enabled {
				return api.Identity{Role: string(RoleAdmin)}, nil
			}
			id, _, err := t.authenticate(r)
			if err != nil {
				return nil, err
			}
			return api.Identity{Name: id.Name, Role: string(id.Role), RunID: id.Run, Auth: true}, nil
		})},
	}
}

func (t *Tokens) create(r *http.Request) (any, error) {
	var req api.CreateTokenRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return nil, err
	}
	role, err := ParseRole(req.Role)
	if err != nil {
		return nil, err
	}
	ttl, err := ParseExpiry(req.Expires)
	if err != nil {
		return nil, err
	}
	return t.Create(r.Context(), req.Name, role, ttl)
}

func (t *Tokens) signIn(enabled bool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token string `json:"token"`
		}
		if err := httpapi.Decode(r, &req); err != nil {
			httpapi.WriteError(w, r, log, err)
			return
		}
		if !enabled {
			httpapi.WriteJSON(w, http.StatusOK, api.Identity{Role: string(RoleAdmin)})
			return
		}
		id, err := t.Check(r.Context(), req.Token)
		if err != nil {
			httpapi.WriteError(w, r, log, err)
			return
		}
		secret, err := newSecret("")
		if err != nil {
			httpapi.WriteError(w, r, log, err)
			return
		}
		now := t.now()
		expires := now.Add(sessionTTL).UnixMilli()
		var tokenExpires *int64
		if err := t.db.QueryRow(r.Context(), "SELECT expires_at FROM tokens WHERE id = ?", id.id).Scan(&tokenExpires); err != nil {
			httpapi.WriteError(w, r, log, err)
			return
		}
		if tokenExpires != nil && *tokenExpires < expires {
			expires = *tokenExpires
		}
		if _, err := t.db.Exec(r.Context(), "INSERT INTO sessions (hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
			hash(secret), id.id, now.UnixMilli(), expires); err != nil {
			httpapi.WriteError(w, r, log, fmt.Errorf("open a session: %w", err))
			return
		}
		// Sessions past their end are dropped whenever someone signs in.
		t.db.Exec(r.Context(), "DELETE FROM sessions WHERE expires_at <= ?", now.UnixMilli())
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
			Secure: r.TLS != nil, Expires: time.UnixMilli(expires)})
		httpapi.WriteJSON(w, http.StatusOK, api.Identity{Name: id.Name, Role: string(id.Role), Auth: true})
	})
}

func (t *Tokens) signOut(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
			if _, err := t.db.Exec(r.Context(), "DELETE FROM sessions WHERE hash = ?", hash(c.Value)); err != nil {
				httpapi.WriteError(w, r, log, err)
				return
			}
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
			Secure: r.TLS != nil, MaxAge: -1})
		httpapi.WriteJSON(w, http.StatusOK, struct{}{})
	})
}
