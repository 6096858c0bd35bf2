package blob_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

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
	ctx := context.Background()
	s, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Put(ctx, strings.NewReader("the model weights"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(info.Digest)
	if err := os.WriteFile(p, []byte("the model weighTs"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, blob.ErrCorrupt) || !strings.Contains(err.Error(), "corrupted") {
		t.Fatalf("read of a corrupted blob: %v", err)
	}
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
