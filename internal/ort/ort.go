// Package ort runs ONNX models in process through ONNX Runtime's C API
// (github.com/yalue/onnxruntime_go over cgo).
//
// ONNX Runtime keeps one environment per process, so Init is process-wide and
// happens once; after that, each loaded model is a Session that any number of
// goroutines may Run at the same time. The shared library is not linked at
// build time but opened at Init from a path the caller configures, which
// scripts/fetch-onnxruntime.sh fetches and checks.
package ort

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/forge-mlops/forge"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Version is the ONNX Runtime release Forge is built and tested against.
const Version = "1.30.0"

// fetchHint tells an operator how to get the library.
const fetchHint = "run scripts/fetch-onnxruntime.sh and configure the path it prints"

// CachedLibraryPath is where scripts/fetch-onnxruntime.sh puts the library
// under cacheDir (FORGE_CACHE, by default ~/.cache/forge).
func CachedLibraryPath(cacheDir string) string {
	return filepath.Join(cacheDir, "onnxruntime", Version, "libonnxruntime.so.1")
}

// LibraryPath checks the configured path of the ONNX Runtime shared library
// and returns it, or an error that says how to fetch the library.
func LibraryPath(configured string) (string, error) {
	if configured == "" {
		return "", forge.Errorf(forge.Invalid, "no ONNX Runtime library is configured; %s", fetchHint)
	}
	fi, err := os.Stat(configured)
	if err != nil {
		return "", forge.Errorf(forge.Invalid, "ONNX Runtime library %s: %v; %s", configured, err, fetchHint)
	}
	if !fi.Mode().IsRegular() {
		return "", forge.Errorf(forge.Invalid, "ONNX Runtime library %s is not a regular file; %s", configured, fetchHint)
	}
	return configured, nil
}

// env is the process's one ONNX Runtime environment. It is package state
// because ONNX Runtime's is: the C library allows a single OrtEnv.
var env struct {
	once sync.Once
	path string
	err  error
}

// Init loads the ONNX Runtime library at libPath and creates the process's
// environment. Only the first call does the work; later calls return its
// result, and fail if they name a different library, since a process cannot
// switch libraries once one is loaded.
func Init(libPath string) error {
	env.once.Do(func() {
		env.path = libPath
		path, err := LibraryPath(libPath)
		if err != nil {
			env.err = err
			return
		}
		// The setter only records the path; InitializeEnvironment dlopens it,
		// so the order of these two calls matters.
		ortgo.SetSharedLibraryPath(path)
		// ONNX Runtime's warnings go straight to stderr, around our logger;
		// keep only errors.
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
			env.err = fmt.Errorf("initialize ONNX Runtime from %s (%s): %w", path, fetchHint, err)
		}
	})
	if env.err != nil {
		return env.err
	}
	if libPath != env.path {
		return fmt.Errorf("ONNX Runtime is already initialized from %s; cannot switch to %s", env.path, libPath)
	}
	return nil
}
