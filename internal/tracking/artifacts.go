package tracking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Artifacts is the artifact root behind MLflow's artifact proxy: a tree of
// paths, each naming a blob in the content-addressed store. Uploading the
// same file twice stores it once.
type Artifacts struct {
	db    *sqlstore.DB
	blobs forge.BlobStore
}

// NewArtifacts returns the artifact root.
func NewArtifacts(db *sqlstore.DB, blobs forge.BlobStore) *Artifacts {
	return &Artifacts{db: db, blobs: blobs}
}

// FileInfo is an entry of an artifact listing.
type FileInfo struct {
	Path   string
	IsDir  bool
	Size   int64
	Digest forge.Digest
}

// CleanPath checks a client-supplied artifact path: relative, no "..", no
// empty or dot segments. It returns the path without leading or trailing
// slashes.
func CleanPath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if strings.ContainsRune(p, 0) || strings.Contains(p, "\\") {
		return "", forge.Errorf(forge.Invalid, "invalid artifact path '%s'", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", forge.Errorf(forge.Invalid, "invalid artifact path '%s': it must be relative, without '..' or empty segments", p)
		}
	}
	return p, nil
}

// Put stores r at path p, replacing what was there.
func (a *Artifacts) Put(ctx context.Context, p string, r io.Reader) (FileInfo, error) {
	p, err := CleanPath(p)
	if err != nil {
		return FileInfo{}, err
	}
	if p == "" {
		return FileInfo{}, forge.Errorf(forge.Invalid, "an artifact upload needs a file path")
	}
	// Refused before the bytes are stored; checked again with the record,
	// against an upload racing this one.
	if err := fileOrFolder(ctx, a.db, p); err != nil {
		return FileInfo{}, err
	}
	info, err := a.blobs.Put(ctx, r)
	if err != nil {
		return FileInfo{}, fmt.Errorf("store artifact %s: %w", p, err)
	}
	err = a.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if err := tx.Serialize(ctx, artifactLock); err != nil {
			return err
		}
		if err := fileOrFolder(ctx, tx, p); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO artifact_files (path, digest, size, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, size = excluded.size, updated_at = excluded.updated_at`,
			p, string(info.Digest), info.Size, sqlstore.Now())
		return err
	})
	if forge.KindOf(err) == forge.Invalid {
		return FileInfo{}, err // the blob, if new, is left to blob gc
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("record artifact %s: %w", p, err)
	}
	return FileInfo{Path: p, Size: info.Size, Digest: info.Digest}, nil
}

// artifactLock orders artifact writers on PostgreSQL (sqlstore.Tx.Serialize),
// so two uploads racing for a and a/b cannot both pass fileOrFolder.
const artifactLock = 7705

// querier is what fileOrFolder reads through: the store, or a transaction.
type querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

// fileOrFolder refuses a file at p where p is a folder (a file below it
// exists) or where a folder above p is a file: a path names one or the
// other, as on a disk, so a listing and a download never disagree.
func fileOrFolder(ctx context.Context, q querier, p string) error {
	var below string
	err := q.QueryRow(ctx, "SELECT path FROM artifact_files WHERE path >= ? AND path < ? ORDER BY path LIMIT 1", p+"/", p+"0").Scan(&below)
	if err == nil {
		return forge.Errorf(forge.Invalid, "artifact path '%s' is a folder (it holds '%s'): a path is a file or a folder, not both", p, below)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check artifact %s: %w", p, err)
	}
	var above []string
	for i := strings.IndexByte(p, '/'); i >= 0; i = next(p, i) {
		above = append(above, p[:i])
	}
	if len(above) == 0 {
		return nil
	}
	args := make([]any, len(above))
	for i, s := range above {
		args[i] = s
	}
	var file string
	err = q.QueryRow(ctx, "SELECT path FROM artifact_files WHERE path IN ("+sqlstore.Placeholders(len(above))+") ORDER BY path LIMIT 1", args...).Scan(&file)
	if err == nil {
		return forge.Errorf(forge.Invalid, "artifact path '%s' is under '%s', which is a file: a path is a file or a folder, not both", p, file)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check artifact %s: %w", p, err)
	}
	return nil
}

// next is the index of the '/' after the one at i, or -1.
func next(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// Stat returns the file at p.
func (a *Artifacts) Stat(ctx context.Context, p string) (FileInfo, error) {
	p, err := CleanPath(p)
	if err != nil {
		return FileInfo{}, err
	}
	var fi FileInfo
	var d string
	err = a.db.QueryRow(ctx, "SELECT path, digest, size FROM artifact_files WHERE path = ?", p).Scan(&fi.Path, &d, &fi.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return fi, forge.Errorf(forge.NotFound, "artifact '%s' not found", p)
	}
	fi.Digest = forge.Digest(d)
	return fi, err
}

// Open returns the content of the file at p.
func (a *Artifacts) Open(ctx context.Context, p string) (io.ReadCloser, FileInfo, error) {
	fi, err := a.Stat(ctx, p)
	if err != nil {
		return nil, fi, err
	}
	rc, err := a.blobs.Open(ctx, fi.Digest)
	return rc, fi, err
}

// Serve sends the file at p as a download, answering HTTP Range requests
// from the blob store's ranged reads.
func (a *Artifacts) Serve(w http.ResponseWriter, r *http.Request, log *slog.Logger, p string) {
	fi, err := a.Stat(r.Context(), p)
	if err != nil {
		httpapi.WriteError(w, r, log, err)
		return
	}
	w.Header().Set("X-Content-Sha256", string(fi.Digest))
	httpapi.ServeBlob(w, r, log, fi.Path, a.blobs, fi.Digest, fi.Size)
}

// Delete removes the file at p, or every file under p when it is a folder.
// The blobs stay: registered models may share them.
func (a *Artifacts) Delete(ctx context.Context, p string) error {
	p, err := CleanPath(p)
	if err != nil {
		return err
	}
	if p == "" {
		return forge.Errorf(forge.Invalid, "refusing to delete the artifact root")
	}
	res, err := a.db.Exec(ctx, "DELETE FROM artifact_files WHERE path = ? OR (path >= ? AND path < ?)", p, p+"/", p+"0")
	if err != nil {
		return fmt.Errorf("delete artifact %s: %w", p, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return forge.Errorf(forge.NotFound, "artifact '%s' not found", p)
	}
	return nil
}

// Walk returns every file under folder p (recursively), in path order.
func (a *Artifacts) Walk(ctx context.Context, p string) ([]FileInfo, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	q, args := "SELECT path, digest, size FROM artifact_files ORDER BY path", []any{}
	if p != "" {
		// Everything strictly below p/: '0' is the byte after '/'.
		q, args = "SELECT path, digest, size FROM artifact_files WHERE path >= ? AND path < ? ORDER BY path", []any{p + "/", p + "0"}
	}
	rows, err := a.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	defer rows.Close()
	var out []FileInfo
	for rows.Next() {
		var fi FileInfo
		var d string
		if err := rows.Scan(&fi.Path, &d, &fi.Size); err != nil {
			return nil, err
		}
		fi.Digest = forge.Digest(d)
		out = append(out, fi)
	}
	return out, rows.Err()
}

// List returns the direct children of folder p: files and sub-folders, with
// paths relative to p, as MLflow's list_artifacts does.
func (a *Artifacts) List(ctx context.Context, p string) ([]FileInfo, error) {
	files, err := a.Walk(ctx, p)
	if err != nil {
		return nil, err
	}
	p, _ = CleanPath(p)
	seen := map[string]bool{}
	var out []FileInfo
	for _, f := range files {
		rel := f.Path
		if p != "" {
			rel = strings.TrimPrefix(f.Path, p+"/")
		}
		if first, _, isDir := strings.Cut(rel, "/"); isDir {
			if !seen[first] {
				seen[first] = true
				out = append(out, FileInfo{Path: first, IsDir: true})
			}
			continue
		}
		out = append(out, FileInfo{Path: rel, Size: f.Size, Digest: f.Digest})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// RunArtifactRoot returns the path under the artifact root where a run's
// artifacts live, from its artifact URI (mlflow-artifacts:/<exp>/<run>/artifacts).
func RunArtifactRoot(artifactURI string) (string, error) {
	rest, ok := strings.CutPrefix(artifactURI, "mlflow-artifacts:")
	if !ok {
		return "", forge.Errorf(forge.Invalid, "artifact URI '%s' is not served by this server", artifactURI)
	}
	// mlflow-artifacts://host:port/path carries an authority; drop it.
	if strings.HasPrefix(rest, "//") {
		rest = rest[2:]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	return CleanPath(path.Clean("/" + rest))
}

// RunFiles returns every artifact file of a run at or under rel (a file or a
// folder; "" for all), with paths relative to the run's artifact root. The
// registry copies a model version's files from here.
func (a *Artifacts) RunFiles(ctx context.Context, s *Store, runID, rel string) ([]FileInfo, error) {
	var uri string
	err := s.db.QueryRow(ctx, "SELECT artifact_uri FROM runs WHERE run_uuid = ?", runID).Scan(&uri)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, httpapi.RunNotFound(runID)
	}
	if err != nil {
		return nil, err
	}
	root, err := RunArtifactRoot(uri)
	if err != nil {
		// The client wrote them straight to the run's location (file://,
		// s3://...): this server has none of them.
		return nil, forge.Errorf(forge.NotFound, "the artifacts of run %s are not on this server (artifact URI %s)", runID, uri)
	}
	rel, err = CleanPath(rel)
	if err != nil {
		return nil, err
	}
	full := root
	if rel != "" {
		full = root + "/" + rel
	}
	files, err := a.Walk(ctx, full)
	if err != nil {
		return nil, err
	}
	if fi, err := a.Stat(ctx, full); err == nil {
		files = append([]FileInfo{fi}, files...)
	}
	for i := range files {
		files[i].Path = strings.TrimPrefix(files[i].Path, root+"/")
	}
	return files, nil
}

// BlobRefs lists the blobs of every artifact file (blobgc.Referrer); those
// of deleted runs too, which can be restored.
func (a *Artifacts) BlobRefs(ctx context.Context, keep func(forge.Digest)) error {
	return a.db.EachString(ctx, "SELECT DISTINCT digest FROM artifact_files", func(d string) { keep(forge.Digest(d)) })
}
