package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/registry"
)

// Source is where a Controller reads deployments and model versions from:
// the server's own stores (Local) or a Forge server's API (Remote).
type Source interface {
	// List returns every deployment.
	List(ctx context.Context) ([]Deployment, error)
	// Resolve finds the version a ref names now, with its files.
	Resolve(ctx context.Context, model, ref string) (Resolved, error)
	// Open gives a resolved version's files.
	Open(ctx context.Context, r Resolved) (fs.FS, error)
	// Watch calls changed whenever a deployment or the registry may have
	// changed (once at the start too, to cover what happened before it
	// began), until ctx is done.
	Watch(ctx context.Context, changed func())
}

// Resolved is one model version a ref resolved to.
type Resolved struct {
	Model     string
	Version   string
	Format    string
	ModelFile string // the file the format was read from, as registered
	Signature *forge.Signature
	Files     []registry.File
}

// Registry is what the Local source needs of the model registry.
type Registry interface {
	ResolveFiles(ctx context.Context, name, ref string) (registry.Version, []registry.File, error)
	Head(ctx context.Context) (int64, error)
	Watch(ctx context.Context, since int64, limit int, timeout time.Duration) ([]registry.Event, error)
}

// Local reads deployments from the database and model files from the blob
// store, in the process that owns them.
type Local struct {
	Store    *Store
	Registry Registry
	Blobs    forge.BlobStore
	// CacheDir holds copies of blobs from a store that has no local paths.
	CacheDir string
	Log      *slog.Logger
}

func (l *Local) List(ctx context.Context) ([]Deployment, error) { return l.Store.List(ctx) }

func (l *Local) Resolve(ctx context.Context, model, ref string) (Resolved, error) {
	v, files, err := l.Registry.ResolveFiles(ctx, model, ref)
	if err != nil {
		return Resolved{}, err
	}
	return Resolved{Model: v.Name, Version: strconv.FormatInt(v.Version, 10), Format: v.Format, ModelFile: v.ModelFile,
		Signature: signature(v.Signature, v.Format), Files: files}, nil
}

// pather is a blob store whose blobs are files on this machine.
type pather interface {
	Path(d forge.Digest) (string, error)
}

// Open maps the version's paths to the blobs' own files when the store has
// them (no copy), and to cached copies otherwise.
func (l *Local) Open(ctx context.Context, r Resolved) (fs.FS, error) {
	m := filesFS{}
	for _, f := range r.Files {
		if p, ok := l.Blobs.(pather); ok {
			local, err := p.Path(f.Digest)
			if err != nil {
				return nil, err
			}
			m[f.Path] = local
			continue
		}
		local, err := cacheBlob(ctx, l.CacheDir, f.Digest, func(ctx context.Context) (io.ReadCloser, error) {
			return l.Blobs.Open(ctx, f.Digest)
		})
		if err != nil {
			return nil, fmt.Errorf("fetch %s of %s version %s: %w", f.Path, r.Model, r.Version, err)
		}
		m[f.Path] = local
	}
	return m, nil
}

// Watch follows the registry's event log and the deployments table. The
// registry wakes at once on changes made in this process; the short
// timeout bounds how late a deployment changed through another replica is
// seen.
func (l *Local) Watch(ctx context.Context, changed func()) {
	var since int64
	rev := ""
	for ctx.Err() == nil {
		head, err := l.Registry.Head(ctx)
		if err == nil {
			since = head
			break
		}
		l.Log.Warn("read registry head", "err", err)
		sleep(ctx, time.Second)
	}
	changed()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		wake := l.Store.notify.Changed()
		go func() {
			select {
			case <-wake:
				cancel()
			case <-wctx.Done():
			}
		}()
		evs, err := l.Registry.Watch(wctx, since, 500, 2*time.Second)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && wctx.Err() == nil {
			l.Log.Warn("watch the registry", "err", err)
			sleep(ctx, time.Second)
		}
		if len(evs) > 0 {
			since = evs[len(evs)-1].Seq
			changed()
		}
		if ds, err := l.Store.List(ctx); err == nil {
			if r := Revision(ds); r != rev {
				if rev != "" {
					changed()
				}
				rev = r
			}
		}
	}
}

// Remote follows a Forge server over its API: deployments and registry
// events by long polling, model files downloaded (and checked against their
// sha256) into a cache folder. It keeps no state of its own, so any number
// of replicas can follow one server.
type Remote struct {
	Client   *api.Client
	CacheDir string
	// Blobs, when set, is the server's object store, which this replica
	// has credentials for: model files are read from it by digest (into
	// its own verified cache) instead of through the server.
	Blobs interface {
		Path(d forge.Digest) (string, error)
	}
	Log *slog.Logger
}

func (r *Remote) List(ctx context.Context) ([]Deployment, error) {
	l, err := r.Client.ListDeployments(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]Deployment, len(l.Deployments))
	for i, d := range l.Deployments {
		out[i] = FromAPI(d.Name, d.DeploymentSpec)
		out[i].CreatedAt, out[i].UpdatedAt, out[i].PayloadColumns = d.CreatedAt, d.UpdatedAt, d.PayloadColumns
	}
	return out, nil
}

func (r *Remote) Resolve(ctx context.Context, model, ref string) (Resolved, error) {
	d, err := r.Client.GetModelVersionDetail(ctx, model, ref)
	if err != nil {
		return Resolved{}, apiError(err)
	}
	res := Resolved{Model: d.ModelVersion.Name, Version: d.ModelVersion.Version, Format: d.Format, ModelFile: d.ModelFile}
	if s := d.Signature; s != nil {
		sig := &forge.Signature{AllowNaN: d.Format == registry.FormatXGBoost}
		for _, t := range s.Inputs {
			sig.Inputs = append(sig.Inputs, forge.TensorSpec(t))
		}
		for _, t := range s.Outputs {
			sig.Outputs = append(sig.Outputs, forge.TensorSpec(t))
		}
		res.Signature = sig
	}
	for _, f := range d.Files {
		res.Files = append(res.Files, registry.File{Path: f.Path, Digest: forge.Digest(f.Digest), Size: f.Size})
	}
	return res, nil
}

// Open gives the version's files by digest: from the object store when
// the replica reads it directly, else downloaded through the server into
// CacheDir/sha256/DIGEST once (a file two versions share is fetched
// once; a digest's content never changes). Either way the content is
// checked against its digest before it is used.
func (r *Remote) Open(ctx context.Context, res Resolved) (fs.FS, error) {
	if _, err := strconv.ParseInt(res.Version, 10, 64); err != nil {
		return nil, fmt.Errorf("server sent version %q of %s: want a number", res.Version, res.Model)
	}
	m := filesFS{}
	for _, f := range res.Files {
		if !fs.ValidPath(f.Path) {
			return nil, fmt.Errorf("server sent an unsafe file path %q", f.Path)
		}
		if r.Blobs != nil {
			local, err := r.Blobs.Path(f.Digest)
			if err == nil {
				m[f.Path] = local
				continue
			}
			// The server may still reach what this replica cannot.
			r.Log.Warn("read model file from the object store; trying the server", "model", res.Model, "version", res.Version, "file", f.Path, "err", err)
		}
		// By number: the ref may have moved since it was resolved.
		local, err := cacheBlob(ctx, r.CacheDir, f.Digest, func(ctx context.Context) (io.ReadCloser, error) {
			return r.Client.OpenModelFile(ctx, res.Model, res.Version, f.Path)
		})
		if err != nil {
			return nil, fmt.Errorf("download %s of %s version %s: %w", f.Path, res.Model, res.Version, apiError(err))
		}
		m[f.Path] = local
	}
	return m, nil
}

// Watch long-polls the server's deployments and registry events side by
// side; either one changing calls changed.
func (r *Remote) Watch(ctx context.Context, changed func()) {
	go func() {
		rev := ""
		for ctx.Err() == nil {
			l, err := r.Client.ListDeployments(ctx, rev, 30*time.Second)
			if err != nil {
				if ctx.Err() == nil {
					r.Log.Warn("watch deployments", "err", err)
					sleep(ctx, 2*time.Second)
				}
				continue
			}
			if l.Revision != rev {
				rev = l.Revision
				changed()
			}
		}
	}()
	since := int64(-1)
	for ctx.Err() == nil {
		w, err := r.Client.WatchModels(ctx, since, 30*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				r.Log.Warn("watch the registry", "err", err)
				sleep(ctx, 2*time.Second)
			}
			continue
		}
		if since < 0 || len(w.Events) > 0 {
			changed()
		}
		since = w.LastSeq
	}
}

// apiError gives a server's answer its kind back, so a Remote source
// reports an unknown model as NotFound just as a Local one does.
func apiError(err error) error {
	var e *api.Error
	if !errors.As(err, &e) {
		return err
	}
	kind := forge.Internal
	switch e.Status {
	case 400:
		kind = forge.Invalid
	case 404:
		kind = forge.NotFound
	case 401:
		kind = forge.Unauthorized
	case 403:
		kind = forge.Forbidden
	case 503:
		kind = forge.Unavailable
	}
	return forge.WrapError(kind, err, "%s", e.Message)
}

func signature(s *registry.Signature, format string) *forge.Signature {
	if s == nil {
		return nil
	}
	sig := &forge.Signature{AllowNaN: format == registry.FormatXGBoost}
	for _, t := range s.Inputs {
		sig.Inputs = append(sig.Inputs, forge.TensorSpec(t))
	}
	for _, t := range s.Outputs {
		sig.Outputs = append(sig.Outputs, forge.TensorSpec(t))
	}
	return sig
}

// cacheBlob copies a blob to dir/sha256/DIGEST once.
func cacheBlob(ctx context.Context, dir string, d forge.Digest, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	dst := filepath.Join(dir, "sha256", string(d))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	rc, err := open(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".blob-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != string(d) {
		return "", fmt.Errorf("blob %s: content hashes to %s", d, got)
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// filesFS is a version's files as an fs.FS: each path maps to a local file.
type filesFS map[string]string

func (m filesFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if local, ok := m[name]; ok {
		return os.Open(local)
	}
	if m.isDir(name) {
		return dirFile(name), nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// runtimeFiles names the file each runtime reads at the root of a version.
var runtimeFiles = map[string]string{registry.FormatONNX: "model.onnx", registry.FormatXGBoost: "model.json"}

// withModelFile shows a version's model file under the name its runtime
// reads, since the registry keeps files under the names they were
// uploaded with (iris.onnx, model/model.json).
func withModelFile(files fs.FS, r Resolved) fs.FS {
	want := runtimeFiles[r.Format]
	if want == "" || r.ModelFile == "" || r.ModelFile == want {
		return files
	}
	return aliasFS{files, want, r.ModelFile}
}

type aliasFS struct {
	fs.FS
	name, target string
}

func (a aliasFS) Open(name string) (fs.File, error) {
	if name == a.name {
		name = a.target
	}
	return a.FS.Open(name)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
