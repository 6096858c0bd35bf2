package bundle

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Limits cap what one bundle may expand to.
const (
	// MaxExpandedBytes caps the bytes of a bundle's files once decompressed.
	MaxExpandedBytes = 1 << 30
	// MaxEntries caps a bundle's number of entries.
	MaxEntries = 100_000
)

// InvalidError says why an archive is not a code bundle Forge unpacks.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid bundle: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err says an archive is no valid bundle.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Validate reads a whole bundle and returns an *InvalidError if Extract
// would refuse it, without writing anything.
func Validate(r io.Reader) error {
	return walkArchive(r, func(*tar.Header, string, io.Reader) error { return nil })
}

// Extract unpacks a bundle into dst, an existing folder. It refuses (with
// an *InvalidError) absolute names, names with "..", hard links, symbolic
// links whose target leaves the folder, any entry under a symbolic link or
// replacing one, and bundles over MaxExpandedBytes or MaxEntries. Writes go
// through an os.Root on dst, so nothing lands outside it even if a check
// here were wrong.
func Extract(r io.Reader, dst string) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("open bundle folder: %w", err)
	}
	defer root.Close()
	return walkArchive(r, func(hdr *tar.Header, name string, body io.Reader) error {
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(hdr.Mode)&0o755)
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			_, err = io.Copy(f, body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		}
		return nil
	})
}

// walkArchive checks every entry of a bundle and hands the ones to write,
// with their clean name, to fn.
func walkArchive(r io.Reader, fn func(hdr *tar.Header, name string, body io.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return invalid("not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	seen := map[string]byte{}    // clean name -> typeflag
	links := map[string]string{} // symbolic link -> target
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return linksDirect(links, seen)
		}
		if err != nil {
			return invalid("not a tar archive: %v", err)
		}
		if n >= MaxEntries {
			return invalid("more than %d entries", MaxEntries)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		// No entry may sit under a link or replace anything seen before.
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if t, ok := seen[p]; ok && t != tar.TypeDir {
				return invalid("entry %q is under %q, which is not a folder", hdr.Name, p)
			}
		}
		if t, ok := seen[name]; ok && !(t == tar.TypeDir && hdr.Typeflag == tar.TypeDir) {
			return invalid("entry %q appears twice", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			if hdr.Size < 0 || total+hdr.Size > MaxExpandedBytes {
				return invalid("expands to more than %d MiB", MaxExpandedBytes>>20)
			}
			total += hdr.Size
		case tar.TypeDir:
		case tar.TypeSymlink:
			if err := linkInside(name, hdr.Linkname); err != nil {
				return err
			}
			links[name] = hdr.Linkname
		case tar.TypeLink:
			return invalid("entry %q is a hard link", hdr.Name)
		default:
			return invalid("entry %q is neither a file, a folder nor a symbolic link", hdr.Name)
		}
		seen[name] = hdr.Typeflag
		if err := fn(hdr, name, io.LimitReader(tr, hdr.Size)); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil { // what fn left: read to check the archive
			return invalid("not a tar archive: %v", err)
		}
	}
}

// entryName cleans a tar entry name, refusing one that leaves the folder.
func entryName(raw string) (string, error) {
	if raw == "" || strings.ContainsRune(raw, 0) || strings.Contains(raw, `\`) {
		return "", invalid("entry name %q is not a plain relative path", raw)
	}
	if path.IsAbs(raw) {
		return "", invalid("entry %q has an absolute path", raw)
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", invalid("entry %q has a .. in its path", raw)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", invalid("entry %q names the bundle folder itself", raw)
	}
	return name, nil
}

// linkInside refuses a symbolic link at name whose target leaves the folder.
func linkInside(name, target string) error {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, 0) {
		return invalid("symbolic link %q points to %q, outside the bundle", name, target)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return invalid("symbolic link %q points to %q, outside the bundle", name, target)
	}
	return nil
}

// linksDirect refuses a symbolic link whose target goes through another
// link: "a -> b/.." with "b -> ." resolves inside by name but not on disk.
func linksDirect(links map[string]string, seen map[string]byte) error {
	for name, target := range links {
		cur := path.Dir(name)
		parts := strings.Split(target, "/")
		for i, part := range parts[:len(parts)-1] {
			cur = path.Join(cur, part)
			if seen[cur] == tar.TypeSymlink && i < len(parts)-1 {
				return invalid("symbolic link %q points through another link, %q", name, cur)
			}
		}
	}
	return nil
}
