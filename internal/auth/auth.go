// Package auth is access control by bearer tokens with roles. A token is
// shown once at creation; only its sha256 is stored, so a stolen database
// yields no tokens. Each token has a role (read, write or admin) and may
// expire; the edge checks a route's declared access against it.
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
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Role is what a token may do; each role includes the ones below it.
type Role string

const (
	RoleRead  Role = "read"
	RoleWrite Role = "write"
	RoleAdmin Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", forge.Errorf(forge.Invalid, "role %q: want read, write or admin", s)
}

// Allows says whether a token with role r may reach a route that needs a.
func (r Role) Allows(a httpapi.Access) bool {
	switch a {
	case httpapi.Public:
		return true
	case httpapi.Read:
		return r.rank() >= 1
	case httpapi.Write, httpapi.WriteRun:
		return r.rank() >= 2
	case httpapi.Admin:
		return r.rank() >= 3
	}
	return false
}

// Identity is who a request was let in as.
type Identity struct {
	Name string
	Role Role
	// Run, when set, is the one tracking run the token may write: a job's
	// token (see CreateJobToken). It reads like any read token.
	Run string
	id  int64
}

// MayWriteRun is nil when id may write to run runID, else Forbidden naming
// the one run it may write.
func (id Identity) MayWriteRun(runID string) error {
	if id.Run == "" || id.Run == runID {
		return nil
	}
	return forge.Errorf(forge.Forbidden, "token %q is a job's token: it may write only to its own run %s, not to run %s", id.Name, id.Run, runID)
}

// MayWriteRun is nil when the request with ctx may write to run runID:
// always, unless it was let in with a job's token for another run.
// Requests without an identity (access control off, or the server's own
// work) may.
func MayWriteRun(ctx context.Context, runID string) error {
	id, _ := IdentityOf(ctx)
	return id.MayWriteRun(runID)
}

// ScopedRun is the one run the request with ctx may write, or "" when its
// writes are not limited to a run.
func ScopedRun(ctx context.Context) string {
	id, _ := IdentityOf(ctx)
	return id.Run
}

// Tokens stores tokens in the metadata database.
type Tokens struct {
	db  *sqlstore.DB
	now func() time.Time
}

// New returns the token store over db.
func New(db *sqlstore.DB) *Tokens { return &Tokens{db: db, now: time.Now} }

func hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func newSecret(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func checkName(name string) error {
	if name == "" || len(name) > 100 || strings.ContainsAny(name, " \t\n/") {
		return forge.Errorf(forge.Invalid, "token name %q: want 1 to 100 characters without spaces or slashes", name)
	}
	return nil
}

// ParseExpiry reads how long a token lives: a Go duration ("12h") or a
// number of days ("90d"); "" is for ever (0).
func ParseExpiry(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, forge.Errorf(forge.Invalid, "expires %q: want a positive duration such as 90d or 12h", s)
	}
	return d, nil
}

// Create makes a token named name with role, living for ttl (0: for ever),
// and returns its record and its secret, which is not stored and cannot be
// shown again.
func (t *Tokens) Create(ctx context.Context, name string, role Role, ttl time.Duration) (api.CreatedToken, error) {
	if err := checkName(name); err != nil {
		return api.CreatedToken{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return api.CreatedToken{}, err
	}
	secret, err := newSecret("forge_")
	if err != nil {
		return api.CreatedToken{}, err
	}
	now := t.now()
	tk := api.Token{Name: name, Role: string(role), CreatedAt: now.UnixMilli()}
	var expires any
	if ttl > 0 {
		tk.ExpiresAt = now.Add(ttl).UnixMilli()
		expires = tk.ExpiresAt
	}
	_, err = t.db.Exec(ctx, "INSERT INTO tokens (name, hash, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
		name, hash(secret), string(role), tk.CreatedAt, expires)
	if sqlstore.IsUniqueViolation(err) {
		return api.CreatedToken{}, forge.Errorf(forge.AlreadyExists, "a token named %q already exists", name)
	}
	if err != nil {
		return api.CreatedToken{}, fmt.Errorf("create token: %w", err)
	}
	return api.CreatedToken{Token: tk, Secret: secret}, nil
}

// EnsureAdmin makes secret a live admin token named name: the first admin
// token, read by the server at start (--admin-token-file or
// FORGE_ADMIN_TOKEN). The secret given is the source of truth: a changed
// secret replaces the stored one, and a revoked one comes back.
func (t *Tokens) EnsureAdmin(ctx context.Context, name, secret string) error {
	if len(secret) < 16 {
		return forge.Errorf(forge.Invalid, "the admin token must be at least 16 characters")
	}
	res, err := t.db.Exec(ctx, "UPDATE tokens SET hash = ?, role = ?, revoked_at = NULL, expires_at = NULL WHERE name = ?",
		hash(secret), string(RoleAdmin), name)
	if err != nil {
		return fmt.Errorf("store the admin token: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = t.db.Exec(ctx, "INSERT INTO tokens (name, hash, role, created_at) VALUES (?, ?, ?, ?)",
		name, hash(secret), string(RoleAdmin), t.now().UnixMilli())
	if sqlstore.IsUniqueViolation(err) {
		return forge.Errorf(forge.Conflict, "the admin token's secret is already used by another token")
	}
	if err != nil {
		return fmt.Errorf("store the admin token: %w", err)
	}
	return nil
}

// CreateJobToken makes the token of a job attempt, named name: the write
// role on run runID only (read elsewhere), living for ttl (0: until
// DeleteToken). A token left by an earlier try of the same name (a server
// stopped between start and end) is replaced.
func (t *Tokens) CreateJobToken(ctx context.Context, name, runID string, ttl time.Duration) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if runID == "" {
		return "", forge.Errorf(forge.Invalid, "a job's token needs the job's run")
	}
	secret, err := newSecret("forge_job_")
	if err != nil {
		return "", err
	}
	now := t.now()
	var expires any
	if ttl > 0 {
		expires = now.Add(ttl).UnixMilli()
	}
	err = t.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE token_id IN (SELECT id FROM tokens WHERE name = ? AND run_id IS NOT NULL)", name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM tokens WHERE name = ? AND run_id IS NOT NULL", name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO tokens (name, hash, role, created_at, expires_at, run_id) VALUES (?, ?, ?, ?, ?, ?)",
			name, hash(secret), string(RoleWrite), now.UnixMilli(), expires, runID)
		return err
	})
	if sqlstore.IsUniqueViolation(err) {
		return "", forge.Errorf(forge.AlreadyExists, "a token named %q already exists", name)
	}
	if err != nil {
		return "", fmt.Errorf("create job token: %w", err)
	}
	return secret, nil
}

// DeleteJobToken removes the job token named name (and its sessions): at
// the job's end, after which it is an unknown token. Deleting one that is
// gone is not an error; a token that is not a job's is left alone.
func (t *Tokens) DeleteJobToken(ctx context.Context, name string) error {
	return t.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE token_id IN (SELECT id FROM tokens WHERE name = ? AND run_id IS NOT NULL)", name); err != nil {
			return fmt.Errorf("delete job token: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM tokens WHERE name = ? AND run_id IS NOT NULL", name); err != nil {
			return fmt.Errorf("delete job token: %w", err)
		}
		return nil
	})
}

// List returns every token, revoked and expired ones included.
func (t *Tokens) List(ctx context.Context) ([]api.Token, error) {
	rows, err := t.db.Query(ctx, "SELECT name, role, created_at, expires_at, revoked_at, run_id FROM tokens ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []api.Token{}
	for rows.Next() {
		var tk api.Token
		var expires, revoked sql.NullInt64
		var run sql.NullString
		if err := rows.Scan(&tk.Name, &tk.Role, &tk.CreatedAt, &expires, &revoked, &run); err != nil {
			return nil, err
		}
		tk.ExpiresAt, tk.RevokedAt, tk.RunID = expires.Int64, revoked.Int64, run.String
		out = append(out, tk)
	}
	return out, rows.Err()
}

// Revoke disables the token named name and ends its sessions.
func (t *Tokens) Revoke(ctx context.Context, name string) error {
	return t.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, "SELECT id FROM tokens WHERE name = ?", name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return forge.Errorf(forge.NotFound, "no token named %q", name)
		}
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", t.now().UnixMilli(), id); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE token_id = ?", id); err != nil {
			return fmt.Errorf("end the token's sessions: %w", err)
		}
		return nil
	})
}

// Check says whether secret is a live token and returns who it is. Every
// refusal is Unauthorized: none, unknown, revoked or expired.
func (t *Tokens) Check(ctx context.Context, secret string) (Identity, error) {
	if secret == "" {
		return Identity{}, forge.Errorf(forge.Unauthorized, "authentication required: send Authorization: Bearer <token>")
	}
	return t.lookup(ctx, "SELECT id, name, role, expires_at, revoked_at, run_id FROM tokens WHERE hash = ?", hash(secret))
}

func (t *Tokens) lookup(ctx context.Context, q string, args ...any) (Identity, error) {
	var id Identity
	var role string
	var expires, revoked sql.NullInt64
	var run sql.NullString
	err := t.db.QueryRow(ctx, q, args...).Scan(&id.id, &id.Name, &role, &expires, &revoked, &run)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, forge.Errorf(forge.Unauthorized, "unknown token")
	}
	if err != nil {
		return Identity{}, fmt.Errorf("check token: %w", err)
	}
	if revoked.Valid {
		return Identity{}, forge.Errorf(forge.Unauthorized, "token %q has been revoked", id.Name)
	}
	if expires.Valid && t.now().UnixMilli() >= expires.Int64 {
		return Identity{}, forge.Errorf(forge.Unauthorized, "token %q expired at %s", id.Name, time.UnixMilli(expires.Int64).UTC().Format(time.RFC3339))
	}
	id.Role, id.Run = Role(role), run.String
	return id, nil
}

type identityKey struct{}

// WithIdentity is ctx carrying who the request was let in as.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityOf is who the request was let in as; ok is false when access
// control is off.
func IdentityOf(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// TokenName is the name of the token the request was let in with, or ""
// when access control is off.
func TokenName(ctx context.Context) string {
	id, _ := IdentityOf(ctx)
	return id.Name
}
