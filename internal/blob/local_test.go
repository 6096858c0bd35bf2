package blob_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/blob/blobtest"
)

func TestLocalConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) forge.BlobStore {
		s, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A blob whose bytes changed on disk is reported as corruption, never data.
func TestCorruptionIsAnError(t *testing.T) {
	s, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobtest.RunCorruption(t, s, func(d forge.Digest) {
		p, _ := s.Path(d)
		if err := os.WriteFile(p, []byte("the model weighTs"), 0o644); err != nil {
			t.Fatal(err)
		}
	}, blob.ErrCorrupt)
}

// PutFile moves an already-hashed file in: same digest and content as Put,
// and the file is gone from where it was.
func TestPutFile(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := blob.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Put(ctx, strings.NewReader("parquet bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, want.Digest); err != nil {
		t.Fatal(err)
	}
	tmp := root + "/upload"
	if err := os.WriteFile(tmp, []byte("parquet bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.PutFile(ctx, tmp, want.Digest)
	if err != nil || got.Digest != want.Digest || got.Size != want.Size {
		t.Fatalf("PutFile: %+v %v, want %+v", got, err, want)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("the file was copied, not moved: %v", err)
	}
	rc, err := s.Open(ctx, want.Digest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "parquet bytes" {
		t.Fatalf("read back %q %v", b, err)
	}
}

// TestRemoveIfOlder: garbage collection's delete removes a blob only when it
// was last stored before the cutoff, and storing the same content again
// (Put or PutFile) makes it new.
func TestRemoveIfOlder(t *testing.T) {
	ctx := context.Background()
	l, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old, err := l.Put(ctx, strings.NewReader("old content"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := l.Path(old.Digest)
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, past, past); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-24 * time.Hour)

	// Stored again: new, so it stays.
	again, err := l.Put(ctx, strings.NewReader("old content"))
	if err != nil || again.Digest != old.Digest || !again.ModTime.After(cutoff) {
		t.Fatalf("put again: %+v, %v", again, err)
	}
	if removed, _, err := l.RemoveIfOlder(old.Digest, cutoff); removed || err != nil {
		t.Fatalf("a blob stored again was removed (%v)", err)
	}

	// The same through PutFile.
	os.Chtimes(p, past, past)
	f := filepath.Join(t.TempDir(), "upload")
	os.WriteFile(f, []byte("old content"), 0o644)
	if info, err := l.PutFile(ctx, f, old.Digest); err != nil || !info.ModTime.After(cutoff) {
		t.Fatalf("PutFile of stored content: %+v, %v", info, err)
	}
	if removed, _, _ := l.RemoveIfOlder(old.Digest, cutoff); removed {
		t.Fatal("a blob stored again through PutFile was removed")
	}

	// Touched (a record came to refer to it): new, so it stays.
	os.Chtimes(p, past, past)
	if err := l.Touch(old.Digest); err != nil {
		t.Fatal(err)
	}
	if removed, _, _ := l.RemoveIfOlder(old.Digest, cutoff); removed {
		t.Fatal("a touched blob was removed")
	}

	// Left alone past the cutoff: removed, and gone.
	os.Chtimes(p, past, past)
	removed, size, err := l.RemoveIfOlder(old.Digest, cutoff)
	if !removed || size != int64(len("old content")) || err != nil {
		t.Fatalf("RemoveIfOlder = %v, %d, %v", removed, size, err)
	}
	if _, err := l.Stat(ctx, old.Digest); !forge.IsKind(err, forge.NotFound) {
		t.Fatalf("stat after removal: %v", err)
	}
	if removed, _, err := l.RemoveIfOlder(old.Digest, cutoff); removed || err != nil {
		t.Fatalf("removing a missing blob: %v, %v", removed, err)
	}
	if err := l.Touch(old.Digest); !forge.IsKind(err, forge.NotFound) {
		t.Fatalf("touching a removed blob: %v, want NotFound", err)
	}
}
