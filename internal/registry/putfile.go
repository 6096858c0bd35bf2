package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/forge-mlops/forge"
)

// filePutter is a blob store that adopts a file whose digest is known
// (blob.Local moves it into place; blob.S3 uploads it straight to its
// digest's key, with no copy inside the bucket).
type filePutter interface {
	PutFile(ctx context.Context, path string, d forge.Digest) (forge.BlobInfo, error)
}

func (r *Registry) putFile(ctx context.Context, c *candidate) error {
	f, err := os.Open(c.local)
	if err != nil {
		return fmt.Errorf("open upload %s: %w", c.Path, err)
	}
	defer f.Close()
	if fp, ok := r.blobs.(filePutter); ok {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("read upload %s: %w", c.Path, err)
		}
		f.Close()
		// It becomes the blob's file: as private as one Put writes.
		if err := os.Chmod(c.local, 0o600); err != nil {
			return fmt.Errorf("store %s: %w", c.Path, err)
		}
		info, err := fp.PutFile(ctx, c.local, forge.Digest(hex.EncodeToString(h.Sum(nil))))
		if err != nil {
			return fmt.Errorf("store %s: %w", c.Path, err)
		}
		c.Digest, c.Size = info.Digest, info.Size
		return nil
	}
	info, err := r.blobs.Put(ctx, f)
	if err != nil {
		return fmt.Errorf("store %s: %w", c.Path, err)
	}
	c.Digest, c.Size = info.Digest, info.Size
	return nil
}
