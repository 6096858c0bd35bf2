package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
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
// their digest; larger ones stream as a multipart upload to a temporary
// key while they are hashed, then are copied server-side to their digest's
// key. Reads are verified against the digest, and Path keeps verified
// local copies in a bounded cache.
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

	// leftover are temporary keys whose upload or object could not be
	// removed when a Put failed (the store was down): removed after the
	// next Put that succeeds, or at the next start.
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

// removeTemp removes the temporary objects and unfinished multipart
// uploads a killed process left under PREFIX/tmp/ (one server writes a
// prefix, so at its start none is in use). Best effort: what stays is
// tried again at the next start.
func (s *S3) removeTemp(ctx context.Context) {
	tmp := s.prefix + "tmp/"
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, tmp, true) {
		if u.Err != nil {
			break
		}
		s.c.RemoveIncompleteUpload(ctx, s.bucket, u.Key)
	}
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: tmp, Recursive: true}) {
		if o.Err != nil {
			break
		}
		s.c.RemoveObject(ctx, s.bucket, o.Key, minio.RemoveObjectOptions{})
	}
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
	if n <= smallPut {
		d := forge.Digest(hex.EncodeToString(h.Sum(nil)))
		key, _ := s.key(d)
		s.mu.RLock()
		defer s.mu.RUnlock()
		_, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(head), n, minio.PutObjectOptions{ContentType: "application/octet-stream"})
		if err != nil {
			return forge.BlobInfo{}, s.fail(err, d, "put")
		}
		s.retryLeftover()
		return forge.BlobInfo{Digest: d, Size: n, ModTime: time.Now()}, nil
	}
	// Too large to hold: stream it up as a multipart upload while hashing
	// it, then copy it to its digest's key inside the store.
	tmp := s.prefix + "tmp/" + randomHex()
	// h has hashed head already; it hashes the rest on its way up.
	body := io.MultiReader(bytes.NewReader(head), io.TeeReader(ctxReader{ctx, r}, h))
	up, err := s.c.PutObject(ctx, s.bucket, tmp, body, -1, minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.part,
		// Parts go up 4 at a time: at most 4 parts in memory.
		ConcurrentStreamParts: true, NumThreads: 4})
	// Whatever happened, leave no upload or temporary object behind (with
	// a fresh context: ctx may be why it failed).
	defer s.cleanup(tmp)
	if err != nil {
		return forge.BlobInfo{}, s.fail(err, "", "upload")
	}
	d := forge.Digest(hex.EncodeToString(h.Sum(nil)))
	key, _ := s.key(d)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, err = s.c.ComposeObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: key},
		minio.CopySrcOptions{Bucket: s.bucket, Object: tmp})
	if err != nil {
		return forge.BlobInfo{}, s.fail(err, d, "store")
	}
	s.retryLeftover()
	return forge.BlobInfo{Digest: d, Size: up.Size, ModTime: time.Now()}, nil
}

func randomHex() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *S3) cleanup(tmp string) {
	if !s.removeTmp(tmp) {
		s.lmu.Lock()
		if s.leftover == nil {
			s.leftover = map[string]bool{}
		}
		s.leftover[tmp] = true
		s.lmu.Unlock()
	}
}

// removeTmp removes a temporary key's unfinished upload and object, and
// says whether both are gone.
func (s *S3) removeTmp(tmp string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.c.RemoveIncompleteUpload(ctx, s.bucket, tmp)
	if err2 := s.c.RemoveObject(ctx, s.bucket, tmp, minio.RemoveObjectOptions{}); err == nil {
		err = err2
	}
	return err == nil
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
	keys := make([]string, 0, len(s.leftover))
	for k := range s.leftover {
		keys = append(keys, k)
	}
	go func() {
		for _, k := range keys {
			if s.removeTmp(k) {
				s.lmu.Lock()
				delete(s.leftover, k)
				s.lmu.Unlock()
			}
		}
		s.lmu.Lock()
		s.retrying = false
		s.lmu.Unlock()
	}()
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
	_, err = s.c.PutObject(ctx, s.bucket, key, f, st.Size(), minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.part})
	s.mu.RUnlock()
	if err != nil {
		return forge.BlobInfo{}, s.fail(err, d, "put")
	}
	f.Close()
	if err := s.cache.add(path, d, st.Size()); err != nil {
		os.Remove(path) // across file systems: the cache fetches it when asked
	}
	return forge.BlobInfo{Digest: d, Size: st.Size(), ModTime: time.Now()}, nil
}

// Open implements forge.BlobStore.
func (s *S3) Open(ctx context.Context, d forge.Digest) (io.ReadCloser, error) {
	key, err := s.key(d)
	if err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail(err, d, "open")
	}
	// GetObject is lazy: Stat makes the request, so a missing blob is
	// NotFound here and not at the first Read.
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, s.fail(err, d, "open")
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
	obj, err := s.c.GetObject(ctx, s.bucket, key, o)
	if err != nil {
		return nil, s.fail(err, d, "open")
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.fail(err, d, "open")
	}
	return errReader{obj, s, d}, nil
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
	return forge.BlobInfo{Digest: d, Size: st.Size, ModTime: st.LastModified}, nil
}

// Delete implements forge.BlobStore.
func (s *S3) Delete(ctx context.Context, d forge.Digest) error {
	key, err := s.key(d)
	if err != nil {
		return err
	}
	s.cache.drop(d)
	return s.fail(s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}), d, "delete")
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
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: kp, Recursive: true}) {
		if o.Err != nil {
			return nil, s.fail(o.Err, "", "list")
		}
		d := strings.Replace(strings.TrimPrefix(o.Key, base), "/", "", 1)
		if !ValidDigest(d) || !strings.HasPrefix(d, prefix) {
			continue
		}
		out = append(out, forge.BlobInfo{Digest: forge.Digest(d), Size: o.Size, ModTime: o.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Touch makes a stored blob new (a copy onto itself), as Local.Touch.
func (s *S3) Touch(d forge.Digest) error {
	key, err := s.key(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err != nil {
		return s.fail(err, d, "touch")
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
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return false, 0, s.fail(err, d, "remove")
	}
	s.cache.drop(d)
	return true, st.Size, nil
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
