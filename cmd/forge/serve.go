package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/ort"
	"github.com/forge-mlops/forge/internal/queue/publish"
	"github.com/forge-mlops/forge/internal/runtime/onnxrt"
	"github.com/forge-mlops/forge/internal/runtime/process"
	"github.com/forge-mlops/forge/internal/runtime/xgbrt"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/version"
)

func init() {
	register("serve", "run a stateless inference server (Open Inference Protocol): a model repository, or a Forge server's deployments", cmdServe)
}

// cmdServe runs the inference server on its own. Models come from a local
// repository folder (--model-repo), or from a Forge server whose
// deployments it follows (--server): it keeps no state, so any number of
// replicas behind a load balancer give the same answers.
func cmdServe(ctx context.Context, c *cli, args []string) error {
	cfg := config.Default()
	if err := cfg.LoadEnv(c.env); err != nil {
		return err
	}
	fs := newFlags(c, "serve")
	repo := fs.String("model-repo", "", "model repository folder: NAME/VERSION/model.onnx or model.json")
	poll := fs.Duration("poll", 0, "with --model-repo: scan the folder this often, loading new NAME/VERSION folders and unloading removed ones (0: only at start; POST /v2/repository/models/NAME/load still works)")
	server := fs.String("server", "", "follow the deployments of the Forge server at this URL")
	token := fs.String("token", config.LoadClient(c.env).Token, "access token for --server (env FORGE_TOKEN)")
	requireAuth := fs.Bool("auth", false, "require callers' tokens (REST and gRPC), checked with --server; answers are kept 30s")
	cacheDir := fs.String("cache-dir", "", "where models downloaded from --server are kept (default: the user cache folder)")
	addr := fs.String("addr", "127.0.0.1:8000", "REST listen address (host:port)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:8001", "gRPC listen address (host:port); empty to disable")
	maxBatch := fs.Int("max-batch-size", 0, "dynamic batching: most rows per model run (0 or 1: off)")
	queueDelay := fs.Duration("max-queue-delay", 0, "dynamic batching: how long a batch waits for more requests")
	queueSize := fs.Int("queue-size", 1024, "dynamic batching: requests waiting per model before 503")
	workers := fs.Int("batch-workers", 1, "dynamic batching: batches running at once per model")
	threads := fs.Int("intra-op-threads", 0, "ONNX Runtime threads per model run (0: its default)")
	fs.StringVar(&cfg.ONNXRuntimeLib, "onnxruntime-lib", cfg.ONNXRuntimeLib, "path of libonnxruntime.so (env FORGE_ONNXRUNTIME_LIB)")
	fs.Int64Var(&cfg.HTTP.MaxBodyBytes, "max-body-bytes", cfg.HTTP.MaxBodyBytes, "largest request body accepted")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if (*repo == "") == (*server == "") {
		return usageError{"forge serve needs one of --model-repo DIR or --server URL"}
	}
	if *requireAuth && *server == "" {
		return usageError{"forge serve --auth checks tokens with the Forge server: it needs --server URL"}
	}
	var remote *auth.Remote
	if *requireAuth {
		remote = &auth.Remote{Server: *server, TTL: 30 * time.Second}
	}
	log := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel).With("sys", "serve")
	if _, set := os.LookupEnv("GOGC"); !set {
		// The replica's Go heap is small (models live in ONNX Runtime's C
		// memory) and nearly all garbage is per request, so the default
		// target (collect at twice the live heap) collects dozens of times
		// a second under load. At 5x: about 5% more requests/s on the
		// serving benchmark, for a few MB more heap. GOGC still overrides.
		debug.SetGCPercent(400)
	}
	lib := cfg.ONNXRuntimeLib
	if lib == "" {
		if home, err := os.UserHomeDir(); err == nil {
			lib = ort.CachedLibraryPath(filepath.Join(home, ".cache", "forge"))
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Each replica runs its predictors in its own folder.
	predictors, err := os.MkdirTemp("", "forge-serve-predictors-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(predictors)
	srv := serve.New(serve.Options{
		Runtimes: map[string]forge.Runtime{
			"onnx":    onnxrt.New(lib, ort.Options{IntraOpThreads: *threads}),
			"xgboost": xgbrt.Runtime{},
			// Format other: the version's own predictor, run as a child process.
			"other": &process.Runtime{WorkDir: predictors, Log: log.With("sys", "predictor")},
		},
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		Version:      version.Version,
	}, log, reg)
	defer srv.Close()

	var repository *serve.Repository
	if *repo != "" {
		batch := serve.BatchOptions{MaxBatchSize: *maxBatch, MaxQueueDelay: *queueDelay, QueueSize: *queueSize, Workers: *workers}
		repository = srv.NewRepository(*repo, serve.LoadOptions{Batch: batch})
	}
	mux := http.NewServeMux()
	edge := httpapi.Edge{MaxBody: cfg.HTTP.MaxBodyBytes, MaxUpload: cfg.HTTP.MaxUploadBytes,
		UploadIdle: cfg.HTTP.UploadIdleTimeout, WriteTimeout: cfg.HTTP.WriteTimeout, Log: log.With("sys", "http")}
	if remote != nil {
		edge.Guard = remote.Guard(log.With("sys", "auth"))
	}
	routes := append(srv.Routes(),
		httpapi.Route{Pattern: "GET /metrics", Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), Access: httpapi.Read})
	if repository != nil {
		routes = append(routes, repository.Routes()...)
	}
	edge.Mount(mux, routes)
	var handler http.Handler = mux
	var follow *deploy.Controller
	if *server != "" {
		dir := *cacheDir
		if dir == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				return fmt.Errorf("find a cache folder (set --cache-dir): %w", err)
			}
			dir = filepath.Join(base, "forge", "serve")
		}
		dlog := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel).With("sys", "deploy")
		src := &deploy.Remote{Client: api.NewClient(*server, *token), CacheDir: dir, Log: dlog}
		if store, err := replicaBlobs(ctx, cfg, dir, dlog); err != nil {
			return err
		} else if store != nil {
			src.Blobs = store
		}
		follow = deploy.NewController(src, srv, dlog)
		pubMetrics := publish.NewMetrics(reg)
		follow.OpenSink = func(name, url string) (deploy.Sink, error) {
			return publish.Open(url, name, cfg.Queues, pubMetrics, publish.Options{Log: dlog})
		}
	}
	// The same middleware as forge server's: a replica's requests have ids,
	// an access log and HTTP metrics too.
	handler = httpapi.Chain(handler, httpapi.WithRequestID, httpapi.AccessLog(log.With("sys", "http")), httpapi.Recover(log),
		httpapi.NewMetrics(reg).Wrap)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: cfg.HTTP.IdleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	drain := httpapi.NewDrainer(hs, ln)
	errc := make(chan error, 3)
	go func() { errc <- drain.Serve() }()
	var gs *grpc.Server
	if *grpcAddr != "" {
		gln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			hs.Close()
			return fmt.Errorf("listen on %s: %w", *grpcAddr, err)
		}
		// The same gRPC edge as forge server's: request ids, access log,
		// metrics, recovery, error rendering, then access.
		o := httpapi.GRPCOptions{Log: log.With("sys", "http"), Registerer: reg, MaxRecvBytes: cfg.HTTP.MaxBodyBytes}
		if remote != nil {
			o.Unary, o.Stream = remote.GRPC(srv.GRPCAccess())
		}
		gs = httpapi.NewGRPCServer(o)
		srv.RegisterGRPC(gs)
		go func() { errc <- gs.Serve(gln) }()
		log.Info("gRPC listening", "addr", gln.Addr().String())
	}
	// Listening before the models load lets probes see live-but-not-ready.
	log.Info("forge serve listening", "addr", ln.Addr().String(), "model_repo", *repo, "server", *server, "version", version.Version)
	if follow != nil {
		// Batching comes from each deployment's settings.
		go func() { errc <- follow.Run(ctx) }()
	} else {
		if err := repository.Scan(ctx); err != nil {
			log.Warn("some models did not load; serving the others", "err", err)
		}
		if *poll > 0 {
			go repository.Run(ctx, *poll)
		}
	}

	select {
	case err := <-errc:
		if ctx.Err() == nil {
			return fmt.Errorf("serve: %w", err)
		}
	case <-ctx.Done():
		// As forge server does: readiness goes false first and serving
		// goes on for the drain delay, so balancers stop sending before
		// the listener closes.
		srv.Stop()
		log.Info("shutting down: not ready, still serving", "drain_delay", cfg.HTTP.DrainDelay)
		time.Sleep(cfg.HTTP.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if gs != nil {
		// GracefulStop waits for every RPC, a stream too, without a bound.
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			gs.Stop()
		}
	}
	if err := drain.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// replicaBlobs opens the server's object store (FORGE_BLOB=s3://..., the
// FORGE_S3_* settings and AWS credentials), when it is named, for a
// replica to read model files from directly. When it cannot be used (no
// credentials, or ones the store refuses) the replica reads them through
// the server, as with no FORGE_BLOB, and says so in its log.
func replicaBlobs(ctx context.Context, cfg config.Server, cacheDir string, log *slog.Logger) (*blob.S3, error) {
	bucket, prefix, ok := cfg.BlobS3()
	if !ok {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := blob.NewS3(ctx, blob.S3Options{Bucket: bucket, Prefix: prefix, Endpoint: cfg.S3.Endpoint, Region: cfg.S3.Region,
		PathStyle: cfg.S3.PathStyle, AccessKeyID: cfg.S3.AccessKeyID, SecretAccessKey: cfg.S3.SecretAccessKey,
		SessionToken: cfg.S3.SessionToken, CacheDir: filepath.Join(cacheDir, "blob-cache"), CacheBytes: cfg.S3.CacheBytes,
		ReadOnly: true})
	if err != nil {
		log.Warn("model files are read through the server: the object store cannot be used", "blob", cfg.Blob, "err", err)
		return nil, nil
	}
	log.Info("model files are read from the object store", "blob", cfg.Blob)
	return s, nil
}
