package bundle

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func list(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestIgnoreAndRoundTrip(t *testing.T) {
	src := t.TempDir()
	write(t, src, map[string]string{
		".gitignore":      "*.pyc\n/data/\nbuild/\n!keep.pyc\nlogs/**/*.log\n",
		".forgeignore":    "secret.txt\n",
		"train.py":        "print('hi')\n",
		"keep.pyc":        "x",
		"mod/a.pyc":       "x",
		"mod/b.py":        "x",
		"mod/.gitignore":  "local.cfg\n",
		"mod/local.cfg":   "x",
		"mod/data/x.csv":  "nested data is not anchored-ignored",
		"data/big.csv":    "x",
		"sub/build/out.o": "x",
		"logs/a/b/c.log":  "x",
		"logs/a/keep.txt": "x",
		"secret.txt":      "x",
		".git/HEAD":       "x",
	})
	var buf bytes.Buffer
	d1, _, err := Create(src, &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Extract(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	want := []string{".forgeignore", ".gitignore", "keep.pyc", "logs/a/keep.txt", "mod/.gitignore", "mod/b.py", "mod/data/x.csv", "train.py"}
	if got := list(t, dst); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("extracted %v\nwant      %v", got, want)
	}
	// Same content, other mtimes: same digest. Changed content: another.
	os.Chtimes(filepath.Join(src, "train.py"), time.Unix(1, 0), time.Unix(1, 0))
	d2, _, _ := Create(src, &bytes.Buffer{}, 0)
	write(t, src, map[string]string{"train.py": "print('changed')\n"})
	d3, _, _ := Create(src, &bytes.Buffer{}, 0)
	if d1 != d2 || d1 == d3 {
		t.Fatalf("digests %s %s %s: want the first two equal, the third different", d1, d2, d3)
	}
}

func TestSizeCap(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.Read(big) // incompressible
	os.WriteFile(filepath.Join(src, "weights.bin"), big, 0o644)
	_, _, err := Create(src, &bytes.Buffer{}, 1<<20)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "weights.bin") {
		t.Fatalf("err = %v, want a TooLargeError naming weights.bin", err)
	}
}
