package bundle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// TestLeavesOutDataDirs: a server started beside the code (the default
// ./forge-data) must not ship its database and blobs with every job. Data
// folders are made by the real stores: SQLite in one, blobs only (as with
// PostgreSQL) in another; both are left out and reported.
func TestLeavesOutDataDirs(t *testing.T) {
	src := t.TempDir()
	write(t, src, map[string]string{"train.py": "print('hi')\n", "lib/util.py": "x = 1\n", "lib/blobs/notes.txt": "not a blob store\n"})
	os.MkdirAll(filepath.Join(src, "forge-data"), 0o755)
	db, err := sqlstore.Open(context.Background(), sqlstore.Options{DataDir: filepath.Join(src, "forge-data")})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	bs, err := blob.NewLocal(filepath.Join(src, "forge-data", "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	bs.Put(context.Background(), bytes.NewReader([]byte("a stored blob")))
	if _, err := blob.NewLocal(filepath.Join(src, "runs", "old-server", "blobs")); err != nil {
		t.Fatal(err)
	}
	write(t, src, map[string]string{"runs/keep.txt": "kept\n"})

	var buf bytes.Buffer
	b, err := Build(src, &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"forge-data", "runs/old-server"}; !slices.Equal(b.DataDirs, want) {
		t.Errorf("left out %v, want %v", b.DataDirs, want)
	}
	dst := t.TempDir()
	if err := Extract(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	if got, want := list(t, dst), []string{"lib/blobs/notes.txt", "lib/util.py", "runs/keep.txt", "train.py"}; !slices.Equal(got, want) {
		t.Errorf("bundle holds %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(src, "forge-data", "forge.db")); err != nil {
		t.Fatalf("the fixture has no forge.db: %v", err)
	}
}
