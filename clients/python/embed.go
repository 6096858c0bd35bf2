// Package pyclient carries the stdlib-only Python client inside the forge
// binary, so every job can `import forge` without pip or a checkout.
package pyclient

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed forge/*.py
var files embed.FS

// Install writes the client's package into dir (as dir/forge/...) and returns
// dir, the folder to put on PYTHONPATH.
func Install(dir string) (string, error) {
	err := fs.WalkDir(files, "forge", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("install the python client: %w", err)
	}
	return dir, nil
}
