package deploy

import (
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// A version's files can be listed as well as opened, so a runtime that
// takes all of them (the process runtime, for format other) can walk them.

// isDir reports whether some file lies under name.
func (m filesFS) isDir(name string) bool {
	if name == "." {
		return true
	}
	for p := range m {
		if strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

// ReadDir lists one folder of the version.
func (m filesFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) || !m.isDir(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	prefix := ""
	if name != "." {
		prefix = name + "/"
	}
	seen := map[string]bool{}
	var out []fs.DirEntry
	for p, local := range m {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		child, _, sub := strings.Cut(rest, "/")
		if seen[child] {
			continue
		}
		seen[child] = true
		if sub {
			out = append(out, fs.FileInfoToDirEntry(dirInfo(child)))
			continue
		}
		info, err := os.Stat(local)
		if err != nil {
			return nil, err
		}
		out = append(out, fs.FileInfoToDirEntry(namedInfo{info, child}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// namedInfo shows a blob's file under the name the version gives it.
type namedInfo struct {
	fs.FileInfo
	name string
}

func (n namedInfo) Name() string { return n.name }

type dirInfo string

func (d dirInfo) Name() string     { return path.Base(string(d)) }
func (dirInfo) Size() int64        { return 0 }
func (dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (dirInfo) ModTime() time.Time { return time.Time{} }
func (dirInfo) IsDir() bool        { return true }
func (dirInfo) Sys() any           { return nil }

// dirFile is a folder opened with Open; its entries come from ReadDir.
type dirFile string

func (d dirFile) Stat() (fs.FileInfo, error) { return dirInfo(d), nil }
func (d dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: string(d), Err: fs.ErrInvalid}
}
func (dirFile) Close() error { return nil }
