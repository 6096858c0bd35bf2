package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/forge-mlops/forge"
)

// A blob too large to hold in memory is uploaded before its digest is
// known, so it cannot go up under its digest's key, and S3 has no rename:
// copying it there afterwards rewrites every byte on stores such as
// versitygw's POSIX backend (a 2 GB put took 4 times as long). Instead it
// goes up as PREFIX/data/ID, and the digest's key gets a pointer: an empty
// object whose metadata name that object and the blob's size. Reads follow
// the pointer and verify the content against the digest as for any blob;
// Stat, List, Touch and garbage collection see the pointer's size and
// time; removing the blob removes both.
//
// While the data object is uploaded and until the pointer is written, a
// marker PREFIX/tmp/ID says so, and once the digest is known it names it:
// a server killed in between leaves a marker, and its next start removes
// the data object unless the digest's pointer names it.
const (
	metaObject = "Forge-Object" // a pointer's data object, under the prefix
	metaSize   = "Forge-Size"   // a pointer's blob size
	metaDigest = "Forge-Digest" // a marker's digest, once known
)

// emptyDigest is the sha256 of no bytes: the one blob that is an empty
// object and not a pointer.
const emptyDigest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// pointer is the object a digest's key points at.
type pointer struct {
	key  string // the data object's key, prefix included
	size int64
}

// pointerOf reads a pointer from an object's metadata; ok is false for an
// object that holds its blob itself.
func (s *S3) pointerOf(st minio.ObjectInfo) (pointer, bool) {
	obj := st.UserMetadata[metaObject]
	if obj == "" || st.Size != 0 {
		return pointer{}, false
	}
	size, err := strconv.ParseInt(st.UserMetadata[metaSize], 10, 64)
	if err != nil || !strings.HasPrefix(obj, "data/") || strings.Contains(obj, "..") {
		return pointer{}, false
	}
	return pointer{key: s.prefix + obj, size: size}, true
}

// putPointer writes (or rewrites, which makes the blob new) key's pointer.
func (s *S3) putPointer(ctx context.Context, key string, p pointer) error {
	_, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(nil), 0, minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{metaObject: strings.TrimPrefix(p.key, s.prefix), metaSize: strconv.FormatInt(p.size, 10)}})
	return err
}

// Put implements forge.BlobStore.
func (s *S3) Put(ctx context.Context, r io.Reader) (forge.BlobInfo, error) {
	h := sha256.New()
	// The first smallPut+1 bytes decide: one request from memory, or a
	// multipart upload. The buffer is pooled: growing one per Put would
	// leave twice its size as garbage each time.
	bp := headPool.Get().(*[]byte)
	defer headPool.Put(bp)
	read, err := io.ReadFull(ctxReader{ctx, r}, *bp)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return forge.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	head := (*bp)[:read]
	h.Write(head)
	n := int64(read)
	if n > smallPut {
		return s.putLarge(ctx, head, r, h)
	}
	d := forge.Digest(hex.EncodeToString(h.Sum(nil)))
	key, _ := s.key(d)
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The request is signed with the digest just computed as its payload's
	// sha256, so the server checks the bytes against it and the client
	// does not hash them a second time.
	core := minio.Core{Client: s.c}
	_, err = core.PutObject(ctx, s.bucket, key, bytes.NewReader(head), n, "", string(d), minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return forge.BlobInfo{}, s.fail(err, d, "put")
	}
	s.retryLeftover()
	return forge.BlobInfo{Digest: d, Size: n, ModTime: time.Now()}, nil
}

// putLarge streams a blob of unknown size up as a multipart upload to a
// data object while hashing it, then points the digest's key at it.
func (s *S3) putLarge(ctx context.Context, head []byte, r io.Reader, h hash.Hash) (forge.BlobInfo, error) {
	id := randomHex()
	marker, data := s.prefix+"tmp/"+id, s.prefix+"data/"+id
	if err := s.putMarker(ctx, marker, ""); err != nil {
		return forge.BlobInfo{}, s.fail(err, "", "upload")
	}
	// h has hashed head already; the pipe hashes the rest on its way up,
	// in a goroutine of its own.
	hp := newHashPipe(ctxReader{ctx, r}, h)
	defer hp.close()
	up, err := s.c.PutObject(ctx, s.bucket, data, io.MultiReader(bytes.NewReader(head), hp), -1, minio.PutObjectOptions{
		ContentType: "application/octet-stream", PartSize: s.part,
		// Parts go up 4 at a time: at most 4 parts in memory.
		ConcurrentStreamParts: true, NumThreads: 4,
		// The parts are not signed with their sha256 (minio-go does
		// not sign them over https either): the digest is checked on
		// every read, and hashing each part twice more (the client
		// to sign, the server to check) halved the throughput.
		DisableContentSha256: true})
	if err != nil {
		// Whatever is left of the upload goes (with a fresh context:
		// ctx may be why it failed).
		s.discard(id, true)
		return forge.BlobInfo{}, s.fail(err, "", "upload")
	}
	d := forge.Digest(hex.EncodeToString(hp.Sum()))
	key, _ := s.key(d)
	if err := s.putMarker(ctx, marker, d); err != nil {
		s.discard(id, true)
		return forge.BlobInfo{}, s.fail(err, d, "store")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// fin orders the check of what the key holds and the write of the
	// pointer against other Puts of the same content (one data object
	// stays, the other goes) and against Delete.
	fin := s.finLock(d)
	fin.Lock()
	defer fin.Unlock()
	p := pointer{key: data, size: up.Size}
	old, err := s.livePointer(ctx, key)
	if err != nil {
		s.discard(id, true)
		return forge.BlobInfo{}, s.fail(err, d, "store")
	}
	dup := old.key != ""
	if dup {
		// Stored already: keep the object readers may be reading, make
		// the blob new (a sweep's grace period starts again), and drop
		// the copy just uploaded.
		p = old
	}
	if err := s.putPointer(ctx, key, p); err != nil {
		s.discard(id, true)
		return forge.BlobInfo{}, s.fail(err, d, "store")
	}
	s.discard(id, dup)
	s.retryLeftover()
	return forge.BlobInfo{Digest: d, Size: up.Size, ModTime: time.Now()}, nil
}

// livePointer is the pointer key holds when its data object is there; a
// zero pointer when key is missing, holds its blob itself (to be replaced
// by the new pointer), or points at a missing object.
func (s *S3) livePointer(ctx context.Context, key string) (pointer, error) {
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return pointer{}, nil
	}
	if err != nil {
		return pointer{}, err
	}
	p, ok := s.pointerOf(st)
	if !ok {
		return pointer{}, nil
	}
	if _, err := s.c.StatObject(ctx, s.bucket, p.key, minio.StatObjectOptions{}); isNotFound(err) {
		return pointer{}, nil
	} else if err != nil {
		return pointer{}, err
	}
	return p, nil
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return err != nil && (r.Code == "NoSuchKey" || r.StatusCode == 404 && r.Code != "NoSuchBucket")
}

// putMarker writes the marker of an upload under way, with its digest
// once known.
func (s *S3) putMarker(ctx context.Context, marker string, d forge.Digest) error {
	var meta map[string]string
	if d != "" {
		meta = map[string]string{metaDigest: string(d)}
	}
	_, err := s.c.PutObject(ctx, s.bucket, marker, bytes.NewReader(nil), 0, minio.PutObjectOptions{UserMetadata: meta})
	return err
}

func randomHex() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// discard removes upload id's marker, and with data its data object and
// unfinished multipart upload; what cannot be removed now (the store is
// down) is removed after the next Put that succeeds, or at the next start.
func (s *S3) discard(id string, data bool) {
	if !s.removeUpload(id, data) {
		s.lmu.Lock()
		if s.leftover == nil {
			s.leftover = map[string]bool{}
		}
		s.leftover[id] = s.leftover[id] || data
		s.lmu.Unlock()
	}
}

// removeUpload removes what discard says, the marker last (while the
// data object is there, the marker is what finds it after a crash), and
// says whether all of it is gone.
func (s *S3) removeUpload(id string, data bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if data {
		key := s.prefix + "data/" + id
		if err := s.c.RemoveIncompleteUpload(ctx, s.bucket, key); err != nil {
			return false
		}
		if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return false
		}
	}
	return s.c.RemoveObject(ctx, s.bucket, s.prefix+"tmp/"+id, minio.RemoveObjectOptions{}) == nil
}

// retryLeftover removes, in the background, what failed Puts could not
// (called once a Put succeeds: the store is back).
func (s *S3) retryLeftover() {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if len(s.leftover) == 0 || s.retrying {
		return
	}
	s.retrying = true
	left := make(map[string]bool, len(s.leftover))
	for k, v := range s.leftover {
		left[k] = v
	}
	go func() {
		for id, data := range left {
			if s.removeUpload(id, data) {
				s.lmu.Lock()
				delete(s.leftover, id)
				s.lmu.Unlock()
			}
		}
		s.lmu.Lock()
		s.retrying = false
		s.lmu.Unlock()
	}()
}

// removeTemp removes what a killed process left: unfinished multipart
// uploads, and the data objects of uploads whose pointer was not written
// (one server writes a prefix, so at its start none is in use). Best
// effort: what stays is tried again at the next start.
func (s *S3) removeTemp(ctx context.Context) {
	for _, dir := range []string{"tmp/", "data/"} {
		for u := range s.c.ListIncompleteUploads(ctx, s.bucket, s.prefix+dir, true) {
			if u.Err != nil {
				break
			}
			s.c.RemoveIncompleteUpload(ctx, s.bucket, u.Key)
		}
	}
	tmp := s.prefix + "tmp/"
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: tmp, Recursive: true}) {
		if o.Err != nil {
			break
		}
		id := strings.TrimPrefix(o.Key, tmp)
		if o.Size != 0 || strings.Contains(id, "/") {
			// An earlier version's temporary upload.
			s.c.RemoveObject(ctx, s.bucket, o.Key, minio.RemoveObjectOptions{})
			continue
		}
		st, err := s.c.StatObject(ctx, s.bucket, o.Key, minio.StatObjectOptions{})
		if err != nil {
			continue
		}
		data := s.prefix + "data/" + id
		referenced := false
		if d := st.UserMetadata[metaDigest]; ValidDigest(d) {
			key, _ := s.key(forge.Digest(d))
			if pst, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
				p, ok := s.pointerOf(pst)
				referenced = ok && p.key == data
			} else if !isNotFound(err) {
				continue // cannot tell: keep both for the next start
			}
		}
		s.removeUpload(id, !referenced)
	}
}

// hashPipe passes reads through and hashes their bytes in a goroutine of
// its own, a few chunks behind, so that hashing overlaps reading the
// source and sending the parts instead of adding to them.
type hashPipe struct {
	r      io.Reader
	h      hash.Hash
	cur    []byte
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	closed bool
}

const hashDepth = 8

func newHashPipe(r io.Reader, h hash.Hash) *hashPipe {
	p := &hashPipe{r: r, h: h, full: make(chan []byte, hashDepth), free: make(chan []byte, hashDepth), done: make(chan struct{})}
	for range hashDepth {
		p.free <- chunkPool.Get().([]byte)[:0]
	}
	go func() {
		defer close(p.done)
		for b := range p.full {
			p.h.Write(b)
			p.free <- b[:0]
		}
	}()
	return p
}

// Read is called from one goroutine at a time.
func (p *hashPipe) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	for rest := b[:n]; len(rest) > 0; {
		if p.cur == nil {
			p.cur = <-p.free
		}
		k := copy(p.cur[len(p.cur):cap(p.cur)], rest)
		p.cur, rest = p.cur[:len(p.cur)+k], rest[k:]
		if len(p.cur) == cap(p.cur) {
			p.full <- p.cur
			p.cur = nil
		}
	}
	return n, err
}

// Sum waits for the hashing of everything read to finish and returns the
// hash.
func (p *hashPipe) Sum() []byte {
	p.close()
	return p.h.Sum(nil)
}

// close ends the goroutine and returns the chunks to the pool.
func (p *hashPipe) close() {
	if p.closed {
		return
	}
	p.closed = true
	if len(p.cur) > 0 {
		p.full <- p.cur
	} else if p.cur != nil {
		p.free <- p.cur
	}
	p.cur = nil
	close(p.full)
	<-p.done
	for range hashDepth {
		chunkPool.Put((<-p.free)[:prefetchChunk])
	}
}
