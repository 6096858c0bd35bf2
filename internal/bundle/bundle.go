// Package bundle makes code bundles: a tar.gz of a working directory, minus
// what .gitignore and .forgeignore exclude, built so that the same files
// give the same bytes (sorted entries, no timestamps or owners) and so the
// same sha256: unchanged code is stored and uploaded once.
package bundle

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultMaxBytes caps a bundle's compressed size: code, not data (datasets
// go through `forge data`).
const DefaultMaxBytes = 50 << 20

// TooLargeError says a bundle is over the cap, and what is biggest in it.
type TooLargeError struct {
	Max     int64
	Largest []string // "path (size)"
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("code bundle is larger than %d MiB: exclude data and build outputs with .forgeignore (largest files: %s)",
		e.Max>>20, strings.Join(e.Largest, ", "))
}

// Create writes the bundle of dir to w and returns its sha256 and size.
// It fails with *TooLargeError once the compressed bundle passes max bytes.
func Create(dir string, w io.Writer, max int64) (digest string, size int64, err error) {
	b, err := Build(dir, w, max)
	return b.Digest, b.Size, err
}

// Bundle is what Build wrote.
type Bundle struct {
	Digest string
	Size   int64
	// DataDirs are the Forge data folders left out (slash-separated,
	// relative to dir): a server started where the code is keeps its
	// database and blobs in ./forge-data, which is no code to ship.
	DataDirs []string
}

// Build is Create, saying also what it left out.
func Build(dir string, w io.Writer, max int64) (Bundle, error) {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	files, dataDirs, err := walk(dir)
	if err != nil {
		return Bundle{}, err
	}
	digest, size, err := writeTar(dir, files, w, max)
	return Bundle{Digest: digest, Size: size, DataDirs: dataDirs}, err
}

func writeTar(dir string, files []string, w io.Writer, max int64) (digest string, size int64, err error) {
	h := sha256.New()
	cw := &capWriter{w: io.MultiWriter(w, h), max: max}
	gz, _ := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := addFile(tw, dir, f); err != nil {
			if errors.Is(err, errTooLarge) {
				return "", 0, tooLarge(dir, files, max)
			}
			return "", 0, err
		}
	}
	if err := tw.Close(); err == nil {
		err = gz.Close()
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return "", 0, tooLarge(dir, files, max)
		}
		return "", 0, fmt.Errorf("write bundle: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

var errTooLarge = errors.New("bundle too large")

type capWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.max {
		return 0, errTooLarge
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func tooLarge(dir string, files []string, max int64) error {
	type fz struct {
		p string
		n int64
	}
	var all []fz
	for _, f := range files {
		if fi, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			all = append(all, fz{f, fi.Size()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	e := &TooLargeError{Max: max}
	for i := 0; i < len(all) && i < 3; i++ {
		e.Largest = append(e.Largest, fmt.Sprintf("%s (%d MiB)", all[i].p, all[i].n>>20))
	}
	return e
}

func addFile(tw *tar.Writer, dir, rel string) error {
	full := filepath.Join(dir, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: rel, Format: tar.FormatPAX}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		return tw.WriteHeader(hdr)
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, fi.Size(), 0o644
		if fi.Mode()&0o111 != 0 {
			hdr.Mode = 0o755
		}
	default:
		return nil // sockets, devices, fifos are no code
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}

// isDataDir says whether a folder is a Forge server's data folder: its
// SQLite database (forge.db) or its blob store (blobs/sha256).
func isDataDir(abs string) bool {
	if st, err := os.Stat(filepath.Join(abs, "forge.db")); err == nil && st.Mode().IsRegular() {
		return true
	}
	st, err := os.Stat(filepath.Join(abs, "blobs", "sha256"))
	return err == nil && st.IsDir()
}

// walk lists dir's files to bundle (slash-separated, sorted), honouring the
// ignore files of each folder and leaving out Forge data folders, which it
// lists apart.
func walk(dir string) ([]string, []string, error) {
	var files, dataDirs []string
	var visit func(rel string, rules []rule) error
	visit = func(rel string, rules []rule) error {
		abs := filepath.Join(dir, filepath.FromSlash(rel))
		for _, name := range []string{".gitignore", ".forgeignore"} {
			b, err := os.ReadFile(filepath.Join(abs, name))
			if err == nil {
				rules = append(rules[:len(rules):len(rules)], parseRules(string(b), rel)...)
			}
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			return fmt.Errorf("read %s: %w", abs, err)
		}
		for _, e := range ents { // ReadDir sorts by name
			p := path.Join(rel, e.Name())
			isDir := e.IsDir()
			if isDir && e.Name() == ".git" || ignored(rules, p, isDir) {
				continue
			}
			if isDir {
				if isDataDir(filepath.Join(abs, e.Name())) {
					dataDirs = append(dataDirs, p)
					continue
				}
				if err := visit(p, rules); err != nil {
					return err
				}
				continue
			}
			files = append(files, p)
		}
		return nil
	}
	if err := visit("", nil); err != nil {
		return nil, nil, err
	}
	return files, dataDirs, nil
}
