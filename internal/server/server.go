// Package server assembles the control plane: it opens the stores, mounts
// every API on one mux behind the shared middleware, and runs the HTTP server
// until its context ends, then drains and closes everything.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/auth"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/serve"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/version"
	"github.com/forge-mlops/forge/internal/webui"
)

// Server is a running control plane's parts.
type Server struct {
	cfg   config.Server
	log   *slog.Logger
	db    *sqlstore.DB
	blobs blobStore
	reg   *prometheus.Registry
	// Parts kept after mounting: serving follows the registry's aliases.
	registry *registry.Registry
	serve    *serve.Server
	deploy   *deploy.Controller
	ui       *webui.UI
	grpcLn   net.Listener
	mux      *http.ServeMux
	routes   []httpapi.Route
	tokens   *auth.Tokens
	openapi  []byte
	handler  http.Handler
	ready    atomic.Bool
	closers  []io.Closer
	ln       net.Listener
	// runners are the long-lived parts (the job scheduler ...), run beside
	// the HTTP server until shutdown.
	runners []part
	parts   *group
}

// blobStore is what the server's parts need of the blob store: both the
// local folder and S3 hand out files by path (S3 from its cache) and
// support garbage collection.
type blobStore interface {
	forge.BlobStore
	Path(d forge.Digest) (string, error)
	Touch(d forge.Digest) error
	RemoveIfOlder(d forge.Digest, t time.Time) (bool, int64, error)
	// TempDir is the local folder of half-written files.
	TempDir() string
}

// openBlobs opens the blob store cfg.Blob names: the folder blobs/ in the
// data dir, or an S3 bucket (with its local cache in the data dir).
func openBlobs(ctx context.Context, cfg config.Server) (blobStore, error) {
	bucket, prefix, ok := cfg.BlobS3()
	if !ok {
		dir := filepath.Join(cfg.DataDir, "blobs")
		if cfg.Artifacts.Destination != "" { // MLflow's --artifacts-destination
			dir = cfg.Artifacts.Destination
		}
		return blob.NewLocal(dir)
	}
	if cfg.Artifacts.Destination != "" {
		return nil, fmt.Errorf("config: artifacts destination %s and blob %s both name where blobs go: set one", cfg.Artifacts.Destination, cfg.Blob)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return blob.NewS3(ctx, blob.S3Options{Bucket: bucket, Prefix: prefix, Endpoint: cfg.S3.Endpoint, Region: cfg.S3.Region,
		PathStyle: cfg.S3.PathStyle, AccessKeyID: cfg.S3.AccessKeyID, SecretAccessKey: cfg.S3.SecretAccessKey,
		SessionToken: cfg.S3.SessionToken, CacheDir: filepath.Join(cfg.DataDir, "blob-cache"), CacheBytes: cfg.S3.CacheBytes})
}

// New opens the stores named by cfg and builds the routes. Nothing is
// created on disk before the configuration and the database check out.
func New(ctx context.Context, cfg config.Server, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Jobs run in their own folders: every path handed out must be absolute.
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	if cfg.DB == "" {
		if err := sqlstore.EnsureDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: cfg.DB, DataDir: cfg.DataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	if cfg.DB != "" {
		if err := sqlstore.EnsureDir(cfg.DataDir); err != nil {
			db.Close()
			return nil, err
		}
	}
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	// Bind now: a taken port fails fast, and jobs learn the server's real
	// URL (for MLFLOW_TRACKING_URI) even when the port was 0.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, log: log, db: db, blobs: blobs, ln: ln, reg: prometheus.NewRegistry(), mux: http.NewServeMux(), tokens: auth.New(db)}
	s.parts = newGroup(s.reg)
	s.closers = append(s.closers, db)
	if err := s.adminToken(ctx); err != nil {
		ln.Close()
		s.Close()
		return nil, err
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := s.assemble(ctx); err != nil {
		ln.Close()
		s.Close()
		return nil, err
	}
	// After assemble: every component has made its folders. A data dir the
	// server may write but not chmod (a volume owned by another user) still
	// works: jobs that run as the server's user could read it anyway.
	if err := lockDataDir(cfg.DataDir); err != nil {
		log.Warn("data dir left readable by others", "err", err)
	}
	return s, nil
}

// URL is where the server answers, e.g. http://127.0.0.1:7700.
func (s *Server) URL() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

func (s *Server) assemble(ctx context.Context) error {
	public := func(pattern string, h http.HandlerFunc) httpapi.Route {
		return httpapi.Route{Pattern: pattern, Handler: h, Access: httpapi.Public}
	}
	s.routes = append(s.routes,
		public("GET /health", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "OK")
		}),
		public("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if !s.ready.Load() {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			if down := s.parts.unready(); down != "" {
				http.Error(w, "restarting: "+down, http.StatusServiceUnavailable)
				return
			}
			if !s.deploy.Ready() {
				http.Error(w, "loading deployments", http.StatusServiceUnavailable)
				return
			}
			if err := s.db.Ping(ctx); err != nil {
				s.log.Warn("readiness: database ping failed", "err", err)
				http.Error(w, "database unavailable", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ready")
		}),
		// MLflow's server answers /version with its bare version string.
		public("GET /version", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, version.Version)
		}),
		httpapi.Route{Pattern: "GET /api/forge/v1/version", Access: httpapi.Read, Handler: httpapi.JSON(s.log, func(r *http.Request) (any, error) {
			return map[string]string{"version": version.Version, "commit": version.Commit(), "mlflow_api": version.MLflowCompat, "database": s.db.Dialect().String()}, nil
		})},
		httpapi.Route{Pattern: "GET /metrics", Access: httpapi.Read, Handler: promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})},
	)
	if err := s.mount(ctx); err != nil {
		return err
	}
	// MLflow's API again under /ajax-api/, where its web UI calls it.
	s.routes = httpapi.WithAjaxTwins(s.routes)
	// Unknown API paths get a JSON 404 in MLflow's shape, not the mux's
	// text; only to a caller who may read the API.
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusNotFound, httpapi.ErrorBody{ErrorCode: "ENDPOINT_NOT_FOUND",
			Message: fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path)})
	})
	s.routes = append(s.routes, httpapi.Route{Pattern: "/api/", Access: httpapi.Read, Handler: notFound},
		httpapi.Route{Pattern: "/ajax-api/", Access: httpapi.Read, Handler: notFound})

	alog := s.log.With("sys", "auth")
	s.routes = append(s.routes, s.tokens.Routes(s.cfg.Auth, alog)...)
	// The OpenAPI document of Forge's own API and the OIP REST routes,
	// from the route table itself.
	doc, err := httpapi.OpenAPI("Forge", "v1", append(s.routes, openAPIRoute), "/api/forge/", "/api/openapi.json", "/v2")
	if err != nil {
		return fmt.Errorf("build the OpenAPI document: %w", err)
	}
	s.openapi = doc
	s.routes = append(s.routes, httpapi.Route{Pattern: openAPIRoute.Pattern, Access: openAPIRoute.Access, Summary: openAPIRoute.Summary,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(s.openapi)
		})})
	edge := httpapi.Edge{MaxBody: s.cfg.HTTP.MaxBodyBytes, MaxUpload: s.cfg.HTTP.MaxUploadBytes,
		UploadIdle: s.cfg.HTTP.UploadIdleTimeout, WriteTimeout: s.cfg.HTTP.WriteTimeout, Log: s.log.With("sys", "http")}
	if s.cfg.Auth {
		edge.Guard = s.tokens.Guard(alog)
	}
	edge.Mount(s.mux, s.routes)

	metrics := httpapi.NewMetrics(s.reg)
	s.handler = httpapi.Chain(s.mux,
		httpapi.WithRequestID,
		httpapi.AccessLog(s.log.With("sys", "http")),
		httpapi.Recover(s.log),
		metrics.Wrap, httpapi.RejectUnclean(s.log))
	return nil
}

var openAPIRoute = httpapi.Route{Pattern: "GET /api/openapi.json", Access: httpapi.Public, Summary: "this OpenAPI document"}

// OpenAPI is the OpenAPI document served at /api/openapi.json.
func (s *Server) OpenAPI() []byte { return s.openapi }

// Routes are every route the server mounts, with the rules it applies to
// each: what a test of the edge walks.
func (s *Server) Routes() []httpapi.Route { return s.routes }

// adminToken stores the first admin token, from --admin-token-file or
// FORGE_ADMIN_TOKEN, as the token named "admin".
func (s *Server) adminToken(ctx context.Context) error {
	secret := s.cfg.AdminToken
	if s.cfg.AdminTokenFile != "" {
		b, err := os.ReadFile(s.cfg.AdminTokenFile)
		if err != nil {
			return fmt.Errorf("read the admin token (admin_token_file): %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		if s.cfg.Auth {
			if n, err := s.tokens.List(ctx); err == nil && len(n) == 0 {
				s.log.Warn("auth is on but there are no tokens: give the server a first admin token with --admin-token-file or FORGE_ADMIN_TOKEN")
			}
		}
		return nil
	}
	if err := s.tokens.EnsureAdmin(ctx, "admin", secret); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	return nil
}

// GRPCAddr is where the gRPC inference service listens, or "" when off.
func (s *Server) GRPCAddr() string {
	if s.grpcLn == nil {
		return ""
	}
	return s.grpcLn.Addr().String()
}

// Handler is the whole HTTP API, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// SetReady marks the server ready (Run does it once listening).
func (s *Server) SetReady() { s.ready.Store(true) }

// Run serves on cfg.Addr until ctx ends, then stops accepting, drains the
// requests in flight for at most the shutdown timeout, and closes the stores.
// ready, if not nil, receives the bound address once the server accepts.
func (s *Server) Run(ctx context.Context, ready chan<- string) error {
	ln := s.ln
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.HTTP.ReadTimeout,
		WriteTimeout:      s.cfg.HTTP.WriteTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	drain := httpapi.NewDrainer(srv, ln)
	errc := make(chan error, 2)
	go func() { errc <- drain.Serve() }()
	var gs *grpc.Server
	if s.grpcLn != nil {
		o := httpapi.GRPCOptions{Log: s.log.With("sys", "http"), Registerer: s.reg, MaxRecvBytes: s.cfg.HTTP.MaxBodyBytes}
		if s.cfg.Auth {
			o.Unary, o.Stream = s.tokens.GRPC(s.serve.GRPCAccess())
		}
		gs = httpapi.NewGRPCServer(o)
		s.serve.RegisterGRPC(gs)
		go func() { errc <- gs.Serve(s.grpcLn) }()
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, p := range s.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.parts.run(bg, p, s.log.Error)
		}()
	}
	s.SetReady()
	s.log.Info("forge server ready", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir, "db", s.db.Dialect().String(), "auth", s.cfg.Auth, "version", version.Version)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		stopBG()
		wg.Wait()
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Not ready first, while still serving as before, so that load
	// balancers stop sending; then stop accepting and drain.
	s.ready.Store(false)
	s.log.Info("shutting down: not ready, still serving", "drain_delay", s.cfg.HTTP.DrainDelay)
	time.Sleep(s.cfg.HTTP.DrainDelay)
	s.log.Info("shutting down: draining requests", "timeout", s.cfg.HTTP.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
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
	err := drain.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown timeout: closed the remaining connections")
		err = nil
	}
	stopBG()
	wg.Wait()
	return errors.Join(err, s.Close())
}

// Close releases the listener (if Run never took it) and the stores.
func (s *Server) Close() error {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.grpcLn != nil {
		s.grpcLn.Close()
	}
	var err error
	for i := len(s.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, s.closers[i].Close())
	}
	s.closers = nil
	return err
}
