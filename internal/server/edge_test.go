package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/server"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

const edgeAdmin = "edge-admin-secret-0123456789"

// edge is a server with access control on, its routes, a second handle on
// its database (to age a token) and a token of every kind.
type edge struct {
	srv    *server.Server
	url    string
	db     *sqlstore.DB
	tokens map[string]string // role or state -> secret
}

func startEdge(t *testing.T, postgres bool) *edge {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr, cfg.GRPCAddr = "127.0.0.1:0", ""
	cfg.Auth, cfg.AdminToken = true, edgeAdmin
	if postgres {
		cfg.DB = sqlstoretest.PostgresURL(t)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	db, err := sqlstore.Open(context.Background(), sqlstore.Options{URL: cfg.DB, DataDir: cfg.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &edge{srv: s, url: ts.URL, db: db, tokens: map[string]string{"admin": edgeAdmin}}
	admin := api.NewClient(ts.URL, edgeAdmin)
	for _, name := range []string{"read", "write", "revoked", "expired"} {
		role := name
		if name == "revoked" || name == "expired" {
			role = "admin" // refused for what they are, not for their role
		}
		tk, err := admin.CreateToken(context.Background(), api.CreateTokenRequest{Name: name, Role: role, Expires: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[name] = tk.Secret
	}
	if err := admin.RevokeToken(context.Background(), "revoked"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(context.Background(), "UPDATE tokens SET expires_at = 1 WHERE name = 'expired'"); err != nil {
		t.Fatal(err)
	}
	return e
}

// do sends a request with a JSON body (for anything but GET and HEAD) and
// the header pairs given.
func (e *edge) do(t *testing.T, method, path, body string, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearer(secret string) []string {
	if secret == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + secret}
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// request turns a route pattern into a request that reaches it.
func request(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern+"no-such-endpoint"
	}
	path = wildcard.ReplaceAllString(path, "x")
	// Long polls answer at once.
	return method, path + "?timeout=0s"
}

var rank = map[string]int{"read": 1, "write": 2, "admin": 3}

// TestEveryRouteChecksAccess walks every route forge server declares with
// no token, a revoked one, an expired one and each role: the refused get
// 401 or 403 (with the role needed), the let in get past the edge.
func TestEveryRouteChecksAccess(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := startEdge(t, backend == "postgres")
			routes := e.srv.Routes()
			if len(routes) < 80 {
				t.Fatalf("only %d routes declared", len(routes))
			}
			for _, rt := range routes {
				method, path := request(rt.Pattern)
				body := ""
				if method != "GET" && method != "HEAD" {
					body = "{}"
				}
				for _, who := range []string{"none", "revoked", "expired", "read", "write", "admin"} {
					status, b := e.do(t, method, path, body, bearer(e.tokens[who])...)
					need := rt.Access.String()
					switch {
					case rt.Access == httpapi.Public:
						// The session routes check the token they are given themselves.
						selfChecked := strings.HasPrefix(path, "/api/forge/v1/auth/") && status == 401
						if (status == 401 && !selfChecked) || status == 403 || status >= 500 && status != 503 {
							t.Errorf("%s (public) as %s: %d %s", rt.Pattern, who, status, b)
						}
					case who == "none" || who == "revoked" || who == "expired":
						if status != 401 {
							t.Errorf("%s as %s: %d %s, want 401", rt.Pattern, who, status, b)
						}
					case rank[who] < rank[need]:
						if status != 403 || !strings.Contains(b, "needs the "+need+" role") {
							t.Errorf("%s as %s: %d %s, want 403 naming %s", rt.Pattern, who, status, b, need)
						}
					default:
						if status == 401 || status == 403 || status == 500 {
							t.Errorf("%s as %s: %d %s, want past the edge", rt.Pattern, who, status, b)
						}
					}
				}
			}
			refusedWritesChangeNothing(t, e)
		})
	}
}

// refusedWritesChangeNothing spot-checks that a refused write stored
// nothing.
func refusedWritesChangeNothing(t *testing.T, e *edge) {
	admin := bearer(edgeAdmin)
	for _, tc := range []struct {
		who, method, path, body string
		check                   string // GET as admin; must not mention "spot"
	}{
		{"read", "POST", mlflow + "experiments/create", `{"name":"spot"}`, mlflow + "experiments/search?max_results=100"},
		{"expired", "POST", mlflow + "registered-models/create", `{"name":"spot"}`, mlflow + "registered-models/search"},
		{"write", "POST", "/api/forge/v1/tokens", `{"name":"spot","role":"admin"}`, "/api/forge/v1/tokens"},
		{"revoked", "PUT", "/api/forge/v1/deployments/spot", `{"model":"m","version":"1"}`, "/api/forge/v1/deployments"},
		{"none", "POST", "/api/forge/v1/jobs", `{"name":"spot","command":["true"]}`, "/api/forge/v1/jobs"},
	} {
		if status, b := e.do(t, tc.method, tc.path, tc.body, bearer(e.tokens[tc.who])...); status != 401 && status != 403 {
			t.Errorf("%s %s as %s: %d %s, want refused", tc.method, tc.path, tc.who, status, b)
		}
		status, b := e.do(t, "GET", tc.check, "", admin...)
		if status != 200 || strings.Contains(b, "spot") {
			t.Errorf("after a refused %s %s: GET %s = %d %s", tc.method, tc.path, tc.check, status, b)
		}
	}
}

// A browser signs in with a token and gets an HttpOnly, SameSite=Strict
// session cookie; writes by cookie need the CSRF header; signing out or
// revoking the token ends the session.
func TestSession(t *testing.T) {
	e := startEdge(t, false)
	signIn := func(secret string) *http.Cookie {
		t.Helper()
		resp, err := http.Post(e.url+"/api/forge/v1/auth/session", "application/json", bytes.NewReader([]byte(`{"token":"`+secret+`"}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var who api.Identity
		json.NewDecoder(resp.Body).Decode(&who)
		if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
			t.Fatalf("sign in: %d %+v %v", resp.StatusCode, who, resp.Cookies())
		}
		c := resp.Cookies()[0]
		if c.Name != "forge_session" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Value == secret {
			t.Fatalf("session cookie: %+v", c)
		}
		return c
	}
	if status, _ := e.do(t, "POST", "/api/forge/v1/auth/session", `{"token":"`+e.tokens["revoked"]+`"}`); status != 401 {
		t.Errorf("sign in with a revoked token: %d, want 401", status)
	}
	if status, _ := e.do(t, "GET", "/api/forge/v1/auth/whoami", ""); status != 401 {
		t.Errorf("whoami without credentials: %d, want 401", status)
	}
	read := signIn(e.tokens["read"])
	cookie := []string{"Cookie", read.Name + "=" + read.Value}
	status, b := e.do(t, "GET", "/api/forge/v1/auth/whoami", "", cookie...)
	if status != 200 || !strings.Contains(b, `"name":"read"`) || !strings.Contains(b, `"role":"read"`) || !strings.Contains(b, `"auth":true`) {
		t.Errorf("whoami: %d %s", status, b)
	}
	search := mlflow + "runs/search"
	if status, b := e.do(t, "POST", search, `{"experiment_ids":["0"]}`, cookie...); status != 403 || !strings.Contains(b, "X-Forge-CSRF") {
		t.Errorf("POST by cookie without the CSRF header: %d %s, want 403", status, b)
	}
	if status, b := e.do(t, "POST", search, `{"experiment_ids":["0"]}`, append(cookie, "X-Forge-CSRF", "1")...); status != 200 {
		t.Errorf("POST by cookie with the CSRF header: %d %s", status, b)
	}
	if status, _ := e.do(t, "POST", mlflow+"experiments/create", `{"name":"by-cookie"}`, append(cookie, "X-Forge-CSRF", "1")...); status != 403 {
		t.Errorf("write by a read session: %d, want 403", status)
	}
	adm := signIn(edgeAdmin)
	acookie := []string{"Cookie", adm.Name + "=" + adm.Value}
	if status, _ := e.do(t, "POST", mlflow+"experiments/create", `{"name":"by-cookie"}`, acookie...); status != 403 {
		t.Errorf("admin write by cookie without CSRF: %d, want 403", status)
	}
	if status, b := e.do(t, "POST", mlflow+"experiments/create", `{"name":"by-cookie"}`, append(acookie, "X-Forge-CSRF", "1")...); status != 200 {
		t.Errorf("admin write by cookie with CSRF: %d %s", status, b)
	}
	// Signing out ends the session server-side, not only in the browser.
	if status, _ := e.do(t, "DELETE", "/api/forge/v1/auth/session", "", acookie...); status != 200 {
		t.Errorf("sign out: %d", status)
	}
	if status, _ := e.do(t, "GET", "/api/forge/v1/auth/whoami", "", acookie...); status != 401 {
		t.Errorf("whoami after sign out: %d, want 401", status)
	}
	// Revoking the token ends its sessions.
	if status, _ := e.do(t, "DELETE", "/api/forge/v1/tokens/read", "", bearer(edgeAdmin)...); status != 200 {
		t.Fatalf("revoke read: %d", status)
	}
	if status, _ := e.do(t, "GET", mlflow+"experiments/search", "", cookie...); status != 401 {
		t.Errorf("session of a revoked token: %d, want 401", status)
	}
}

// Without access control whoami says everyone is admin.
func TestWhoamiWithoutAuth(t *testing.T) {
	base := inProcess(t, nil)
	status, b := call(t, "GET", base+"/api/forge/v1/auth/whoami", nil)
	if status != 200 || !strings.Contains(string(b), `"role":"admin"`) || !strings.Contains(string(b), `"auth":false`) {
		t.Errorf("whoami without auth: %d %s", status, b)
	}
}

// The first admin token comes from a file; forge token commands create and
// revoke tokens through the API with it; a revoked token is 401.
func TestAuth(t *testing.T) {
	dir := t.TempDir()
	admin := "test-admin-secret-0123456789"
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := startForge(t, "--data-dir", dir, "--auth", "--admin-token-file", file)
	env := []string{"FORGE_SERVER=" + p.url, "FORGE_TOKEN=" + admin}
	token, stderr, code := runForge(t, env, "token", "create", "ci", "--role", "read", "--expires", "90d")
	token = strings.TrimSpace(token)
	if code != 0 || token == "" {
		t.Fatalf("token create: exit %d, %q %s", code, token, stderr)
	}
	if _, stderr, code := runForge(t, []string{"FORGE_SERVER=" + p.url, "FORGE_TOKEN=" + token}, "token", "create", "other"); code == 0 || !strings.Contains(stderr, "needs the admin role") {
		t.Errorf("token create with a read token: exit %d, %s", code, stderr)
	}
	search := p.url + mlflow + "experiments/search?max_results=10"
	for _, path := range []string{"/health", "/readyz", "/version"} {
		if status, b := call(t, "GET", p.url+path, nil); status != 200 {
			t.Errorf("%s without a token: %d %s, want 200", path, status, b)
		}
	}
	check := func(name string, want int, header ...string) {
		t.Helper()
		status, b := call(t, "GET", search, nil, header...)
		if status != want {
			t.Errorf("%s: %d %s, want %d", name, status, b, want)
		}
	}
	check("no token", 401)
	check("wrong token", 401, "Authorization", "Bearer nope")
	check("bearer", 200, "Authorization", "Bearer "+token)
	check("basic, token as password", 200, "Authorization", "Basic "+basic("anyone", token))
	out, stderr, code := runForge(t, env, "token", "ls")
	if code != 0 || !strings.Contains(out, "ci") || !strings.Contains(out, "read") || !strings.Contains(out, "admin") {
		t.Errorf("token ls: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := runForge(t, env, "token", "revoke", "ci"); code != 0 {
		t.Fatalf("token revoke: exit %d %s", code, stderr)
	}
	check("revoked bearer", 401, "Authorization", "Bearer "+token)
	check("revoked basic", 401, "Authorization", "Basic "+basic("anyone", token))
	p.term(t)
	// With no server to talk to, the token commands say so and create nothing.
	cwd := t.TempDir()
	cmd := exec.Command(forgePath(t), "token", "ls")
	cmd.Dir, cmd.Env = cwd, append(os.Environ(), "FORGE_SERVER="+p.url)
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "cannot reach the forge server") {
		t.Errorf("token ls without a server: %v %s", err, b)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("token ls without a server left %s in the working folder", entries[0].Name())
	}
}
