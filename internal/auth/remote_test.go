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
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// A replica checks callers' tokens with the server: the same 401 and 403
// as on the server, and 503 when the server cannot be asked.
func TestRemoteGuard(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		tokens := auth.New(db)
		reader, err := tokens.Create(ctx, "reader", auth.RoleRead, 0)
		if err != nil {
			t.Fatal(err)
		}
		control := http.NewServeMux()
		httpapi.Edge{Guard: tokens.Guard(log)}.Mount(control, tokens.Routes(true, log))
		cs := httptest.NewServer(control)
		defer cs.Close()

		remote := &auth.Remote{Server: cs.URL} // TTL 0: ask every time
		replica := http.NewServeMux()
		ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
		httpapi.Edge{Guard: remote.Guard(log)}.Mount(replica, []httpapi.Route{
			{Pattern: "POST /v2/models/{name}/infer", Handler: ok, Access: httpapi.Read},
			{Pattern: "POST /settings", Handler: ok, Access: httpapi.Admin},
		})
		do := func(path, secret string) int {
			req := httptest.NewRequest("POST", path, nil)
			if secret != "" {
				req.Header.Set("Authorization", "Bearer "+secret)
			}
			rec := httptest.NewRecorder()
			replica.ServeHTTP(rec, req)
			return rec.Code
		}
		for _, tc := range []struct {
			path, secret string
			want         int
		}{
			{"/v2/models/m/infer", "", 401},
			{"/v2/models/m/infer", "nope", 401},
			{"/v2/models/m/infer", reader.Secret, 200},
			{"/settings", reader.Secret, 403},
		} {
			if got := do(tc.path, tc.secret); got != tc.want {
				t.Errorf("%s with %q: %d, want %d", tc.path, tc.secret, got, tc.want)
			}
		}
		if err := tokens.Revoke(ctx, "reader"); err != nil {
			t.Fatal(err)
		}
		if got := do("/v2/models/m/infer", reader.Secret); got != 401 {
			t.Errorf("revoked token on the replica: %d, want 401", got)
		}
		cs.Close()
		if got := do("/v2/models/m/infer", "forge_other"); got != 503 {
			t.Errorf("server unreachable: %d, want 503", got)
		}
	})
}
