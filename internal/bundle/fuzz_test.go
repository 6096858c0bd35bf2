package bundle

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract: whatever the archive, nothing is written outside the
// folder, and Validate and Extract agree on what is refused.
func FuzzExtract(f *testing.F) {
	f.Add(archive(f, entry{name: "a.py", body: "print(1)"}, entry{name: "l", link: "a.py", flag: tar.TypeSymlink}))
	f.Add(archive(f, entry{name: "out", link: "../x", flag: tar.TypeSymlink}, entry{name: "out/p", body: "x"}))
	f.Add(archive(f, entry{name: "d", flag: tar.TypeDir}, entry{name: "d/f", body: "x"}))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "code")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		verr := Validate(bytes.NewReader(b))
		eerr := Extract(bytes.NewReader(b), dst)
		if verr == nil && IsInvalid(eerr) || verr != nil && eerr == nil {
			t.Fatalf("Validate: %v, Extract: %v", verr, eerr)
		}
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("written outside the folder: %v", ents)
		}
	})
}
