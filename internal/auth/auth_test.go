package auth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// The guard lets a live token in and tells handlers whose it is; a public
// route needs none.
func TestGuardNamesTheToken(t *testing.T) {
	tokens := auth.New(sqlstoretest.OpenSQLite(t))
	secret, err := tokens.Create(context.Background(), "ci-bot")
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	mux := http.NewServeMux()
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = auth.TokenName(r.Context()) })
	httpapi.Edge{Guard: tokens.Guard(slog.New(slog.NewTextHandler(io.Discard, nil)))}.Mount(mux, []httpapi.Route{
		{Pattern: "GET /health", Handler: record, Access: httpapi.Public},
		{Pattern: "GET /x", Handler: record, Access: httpapi.Read},
	})
	h := mux
	do := func(path, authz string) int {
		req := httptest.NewRequest("GET", path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := do("/x", "Bearer "+secret); code != 200 || seen != "ci-bot" {
		t.Fatalf("live token: %d, name %q", code, seen)
	}
	seen = ""
	if code := do("/health", ""); code != 200 || seen != "" {
		t.Fatalf("open path: %d, name %q", code, seen)
	}
	if code := do("/x", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if err := tokens.Revoke(context.Background(), "ci-bot"); err != nil {
		t.Fatal(err)
	}
	if code := do("/x", "Bearer "+secret); code != http.StatusForbidden {
		t.Fatalf("revoked token: %d", code)
	}
}
