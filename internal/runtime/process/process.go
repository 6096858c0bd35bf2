// Package process is the forge.Runtime for models of format `other`: the
// version carries its own predictor, a command that serves the Open
// Inference Protocol over HTTP on a local port. Forge copies the version's
// files to a working folder, starts the command with a free port in its
// environment, waits for it to be ready, reads its signature from its model
// metadata, proxies inference to it, restarts it when it dies, and stops it
// on Close.
//
// The version names its command in a manifest at its root, forge-serve.json:
//
//	{"command": ["/usr/bin/python3", "predictor.py"], "port_env": "PORT"}
//
// The command runs in the working folder; a relative command path (one
// with a slash) is taken from there too.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/forge-mlops/forge"
)

// ManifestFile is the file at a version's root that names its command.
const ManifestFile = "forge-serve.json"

// Manifest says how to start a predictor.
type Manifest struct {
	// Command is the program and its arguments.
	Command []string `json:"command"`
	// PortEnv names the environment variable that gets the port (default PORT).
	PortEnv string `json:"port_env"`
	// Env is added to the predictor's environment.
	Env map[string]string `json:"env"`
	// Model is the name the predictor answers to under /v2/models/; default
	// the registered model's name, which the predictor also finds in
	// FORGE_MODEL_NAME.
	Model string `json:"model"`
	// ReadyTimeout bounds how long the predictor may take to become ready,
	// as a Go duration ("90s"); default Runtime.ReadyTimeout.
	ReadyTimeout string `json:"ready_timeout"`
}

// Runtime starts predictors. The zero value works; fields tune it.
type Runtime struct {
	// WorkDir holds each loaded version's working folder (default: the
	// system's temporary folder).
	WorkDir string
	// ReadyTimeout bounds how long a predictor may take to become ready
	// (default 60s).
	ReadyTimeout time.Duration
	// Grace is how long a predictor has to exit after SIGTERM before it
	// gets SIGKILL (default 5s).
	Grace time.Duration
	// Log receives the predictors' lifecycle events (default: discarded).
	Log *slog.Logger
}

var _ forge.Runtime = (*Runtime)(nil)

// Platform names the runtime in model metadata.
func (*Runtime) Platform() string { return "process" }

// Load copies the version's files, starts its predictor and waits until it
// is ready. A predictor that exits or never becomes ready is an Invalid
// error carrying the tail of its stderr.
func (r *Runtime) Load(ctx context.Context, src forge.ModelSource) (forge.Model, error) {
	if src.Files == nil {
		return nil, forge.Errorf(forge.Invalid, "model %s version %s has no files", src.Name, src.Version)
	}
	b, err := fs.ReadFile(src.Files, ManifestFile)
	if err != nil {
		return nil, forge.WrapError(forge.Invalid, err, "model %s version %s of format other needs a %s naming its command", src.Name, src.Version, ManifestFile)
	}
	var man Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, forge.WrapError(forge.Invalid, err, "read %s of model %s version %s", ManifestFile, src.Name, src.Version)
	}
	if len(man.Command) == 0 || man.Command[0] == "" {
		return nil, forge.Errorf(forge.Invalid, "%s of model %s version %s has no command", ManifestFile, src.Name, src.Version)
	}
	if man.PortEnv == "" {
		man.PortEnv = "PORT"
	}
	if man.Model == "" {
		man.Model = src.Name
	}
	timeout := r.ReadyTimeout
	if man.ReadyTimeout != "" {
		if timeout, err = time.ParseDuration(man.ReadyTimeout); err != nil || timeout <= 0 {
			return nil, forge.Errorf(forge.Invalid, "%s of model %s version %s: ready_timeout %q is not a positive duration", ManifestFile, src.Name, src.Version, man.ReadyTimeout)
		}
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	grace := r.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	if r.WorkDir != "" {
		if err := os.MkdirAll(r.WorkDir, 0o755); err != nil {
			return nil, fmt.Errorf("make working folder: %w", err)
		}
	}
	dir, err := os.MkdirTemp(r.WorkDir, "forge-model-")
	if err != nil {
		return nil, fmt.Errorf("make working folder: %w", err)
	}
	if err := copyFiles(dir, src.Files); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("copy files of model %s version %s: %w", src.Name, src.Version, err)
	}
	p := &predictor{
		man: man, dir: dir, name: src.Name, version: src.Version,
		timeout: timeout, grace: grace,
		log: log.With("model", src.Name, "version", src.Version),
	}
	p.init()
	if err := p.start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	sig, err := p.metadata(ctx)
	if err == nil && src.Signature != nil {
		err = agree(sig, *src.Signature)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	p.sig = sig
	p.sup = make(chan struct{})
	go p.supervise()
	return p, nil
}

// agree checks that the predictor's tensors are those the registry recorded.
func agree(got, want forge.Signature) error {
	names := func(ts []forge.TensorSpec) []string {
		var n []string
		for _, t := range ts {
			n = append(n, t.Name)
		}
		slices.Sort(n)
		return n
	}
	if !slices.Equal(names(got.Inputs), names(want.Inputs)) || !slices.Equal(names(got.Outputs), names(want.Outputs)) {
		return forge.Errorf(forge.Invalid, "the predictor's tensors (inputs %v, outputs %v) differ from the registered signature (inputs %v, outputs %v)",
			names(got.Inputs), names(got.Outputs), names(want.Inputs), names(want.Outputs))
	}
	return nil
}

// copyFiles writes every file of files under dir, keeping modes that say
// executable so a shipped script or binary can run.
func copyFiles(dir string, files fs.FS) error {
	return fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		mode := fs.FileMode(0o644)
		if info, err := d.Info(); err == nil && info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		in, err := files.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		return errors.Join(err, out.Close())
	})
}
