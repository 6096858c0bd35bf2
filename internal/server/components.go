package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/forge-mlops/forge"
	pyclient "github.com/forge-mlops/forge/clients/python"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/executor/local"
	"github.com/forge-mlops/forge/internal/jobs"
	"github.com/forge-mlops/forge/internal/ort"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/runtime/onnxrt"
	"github.com/forge-mlops/forge/internal/runtime/xgbrt"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/tracking"
	"github.com/forge-mlops/forge/internal/version"
)

// mount builds every subsystem over the stores and mounts its routes: the
// one place that says what the control plane is made of.
func (s *Server) mount(ctx context.Context) error {
	tmp := filepath.Join(s.cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}

	// Tracking: MLflow's REST API and artifact proxy.
	tracks := tracking.New(s.db)
	artifacts := tracking.NewArtifacts(s.db, s.blobs)
	tracking.NewAPI(tracks, artifacts, s.log.With("sys", "tracking")).Register(s.mux)

	// Datasets, explored with DuckDB.
	eng, err := duckq.NewEngine(duckq.EngineOptions{MemoryLimit: s.cfg.DuckDB.MemoryLimit, Threads: s.cfg.DuckDB.Threads,
		TempDir: filepath.Join(tmp, "duckdb"), QueryTimeout: s.cfg.DuckDB.QueryTimeout})
	if err != nil {
		return err
	}
	data := datasets.New(s.db, s.blobs, eng, datasets.Options{TempDir: tmp, MemoryLimit: s.cfg.DuckDB.MemoryLimit,
		Threads: s.cfg.DuckDB.Threads}, s.log.With("sys", "datasets"))
	datasets.NewAPI(data, s.log.With("sys", "datasets")).Register(s.mux)

	// The model registry copies versions from runs' artifacts.
	runFiles := registry.RunArtifactsFunc(func(ctx context.Context, runID, path string) ([]registry.File, error) {
		files, err := artifacts.RunFiles(ctx, tracks, runID, path)
		out := make([]registry.File, len(files))
		for i, f := range files {
			out[i] = registry.File{Path: f.Path, Digest: f.Digest, Size: f.Size}
		}
		return out, err
	})
	s.registry = registry.New(s.db, s.blobs, runFiles, s.log.With("sys", "registry"))
	s.registry.TempDir = tmp
	s.registry.Register(s.mux)

	// Jobs on this machine's processes.
	ex, err := local.New(ctx, local.Config{Root: filepath.Join(s.cfg.DataDir, "executor"), Logger: s.log.With("sys", "executor")})
	if err != nil {
		return fmt.Errorf("start the local executor: %w", err)
	}
	pypath, err := pyclient.Install(filepath.Join(s.cfg.DataDir, "python"))
	if err != nil {
		return err
	}
	js, err := jobs.New(s.db, ex, s.blobs, jobRuns{tracks}, jobInputs{data},
		jobs.Config{WorkDir: filepath.Join(s.cfg.DataDir, "jobs"), TrackingURI: s.URL(), PythonPath: pypath}, s.log.With("sys", "jobs"))
	if err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	js.Register(s.mux, s.log)
	s.runners = append(s.runners, js.Run)

	// Inference: the Open Inference Protocol on this port and on gRPC.
	s.serve = serve.New(serve.Options{
		Runtimes: map[string]forge.Runtime{
			"onnx":    onnxrt.New(s.cfg.ONNXRuntimeLib, ort.Options{IntraOpThreads: s.cfg.Serve.IntraOpThreads}),
			"xgboost": xgbrt.Runtime{},
		},
		MaxBodyBytes: s.cfg.HTTP.MaxBodyBytes,
		Version:      version.Version,
	}, s.log.With("sys", "serve"), s.reg)
	s.closers = append(s.closers, s.serve)
	s.serve.Register(s.mux)
	if s.cfg.GRPCAddr != "" {
		if s.grpcLn, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
			return fmt.Errorf("listen on %s (grpc_addr): %w", s.cfg.GRPCAddr, err)
		}
	}
	return nil
}

// bodyLimit gives uploads of files (artifacts, datasets, models, code) the
// upload limit and every other request the smaller API limit.
func (s *Server) bodyLimit(r *http.Request) int64 {
	p := r.URL.Path
	upload := (r.Method == http.MethodPut && strings.HasPrefix(p, "/api/2.0/mlflow-artifacts/")) ||
		(r.Method == http.MethodPut && strings.HasPrefix(p, "/api/forge/v1/bundles/")) ||
		(r.Method == http.MethodPost && strings.HasPrefix(p, "/api/forge/v1/datasets/") && strings.HasSuffix(p, "/versions")) ||
		(r.Method == http.MethodPost && strings.HasPrefix(p, "/api/forge/v1/models/") && strings.HasSuffix(p, "/versions"))
	if upload {
		return s.cfg.HTTP.MaxUploadBytes
	}
	return s.cfg.HTTP.MaxBodyBytes
}
