package auth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

// The guard lets a live token in and tells handlers whose it is; a public
// route needs none; revoked and expired tokens are 401, a role too low 403.
func TestGuard(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		tokens := auth.New(db)
		now := time.Now()
		auth.SetNow(tokens, func() time.Time { return now })
		reader, err := tokens.Create(ctx, "ci-bot", auth.RoleRead, 0)
		if err != nil {
			t.Fatal(err)
		}
		writer, err := tokens.Create(ctx, "pipeline", auth.RoleWrite, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tokens.Create(ctx, "ci-bot", auth.RoleRead, 0); forge.KindOf(err) != forge.AlreadyExists {
			t.Errorf("second ci-bot: %v, want AlreadyExists", err)
		}
		if _, err := tokens.Create(ctx, "x", auth.Role("root"), 0); forge.KindOf(err) != forge.Invalid {
			t.Errorf("role root: %v, want Invalid", err)
		}
		var seen string
		mux := http.NewServeMux()
		record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = auth.TokenName(r.Context()) })
		httpapi.Edge{Guard: tokens.Guard(slog.New(slog.NewTextHandler(io.Discard, nil)))}.Mount(mux, []httpapi.Route{
			{Pattern: "GET /health", Handler: record, Access: httpapi.Public},
			{Pattern: "GET /x", Handler: record, Access: httpapi.Read},
			{Pattern: "POST /x", Handler: record, Access: httpapi.Write},
		})
		do := func(method, path, secret string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(method, path, nil)
			if secret != "" {
				req.Header.Set("Authorization", "Bearer "+secret)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			return rec
		}
		if rec := do("GET", "/x", reader.Secret); rec.Code != 200 || seen != "ci-bot" {
			t.Fatalf("live token: %d, name %q", rec.Code, seen)
		}
		seen = ""
		if rec := do("GET", "/health", ""); rec.Code != 200 || seen != "" {
			t.Fatalf("open path: %d, name %q", rec.Code, seen)
		}
		if rec := do("GET", "/x", ""); rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("no token: %d %v", rec.Code, rec.Header())
		}
		if rec := do("POST", "/x", reader.Secret); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "needs the write role") {
			t.Fatalf("read token on a write route: %d %s", rec.Code, rec.Body)
		}
		if rec := do("POST", "/x", writer.Secret); rec.Code != 200 || seen != "pipeline" {
			t.Fatalf("write token on a write route: %d %s", rec.Code, rec.Body)
		}
		now = now.Add(time.Hour)
		if rec := do("GET", "/x", writer.Secret); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "expired") {
			t.Fatalf("expired token: %d %s", rec.Code, rec.Body)
		}
		if err := tokens.Revoke(ctx, "ci-bot"); err != nil {
			t.Fatal(err)
		}
		if rec := do("GET", "/x", reader.Secret); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "revoked") {
			t.Fatalf("revoked token: %d %s", rec.Code, rec.Body)
		}
		if err := tokens.Revoke(ctx, "nobody"); forge.KindOf(err) != forge.NotFound {
			t.Errorf("revoke nobody: %v, want NotFound", err)
		}
	})
}

// The admin token given at start is stored, replaced when it changes, and
// brought back when revoked.
func TestEnsureAdmin(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		tokens := auth.New(db)
		if err := tokens.EnsureAdmin(ctx, "admin", "short"); forge.KindOf(err) != forge.Invalid {
			t.Errorf("short admin token: %v, want Invalid", err)
		}
		first, second := "first-admin-secret-0123456789", "second-admin-secret-0123456789"
		if err := tokens.EnsureAdmin(ctx, "admin", first); err != nil {
			t.Fatal(err)
		}
		if id, err := tokens.Check(ctx, first); err != nil || id.Role != auth.RoleAdmin {
			t.Fatalf("admin token: %+v %v", id, err)
		}
		if err := tokens.Revoke(ctx, "admin"); err != nil {
			t.Fatal(err)
		}
		if err := tokens.EnsureAdmin(ctx, "admin", second); err != nil {
			t.Fatal(err)
		}
		if _, err := tokens.Check(ctx, first); forge.KindOf(err) != forge.Unauthorized {
			t.Errorf("replaced admin token: %v, want Unauthorized", err)
		}
		if id, err := tokens.Check(ctx, second); err != nil || id.Name != "admin" {
			t.Errorf("new admin token: %+v %v", id, err)
		}
		list, err := tokens.List(ctx)
		if err != nil || len(list) != 1 || list[0].RevokedAt != 0 {
			t.Errorf("tokens: %+v %v, want one live admin", list, err)
		}
	})
}

func TestParseExpiry(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "90d": 90 * 24 * time.Hour, "12h": 12 * time.Hour} {
		if got, err := auth.ParseExpiry(in); err != nil || got != want {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "-1d", "0h", "d"} {
		if _, err := auth.ParseExpiry(bad); forge.KindOf(err) != forge.Invalid {
			t.Errorf("ParseExpiry(%q): %v, want Invalid", bad, err)
		}
	}
}
