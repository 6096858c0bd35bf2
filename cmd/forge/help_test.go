package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// cleanEnv clears FORGE_* and MLFLOW_* for the test, so defaults shown in
// help are the built-in ones.
func cleanEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FORGE_") || strings.HasPrefix(k, "MLFLOW_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/forge -run %s -update)", err, t.Name())
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-golden +got; -update rewrites it):\n%s", path, d)
	}
}

var groupCommands = regexp.MustCompile(`(?m)^  ([a-z-]+)  `)

// TestHelpGolden prints the help of every command group and command three
// ways (-h, --help, forge help ...), checks they agree, that each has a
// synopsis and two or three examples, and compares it with its golden file.
func TestHelpGolden(t *testing.T) {
	cleanEnv(t)
	top, _, err := runCLI(t, "help")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "help/forge.txt", top)
	for _, name := range publicCommands() {
		t.Run(name, func(t *testing.T) {
			out := helpThreeWays(t, name)
			golden(t, "help/"+name+".txt", out)
			if !strings.Contains(out, "\nCommands:\n") {
				return
			}
			section := out[strings.Index(out, "\nCommands:\n"):]
			section = section[:strings.Index(section[1:], "\n\n")+1]
			verbs := groupCommands.FindAllStringSubmatch(section, -1)
			if len(verbs) == 0 {
				t.Fatalf("group %s lists no commands:\n%s", name, out)
			}
			for _, v := range verbs {
				out := helpThreeWays(t, name, v[1])
				golden(t, "help/"+name+"_"+v[1]+".txt", out)
			}
		})
	}
}

func helpThreeWays(t *testing.T, cmd ...string) string {
	t.Helper()
	name := strings.Join(cmd, " ")
	short, stderr, err := runCLI(t, append(cmd, "-h")...)
	if err != nil && err != flag.ErrHelp {
		t.Fatalf("forge %s -h: %v (stderr %q)", name, err, stderr)
	}
	if exitCode(err, &bytes.Buffer{}) != 0 {
		t.Errorf("forge %s -h exits %d", name, exitCode(err, &bytes.Buffer{}))
	}
	long, _, _ := runCLI(t, append(cmd, "--help")...)
	viaHelp, _, _ := runCLI(t, append([]string{"help"}, cmd...)...)
	if name != "help" && (long != short || viaHelp != short) {
		t.Errorf("forge %s: -h, --help and `forge help %s` differ:\n%s\n---\n%s\n---\n%s", name, name, short, long, viaHelp)
	}
	d, ok := docs[name]
	if !ok || d.summary == "" {
		t.Errorf("forge %s has no entry in docs", name)
	}
	if !strings.Contains(short, "Usage:\n  forge ") {
		t.Errorf("forge %s -h has no synopsis:\n%s", name, short)
	}
	if n := len(d.examples); n < 1 || n > 3 {
		t.Errorf("forge %s has %d examples, want 1 to 3", name, n)
	}
	for _, e := range d.examples {
		if !strings.HasPrefix(strings.TrimPrefix(e, "source <("), "forge "+cmd[0]) && cmd[0] != "help" && cmd[0] != "completion" {
			t.Errorf("forge %s: example %q does not run forge %s", name, e, cmd[0])
		}
	}
	return short
}

// TestDocsMatchCommands: every docs entry is a command forge dispatches.
func TestDocsMatchCommands(t *testing.T) {
	cleanEnv(t)
	for key := range docs {
		cmd := strings.Fields(key)
		if _, ok := commands[cmd[0]]; !ok {
			t.Errorf("docs[%q]: no command %s", key, cmd[0])
			continue
		}
		if len(cmd) == 2 {
			if _, _, err := runCLI(t, cmd[0], cmd[1], "-h"); err != nil && err != flag.ErrHelp {
				t.Errorf("docs[%q]: forge %s -h: %v", key, key, err)
			}
		}
	}
}

func TestDidYouMean(t *testing.T) {
	cleanEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dat"}, `unknown command "dat"; did you mean data?`},
		{[]string{"modle", "ls"}, "did you mean model?"},
		{[]string{"data", "ad"}, `unknown command "ad" for forge data; did you mean add?`},
		{[]string{"jobs", "lgos"}, "did you mean logs"},
		{[]string{"data", "add", "--bogus"}, "flag provided but not defined: -bogus (run `forge data add -h`)"},
	} {
		_, _, err := runCLI(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("forge %s: %v, want %q", strings.Join(tt.args, " "), err, tt.want)
		}
		if code := exitCode(err, &bytes.Buffer{}); code != 2 {
			t.Errorf("forge %s exits %d, want 2", strings.Join(tt.args, " "), code)
		}
	}
}

func TestCompletion(t *testing.T) {
	cleanEnv(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, _, err := runCLI(t, "completion", sh)
		if err != nil {
			t.Fatalf("completion %s: %v", sh, err)
		}
		for _, w := range []string{"data", "profile", "deployments", "cancel"} {
			if !strings.Contains(out, w) {
				t.Errorf("completion %s lacks %q", sh, w)
			}
		}
		golden(t, "completion/"+sh+".txt", out)
	}
	if _, _, err := runCLI(t, "completion", "tcsh"); err == nil || !strings.Contains(err.Error(), "want bash, zsh or fish") {
		t.Errorf("completion tcsh: %v", err)
	}
}

// TestServerURLWithoutScheme: a URL like localhost:7700 is refused before
// anything is sent, saying what is expected (exit 2).
func TestServerURLWithoutScheme(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{
		{"data", "ls", "--server", "localhost:7700"},
		{"model", "download", "iris", "--out", t.TempDir(), "--server", "localhost:7700"},
		{"data", "query", "SELECT 1", "--server", "localhost:7700"},
	} {
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), "needs a scheme: want http://HOST:PORT or https://HOST, e.g. http://localhost:7700") {
			t.Errorf("forge %s: %v", strings.Join(args, " "), err)
		}
	}
	t.Setenv("FORGE_SERVER", "127.0.0.1:7700")
	if _, _, err := runCLI(t, "jobs", "ls"); err == nil || !strings.Contains(err.Error(), "FORGE_SERVER") || exitCode(err, &bytes.Buffer{}) != 2 {
		t.Errorf("FORGE_SERVER without scheme: %v", err)
	}
}
