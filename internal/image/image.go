// Package image builds Forge's container image as an OCI image layout
// without a container engine: the root filesystem is made from files of
// this machine (the forge binary, the shared libraries it and ONNX Runtime
// link, CA certificates, time zones) instead of a base image pulled from a
// registry, and written with go-containerregistry.
//
// The image is the one the Dockerfile at the repository root describes:
// the same paths, user, environment, entrypoint and ports (Config and the
// constants below); TestDockerfileMatches keeps the two in step.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image, as in the Dockerfile.
const (
	ForgePath       = "/usr/local/bin/forge"
	ONNXRuntimePath = "/usr/local/lib/forge/libonnxruntime.so.1"
	DataDir         = "/var/lib/forge"
	UID, GID        = 10001, 10001
	UserName        = "forge"
)

// epoch stamps every file and the config: the same inputs give the same
// digests.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Spec says what goes into the image.
type Spec struct {
	Forge       string // the forge binary
	ONNXRuntime string // libonnxruntime.so.1
	// CACerts is the CA bundle; default /etc/ssl/certs/ca-certificates.crt.
	CACerts string
	// ZoneInfo is the time zone database folder; default /usr/share/zoneinfo
	// where it exists (the Dockerfile installs tzdata).
	ZoneInfo string
	Tag      string // the layout's ref name; default "latest"
	Version  string // org.opencontainers.image.version, if known
}

// Config is the image's run configuration, the Dockerfile's ENV, USER,
// WORKDIR, VOLUME, EXPOSE, ENTRYPOINT and CMD.
func Config() v1.Config {
	return v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir: DataDir,
		Entrypoint: []string{ForgePath},
		Cmd:        []string{"server"},
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"FORGE_ONNXRUNTIME_LIB=" + ONNXRuntimePath,
			"FORGE_DATA_DIR=" + DataDir,
			"FORGE_ADDR=0.0.0.0:7700",
			"FORGE_GRPC_ADDR=0.0.0.0:7701",
		},
		Volumes:      map[string]struct{}{DataDir: {}},
		ExposedPorts: map[string]struct{}{"7700/tcp": {}, "7701/tcp": {}},
	}
}

// Build writes the image as an OCI layout in dir (made if missing; an
// image of the same tag already there is replaced) and returns its
// manifest digest.
func Build(ctx context.Context, spec Spec, dir string) (v1.Hash, error) {
	if spec.Tag == "" {
		spec.Tag = "latest"
	}
	if spec.CACerts == "" {
		spec.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if spec.ZoneInfo == "" {
		if _, err := os.Stat("/usr/share/zoneinfo"); err == nil {
			spec.ZoneInfo = "/usr/share/zoneinfo"
		}
	}
	tmp, err := os.MkdirTemp("", "forge-image-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(tmp)

	base, err := baseFiles(ctx, spec)
	if err != nil {
		return v1.Hash{}, err
	}
	app := []entry{
		dirEntry("/usr/local/bin", 0o755), dirEntry("/usr/local/lib/forge", 0o755),
		hostFile(ForgePath, spec.Forge, 0o755), hostFile(ONNXRuntimePath, spec.ONNXRuntime, 0o644),
	}
	var layers []v1.Layer
	for i, files := range [][]entry{base, app} {
		f := filepath.Join(tmp, fmt.Sprintf("layer%d.tar", i))
		if err := writeTar(f, files); err != nil {
			return v1.Hash{}, err
		}
		l, err := tarball.LayerFromFile(f, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return v1.Hash{}, err
		}
		layers = append(layers, l)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = Config()
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "forge"}
	if spec.Version != "" {
		cf.Config.Labels["org.opencontainers.image.version"] = spec.Version
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, err
	}

	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return v1.Hash{}, fmt.Errorf("write OCI layout %s: %w", dir, err)
		}
	}
	annotations := map[string]string{"org.opencontainers.image.ref.name": spec.Tag}
	err = p.ReplaceImage(img, func(d v1.Descriptor) bool {
		return d.Annotations["org.opencontainers.image.ref.name"] == spec.Tag
	}, layout.WithAnnotations(annotations), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("write image to %s: %w", dir, err)
	}
	return img.Digest()
}

// baseFiles is what a slim Debian with ca-certificates and tzdata brings
// that forge needs: the merged-/usr layout, the C and C++ runtime the two
// binaries link (found with ldd), users, and the data folder.
func baseFiles(ctx context.Context, spec Spec) ([]entry, error) {
	es := []entry{
		dirEntry("/usr", 0o755), dirEntry("/usr/bin", 0o755), dirEntry("/usr/sbin", 0o755),
		dirEntry("/usr/lib", 0o755), dirEntry("/usr/lib64", 0o755), dirEntry("/usr/local", 0o755),
		linkEntry("/bin", "usr/bin"), linkEntry("/sbin", "usr/sbin"),
		linkEntry("/lib", "usr/lib"), linkEntry("/lib64", "usr/lib64"),
		dirEntry("/etc", 0o755), dirEntry("/var", 0o755), dirEntry("/var/lib", 0o755),
		dirEntry("/tmp", 0o777|fs.ModeSticky), dirEntry("/dev", 0o755), dirEntry("/proc", 0o755),
		dirEntry("/root", 0o700),
		{name: DataDir, mode: fs.ModeDir | 0o755, uid: UID, gid: GID},
		content("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"+
			fmt.Sprintf("%s:x:%d:%d::%s:/usr/sbin/nologin\n", UserName, UID, GID, DataDir)+
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
		content("/etc/group", "root:x:0:\n"+fmt.Sprintf("%s:x:%d:\n", UserName, GID)+"nogroup:x:65534:\n"),
		content("/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
		dirEntry("/etc/ssl", 0o755), dirEntry("/etc/ssl/certs", 0o755),
		hostFile("/etc/ssl/certs/ca-certificates.crt", spec.CACerts, 0o644),
	}
	libs, err := sharedLibs(ctx, spec.Forge, spec.ONNXRuntime)
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		es = append(es, hostFile(mergedUsr(l), l, 0o755))
	}
	if spec.ZoneInfo != "" {
		zs, err := tree("/usr/share/zoneinfo", spec.ZoneInfo)
		if err != nil {
			return nil, err
		}
		es = append(es, zs...)
	}
	return es, nil
}

// entry is one file of a layer.
type entry struct {
	name     string      // absolute path in the image
	mode     fs.FileMode // with ModeDir or ModeSymlink for those
	host     string      // a regular file's content, from this machine
	data     []byte      // or given
	link     string      // a symlink's target
	uid, gid int
}

func dirEntry(name string, perm fs.FileMode) entry {
	return entry{name: name, mode: fs.ModeDir | perm}
}
func linkEntry(name, target string) entry {
	return entry{name: name, mode: fs.ModeSymlink | 0o777, link: target}
}
func content(name, data string) entry { return entry{name: name, mode: 0o644, data: []byte(data)} }
func hostFile(name, host string, perm fs.FileMode) entry {
	return entry{name: name, mode: perm, host: host}
}

// tree is a host folder's files under name, symlinks kept.
func tree(name, host string) ([]entry, error) {
	var es []entry
	err := filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		in := path.Join(name, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			es = append(es, dirEntry(in, 0o755))
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			es = append(es, linkEntry(in, t))
		case d.Type().IsRegular():
			es = append(es, hostFile(in, p, 0o644))
		}
		return nil
	})
	return es, err
}

// writeTar writes a layer: parents before children, sorted, owned by root
// unless said otherwise, stamped with epoch.
func writeTar(file string, es []entry) error {
	have := map[string]bool{}
	for _, e := range es {
		have[path.Clean(e.name)] = true
	}
	for _, e := range es {
		for d := path.Dir(path.Clean(e.name)); d != "/" && !have[d]; d = path.Dir(d) {
			have[d] = true
			es = append(es, dirEntry(d, 0o755))
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].name < es[j].name })
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	seen := map[string]bool{}
	for _, e := range es {
		name := strings.TrimPrefix(path.Clean(e.name), "/")
		if seen[name] {
			continue
		}
		seen[name] = true
		h := &tar.Header{Name: name, Mode: int64(e.mode.Perm()), Uid: e.uid, Gid: e.gid, ModTime: epoch, Format: tar.FormatPAX}
		if e.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		var body io.Reader
		switch {
		case e.mode.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case e.mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.host != "":
			b, err := os.ReadFile(e.host)
			if err != nil {
				return fmt.Errorf("image file %s: %w", e.name, err)
			}
			h.Typeflag, h.Size, body = tar.TypeReg, int64(len(b)), bytes.NewReader(b)
		default:
			h.Typeflag, h.Size, body = tar.TypeReg, int64(len(e.data)), bytes.NewReader(e.data)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if body != nil {
			if _, err := io.Copy(tw, body); err != nil {
				return fmt.Errorf("image file %s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
