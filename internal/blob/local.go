// Package blob is the local-folder implementation of forge.BlobStore:
// content-addressed files under root/sha256/ab/cdef..., written to a temp
// file, fsynced and renamed into place, and verified against their digest
// on every read.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
)

var (
	_ forge.BlobStore       = (*Local)(nil)
	_ forge.BlobRangeReader = (*Local)(nil)
)

// Local stores blobs in a folder.
type Local struct {
	root string
	// mu orders the moment a Put makes a blob current (renames it into
	// place, or touches the one already there) against RemoveIfOlder, so
	// garbage collection never removes a blob a Put has just handed out.
	mu sync.RWMutex
}

// NewLocal opens (creating if needed) a blob folder.
func NewLocal(root string) (*Local, error) {
	for _, d := range []string{filepath.Join(root, "sha256"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create blob folder: %w", err)
		}
	}
	return &Local{root: root}, nil
}

// TempDir is where Put writes a blob before it is complete: what a
// process killed in the middle of an upload leaves behind.
func (l *Local) TempDir() string { return filepath.Join(l.root, "tmp") }

// ValidDigest reports whether s is a lowercase hex sha256.
func ValidDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (l *Local) path(d forge.Digest) (string, error) {
	if !ValidDigest(string(d)) {
		return "", forge.Errorf(forge.Invalid, "invalid blob digest %q", d)
	}
	return filepath.Join(l.root, "sha256", string(d[:2]), string(d[2:])), nil
}

// Put implements forge.BlobStore.
func (l *Local) Put(ctx context.Context, r io.Reader) (forge.BlobInfo, error) {
	tmp, err := os.CreateTemp(filepath.Join(l.root, "tmp"), "put-*")
	if err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	d := forge.Digest(hex.EncodeToString(h.Sum(nil)))
	dst, _ := l.path(d)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if info, ok := touch(dst, d, n); ok {
		return info, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	return forge.BlobInfo{Digest: d, Size: n, ModTime: st.ModTime()}, nil
}

// PutFile moves a file into the store under d, which the caller computed
// while writing the file (it is not checked again): for uploads that were
// already hashed on the way to disk, this saves a copy and a second hash.
// The file must not be written to afterwards. Across file systems it falls
// back to Put, which copies and hashes.
func (l *Local) PutFile(ctx context.Context, path string, d forge.Digest) (forge.BlobInfo, error) {
	dst, err := l.path(d)
	if err != nil {
		return forge.BlobInfo{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	l.mu.RLock()
	if info, ok := touch(dst, d, st.Size()); ok {
		l.mu.RUnlock()
		return info, nil
	}
	l.mu.RUnlock()
	if err := f.Sync(); err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	l.mu.RLock()
	err = os.Rename(path, dst)
	l.mu.RUnlock()
	if err != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
		}
		return l.Put(ctx, f)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	return forge.BlobInfo{Digest: d, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// touch finds the blob already stored at dst and sets its modification time
// to now: storing content again makes it as new as a first store, for
// garbage collection's grace period.
func touch(dst string, d forge.Digest, size int64) (forge.BlobInfo, bool) {
	st, err := os.Stat(dst)
	if err != nil || st.Size() != size {
		return forge.BlobInfo{}, false
	}
	now := time.Now()
	if err := os.Chtimes(dst, now, now); err != nil {
		return forge.BlobInfo{}, false // rewritten in full instead
	}
	return forge.BlobInfo{Digest: d, Size: size, ModTime: now}, true
}

// Touch makes a stored blob new, as storing it again would, for a record
// that comes to refer to a blob without storing it (a model version made
// from a run's artifacts): a sweep then keeps it for its grace period. A
// blob a sweep has already removed is NotFound.
func (l *Local) Touch(d forge.Digest) error {
	p, err := l.path(d)
	if err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	now := time.Now()
	err = os.Chtimes(p, now, now)
	if errors.Is(err, fs.ErrNotExist) {
		return forge.Errorf(forge.NotFound, "blob %s not found", d)
	}
	if err != nil {
		return fmt.Errorf("touch blob %s: %w", d, err)
	}
	return nil
}

// RemoveIfOlder removes the blob if it was last stored before t, and says
// whether it did and how large it was. It is garbage collection's delete:
// a Put of the same content at the same moment either comes first (and
// makes the blob new, so it stays) or after (and stores it again).
func (l *Local) RemoveIfOlder(d forge.Digest, t time.Time) (bool, int64, error) {
	p, err := l.path(d)
	if err != nil {
		return false, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("remove blob %s: %w", d, err)
	}
	if !st.ModTime().Before(t) {
		return false, 0, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, 0, fmt.Errorf("remove blob %s: %w", d, err)
	}
	return true, st.Size(), nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open implements forge.BlobStore.
func (l *Local) Open(ctx context.Context, d forge.Digest) (io.ReadCloser, error) {
	p, err := l.path(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, forge.Errorf(forge.NotFound, "blob %s not found", d)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return &verifier{f: f, h: sha256.New(), want: d}, nil
}

// verifier hashes what it reads and fails at EOF when the content is not
// what its digest says: a corrupted blob is an error, never data.
type verifier struct {
	f    io.ReadCloser
	h    hash.Hash
	want forge.Digest
	err  error
}

// ErrCorrupt is wrapped by the error a corrupted blob gives on read.
var ErrCorrupt = errors.New("blob is corrupted")

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != string(v.want) {
			v.err = &forge.Error{Kind: forge.Internal, Msg: fmt.Sprintf("blob %s is corrupted (content hashes to %s)", v.want, got), Err: ErrCorrupt}
			return n, v.err
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

// Stat implements forge.BlobStore.
func (l *Local) Stat(ctx context.Context, d forge.Digest) (forge.BlobInfo, error) {
	p, err := l.path(d)
	if err != nil {
		return forge.BlobInfo{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return forge.BlobInfo{}, forge.Errorf(forge.NotFound, "blob %s not found", d)
	}
	if err != nil {
		return forge.BlobInfo{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return forge.BlobInfo{Digest: d, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements forge.BlobStore.
func (l *Local) Delete(ctx context.Context, d forge.Digest) error {
	p, err := l.path(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// List implements forge.BlobStore.
func (l *Local) List(ctx context.Context, prefix string) ([]forge.BlobInfo, error) {
	var out []forge.BlobInfo
	base := filepath.Join(l.root, "sha256")
	fans, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	for _, fan := range fans {
		name := fan.Name()
		if !fan.IsDir() || !(strings.HasPrefix(name, prefix) || strings.HasPrefix(prefix, name)) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(base, name))
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, f := range files {
			d := name + f.Name()
			if !ValidDigest(d) || !strings.HasPrefix(d, prefix) {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue // removed while listing
			}
			out = append(out, forge.BlobInfo{Digest: forge.Digest(d), Size: info.Size(), ModTime: info.ModTime()})
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Path returns the file holding a blob, for readers that need a real file
// (DuckDB reads Parquet by path). Callers must not modify it.
func (l *Local) Path(d forge.Digest) (string, error) { return l.path(d) }

// OpenRange implements forge.BlobRangeReader: n bytes from off, as they
// are on disk (a part cannot be checked against the digest).
func (l *Local) OpenRange(ctx context.Context, d forge.Digest, off, n int64) (io.ReadCloser, error) {
	p, err := l.path(d)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, forge.Errorf(forge.Invalid, "invalid range of blob %s: %d bytes from %d", d, n, off)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, forge.Errorf(forge.NotFound, "blob %s not found", d)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, n), f}, nil
}
