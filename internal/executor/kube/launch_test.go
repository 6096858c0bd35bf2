package kube

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
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

func TestFetchInput(t *testing.T) {
	parquet, csv := []byte("PAR1 bytes"), []byte("a,b\n1,2\n")
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	var csvHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/forge/v1/datasets/sales/versions/3/data" || r.Header.Get("Authorization") != "Bearer tok" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("format") == "csv" {
			w.Header().Set("X-Content-Sha256", csvHeader)
			w.Write(csv)
			return
		}
		w.Write(parquet)
	}))
	defer srv.Close()
	dir := t.TempDir()
	fetch := func(in forge.Input) error {
		return FetchInput(context.Background(), srv.Client(), srv.URL, "tok", in, dir)
	}
	pq := forge.Input{Ref: "sales@3", Format: "parquet", Digest: sum(parquet), Path: ".forge/inputs/train.parquet"}
	if err := fetch(pq); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, ".forge/inputs/train.parquet")); err != nil || !bytes.Equal(got, parquet) {
		t.Errorf("parquet input %q, %v", got, err)
	}
	csvHeader = sum(csv)
	if err := fetch(forge.Input{Ref: "sales@3", Format: "csv", Path: ".forge/inputs/rows.csv"}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, ".forge/inputs/rows.csv")); err != nil || !bytes.Equal(got, csv) {
		t.Errorf("csv input %q, %v", got, err)
	}
	// Bytes that do not match the version's digest, or the sha256 the
	// server sent, are refused and leave no file.
	bad := pq
	bad.Digest, bad.Path = strings.Repeat("0", 64), "bad.parquet"
	if err := fetch(bad); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("parquet that does not match its digest: %v", err)
	}
	csvHeader = strings.Repeat("0", 64)
	if err := fetch(forge.Input{Ref: "sales@3", Format: "csv", Path: "bad.csv"}); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("csv that does not match the server's sha256: %v", err)
	}
	for _, p := range []string{"bad.parquet", "bad.csv"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	for _, flag := range []string{"path=../x,ref=a@1,format=csv,sha256=x", "path=/etc/x,ref=a@1,format=csv", "path=x,ref=a,format=csv", "path=x,ref=a@1,format=json", "path=x,ref=a@1,format=csv,extra=1"} {
		if _, err := ParseInputFlag(flag); err == nil {
			t.Errorf("ParseInputFlag(%q) accepted it", flag)
		}
	}
}
