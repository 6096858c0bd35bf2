// Package auth is access control by bearer tokens. A token is shown once at
// creation; only its sha256 is stored, so a stolen database yields no tokens.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Token is a stored token's public record.
type Token struct {
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	RevokedAt int64  `json:"revoked_at,omitempty"`
}

// Tokens stores tokens in the metadata database.
type Tokens struct {
	db *sqlstore.DB
}

// New returns the token store over db.
func New(db *sqlstore.DB) *Tokens { return &Tokens{db: db} }

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Create makes a token named name and returns its secret, which is not
// stored and cannot be shown again.
func (t *Tokens) Create(ctx context.Context, name string) (string, error) {
	if name == "" || len(name) > 100 || strings.ContainsAny(name, " \t\n") {
		return "", forge.Errorf(forge.Invalid, "token name %q: want 1 to 100 characters without spaces", name)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := "forge_" + base64.RawURLEncoding.EncodeToString(b[:])
	_, err := t.db.Exec(ctx, "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)", name, hash(secret), sqlstore.Now())
	if sqlstore.IsUniqueViolation(err) {
		return "", forge.Errorf(forge.AlreadyExists, "a token named %q already exists", name)
	}
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return secret, nil
}

// List returns every token, revoked ones included.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	rows, err := t.db.Query(ctx, "SELECT name, created_at, revoked_at FROM tokens ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var tk Token
		var revoked sql.NullInt64
		if err := rows.Scan(&tk.Name, &tk.CreatedAt, &revoked); err != nil {
			return nil, err
		}
		tk.RevokedAt = revoked.Int64
		out = append(out, tk)
	}
	return out, rows.Err()
}

// Revoke disables the token named name.
func (t *Tokens) Revoke(ctx context.Context, name string) error {
	res, err := t.db.Exec(ctx, "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", sqlstore.Now(), name)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var x int
		if err := t.db.QueryRow(ctx, "SELECT 1 FROM tokens WHERE name = ?", name).Scan(&x); errors.Is(err, sql.ErrNoRows) {
			return forge.Errorf(forge.NotFound, "no token named %q", name)
		}
	}
	return nil
}

// Check says whether secret is a live token and returns its name; the error
// is Unauthorized (none or unknown) or Forbidden (revoked).
func (t *Tokens) Check(ctx context.Context, secret string) (string, error) {
	if secret == "" {
		return "", forge.Errorf(forge.Unauthorized, "authentication required: send Authorization: Bearer <token>")
	}
	var name string
	var revoked sql.NullInt64
	err := t.db.QueryRow(ctx, "SELECT name, revoked_at FROM tokens WHERE hash = ?", hash(secret)).Scan(&name, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return "", forge.Errorf(forge.Unauthorized, "unknown token")
	}
	if err != nil {
		return "", fmt.Errorf("check token: %w", err)
	}
	if revoked.Valid {
		return "", forge.Errorf(forge.Forbidden, "token has been revoked")
	}
	return name, nil
}

type nameKey struct{}

// TokenName is the name of the token the request was let in with, or ""
// when access control is off.
func TokenName(ctx context.Context) string {
	name, _ := ctx.Value(nameKey{}).(string)
	return name
}

// FromRequest takes the token from "Authorization: Bearer T" or from Basic
// auth with the token as password (any user name).
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

// Guard is the access check httpapi.Edge puts in front of every route
// that is not public: it requires a live token and tells the handler whose
// it is.
func (t *Tokens) Guard(log *slog.Logger) func(httpapi.Access, http.Handler) http.Handler {
	return func(access httpapi.Access, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name, err := t.Check(r.Context(), FromRequest(r))
			if err != nil {
				if forge.KindOf(err) == forge.Unauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="forge"`)
				}
				httpapi.WriteError(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nameKey{}, name)))
		})
	}
}
