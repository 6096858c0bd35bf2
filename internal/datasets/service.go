package datasets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Blobs is the part of the blob store datasets need: DuckDB reads Parquet
// by path, so the store must hand out real files.
type Blobs interface {
	Put(ctx context.Context, r io.Reader) (forge.BlobInfo, error)
	Path(d forge.Digest) (string, error)
}

// filePutter is what the local blob store adds to Blobs: adopting a file
// already hashed, without copying it.
type filePutter interface {
	PutFile(ctx context.Context, path string, d forge.Digest) (forge.BlobInfo, error)
}

// Options tune a Service.
type Options struct {
	// TempDir receives uploads while they are checked; default os.TempDir().
	TempDir string
	// MaxRows caps the rows one query returns; default 1,000,000.
	MaxRows int
	// Queues are the credentials and TLS settings of brokers (the config's
	// queues: section), used when a queue URL has none; never stored.
	Queues queue.Auths
}

// Service is the datasets API in Go: what the HTTP handlers, the jobs
// system and tests call.
type Service struct {
	st     store
	db     *sqlstore.DB
	blobs  Blobs
	engine *duckq.Engine
	opts   Options
	log    *slog.Logger
}

// New returns a Service over the metadata db, the blob store and engine.
func New(db *sqlstore.DB, blobs Blobs, engine *duckq.Engine, opts Options, log *slog.Logger) *Service {
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 1_000_000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: store{db}, db: db, blobs: blobs, engine: engine, opts: opts, log: log}
}

// AddInfo says where a version came from.
type AddInfo struct {
	Source      string
	Description string
	CreatedBy   string
}

// Add stores the Parquet file read from r as the next version of name and
// returns it, with created false when name already has a version with the
// same bytes (then nothing is stored). The upload is checked by DuckDB, which
// also gives the row count and the schema recorded; anything that is not a
// readable Parquet file is an Invalid error and leaves no trace.
func (s *Service) Add(ctx context.Context, name string, r io.Reader, info AddInfo) (Version, bool, error) {
	if err := CheckName(name); err != nil {
		return Version{}, false, err
	}
	tmp, err := os.CreateTemp(s.opts.TempDir, "forge-upload-*.parquet")
	if err != nil {
		return Version{}, false, fmt.Errorf("add dataset %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return Version{}, false, fmt.Errorf("receive upload of %s: %w", name, err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	return s.addFile(ctx, name, tmp, digest, size, info, nil)
}

// addFile stores the Parquet file f (of size bytes, sha256 digest) as the
// next version of name; also, when set, runs in the transaction that
// records the version.
func (s *Service) addFile(ctx context.Context, name string, f *os.File, digest string, size int64, info AddInfo, also func(*sqlstore.Tx, Version) error) (Version, bool, error) {
	if v, ok, err := s.st.byDigest(ctx, name, digest); err != nil || ok {
		return v, false, err
	}
	table, err := s.describe(ctx, f.Name(), size)
	if err != nil {
		return Version{}, false, err
	}
	var blob forge.BlobInfo
	if fp, ok := s.blobs.(filePutter); ok {
		// The file was hashed on its way to disk: move it into the store.
		blob, err = fp.PutFile(ctx, f.Name(), forge.Digest(digest))
	} else {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Version{}, false, fmt.Errorf("add dataset %s: %w", name, err)
		}
		blob, err = s.blobs.Put(ctx, f)
	}
	if err != nil {
		return Version{}, false, fmt.Errorf("store dataset %s: %w", name, err)
	}
	if string(blob.Digest) != digest {
		return Version{}, false, fmt.Errorf("store dataset %s: upload changed while stored (%s, then %s)", name, digest, blob.Digest)
	}
	v := Version{
		Name: name, Digest: digest, Rows: table.Rows, Bytes: size, Columns: table.Columns,
		Source: info.Source, Description: info.Description, CreatedBy: info.CreatedBy,
	}
	v, created, err := s.st.create(ctx, v, also)
	if err == nil && created {
		s.log.Info("dataset version added", "dataset", v.Ref(), "digest", digest, "rows", v.Rows, "bytes", v.Bytes)
	}
	return v, created, err
}

var parquetMagic = []byte("PAR1")

// describe checks that path is a Parquet file DuckDB can read in full, and
// reads its row count and schema. It runs its own DuckDB instance because the upload is
// not a dataset yet and duckq reads only datasets and user sources.
func (s *Service) describe(ctx context.Context, path string, size int64) (duckq.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return duckq.Table{}, err
	}
	head, tail := make([]byte, 4), make([]byte, 4)
	_, err1 := f.ReadAt(head, 0)
	_, err2 := f.ReadAt(tail, size-4)
	f.Close()
	if size < 12 || err1 != nil || err2 != nil || !bytes.Equal(head, parquetMagic) || !bytes.Equal(tail, parquetMagic) {
		return duckq.Table{}, forge.Errorf(forge.Invalid, "the upload is not a Parquet file (%d bytes without the PAR1 signature at both ends): convert data with `forge data add`", size)
	}
	t, err := s.engine.ReadParquet(ctx, path)
	if forge.KindOf(err) == forge.Invalid {
		// DuckDB names the file: the upload's temporary name in the data
		// dir, which is none of the client's business.
		msg := duckq.ClientText(strings.ReplaceAll(forge.Message(err), path, "upload.parquet"))
		msg = strings.ReplaceAll(msg, filepath.Base(path), "upload.parquet")
		err = forge.WrapError(forge.Invalid, err, "the upload is %s", msg)
	}
	return t, err
}

// Get resolves "name" or "name@version".
func (s *Service) Get(ctx context.Context, ref string) (Version, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return Version{}, err
	}
	return s.st.get(ctx, r)
}

// List returns every dataset with its latest version, by name.
func (s *Service) List(ctx context.Context) ([]Dataset, error) { return s.st.list(ctx) }

// Versions returns a dataset's versions, newest first.
func (s *Service) Versions(ctx context.Context, name string) ([]Version, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	vs, err := s.st.versions(ctx, name)
	if err == nil && len(vs) == 0 {
		err = forge.Errorf(forge.NotFound, "no dataset named %s", name)
	}
	return vs, err
}

// path returns the Parquet file of v.
func (s *Service) path(v Version) (string, error) {
	p, err := s.blobs.Path(forge.Digest(v.Digest))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the file of dataset %s (blob %s) is missing: %w", v.Ref(), v.Digest, err)
	}
	return p, nil
}

// File returns the version a reference names and the path of its Parquet
// file, for serving it. Callers must not modify the file.
func (s *Service) File(ctx context.Context, ref string) (Version, string, error) {
	v, err := s.Get(ctx, ref)
	if err != nil {
		return Version{}, "", err
	}
	p, err := s.path(v)
	return v, p, err
}

// Materialize writes the dataset version ref names as a Parquet file at
// dstPath, for a job's inputs, and returns "name@version" and its digest.
// The file is a copy: a job that writes to it cannot damage the blob.
// MaterializeCSV writes the dataset version as a CSV file at dstPath, for
// job code that cannot read Parquet.
func (s *Service) MaterializeCSV(ctx context.Context, ref, dstPath string) (resolvedRef, digest string, err error) {
	v, src, err := s.File(ctx, ref)
	if err != nil {
		return "", "", err
	}
	if err := s.engine.ExportCSV(ctx, src, dstPath); err != nil {
		return "", "", fmt.Errorf("materialize %s as CSV: %w", v.Ref(), err)
	}
	return v.Ref(), v.Digest, nil
}

func (s *Service) Materialize(ctx context.Context, ref, dstPath string) (resolvedRef, digest string, err error) {
	v, src, err := s.File(ctx, ref)
	if err != nil {
		return "", "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", "", fmt.Errorf("materialize %s: %w", v.Ref(), err)
	}
	defer in.Close()
	tmp := dstPath + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return "", "", fmt.Errorf("materialize %s: %w", v.Ref(), err)
	}
	defer os.Remove(tmp)
	// ReadFrom uses copy_file_range: no bytes pass through user space, and
	// file systems that can share extents do.
	_, err = out.ReadFrom(in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dstPath)
	}
	if err != nil {
		return "", "", fmt.Errorf("materialize %s: %w", v.Ref(), err)
	}
	return v.Ref(), v.Digest, nil
}

// Profile returns the profile of a version as JSON. It is computed on the
// first request and stored with the version; later requests read it back.
func (s *Service) Profile(ctx context.Context, ref string) (Version, json.RawMessage, error) {
	v, err := s.Get(ctx, ref)
	if err != nil {
		return Version{}, nil, err
	}
	stored, err := s.st.profile(ctx, v)
	if err != nil || stored != nil {
		return v, stored, err
	}
	p, err := s.path(v)
	if err != nil {
		return Version{}, nil, err
	}
	prof, err := s.engine.Profile(ctx, p)
	if err != nil {
		return Version{}, nil, fmt.Errorf("profile %s: %w", v.Ref(), err)
	}
	b, err := json.Marshal(prof)
	if err != nil {
		return Version{}, nil, fmt.Errorf("profile %s: %w", v.Ref(), err)
	}
	if err := s.st.setProfile(ctx, v, b); err != nil {
		return Version{}, nil, err
	}
	return v, b, nil
}

// Diff compares two versions, a the reference.
func (s *Service) Diff(ctx context.Context, a, b string) (Version, Version, duckq.Diff, error) {
	va, pa, err := s.File(ctx, a)
	if err != nil {
		return Version{}, Version{}, duckq.Diff{}, err
	}
	vb, pb, err := s.File(ctx, b)
	if err != nil {
		return Version{}, Version{}, duckq.Diff{}, err
	}
	d, err := s.engine.Diff(ctx, pa, pb)
	if err != nil {
		return Version{}, Version{}, duckq.Diff{}, fmt.Errorf("diff %s %s: %w", va.Ref(), vb.Ref(), err)
	}
	return va, vb, d, nil
}

// quotedRef finds "name@N" table references, to tell an unknown version
// (404) from an error in the SQL (400).
var quotedRef = regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_.-]*)@([0-9]+)"`)

// Query runs a read-only SELECT over the datasets: each dataset is a table
// by its name (its latest version) and by "name@N" (version N). At most
// limit rows come back (0 or over the server's cap: the cap).
func (s *Service) Query(ctx context.Context, query string, limit int) (*duckq.Rows, error) {
	if strings.TrimSpace(query) == "" {
		return nil, forge.Errorf(forge.Invalid, "empty query")
	}
	if limit <= 0 || limit > s.opts.MaxRows {
		limit = s.opts.MaxRows
	}
	all, err := s.st.versions(ctx, "")
	if err != nil {
		return nil, err
	}
	lower := strings.ToLower(query)
	tables := map[string]string{}
	known := map[string]bool{}
	for _, v := range all { // newest first within a name
		known[v.Ref()] = true
		// A dataset whose name the SQL does not mention cannot be read by
		// it; leaving it out keeps the instance's setup small.
		if !strings.Contains(lower, strings.ToLower(v.Name)) {
			continue
		}
		p, err := s.path(v)
		if err != nil {
			return nil, err
		}
		if _, ok := tables[v.Name]; !ok {
			tables[v.Name] = p
		}
		tables[v.Ref()] = p
	}
	for _, m := range quotedRef.FindAllStringSubmatch(query, -1) {
		if known[m[1]+"@"+m[2]] {
			continue
		}
		if _, ok := tables[m[1]]; ok {
			return nil, forge.Errorf(forge.NotFound, "dataset %s has no version %s", m[1], m[2])
		}
		return nil, forge.Errorf(forge.NotFound, "no dataset named %s", m[1])
	}
	rows, err := s.engine.Query(ctx, query, tables, limit)
	if err != nil && forge.KindOf(err) == forge.Invalid && strings.Contains(forge.Message(err), "Catalog Error: Table with name") {
		return nil, forge.WrapError(forge.NotFound, err, "%s (datasets are tables by name: sales, or \"sales@3\" for a version)", forge.Message(err))
	}
	return rows, err
}

// BlobRefs lists the Parquet blobs of every dataset version (blobgc.Referrer).
func (s *Service) BlobRefs(ctx context.Context, keep func(forge.Digest)) error {
	return s.db.EachString(ctx, `SELECT DISTINCT digest FROM dataset_versions
		UNION SELECT dead_digest FROM dataset_queue_versions WHERE dead_digest <> ''`, func(d string) { keep(forge.Digest(d)) })
}
