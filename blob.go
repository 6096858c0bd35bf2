package forge

import (
	"context"
	"io"
	"time"
)

// Digest is the lowercase hex sha256 of a blob's content.
type Digest string

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Digest  Digest
	Size    int64
	ModTime time.Time
}

// BlobStore is content-addressed storage for datasets, artifacts, code bundles
// and models. Implementations verify content on the way in (the digest is
// computed, not trusted) and on the way out (a reader returns an error, never
// data, when stored bytes no longer match their digest).
type BlobStore interface {
	// Put stores everything read from r and returns its digest. Storing
	// content that is already there is cheap and returns the same digest.
	Put(ctx context.Context, r io.Reader) (BlobInfo, error)
	// Open returns a reader over the blob. Its Read returns an error of kind
	// Internal mentioning corruption if the bytes do not hash to d.
	Open(ctx context.Context, d Digest) (io.ReadCloser, error)
	// Stat returns the blob's size, or a NotFound error.
	Stat(ctx context.Context, d Digest) (BlobInfo, error)
	// Delete removes the blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, d Digest) error
	// List returns the blobs whose digest starts with prefix, in digest order.
	List(ctx context.Context, prefix string) ([]BlobInfo, error)
}

// BlobRangeReader is a BlobStore that reads part of a blob, for HTTP Range
// requests (a resumed download, a viewer that seeks). The bytes of a part
// cannot be checked against the digest, which covers the whole blob: a
// reader that needs verified bytes reads the whole blob with Open.
type BlobRangeReader interface {
	// OpenRange returns a reader over n bytes of the blob from offset off
	// (off+n within its size).
	OpenRange(ctx context.Context, d Digest, off, n int64) (io.ReadCloser, error)
}
