package blob

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/forge-mlops/forge"
)

var (
	_ forge.BlobStore       = (*S3)(nil)
	_ forge.BlobRangeReader = (*S3)(nil)
)

// S3Options name an S3-compatible bucket and how to reach it.
type S3Options struct {
	Bucket string
	// Prefix is prepended to every key ("team/forge" stores blobs under
	// team/forge/sha256/ab/cdef...); empty: the bucket's root.
	Prefix string
	// Endpoint is the server's URL (http://127.0.0.1:7070); empty: AWS S3.
	Endpoint  string
	Region    string
	PathStyle bool
	// Static credentials; all empty: the usual chain (AWS_* variables,
	// ~/.aws/credentials, the instance role).
	AccessKeyID, SecretAccessKey, SessionToken string
	// CacheDir holds local copies for readers that need a file (Path);
	// CacheBytes bounds it (default 10 GiB).
	CacheDir   string
	CacheBytes int64
	// ReadOnly is a reader beside the server that writes the bucket (a
	// forge serve replica): it leaves PREFIX/tmp/, where the server's
	// uploads are under way, alone at start.
	ReadOnly bool
	// PartSize is the multipart upload's part (default 16 MiB): an upload
	// holds one part in memory, never the whole blob.
	PartSize uint64
}

// ParseS3URL splits s3://BUCKET/PREFIX.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("%q: want s3://BUCKET/PREFIX", s)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// S3 stores blobs in an S3-compatible bucket, under the same layout as
// Local (PREFIX/sha256/ab/cdef...). Small blobs go up in one request under
// their digest; larger ones stream as a multipart upload to a data object
// while they are hashed, and their digest's key points at it (s3put.go).
// Reads are verified against the digest, and Path keeps verified local
// copies in a bounded cache.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string // "" or "team/forge/"
	part   uint64
	cache  *fileCache
	// mu orders Put and Touch (which make a blob new) against
	// RemoveIfOlder in this process, as in Local. Only the server
	// writes blobs, so one process's lock is enough.
	mu sync.RWMutex
	// fin orders, for one digest, the check of what its key holds, the
	// writing of its pointer or content, and its removal (striped by
	// digest: see finLock).
	fin [64]sync.Mutex

	// leftover are the uploads (by id; true: their data object too)
	// whose objects could not be removed when a Put failed (the store
	// was down): removed after the next Put that succeeds, or at the
	// next start.
	lmu      sync.Mutex
	leftover map[string]bool
	retrying bool
}

// smallPut is the largest blob uploaded in one request, from memory.
const smallPut = 8 << 20

var headPool = sync.Pool{New: func() any { b := make([]byte, smallPut+1); return &b }}

// NewS3 connects to the bucket and checks that it is there and the
// credentials may use it; errors name the setting at fault.
func NewS3(ctx context.Context, o S3Options) (*S3, error) {
	host, secure := "s3.amazonaws.com", true
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("s3.endpoint %q: want http(s)://HOST[:PORT]", o.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if o.AccessKeyID != "" || o.SecretAccessKey != "" {
		creds = credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{}})
	}
	lookup := minio.BucketLookupAuto
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: o.Region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("s3.endpoint %q: %w", o.Endpoint, err)
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 10 << 30
	}
	if o.PartSize == 0 {
		o.PartSize = 16 << 20
	}
	if o.CacheDir == "" {
		return nil, errors.New("s3 blob store: no cache folder")
	}
	cache, err := newFileCache(o.CacheDir, o.CacheBytes)
	if err != nil {
		return nil, err
	}
	s := &S3{c: c, bucket: o.Bucket, part: o.PartSize, cache: cache}
	if p := strings.Trim(o.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, startError(o, c, err)
	}
	if !ok {
		return nil, fmt.Errorf("blob s3://%s: no such bucket at %s (create it, or fix the blob setting)", o.Bucket, c.EndpointURL())
	}
	if !o.ReadOnly {
		s.removeTemp(ctx)
	}
	return s, nil
}

// startError says which setting a failed first request points at.
func startError(o S3Options, c *minio.Client, err error) error {
	r := minio.ToErrorResponse(err)
	switch {
	case r.Code == "" && isNetErr(err):
		return fmt.Errorf("blob s3://%s: cannot reach s3.endpoint %s (FORGE_S3_ENDPOINT, --s3-endpoint): %v", o.Bucket, c.EndpointURL(), err)
	case r.Code == "AccessDenied" || r.Code == "InvalidAccessKeyId" || r.Code == "SignatureDoesNotMatch" || r.StatusCode == 403:
		return fmt.Errorf("blob s3://%s at %s: the credentials are refused (%s): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or the instance role", o.Bucket, c.EndpointURL(), describe(err))
	case r.Code == "AuthorizationHeaderMalformed" || r.Code == "InvalidRegion":
		return fmt.Errorf("blob s3://%s at %s: %s: check s3.region (FORGE_S3_REGION, --s3-region)", o.Bucket, c.EndpointURL(), describe(err))
	}
	return fmt.Errorf("blob s3://%s at %s: %s (check s3.endpoint, s3.region and the AWS_* credentials)", o.Bucket, c.EndpointURL(), describe(err))
}

// TempDir is the local folder of half-fetched cache copies (emptied at
// start).
func (s *S3) TempDir() string { return filepath.Join(s.cache.dir, "tmp") }

// describe is an S3 error in one line: the server's code and message.
func describe(err error) string {
	if r := minio.ToErrorResponse(err); r.Code != "" {
		return fmt.Sprintf("%s: %s", r.Code, r.Message)
	}
	return err.Error()
}

func (s *S3) key(d forge.Digest) (string, error) {
	if !ValidDigest(string(d)) {
		return "", forge.Errorf(forge.Invalid, "invalid blob digest %q", d)
	}
	return s.prefix + "sha256/" + string(d[:2]) + "/" + string(d[2:]), nil
}

// fail classifies an S3 error: a missing object is NotFound, a server
// that cannot be reached or answers 5xx is Unavailable (retry later).
func (s *S3) fail(err error, d forge.Digest, what string) error {
	if err == nil {
		return nil
	}
	r := minio.ToErrorResponse(err)
	switch {
	case r.Code == "NoSuchBucket":
		return forge.WrapError(forge.Unavailable, err, "blob store unavailable: bucket %s is gone (%s %s)", s.bucket, what, d)
	case r.Code == "NoSuchKey" || r.StatusCode == 404:
		return forge.Errorf(forge.NotFound, "blob %s not found", d)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case r.StatusCode >= 500 || r.StatusCode == 0 && isNetErr(err):
		return forge.WrapError(forge.Unavailable, err, "blob store unavailable (%s %s); retry later", what, d)
	}
	return fmt.Errorf("%s blob %s: %s", what, d, describe(err))
}

func isNetErr(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF)
}

// PutFile stores a file already hashed to d (not checked again) with one
// upload of known size, and keeps the file as the blob's local copy: a
// dataset just uploaded is queried next.
func (s *S3) PutFile(ctx context.Context, path string, d forge.Digest) (forge.BlobInfo, error) {
	key, err := s.key(d)
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	fin := s.finLock(d)
	fin.Lock()
	defer fin.Unlock()
	// A large Put of the same content may have stored it as a pointer:
	// make that new rather than replace it (its data object would stay
	// behind, named by nothing).
	p, err := s.livePointer(ctx, key)
	if err == nil && p.key != "" {
		err = s.putPointer(ctx, key, p)
	} else if err == nil {
		// Unsigned, as a large Put's parts: d is checked on every read.
		_, err = s.c.PutObject(ctx, s.bucket, key, f, st.Size(), minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.part, DisableContentSha256: true})
	}
	if err != nil {
		return forge.BlobInfo{}, s.fail(err, d, "put")
	}
	f.Close()
	if err := s.cache.add(path, d, st.Size()); err != nil {
		os.Remove(path) // across file systems: the cache fetches it when asked
	}
	return forge.BlobInfo{Digest: d, Size: st.Size(), ModTime: time.Now()}, nil
}

// finLock is the lock of d's stripe of fin.
func (s *S3) finLock(d forge.Digest) *sync.Mutex {
	b, _ := strconv.ParseUint(string(d[:2]), 16, 8)
	return &s.fin[b%uint64(len(s.fin))]
}

// Open implements forge.BlobStore.
func (s *S3) Open(ctx context.Context, d forge.Digest) (io.ReadCloser, error) {
	key, err := s.key(d)
	if err != nil {
		return nil, err
	}
	obj, st, err := s.get(ctx, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail(err, d, "open")
	}
	if p, ok := s.pointerOf(st); ok {
		obj.Close()
		if obj, st, err = s.get(ctx, p.key, minio.GetObjectOptions{}); err != nil {
			return nil, s.fail(err, d, "open")
		}
	}
	var src io.ReadCloser = errReader{obj, s, d}
	if st.Size > 2*prefetchChunk {
		src = newPrefetch(src)
	}
	return &verifier{f: src, h: sha256.New(), want: d}, nil
}

// OpenRange implements forge.BlobRangeReader with one ranged GET.
func (s *S3) OpenRange(ctx context.Context, d forge.Digest, off, n int64) (io.ReadCloser, error) {
	key, err := s.key(d)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, forge.Errorf(forge.Invalid, "invalid range of blob %s: %d bytes from %d", d, n, off)
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	var o minio.GetObjectOptions
	if err := o.SetRange(off, off+n-1); err != nil {
		return nil, forge.Errorf(forge.Invalid, "range of blob %s: %v", d, err)
	}
	obj, _, err := s.get(ctx, key, o)
	if r := minio.ToErrorResponse(err); r.Code == "InvalidRange" || r.StatusCode == 416 {
		// No range of a pointer (an empty object) is there: follow it.
		if st, serr := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); serr == nil {
			if p, ok := s.pointerOf(st); ok {
				obj, _, err = s.get(ctx, p.key, o)
			}
		}
	}
	if err != nil {
		return nil, s.fail(err, d, "open")
	}
	return errReader{obj, s, d}, nil
}

// get starts a GET of key. GetObject is lazy: Stat makes the request, so
// a missing blob is NotFound here and not at the first Read.
func (s *S3) get(ctx context.Context, key string, o minio.GetObjectOptions) (*minio.Object, minio.ObjectInfo, error) {
	obj, err := s.c.GetObject(ctx, s.bucket, key, o)
	if err != nil {
		return nil, minio.ObjectInfo{}, err
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, minio.ObjectInfo{}, err
	}
	return obj, st, nil
}

// errReader classifies the errors of a read in progress.
type errReader struct {
	o *minio.Object
	s *S3
	d forge.Digest
}

func (e errReader) Read(p []byte) (int, error) {
	n, err := e.o.Read(p)
	if err != nil && err != io.EOF {
		err = e.s.fail(err, e.d, "read")
	}
	return n, err
}

func (e errReader) Close() error { return e.o.Close() }

// Stat implements forge.BlobStore.
func (s *S3) Stat(ctx context.Context, d forge.Digest) (forge.BlobInfo, error) {
	key, err := s.key(d)
	if err != nil {
		return forge.BlobInfo{}, err
	}
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return forge.BlobInfo{}, s.fail(err, d, "stat")
	}
	size := st.Size
	if p, ok := s.pointerOf(st); ok {
		size = p.size
	}
	return forge.BlobInfo{Digest: d, Size: size, ModTime: st.LastModified}, nil
}

// Delete implements forge.BlobStore.
func (s *S3) Delete(ctx context.Context, d forge.Digest) error {
	key, err := s.key(d)
	if err != nil {
		return err
	}
	fin := s.finLock(d)
	fin.Lock()
	defer fin.Unlock()
	s.cache.drop(d)
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return s.fail(err, d, "delete")
	}
	return s.fail(s.remove(ctx, key, st), d, "delete")
}

// remove removes the object under a digest's key and, when it is a
// pointer, its data object: after it, so that the blob is gone at once; a
// data object that cannot be removed now is removed later, as a failed
// Put's.
func (s *S3) remove(ctx context.Context, key string, st minio.ObjectInfo) error {
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return err
	}
	if p, ok := s.pointerOf(st); ok {
		s.discard(strings.TrimPrefix(p.key, s.prefix+"data/"), true)
	}
	return nil
}

// List implements forge.BlobStore.
func (s *S3) List(ctx context.Context, prefix string) ([]forge.BlobInfo, error) {
	base := s.prefix + "sha256/"
	kp := base + prefix
	if len(prefix) >= 2 {
		kp = base + prefix[:2] + "/" + prefix[2:]
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []forge.BlobInfo
	var empty []int // empty objects: pointers, whose size is in their metadata
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: kp, Recursive: true}) {
		if o.Err != nil {
			return nil, s.fail(o.Err, "", "list")
		}
		d := strings.Replace(strings.TrimPrefix(o.Key, base), "/", "", 1)
		if !ValidDigest(d) || !strings.HasPrefix(d, prefix) {
			continue
		}
		if o.Size == 0 && d != emptyDigest {
			empty = append(empty, len(out))
		}
		out = append(out, forge.BlobInfo{Digest: forge.Digest(d), Size: o.Size, ModTime: o.LastModified})
	}
	if err := s.pointerSizes(ctx, out, empty); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// pointerSizes sets the sizes of the blobs at out[i] for i in idx from
// their pointers, 8 requests at a time. A blob removed meanwhile keeps
// size 0.
func (s *S3) pointerSizes(ctx context.Context, out []forge.BlobInfo, idx []int) error {
	sem := make(chan struct{}, 8)
	errs := make(chan error, len(idx))
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			key, _ := s.key(out[i].Digest)
			st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
			if err != nil && !isNotFound(err) {
				errs <- s.fail(err, out[i].Digest, "list")
				return
			}
			if p, ok := s.pointerOf(st); ok && err == nil {
				out[i].Size = p.size
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Touch makes a stored blob new, as Local.Touch: a pointer is written
// again, a blob held by its own key is copied onto itself.
func (s *S3) Touch(d forge.Digest) error {
	key, err := s.key(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s.mu.RLock()
	defer s.mu.RUnlock()
	fin := s.finLock(d)
	fin.Lock()
	defer fin.Unlock()
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return s.fail(err, d, "touch")
	}
	if p, ok := s.pointerOf(st); ok {
		return s.fail(s.putPointer(ctx, key, p), d, "touch")
	}
	_, err = s.c.ComposeObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: key, ReplaceMetadata: true,
		UserMetadata: map[string]string{"Forge-Touched": time.Now().UTC().Format(time.RFC3339Nano)}},
		minio.CopySrcOptions{Bucket: s.bucket, Object: key})
	return s.fail(err, d, "touch")
}

// RemoveIfOlder is garbage collection's delete, as Local.RemoveIfOlder.
func (s *S3) RemoveIfOlder(d forge.Digest, t time.Time) (bool, int64, error) {
	key, err := s.key(d)
	if err != nil {
		return false, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if err := s.fail(err, d, "remove"); forge.IsKind(err, forge.NotFound) {
			return false, 0, nil
		} else {
			return false, 0, err
		}
	}
	if !st.LastModified.Before(t) {
		return false, 0, nil
	}
	size := st.Size
	if p, ok := s.pointerOf(st); ok {
		size = p.size
	}
	if err := s.remove(ctx, key, st); err != nil {
		return false, 0, s.fail(err, d, "remove")
	}
	s.cache.drop(d)
	return true, size, nil
}

// Path returns a verified local copy of the blob, fetched into the cache
// when it is not there. Callers must not modify it.
func (s *S3) Path(d forge.Digest) (string, error) {
	if !ValidDigest(string(d)) {
		return "", forge.Errorf(forge.Invalid, "invalid blob digest %q", d)
	}
	return s.cache.path(context.Background(), d, func(ctx context.Context) (io.ReadCloser, error) { return s.Open(ctx, d) })
}

// CacheUsage is the local cache's size in bytes and number of files.
func (s *S3) CacheUsage() (int64, int) { return s.cache.usage() }

// Client is the S3 client, for tests that look at the bucket directly.
func (s *S3) Client() *minio.Client { return s.c }

// CacheFile is where Path keeps d's copy (whether or not it is there).
func (s *S3) CacheFile(d forge.Digest) string { return filepath.Clean(s.cache.file(d)) }
