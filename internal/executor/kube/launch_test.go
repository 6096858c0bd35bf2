package kube

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/bundle"
)

func TestRunLocalRanks(t *testing.T) {
	var out bytes.Buffer
	env := append(os.Environ(), "JOB_COMPLETION_INDEX=1")
	code, err := RunLocal(context.Background(), 2, 4, []string{"sh", "-c", `echo "$RANK $LOCAL_RANK $NODE_RANK $PET_RANK $CUDA_VISIBLE_DEVICES"`}, env, &out, time.Second)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v\n%s", code, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	slices.Sort(lines)
	want := []string{"[2] 2 0 1 2 0,1", "[3] 3 1 1 3 2,3"}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
}

func TestRunLocalFirstFailureStopsOthers(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	code, err := RunLocal(context.Background(), 2, 0, []string{"sh", "-c", `if [ "$LOCAL_RANK" = 1 ]; then exit 3; fi; sleep 30`}, os.Environ(), &out, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("code %d, want 3\n%s", code, out.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s: the sleeping rank was not stopped", d)
	}
	if !strings.Contains(out.String(), "rank 1 exited with 3") {
		t.Errorf("output does not say which rank failed:\n%s", out.String())
	}
}

func TestFetch(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "train.py"), []byte("print('hi')\n"), 0o644)
	var b bytes.Buffer
	digest, _, err := bundle.Create(src, &b, 0)
	if err != nil {
		t.Fatal(err)
	}
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != "/api/forge/v1/bundles/"+digest {
			http.NotFound(w, r)
			return
		}
		w.Write(b.Bytes())
	}))
	defer srv.Close()
	dst := t.TempDir()
	if err := Fetch(context.Background(), srv.Client(), srv.URL, "tok", digest, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "train.py"))
	if err != nil || string(got) != "print('hi')\n" || auth != "Bearer tok" {
		t.Errorf("extracted %q (%v), auth %q", got, err, auth)
	}
	// Content that does not match its digest is refused.
	bad := strings.Repeat("0", 64)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(b.Bytes()) })
	if err := Fetch(context.Background(), srv.Client(), srv.URL, "", bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("a bundle that does not match its digest: %v", err)
	}
}
