package queue_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/queue"
)

func TestAuths(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("tok-1\n"), 0o600)
	env := map[string]string{"KPASS": "kp"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	a, err := queue.Auths{
		"b1:9092":         {SASL: "SCRAM-SHA-512", User: "forge", PasswordEnv: "KPASS"},
		"nats://b1:9092":  {TokenFile: tok},
		"kafka://b2:9092": {User: "other", PasswordEnv: "KPASS"},
	}.Resolve(lookup)
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := queue.ParseURL("kafka://b0:1,b1:9092/ev")
	ep = a.WithAuth(ep)
	if u, p, m, _ := ep.Credentials(); u != "forge" || p != "kp" || m != "scram-sha-512" {
		t.Errorf("kafka credentials from the config: %q %q %q", u, p, m)
	}
	if ep.String() != "kafka://b0:1,b1:9092/ev" {
		t.Errorf("the recorded source changed: %s", ep)
	}
	// scheme://HOST:PORT wins over HOST:PORT; a file's newline is dropped.
	ep, _ = queue.ParseURL("nats://b1:9092/EV")
	if _, _, _, tk := a.WithAuth(ep).Credentials(); tk != "tok-1" {
		t.Errorf("nats token %q", tk)
	}
	// The URL's own credentials win.
	ep, _ = queue.ParseURL("kafka://me:pw@b2:9092/ev?sasl=plain")
	if u, p, m, _ := a.WithAuth(ep).Credentials(); u != "me" || p != "pw" || m != "plain" {
		t.Errorf("URL credentials: %q %q %q", u, p, m)
	}
	ep, _ = queue.ParseURL("kafka://b3:9092/ev")
	if u, _, _, _ := a.WithAuth(ep).Credentials(); u != "" {
		t.Errorf("a host without an entry got user %q", u)
	}

	for _, tc := range []struct {
		a    queue.Auth
		key  string
		want string
	}{
		{queue.Auth{PasswordEnv: "NOPE"}, "b:1", "NOPE is not set"},
		{queue.Auth{PasswordFile: filepath.Join(dir, "missing")}, "b:1", "password_file"},
		{queue.Auth{PasswordEnv: "KPASS", PasswordFile: tok}, "b:1", "set one"},
		{queue.Auth{SASL: "gssapi"}, "b:1", "want plain, scram-sha-256 or scram-sha-512"},
		{queue.Auth{}, "kafka://b/ev", "want HOST:PORT"},
		{queue.Auth{CredsFile: filepath.Join(dir, "missing.creds")}, "b:1", "creds_file"},
	} {
		if _, err := (queue.Auths{tc.key: tc.a}).Resolve(lookup); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: %v, want an error with %q", tc.key, tc.a, err, tc.want)
		}
	}
}
