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
