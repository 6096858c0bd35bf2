package blob

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
)

// fileCache keeps local copies of remote blobs for readers that need a
// real file (DuckDB opens Parquet by path, ONNX Runtime a model file),
// bounded in bytes and evicted least recently used first. Copies are
// verified against their digest on the way in, so a file it hands out has
// the right content. A file handed out may be evicted later; a reader that
// has it open keeps reading it (the name goes, the inode stays).
type fileCache struct {
	dir string
	max int64

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *cached; front: most recently used
	entries map[forge.Digest]*list.Element
	loading map[forge.Digest]*fetchCall
}

type cached struct {
	d    forge.Digest
	size int64
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// newFileCache opens a cache folder, keeping what an earlier process left
// there (oldest first out) within max bytes.
func newFileCache(dir string, max int64) (*fileCache, error) {
	c := &fileCache{dir: dir, max: max, lru: list.New(), entries: map[forge.Digest]*list.Element{}, loading: map[forge.Digest]*fetchCall{}}
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	for _, d := range []string{filepath.Join(dir, "sha256"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("blob cache: %w", err)
		}
	}
	type found struct {
		d    forge.Digest
		size int64
		mod  time.Time
	}
	var all []found
	fans, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	for _, fan := range fans {
		files, _ := os.ReadDir(filepath.Join(dir, "sha256", fan.Name()))
		for _, f := range files {
			d := fan.Name() + f.Name()
			info, err := f.Info()
			if !ValidDigest(d) || err != nil {
				continue
			}
			all = append(all, found{forge.Digest(d), info.Size(), info.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.Before(all[j].mod) })
	for _, f := range all {
		c.entries[f.d] = c.lru.PushFront(&cached{f.d, f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evict(nil)
	c.mu.Unlock()
	return c, nil
}

func (c *fileCache) file(d forge.Digest) string {
	return filepath.Join(c.dir, "sha256", string(d[:2]), string(d[2:]))
}

// path returns the local copy of d, fetching it with open when it is not
// cached. Concurrent calls for one digest fetch it once.
func (c *fileCache) path(ctx context.Context, d forge.Digest, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[d]; ok {
			c.lru.MoveToFront(e)
			now := time.Now()
			// The mtime orders the next process's cache; a copy
			// removed behind the cache's back is fetched again.
			if err := os.Chtimes(c.file(d), now, now); errors.Is(err, fs.ErrNotExist) {
				c.removeLocked(e)
				c.mu.Unlock()
				continue
			}
			c.mu.Unlock()
			return c.file(d), nil
		}
		if call, ok := c.loading[d]; ok {
			c.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if call.err != nil {
				return "", call.err
			}
			continue
		}
		call := &fetchCall{done: make(chan struct{})}
		c.loading[d] = call
		c.mu.Unlock()
		call.err = c.fetch(ctx, d, open)
		c.mu.Lock()
		delete(c.loading, d)
		c.mu.Unlock()
		close(call.done)
		if call.err != nil {
			return "", call.err
		}
	}
}

func (c *fileCache) fetch(ctx context.Context, d forge.Digest, open func(context.Context) (io.ReadCloser, error)) error {
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "fetch-*")
	if err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	v := &verifier{f: rc, h: sha256.New(), want: d}
	n, err := io.Copy(tmp, ctxReader{ctx, v})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch blob %s: %w", d, err)
	}
	return c.add(tmp.Name(), d, n)
}

// add moves a file holding d's verified content into the cache.
func (c *fileCache) add(path string, d forge.Digest, size int64) error {
	dst := c.file(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[d]; ok {
		c.lru.MoveToFront(e)
		return nil
	}
	e := c.lru.PushFront(&cached{d, size})
	c.entries[d] = e
	c.size += size
	c.evict(e)
	return nil
}

// evict removes the least recently used copies until the cache fits, never
// keep (the copy just asked for, even when it alone is larger). c.mu held.
func (c *fileCache) evict(keep *list.Element) {
	for c.size > c.max {
		e := c.lru.Back()
		if e == nil || e == keep {
			return
		}
		c.removeLocked(e)
	}
}

func (c *fileCache) removeLocked(e *list.Element) {
	it := e.Value.(*cached)
	c.lru.Remove(e)
	delete(c.entries, it.d)
	c.size -= it.size
	os.Remove(c.file(it.d))
}

// drop forgets d's copy (the blob was removed from the store).
func (c *fileCache) drop(d forge.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[d]; ok {
		c.removeLocked(e)
	}
}

// usage is the cache's size in bytes and its number of copies.
func (c *fileCache) usage() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, c.lru.Len()
}
