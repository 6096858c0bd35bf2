package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
)

func TestRelTime(t *testing.T) {
	now := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	at := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	for _, tc := range []struct {
		ms   int64
		want string
	}{
		{0, "-"},
		{at(300 * time.Millisecond), "just now"},
		{at(59 * time.Second), "59s ago"},
		{at(3*time.Minute + 59*time.Second), "3m ago"},
		{at(5 * time.Hour), "5h ago"},
		{at(47 * time.Hour), "1d ago"},
		{at(2*24*time.Hour + time.Minute), "2d ago"},
		{at(400 * 24 * time.Hour), "1y ago"},
		{at(-29*24*time.Hour - time.Hour), "in 29d"},
		{at(-90 * time.Second), "in 1m"},
	} {
		if got := relTime(now, tc.ms); got != tc.want {
			t.Errorf("relTime(now - %s) = %q, want %q", now.Sub(time.UnixMilli(tc.ms)), got, tc.want)
		}
	}
	cf := &clientFlags{output: "table", now: func() time.Time { return now }}
	ms := at(3 * time.Minute)
	if got := cf.when(ms); got != "3m ago" {
		t.Errorf("table: %q", got)
	}
	if got := cf.whenLong(ms); got != "2026-12-03T16:57:00Z (3m ago)" {
		t.Errorf("show: %q", got)
	}
	cf.output = "wide"
	if got := cf.when(ms); got != "2026-12-03T16:57:00Z" {
		t.Errorf("wide: %q", got)
	}
}

// TestPrintJSONAddsRFC3339: -o json keeps the API's members in their order
// and adds KEY_rfc3339 after each millisecond time, and nothing else.
func TestPrintJSONAddsRFC3339(t *testing.T) {
	v := map[string]any{
		"name":             "a<b>&c",
		"created_at":       int64(1764781471123),
		"start_time":       int64(0),     // no time: left alone
		"count_at":         7,            // not a time in ms
		"finished_at":      "2026-12-03", // not a number
		"nested":           []any{map[string]any{"timestamp": int64(1764781471000)}},
		"last_update_time": json.Number("1764781471000"),
	}
	var buf bytes.Buffer
	if err := printJSON(&buf, v); err != nil {
		t.Fatal(err)
	}
	want := `{
  "count_at": 7,
  "created_at": 1764781471123,
  "created_at_rfc3339": "2025-12-03T17:04:31.123Z",
  "finished_at": "2026-12-03",
  "last_update_time": 1764781471000,
  "last_update_time_rfc3339": "2025-12-03T17:04:31Z",
  "name": "a\u003cb\u003e\u0026c",
  "nested": [
    {
      "timestamp": 1764781471000,
      "timestamp_rfc3339": "2025-12-03T17:04:31Z"
    }
  ],
  "start_time": 0
}
`
	if d := cmp.Diff(want, buf.String()); d != "" {
		t.Errorf("printJSON (-want +got):\n%s", d)
	}
	// Without times, the output is encoding/json's, byte for byte.
	plain := map[string]any{"a": []int{}, "b": map[string]string{}, "c": "x<y", "d": 1.5e300, "e": nil}
	buf.Reset()
	printJSON(&buf, plain)
	std, _ := json.MarshalIndent(plain, "", "  ")
	if buf.String() != string(std)+"\n" {
		t.Errorf("printJSON = %s, encoding/json = %s", buf.String(), std)
	}
}

// runAt runs the CLI with its clock stopped at now.
func runAt(t *testing.T, now time.Time, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, env: os.LookupEnv, now: func() time.Time { return now }}
	err := c.run(context.Background(), args)
	return out.String(), errOut.String(), err
}

var (
	rfc3339Rx = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	runIDRx   = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
)

// TestTablesTellTimeOneWay: every list says a time as how long ago it was,
// by the CLI's clock (here stopped 3 days and an hour after the test made
// everything, so the tables do not depend on when the test runs), with -o
// wide the RFC 3339 time in UTC, and -o json the same beside the
// milliseconds. The golden files hold the tables.
func TestTablesTellTimeOneWay(t *testing.T) {
	cleanEnv(t)
	const admin = "forge_times-test-admin"
	begin := time.Now() // the server makes its admin token and Default experiment
	url := forgeServer(t, func(cfg *config.Server) { cfg.Auth, cfg.AdminToken = true, admin })
	ctx := context.Background()
	must := func(args ...string) string {
		t.Helper()
		if args[0] != "run" {
			args = append(args, "--server", url, "--token", admin)
		}
		out, errOut, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("forge %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	must("token", "create", "ci", "--role", "write", "--expires", "90d")
	must("token", "create", "old", "--role", "read")
	must("token", "revoke", "old")
	must("experiments", "create", "churn")
	csv := filepath.Join(t.TempDir(), "sales.csv")
	os.WriteFile(csv, []byte("id,amount\n1,2.5\n2,3.5\n3,4.5\n"), 0o644)
	must("data", "add", "sales", csv, "--description", "three sales")
	os.WriteFile(csv, []byte("id,amount\n1,2.5\n2,3.5\n3,4.5\n4,5.5\n"), 0o644)
	must("data", "add", "sales", csv, "--description", "four sales")
	must("model", "register", "mlp", "--file", filepath.Join(modelFixtures, "mlp.onnx"), "--description", "a small MLP")
	must("model", "register", "mlp", "--file", filepath.Join(modelFixtures, "mlp.onnx"), "--description", "the same again")
	must("model", "alias", "mlp", "champion", "1")
	id := strings.TrimSpace(must("run", "--no-code", "--name", "fit-1", "--server", url, "--token", admin, "--", "true"))
	cl := api.NewClient(url, admin)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if j, err := cl.Job(ctx, id); err == nil && j.Final() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job never ended")
		}
	}
	if time.Since(begin) > 50*time.Minute {
		t.Fatal("the test took too long for its clock")
	}
	now := begin.Add(3*24*time.Hour + time.Hour)
	mask := func(s string) string {
		s = strings.ReplaceAll(s, id, strings.Repeat("J", len(id)))
		return runIDRx.ReplaceAllString(s, strings.Repeat("R", 32))
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"token_ls", []string{"token", "ls"}},
		{"experiments_ls", []string{"experiments", "ls"}},
		{"data_ls", []string{"data", "ls"}},
		{"data_ls_versions", []string{"data", "ls", "sales"}},
		{"model_ls", []string{"model", "ls"}},
		{"model_ls_versions", []string{"model", "ls", "mlp"}},
		{"jobs_ls", []string{"jobs", "ls"}},
		{"runs_ls", []string{"runs", "ls"}},
	} {
		args := append(tc.args, "--server", url, "--token", admin)
		out, errOut, err := runAt(t, now, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, errOut)
		}
		golden(t, "times/"+tc.name+".txt", mask(out))
		wide, _, err := runAt(t, now, append(args, "-o", "wide")...)
		if err != nil {
			t.Fatal(err)
		}
		// Each time is the real one: inside the test's run (or 90 days on).
		for _, m := range rfc3339Rx.FindAllString(wide, -1) {
			at, _ := time.Parse(time.RFC3339, m)
			if at.Before(begin.Add(-time.Second)) || at.After(time.Now().Add(91*24*time.Hour)) {
				t.Errorf("%s -o wide: %s is not a time of this test", tc.name, m)
			}
		}
		golden(t, "times/"+tc.name+"_wide.txt", rfc3339Rx.ReplaceAllString(mask(wide), "YYYY-MM-DDTHH:MM:SSZ"))
	}
	out, _, err := runAt(t, now, "token", "ls", "-o", "json", "--server", url, "--token", admin)
	var tokens []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &tokens) != nil || len(tokens) != 3 {
		t.Fatalf("token ls -o json: %v\n%s", err, out)
	}
	for _, tk := range tokens {
		ms := int64(tk["created_at"].(float64))
		if want := time.UnixMilli(ms).UTC().Format(time.RFC3339Nano); tk["created_at_rfc3339"] != want {
			t.Errorf("token %v: created_at_rfc3339 %v, want %s", tk["name"], tk["created_at_rfc3339"], want)
		}
	}
}
