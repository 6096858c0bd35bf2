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
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

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
	blobs *blob.Local
	reg   *prometheus.Registry
	// Parts kept after mounting: serving follows the registry's aliases.
	registry *registry.Registry
	serve    *serve.Server
	deploy   *deploy.Controller
	ui       *webui.UI
	grpcLn   net.Listener
	mux      *http.ServeMux
	handler  http.Handler
	ready    atomic.Bool
	closers  []io.Closer
	ln       net.Listener
	// runners are the long-lived parts (the job scheduler ...), run beside
	// the HTTP server until shutdown.
	runners []func(context.Context) error
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
	blobs, err := blob.NewLocal(filepath.Join(cfg.DataDir, "blobs"))
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
	s := &Server{cfg: cfg, log: log, db: db, blobs: blobs, ln: ln, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	s.closers = append(s.closers, db)
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := s.routes(ctx); err != nil {
		ln.Close()
		s.Close()
		return nil, err
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

func (s *Server) routes(ctx context.Context) error {
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "OK")
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !s.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
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
	})
	// MLflow's server answers /version with its bare version string.
	s.mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, version.Version)
	})
	s.mux.Handle("GET /api/forge/v1/version", httpapi.JSON(s.log, func(r *http.Request) (any, error) {
		return map[string]string{"version": version.Version, "commit": version.Commit(), "mlflow_api": version.MLflowCompat, "database": s.db.Dialect().String()}, nil
	}))
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	if err := s.mount(ctx); err != nil {
		return err
	}
	// Unknown API paths get a JSON 404 in MLflow's shape, not the mux's text.
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusNotFound, httpapi.ErrorBody{ErrorCode: "ENDPOINT_NOT_FOUND",
			Message: fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path)})
	})

	metrics := httpapi.NewMetrics(s.reg)
	mws := []httpapi.Middleware{
		httpapi.WithRequestID,
		httpapi.AccessLog(s.log.With("sys", "http")),
		httpapi.Recover(s.log),
	}
	if s.cfg.Auth {
		mws = append(mws, auth.New(s.db).Middleware(s.log, append([]string{"/health", "/readyz", "/version"}, s.ui.Paths()...)...))
	}
	mws = append(mws, metrics.Wrap, httpapi.RejectUnclean(s.log), httpapi.LimitBody(s.bodyLimit, s.log), s.deploy.GateReady)
	s.handler = httpapi.Chain(s.mux, mws...)
	return nil
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
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var gs *grpc.Server
	if s.grpcLn != nil {
		gs = grpc.NewServer(grpc.MaxRecvMsgSize(int(min(s.cfg.HTTP.MaxBodyBytes, 1<<31-1))))
		s.serve.RegisterGRPC(gs)
		go func() { errc <- gs.Serve(s.grpcLn) }()
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, run := range s.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(bg); err != nil && bg.Err() == nil {
				s.log.Error("background part stopped", "err", err)
			}
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
	s.ready.Store(false)
	s.log.Info("shutting down: draining requests", "timeout", s.cfg.HTTP.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if gs != nil {
		gs.GracefulStop()
	}
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown timeout: closing remaining connections")
		srv.Close()
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
