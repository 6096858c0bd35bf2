package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/forge-mlops/forge"
)

// LoadRepository loads every version of a model repository folder laid out
// as NAME/VERSION/model.onnx (or model.json). A version that fails to load
// stays listed as failed and the others are served; the errors are joined
// in the result. A folder that cannot be read is an error by itself.
func (s *Server) LoadRepository(ctx context.Context, dir string, opts LoadOptions) error {
	names, err := os.ReadDir(dir)
	if err != nil {
		return forge.WrapError(forge.Invalid, err, "read model repository %s", dir)
	}
	var errs []error
	found := 0
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		versions, err := os.ReadDir(filepath.Join(dir, n.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("read model %s: %w", n.Name(), err))
			continue
		}
		for _, v := range versions {
			if !v.IsDir() {
				continue
			}
			found++
			path := filepath.Join(dir, n.Name(), v.Name())
			src := forge.ModelSource{Name: n.Name(), Version: v.Name(), Files: os.DirFS(path)}
			if err := s.Load(ctx, src, opts); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if found == 0 {
		return forge.Errorf(forge.Invalid, "model repository %s has no NAME/VERSION folders", dir)
	}
	return errors.Join(errs...)
}
