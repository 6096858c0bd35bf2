package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/forge-mlops/forge"
	pyclient "github.com/forge-mlops/forge/clients/python"
	"github.com/forge-mlops/forge/internal/blobgc"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/executor/kube"
	"github.com/forge-mlops/forge/internal/executor/local"
	"github.com/forge-mlops/forge/internal/executor/slurm"
	"github.com/forge-mlops/forge/internal/jobs"
	"github.com/forge-mlops/forge/internal/monitor"
	"github.com/forge-mlops/forge/internal/ort"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/runtime/onnxrt"
	"github.com/forge-mlops/forge/internal/runtime/process"
	"github.com/forge-mlops/forge/internal/runtime/xgbrt"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/sweep"
	"github.com/forge-mlops/forge/internal/tracking"
	"github.com/forge-mlops/forge/internal/version"
	"github.com/forge-mlops/forge/internal/webui"
)

// mount builds every subsystem over the stores and gathers its routes: the
// one place that says what the control plane is made of.
func (s *Server) mount(ctx context.Context) error {
	tmp := filepath.Join(s.cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	// What a killed server left half-written; nothing writes there yet.
	temps := []string{tmp, s.blobs.TempDir()}
	if rep, err := blobgc.SweepTemp(temps, 0, false); err != nil {
		s.log.Warn("remove temporary files", "err", err)
	} else if rep.Entries > 0 {
		s.log.Info("removed temporary files left by the last run", "entries", rep.Entries, "bytes", rep.Bytes)
	}
	// Folders the components make on first use are made now, so that
	// lockDataDir closes them too (models' files are no job's business).
	for _, d := range []string{"predictors", "deploy-cache"} {
		if err := os.MkdirAll(filepath.Join(s.cfg.DataDir, d), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}

	// Tracking: MLflow's REST API and artifact proxy.
	tracks := tracking.New(s.db)
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if err := tracks.SetArtifactRoot(s.cfg.ArtifactRoot(), wd); err != nil {
		return fmt.Errorf("default artifact root: %w", err)
	}
	artifacts := tracking.NewArtifacts(s.db, s.blobs)
	tapi := tracking.NewAPI(tracks, artifacts, s.log.With("sys", "tracking"))
	if !s.cfg.Artifacts.Serve {
		tapi.DisableArtifactProxy()
	}
	s.routes = append(s.routes, tapi.Routes()...)

	// Datasets, explored with DuckDB.
	eng, err := duckq.NewEngine(duckq.EngineOptions{MemoryLimit: s.cfg.DuckDB.MemoryLimit, Threads: s.cfg.DuckDB.Threads,
		TempDir: filepath.Join(tmp, "duckdb"), QueryTimeout: s.cfg.DuckDB.QueryTimeout,
		MaxConcurrent: s.cfg.DuckDB.MaxConcurrent, MaxQueued: s.cfg.DuckDB.MaxQueued, Isolate: true})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, eng)
	data := datasets.New(s.db, s.blobs, eng, datasets.Options{TempDir: tmp}, s.log.With("sys", "datasets"))
	s.routes = append(s.routes, datasets.NewAPI(data, s.log.With("sys", "datasets")).Routes()...)
	// Follows of message queues: each cuts versions on its schedule.
	s.runners = append(s.runners, part{"dataset-follows", datasets.NewFollower(data, 0, s.log.With("sys", "follow")).Run})

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
	s.routes = append(s.routes, s.registry.Routes()...)

	// Jobs, on the executors named in the config.
	execs, jcfg, err := s.executors(ctx)
	if err != nil {
		return err
	}
	root, moved, err := jobsRoot(s.cfg.DataDir, s.cfg.JobUser())
	if err != nil {
		return err
	}
	if moved {
		s.log.Warn("job folders are outside the data dir: a folder above it does not let run_as through (o+x)",
			"jobs_dir", root, "run_as", s.cfg.JobUser())
	}
	pypath, err := pyclient.Install(filepath.Join(root, "python"))
	if err != nil {
		return err
	}
	jobsDir := filepath.Join(root, "jobs")
	if err := os.MkdirAll(jobsDir, 0o711); err != nil {
		return err
	}
	jcfg.WorkDir, jcfg.TrackingURI, jcfg.PythonPath = jobsDir, s.URL(), pypath
	jcfg.TempDir = tmp
	if s.cfg.Auth {
		// Each attempt gets a token that writes only its own run.
		jcfg.Tokens = s.tokens
	}
	// A job's end wakes the sweeps controller, set below before either runs.
	var sweeps *sweep.Service
	jcfg.OnEnd = func() { sweeps.Poke() }
	js, err := jobs.New(s.db, execs, s.blobs, jobRuns{tracks}, jobInputs{data}, jcfg, s.log.With("sys", "jobs"))
	if err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	s.routes = append(s.routes, js.Routes(s.log.With("sys", "jobs"))...)
	s.runners = append(s.runners, part{"jobs", js.Run})
	// Sweeps: every trial a job, every job's run a child of the sweep's.
	sweeps = sweep.New(s.db, js, sweepRuns{jobRuns{tracks}}, 0, s.log.With("sys", "sweep"))
	s.routes = append(s.routes, sweeps.Routes(s.log.With("sys", "sweep"))...)
	s.runners = append(s.runners, part{"sweeps", sweeps.Run})

	// Inference: the Open Inference Protocol on this port and on gRPC.
	s.serve = serve.New(serve.Options{
		Runtimes: map[string]forge.Runtime{
			"onnx":    onnxrt.New(s.cfg.ONNXRuntimeLib, ort.Options{IntraOpThreads: s.cfg.Serve.IntraOpThreads}),
			"xgboost": xgbrt.Runtime{},
			// Format other: the version's own predictor, run as a child process.
			"other": &process.Runtime{WorkDir: filepath.Join(s.cfg.DataDir, "predictors"), Log: s.log.With("sys", "predictor")},
		},
		MaxBodyBytes: s.cfg.HTTP.MaxBodyBytes,
		Version:      version.Version,
		// Sampled requests and responses go to datasets payloads.MODEL.
		Payload: serve.PayloadOptions{Datasets: data, Engine: eng, SampleRate: s.cfg.Serve.PayloadSampleRate, TempDir: tmp},
	}, s.log.With("sys", "serve"), s.reg)
	s.closers = append(s.closers, s.serve)
	s.routes = append(s.routes, s.serve.Routes()...)
	// Deployments route endpoint names to registered versions, following aliases.
	var deployAPI *deploy.API
	s.deploy, deployAPI = deploy.Build(s.db, s.registry, s.blobs, s.serve, s.cfg.DataDir, s.log.With("sys", "deploy"))
	s.routes = append(s.routes, deployAPI.Routes()...)
	s.runners = append(s.runners, part{"deploy", s.deploy.Run})
	monWindow, err := monitor.ParseWindow(s.cfg.Monitor.Window)
	if err != nil {
		return err
	}
	// Monitoring: drift of each deployment's logged payloads against its
	// model's training data (lineage) or a given reference.
	mon := monitor.New(monitor.Monitor{Deployments: deploy.NewStore(s.db), Registry: s.registry, Runs: tracks, Datasets: data,
		Engine: eng, PayloadPrefix: "payloads.", DB: s.db, TempDir: tmp, Flush: s.serve.FlushPayloads, Log: s.log.With("sys", "monitor"),
		Watch: monitor.Watch{Interval: s.cfg.Monitor.Interval, Window: monWindow, Alerts: s.cfg.Monitor.Alerts,
			AllDeployments: s.cfg.Serve.PayloadSampleRate > 0}}, s.reg)
	s.runners = append(s.runners, part{"monitor", mon.Run})
	s.routes = append(s.routes, mon.Routes()...)
	// A deployment that logs payloads names their columns after its reference.
	deployAPI.References = mon
	// Blob garbage collection asks every component that records blob
	// digests; one left out here would lose its blobs to a sweep.
	s.routes = append(s.routes, blobgc.Routes(s.blobs, []blobgc.Referrer{artifacts, data, s.registry, js}, temps, s.log.With("sys", "blobgc"))...)
	// The web UI at `/`, over the APIs above.
	s.ui = webui.New()
	s.routes = append(s.routes, s.ui.Routes()...)
	if s.cfg.GRPCAddr != "" {
		if s.grpcLn, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
			return fmt.Errorf("listen on %s (grpc_addr): %w", s.cfg.GRPCAddr, err)
		}
	}
	return nil
}

// executors builds the executors of the config's `executors:` list, and
// the parts of the jobs config that describe them.
func (s *Server) executors(ctx context.Context) (map[string]forge.Executor, jobs.Config, error) {
	execs := map[string]forge.Executor{}
	jcfg := jobs.Config{DefaultExecutor: s.cfg.DefaultExecutorName(), Kinds: map[string]string{}, Probes: map[string]jobs.Probe{}}
	for _, ec := range s.cfg.Executors {
		log := s.log.With("sys", "executor", "executor", ec.Name)
		state := filepath.Join(s.cfg.DataDir, "executors", ec.Name)
		jcfg.Kinds[ec.Name] = ec.Kind
		switch ec.Kind {
		case config.KindLocal:
			if ec.Name == "local" {
				state = filepath.Join(s.cfg.DataDir, "executor") // where it was before executors had names
			}
			ex, err := local.New(ctx, local.Config{Root: state, RunAs: s.cfg.JobUser(), Logger: log})
			if err != nil {
				return nil, jcfg, fmt.Errorf("executor %s: %w", ec.Name, err)
			}
			s.closers = append(s.closers, ex)
			execs[ec.Name] = ex
		case config.KindSlurm:
			c := ec.Slurm
			var env []string
			if c.SlurmConf != "" {
				env = append(env, "SLURM_CONF="+c.SlurmConf)
			}
			ex, err := slurm.New(ctx, slurm.Config{SharedDir: c.SharedDir, Partition: c.Partition, Account: c.Account, QOS: c.QOS,
				TimeLimit: c.TimeLimit, ExtraArgs: c.SbatchArgs, Env: env, Poll: c.Poll, Logger: log})
			if err != nil {
				return nil, jcfg, fmt.Errorf("executor %s: %w", ec.Name, err)
			}
			execs[ec.Name] = ex
			jcfg.Probes[ec.Name] = func(ctx context.Context) (*forge.Resources, error) {
				info, err := ex.Describe(ctx)
				if err != nil {
					return nil, err
				}
				return &info.Total, nil
			}
		case config.KindKubernetes:
			c := ec.Kubernetes
			rc, err := kube.RESTConfig(c.Kubeconfig)
			if err != nil {
				return nil, jcfg, fmt.Errorf("executor %s: %w", ec.Name, err)
			}
			ex, err := kube.New(kube.Config{Namespace: c.Namespace, Image: c.Image, ForgeImage: c.ForgeImage, ServerURL: c.ServerURL,
				TokenSecret: c.TokenSecret, ServiceAccount: c.ServiceAccount, NodeSelector: c.NodeSelector,
				ImagePullSecrets: c.ImagePullSecrets, LogDir: filepath.Join(state, "logs"), Logger: log}, rc)
			if err != nil {
				return nil, jcfg, fmt.Errorf("executor %s: %w", ec.Name, err)
			}
			s.closers = append(s.closers, ex)
			execs[ec.Name] = ex
			probe := rest.CopyConfig(rc)
			probe.Timeout = 5 * time.Second
			disco, err := discovery.NewDiscoveryClientForConfig(probe)
			if err != nil {
				return nil, jcfg, fmt.Errorf("executor %s: %w", ec.Name, err)
			}
			jcfg.Probes[ec.Name] = func(ctx context.Context) (*forge.Resources, error) {
				_, err := disco.ServerVersion()
				return nil, err
			}
		default:
			return nil, jcfg, fmt.Errorf("executor %s: unknown kind %q", ec.Name, ec.Kind)
		}
	}
	return execs, jcfg, nil
}
