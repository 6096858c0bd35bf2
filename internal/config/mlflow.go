package config

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Artifacts is where runs' artifacts go, with MLflow's server settings
// (mlflow server --default-artifact-root, --artifacts-destination,
// --serve-artifacts / --no-serve-artifacts) and MLflow's defaults.
type Artifacts struct {
	// DefaultRoot is the artifact location of new experiments (each gets
	// ROOT/<experiment id>); empty: mlflow-artifacts:/ when Serve, the
	// proxy that stores them on this server. A local path is made absolute.
	DefaultRoot string `yaml:"default_root"`
	// Destination is the folder where the proxy keeps artifact content;
	// empty: the data dir's blobs folder (MLflow's default is ./mlartifacts).
	Destination string `yaml:"destination"`
	// Serve turns the artifact proxy (/api/2.0/mlflow-artifacts/) on; off,
	// it answers 503 as MLflow does and DefaultRoot is required.
	Serve bool `yaml:"serve"`
}

// ProxyRoot is the artifact root that means "through this server's proxy".
const ProxyRoot = "mlflow-artifacts:/"

// ArtifactRoot is the artifact location new experiments are made under.
func (c *Server) ArtifactRoot() string {
	if c.Artifacts.DefaultRoot == "" {
		return ProxyRoot
	}
	return c.Artifacts.DefaultRoot
}

// mlflowFlags are `mlflow server` flags that Forge takes, so that its
// command lines and deployment docs translate one to one. They are parsed
// into these and applied over the config after the flags.
type mlflowFlags struct {
	backendStoreURI string
	host            string
	port            int
	noServe         bool
}

// registerMLflowFlags binds MLflow's server flags; apply folds them into c.
func (c *Server) registerMLflowFlags(fs *flag.FlagSet) *mlflowFlags {
	m := &mlflowFlags{}
	fs.StringVar(&m.backendStoreURI, "backend-store-uri", "", "MLflow's name for --db: sqlite:///relative.db, sqlite:////absolute.db or postgresql://...")
	fs.StringVar(&m.host, "host", "", "MLflow's listen host (with --port; default: the host of --addr)")
	fs.IntVar(&m.port, "port", 0, "MLflow's listen port (with --host; default: the port of --addr)")
	fs.StringVar(&c.Artifacts.DefaultRoot, "default-artifact-root", c.Artifacts.DefaultRoot, "artifact location of new experiments (default: mlflow-artifacts:/, this server's proxy)")
	fs.StringVar(&c.Artifacts.Destination, "artifacts-destination", c.Artifacts.Destination, "local folder of the content store: the artifact proxy's files, and datasets' and models' (default: DATA_DIR/blobs)")
	fs.BoolVar(&c.Artifacts.Serve, "serve-artifacts", c.Artifacts.Serve, "serve the artifact proxy (/api/2.0/mlflow-artifacts/)")
	fs.BoolVar(&m.noServe, "no-serve-artifacts", false, "turn the artifact proxy off (then --default-artifact-root is required)")
	return m
}

func (m *mlflowFlags) apply(c *Server, fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["backend-store-uri"] {
		if set["db"] {
			return &FieldError{"backend-store-uri", "give --db or --backend-store-uri, not both"}
		}
		db, err := BackendStoreURI(m.backendStoreURI)
		if err != nil {
			return err
		}
		c.DB = db
	}
	if set["host"] || set["port"] {
		if set["addr"] {
			return &FieldError{"host", "give --addr or --host/--port, not both"}
		}
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return &FieldError{"addr", fmt.Sprintf("%q is not host:port", c.Addr)}
		}
		if set["host"] {
			host = m.host
		}
		if set["port"] {
			if m.port < 0 || m.port > 65535 {
				return &FieldError{"port", fmt.Sprintf("%d is not a port", m.port)}
			}
			port = strconv.Itoa(m.port)
		}
		c.Addr = net.JoinHostPort(host, port)
	}
	if m.noServe {
		if set["serve-artifacts"] && c.Artifacts.Serve {
			return &FieldError{"serve-artifacts", "give --serve-artifacts or --no-serve-artifacts, not both"}
		}
		c.Artifacts.Serve = false
	}
	return nil
}

// BackendStoreURI turns MLflow's --backend-store-uri into Forge's db
// setting. SQLAlchemy's sqlite:///x.db is the relative path x.db and
// sqlite:////x.db the absolute /x.db; PostgreSQL URIs pass as they are
// (postgresql+psycopg2:// loses its driver). MLflow's file store (./mlruns)
// and MySQL are refused: Forge keeps metadata in SQLite or PostgreSQL.
func BackendStoreURI(uri string) (string, error) {
	switch {
	case strings.HasPrefix(uri, "sqlite:///"):
		p := strings.TrimPrefix(uri, "sqlite:///")
		if p == "" || p == ":memory:" {
			return "", &FieldError{"backend-store-uri", fmt.Sprintf("%q: want a database file (sqlite:///relative.db or sqlite:////absolute.db)", uri)}
		}
		return "sqlite:" + p, nil
	case strings.HasPrefix(uri, "postgresql://"), strings.HasPrefix(uri, "postgres://"):
		return uri, nil
	case strings.HasPrefix(uri, "postgresql+"):
		if _, rest, ok := strings.Cut(uri, "://"); ok {
			return "postgresql://" + rest, nil
		}
	}
	return "", &FieldError{"backend-store-uri", fmt.Sprintf("%q: Forge keeps tracking data in SQLite or PostgreSQL: want sqlite:///PATH or postgresql://...", redact(uri))}
}

// validateArtifacts checks the artifact settings as MLflow's server does
// and makes the destination absolute. (The server makes a local default
// root absolute, with tracking.AbsoluteArtifactURI.)
func (c *Server) validateArtifacts() error {
	a := &c.Artifacts
	if !a.Serve && a.DefaultRoot == "" {
		// MLflow's words: its backend store here is never a local folder.
		return &FieldError{"artifacts.default_root", "Option 'default-artifact-root' is required when backend store is not local file based and artifact serving is disabled."}
	}
	if strings.HasPrefix(a.DefaultRoot, "mlflow-artifacts:") && !a.Serve {
		return &FieldError{"artifacts.default_root", fmt.Sprintf("%q needs the artifact proxy, which --no-serve-artifacts turns off", a.DefaultRoot)}
	}
	if d := a.Destination; d != "" {
		if p, ok := strings.CutPrefix(d, "file://"); ok {
			d = p
		}
		if u, err := url.Parse(d); err == nil && len(u.Scheme) > 1 {
			return &FieldError{"artifacts.destination", fmt.Sprintf("%q: Forge's artifact proxy stores content in a local folder: want a path", d)}
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return &FieldError{"artifacts.destination", err.Error()}
		}
		a.Destination = abs
	}
	return nil
}
