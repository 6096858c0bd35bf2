package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data dir behind a folder others cannot pass keeps its jobs in a folder
// of the server's own in the temp dir; one someone else made (a link) is
// refused; a passable data dir keeps them inside.
func TestJobsRoot(t *testing.T) {
	private := t.TempDir() // Go makes it 0700
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(private, "data")
	root, moved, err := jobsRoot(data, "forge-job")
	if err != nil || !moved || !strings.HasPrefix(root, os.TempDir()) {
		t.Fatalf("behind a 0700 folder: %s moved=%v %v", root, moved, err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if fi, err := os.Lstat(root); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o711 {
		t.Fatalf("jobs root %s: %v %v", root, fi.Mode(), err)
	}
	again, _, err := jobsRoot(data, "forge-job")
	if err != nil || again != root {
		t.Fatalf("the same data dir gets %s (%v), want %s again", again, err, root)
	}
	if root, moved, err := jobsRoot(data, ""); err != nil || moved || root != data {
		t.Errorf("with no run_as: %s moved=%v %v, want the data dir", root, moved, err)
	}

	other := filepath.Join(private, "other")
	r2, _, err := jobsRoot(other, "forge-job")
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(r2)
	if err := os.Symlink(private, r2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(r2) })
	if _, _, err := jobsRoot(other, "forge-job"); err == nil || !strings.Contains(err.Error(), "not the server's own folder") {
		t.Errorf("a link planted at %s: %v, want a refusal", r2, err)
	}

	open, err := os.MkdirTemp("", "forge-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	os.Chmod(open, 0o755)
	if root, moved, err := jobsRoot(filepath.Join(open, "data"), "forge-job"); err != nil || moved || root != filepath.Join(open, "data") {
		t.Errorf("passable parents: %s moved=%v %v, want the data dir", root, moved, err)
	}
}
