// Package config is Forge's configuration: one struct, filled from defaults,
// then an optional YAML file, then FORGE_* environment variables, then flags.
// It is the only package that reads the environment.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/forge-mlops/forge/internal/queue"
)

// Server is the configuration of `forge server`.
type Server struct {
	Addr string `yaml:"addr"`
	// GRPCAddr serves the Open Inference Protocol over gRPC; empty: off.
	GRPCAddr string `yaml:"grpc_addr"`
	DataDir  string `yaml:"data_dir"`
	DB       string `yaml:"db"` // empty: SQLite in DataDir; or postgres://...
	// Blob is where blobs are stored: empty for the folder blobs/ in
	// DataDir, or s3://BUCKET/PREFIX (see S3).
	Blob string `yaml:"blob"`
	S3   S3     `yaml:"s3"`
	Auth bool   `yaml:"auth"`
	// AdminTokenFile holds the first admin token (e.g. a mounted
	// Kubernetes Secret); the server stores it at start as the token
	// named "admin".
	AdminTokenFile string `yaml:"admin_token_file"`
	// AdminToken is the same from FORGE_ADMIN_TOKEN; never from a file
	// or a flag, so it does not end up in a config or a process list.
	AdminToken string `yaml:"-"`
	LogLevel   string `yaml:"log_level"`
	// LogFormat is json or text.
	LogFormat string `yaml:"log_format"`
	HTTP      HTTP   `yaml:"http"`
	// ONNXRuntimeLib is the path of libonnxruntime.so (scripts/fetch-onnxruntime.sh).
	ONNXRuntimeLib string  `yaml:"onnxruntime_lib"`
	DuckDB         DuckDB  `yaml:"duckdb"`
	Serve          Serve   `yaml:"serve"`
	Monitor        Monitor `yaml:"monitor"`
	// Queues are the credentials and TLS settings of Kafka brokers and NATS
	// servers, keyed by HOST:PORT (or kafka://HOST:PORT, nats://HOST:PORT);
	// secrets are named by a variable or a file (see queue.Auth).
	Queues queue.Auths `yaml:"queues"`
	// Executors are the named places jobs run (see Executor); default: one
	// local executor named "local".
	Executors []Executor `yaml:"executors"`
	// DefaultExecutor runs the jobs that name none; empty: the first of
	// Executors.
	DefaultExecutor string `yaml:"default_executor"`
	// Artifacts are MLflow's artifact-root settings.
	Artifacts Artifacts `yaml:"artifacts"`
	// RunAs is the user (a name or a uid) local jobs run as; empty: see
	// JobUser.
	RunAs string `yaml:"run_as"`
}

// DefaultJobUser is who local jobs run as when the server runs as root and
// run_as is not set (scripts/setup.sh creates it).
const DefaultJobUser = "forge-job"

// JobUser is the user local jobs run as: run_as, or else DefaultJobUser for
// a server running as root (a job must not read the server's database and
// blobs), or else the server's own user (nobody else to switch to).
func (c *Server) JobUser() string {
	if c.RunAs == "" && os.Geteuid() == 0 {
		return DefaultJobUser
	}
	return c.RunAs
}

// DefaultExecutorName is the executor of jobs that name none.
func (c *Server) DefaultExecutorName() string {
	if c.DefaultExecutor != "" || len(c.Executors) == 0 {
		return c.DefaultExecutor
	}
	return c.Executors[0].Name
}

// Serve tunes the inference server.
type Serve struct {
	// IntraOpThreads is ONNX Runtime's threads per model run; 0: its default.
	IntraOpThreads int `yaml:"intra_op_threads"`
	// PayloadSampleRate is the share of inference requests (0 to 1) logged
	// with their responses to the dataset payloads.MODEL; 0: off.
	PayloadSampleRate float64 `yaml:"payload_sample_rate"`
}

// S3 is how an s3:// blob store is reached. Credentials come from
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or, when
// unset, ~/.aws/credentials and the instance role), never from the file.
type S3 struct {
	// Endpoint is the server's URL; empty: AWS S3.
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	PathStyle bool   `yaml:"path_style"`
	// CacheBytes bounds the local copies kept for DuckDB and ONNX
	// Runtime, which open files by path; default 10 GiB.
	CacheBytes int64 `yaml:"cache_bytes"`

	AccessKeyID     string `yaml:"-"`
	SecretAccessKey string `yaml:"-"`
	SessionToken    string `yaml:"-"`
}

// BlobS3 splits an s3://BUCKET/PREFIX blob setting; ok is false for the
// local folder.
func (c Server) BlobS3() (bucket, prefix string, ok bool) {
	rest, ok := strings.CutPrefix(c.Blob, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	return bucket, strings.Trim(prefix, "/"), true
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// HTTP holds the limits of the HTTP server.
type HTTP struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxUploadBytes bounds file uploads: artifacts, datasets, models, code.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// ReadTimeout and WriteTimeout bound each API request; uploads instead
	// may take as long as they need while no read waits longer than
	// UploadIdleTimeout, and may answer until WriteTimeout after their
	// last byte.
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	UploadIdleTimeout time.Duration `yaml:"upload_idle_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long a stopping server keeps serving, answering
	// not ready and closing each connection after its next answer, before
	// it stops accepting: time for load balancers and clients to move on.
	DrainDelay time.Duration `yaml:"drain_delay"`
}

// DuckDB bounds the query engine. MemoryLimit and Threads are the budget
// of all DuckDB work at once (queries, imports, profiles), shared equally
// among MaxConcurrent instances; MaxQueued more callers may wait for one
// (0: no limit), the rest are answered 503.
type DuckDB struct {
	MemoryLimit   string        `yaml:"memory_limit"`
	Threads       int           `yaml:"threads"`
	QueryTimeout  time.Duration `yaml:"query_timeout"`
	MaxConcurrent int           `yaml:"max_concurrent"`
	MaxQueued     int           `yaml:"max_queued"`
}

// Default returns the embedded defaults: everything on this machine.
func Default() Server {
	return Server{
		Addr:      "127.0.0.1:7700",
		GRPCAddr:  "127.0.0.1:7701",
		DataDir:   "./forge-data",
		LogLevel:  "info",
		LogFormat: "text",
		HTTP: HTTP{
			MaxBodyBytes:      64 << 20,
			MaxUploadBytes:    16 << 30,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      10 * time.Minute,
			UploadIdleTimeout: 60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   15 * time.Second,
			DrainDelay:        2 * time.Second,
		},
		DuckDB:         DuckDB{MemoryLimit: "4GB", Threads: 2, QueryTimeout: 5 * time.Minute, MaxConcurrent: 2, MaxQueued: 32},
		ONNXRuntimeLib: defaultONNXRuntimeLib(),
		Executors:      DefaultExecutors(),
		Artifacts:      Artifacts{Serve: true},
		Monitor:        Monitor{Interval: time.Minute, Window: "1h"},
	}
}

// defaultONNXRuntimeLib is where scripts/fetch-onnxruntime.sh puts the
// library: $FORGE_CACHE or ~/.cache/forge.
func defaultONNXRuntimeLib() string {
	cache := os.Getenv("FORGE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "forge")
	}
	return filepath.Join(cache, "onnxruntime", "1.30.0", "libonnxruntime.so.1")
}

// FieldError names the configuration field that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config: %s: %s", e.Field, e.Msg) }

// Validate reports the first bad field.
func (c *Server) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return &FieldError{"addr", fmt.Sprintf("%q is not host:port", c.Addr)}
	}
	if c.DataDir == "" {
		return &FieldError{"data_dir", "must not be empty"}
	}
	if c.DB != "" && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") && !strings.HasPrefix(c.DB, "sqlite:") {
		return &FieldError{"db", fmt.Sprintf("%q: want postgres://... or sqlite:PATH (empty for SQLite in the data dir)", redact(c.DB))}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &FieldError{"log_level", fmt.Sprintf("%q: want debug, info, warn or error", c.LogLevel)}
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return &FieldError{"log_format", fmt.Sprintf("%q: want json or text", c.LogFormat)}
	}
	if err := c.validateArtifacts(); err != nil {
		return err
	}
	if r := c.Serve.PayloadSampleRate; !(r >= 0 && r <= 1) {
		return &FieldError{"serve.payload_sample_rate", fmt.Sprintf("%v: want 0 to 1", r)}
	}
	if err := c.Monitor.validate(); err != nil {
		return err
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		return &FieldError{"http.max_body_bytes", "must be positive"}
	}
	if c.HTTP.MaxUploadBytes <= 0 {
		return &FieldError{"http.max_upload_bytes", "must be positive"}
	}
	if c.GRPCAddr != "" {
		if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
			return &FieldError{"grpc_addr", fmt.Sprintf("%q is not host:port", c.GRPCAddr)}
		}
	}
	for name, d := range map[string]time.Duration{
		"http.read_timeout": c.HTTP.ReadTimeout, "http.write_timeout": c.HTTP.WriteTimeout,
		"http.idle_timeout": c.HTTP.IdleTimeout, "http.shutdown_timeout": c.HTTP.ShutdownTimeout,
		"http.upload_idle_timeout": c.HTTP.UploadIdleTimeout,
		"duckdb.query_timeout":     c.DuckDB.QueryTimeout,
	} {
		if d <= 0 {
			return &FieldError{name, "must be a positive duration"}
		}
	}
	if c.DuckDB.Threads <= 0 {
		return &FieldError{"duckdb.threads", "must be positive"}
	}
	if c.Blob != "" {
		bucket, _, ok := c.BlobS3()
		if !ok || !bucketName.MatchString(bucket) {
			return &FieldError{"blob", fmt.Sprintf("%q: want s3://BUCKET/PREFIX (empty for the folder in the data dir)", c.Blob)}
		}
	}
	if e := c.S3.Endpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		return &FieldError{"s3.endpoint", fmt.Sprintf("%q: want http(s)://HOST[:PORT]", e)}
	}
	if c.S3.CacheBytes < 0 {
		return &FieldError{"s3.cache_bytes", "must not be negative"}
	}
	if c.DuckDB.MaxConcurrent <= 0 {
		return &FieldError{"duckdb.max_concurrent", "must be positive"}
	}
	if c.HTTP.DrainDelay < 0 {
		return &FieldError{"http.drain_delay", "must not be negative"}
	}
	if c.DuckDB.MaxQueued < 0 {
		return &FieldError{"duckdb.max_queued", "must not be negative"}
	}
	if c.RunAs != "" && !userName.MatchString(c.RunAs) {
		return &FieldError{"run_as", fmt.Sprintf("%q: want a user name or a uid", c.RunAs)}
	}
	return ValidateExecutors(c.Executors, c.DefaultExecutor)
}

// redact hides a password in a database URL.
func redact(s string) string {
	if at := strings.Index(s, "@"); at > 0 {
		if colon := strings.LastIndex(s[:at], ":"); colon > strings.Index(s, "://")+2 {
			return s[:colon+1] + "xxx" + s[at:]
		}
	}
	return s
}

// LoadFile merges a YAML file into c. Unknown fields are errors.
func (c *Server) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	if err := refuseSecrets(b); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file is fine: the decoder reports it as io.EOF.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %s", path, yamlError(b, err))
	}
	return nil
}

// refuseSecrets rejects a file that holds S3 credentials: they belong in
// the environment (or the instance role), not in a file that gets copied
// around and checked in.
func refuseSecrets(src []byte) error {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return nil // the decoder reports it
	}
	keys := map[int]string{}
	indexKeys(&doc, "", keys)
	for line, k := range keys {
		low := strings.ToLower(k)
		if strings.HasPrefix(low, "s3.") && (strings.Contains(low, "secret") || strings.Contains(low, "access_key") ||
			strings.Contains(low, "session_token") || strings.Contains(low, "password")) {
			return fmt.Errorf("%s (line %d): S3 credentials are not read from the config file; set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment, or use an instance role", k, line)
		}
	}
	return nil
}

var userName = regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})$`)

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlError turns yaml's multi-line "unmarshal errors" into one line that
// names each field by its dotted path, e.g. `http.read_timeout (line 4):
// cannot unmarshal !!str "soon" into time.Duration`.
func yamlError(src []byte, err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.ReplaceAll(err.Error(), "\n", " ")
	}
	keys := map[int]string{}
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) == nil {
		indexKeys(&doc, "", keys)
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		what := m[2]
		if f, ok := strings.CutPrefix(what, "field "); ok {
			if name, _, ok := strings.Cut(f, " not found"); ok {
				what = fmt.Sprintf("unknown field %q", name)
			}
		}
		if key := keys[line]; key != "" && !strings.HasPrefix(what, "unknown field") {
			msgs = append(msgs, fmt.Sprintf("%s (line %d): %s", key, line, what))
		} else {
			msgs = append(msgs, fmt.Sprintf("%s (line %d)", what, line))
		}
	}
	return strings.Join(msgs, "; ")
}

// indexKeys maps each line holding a mapping key to its dotted path.
func indexKeys(n *yaml.Node, prefix string, keys map[int]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexKeys(c, prefix, keys)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			keys[k.Line] = path
			indexKeys(v, path, keys)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			indexKeys(c, fmt.Sprintf("%s[%d]", prefix, i), keys)
		}
	}
}

// Env is how the environment is looked up; os.LookupEnv in production.
type Env func(string) (string, bool)

// LoadEnv applies FORGE_* variables, and reads the secrets the queues:
// section names (variables and files).
func (c *Server) LoadEnv(env Env) error {
	q, err := c.Queues.Resolve(env)
	if err != nil {
		return &FieldError{"queues", err.Error()}
	}
	c.Queues = q
	str := func(name string, dst *string) {
		if v, ok := env(name); ok {
			*dst = v
		}
	}
	str("FORGE_ADDR", &c.Addr)
	str("FORGE_GRPC_ADDR", &c.GRPCAddr)
	str("FORGE_DATA_DIR", &c.DataDir)
	str("FORGE_DB", &c.DB)
	str("FORGE_BLOB", &c.Blob)
	str("FORGE_S3_ENDPOINT", &c.S3.Endpoint)
	str("FORGE_S3_REGION", &c.S3.Region)
	str("AWS_ACCESS_KEY_ID", &c.S3.AccessKeyID)
	str("AWS_SECRET_ACCESS_KEY", &c.S3.SecretAccessKey)
	str("AWS_SESSION_TOKEN", &c.S3.SessionToken)
	if v, ok := env("FORGE_S3_PATH_STYLE"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &FieldError{"FORGE_S3_PATH_STYLE", fmt.Sprintf("%q is not a boolean", v)}
		}
		c.S3.PathStyle = b
	}
	str("FORGE_LOG_LEVEL", &c.LogLevel)
	str("FORGE_LOG_FORMAT", &c.LogFormat)
	str("FORGE_ONNXRUNTIME_LIB", &c.ONNXRuntimeLib)
	str("FORGE_DUCKDB_MEMORY_LIMIT", &c.DuckDB.MemoryLimit)
	str("FORGE_DEFAULT_EXECUTOR", &c.DefaultExecutor)
	str("FORGE_RUN_AS", &c.RunAs)
	str("FORGE_ADMIN_TOKEN", &c.AdminToken)
	str("FORGE_ADMIN_TOKEN_FILE", &c.AdminTokenFile)
	str("FORGE_DEFAULT_ARTIFACT_ROOT", &c.Artifacts.DefaultRoot)
	str("FORGE_ARTIFACTS_DESTINATION", &c.Artifacts.Destination)
	if v, ok := env("FORGE_SERVE_ARTIFACTS"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &FieldError{"FORGE_SERVE_ARTIFACTS", fmt.Sprintf("%q is not a boolean", v)}
		}
		c.Artifacts.Serve = b
	}
	if v, ok := env("FORGE_AUTH"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &FieldError{"FORGE_AUTH", fmt.Sprintf("%q is not a boolean", v)}
		}
		c.Auth = b
	}
	if v, ok := env("FORGE_MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return &FieldError{"FORGE_MAX_BODY_BYTES", fmt.Sprintf("%q is not an integer", v)}
		}
		c.HTTP.MaxBodyBytes = n
	}
	if v, ok := env("FORGE_DUCKDB_THREADS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return &FieldError{"FORGE_DUCKDB_THREADS", fmt.Sprintf("%q is not an integer", v)}
		}
		c.DuckDB.Threads = n
	}
	return nil
}

// RegisterFlags binds flags to c's fields; their defaults are c's current
// values, so parsing after LoadFile and LoadEnv gives flags the last word.
func (c *Server) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (host:port)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC inference address (host:port; empty: off)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "folder for the SQLite database and blobs")
	fs.StringVar(&c.DB, "db", c.DB, "metadata database: empty for SQLite in the data dir, or postgres://...")
	fs.StringVar(&c.Blob, "blob", c.Blob, "blob store: empty for the folder in the data dir, or s3://BUCKET/PREFIX")
	fs.StringVar(&c.S3.Endpoint, "s3-endpoint", c.S3.Endpoint, "S3 server URL (empty: AWS S3)")
	fs.StringVar(&c.S3.Region, "s3-region", c.S3.Region, "S3 region")
	fs.BoolVar(&c.S3.PathStyle, "s3-path-style", c.S3.PathStyle, "address buckets as HOST/BUCKET, not BUCKET.HOST")
	fs.BoolVar(&c.Auth, "auth", c.Auth, "require bearer tokens (see forge token create)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the first admin token (or env FORGE_ADMIN_TOKEN)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text")
	fs.Int64Var(&c.HTTP.MaxBodyBytes, "max-body-bytes", c.HTTP.MaxBodyBytes, "largest API request body accepted")
	fs.Int64Var(&c.HTTP.MaxUploadBytes, "max-upload-bytes", c.HTTP.MaxUploadBytes, "largest file upload accepted")
	fs.DurationVar(&c.HTTP.ShutdownTimeout, "shutdown-timeout", c.HTTP.ShutdownTimeout, "how long to drain requests on shutdown")
	fs.DurationVar(&c.HTTP.DrainDelay, "drain-delay", c.HTTP.DrainDelay, "how long to keep serving, not ready, before shutdown stops accepting")
	fs.StringVar(&c.ONNXRuntimeLib, "onnxruntime-lib", c.ONNXRuntimeLib, "path of libonnxruntime.so")
	fs.StringVar(&c.DefaultExecutor, "default-executor", c.DefaultExecutor, "executor of jobs that name none (default: the first of executors)")
	fs.StringVar(&c.RunAs, "run-as", c.RunAs, "user local jobs run as (default: "+DefaultJobUser+" when the server runs as root, else the server's user)")
}

// Load builds the server configuration from defaults, the YAML file named by
// --config (if any), the environment and the flags, in that order.
func Load(fs *flag.FlagSet, args []string, env Env) (Server, error) {
	c := Default()
	if path := configFlag(args); path != "" {
		if err := c.LoadFile(path); err != nil {
			return c, err
		}
	}
	if err := c.LoadEnv(env); err != nil {
		return c, err
	}
	fs.String("config", "", "YAML configuration file")
	c.RegisterFlags(fs)
	mlflow := c.registerMLflowFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := mlflow.apply(&c, fs); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// configFlag finds --config's value before the flags are parsed, because the
// file must be applied before the flags that override it.
func configFlag(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, p := range []string{"--config=", "-config="} {
			if strings.HasPrefix(a, p) {
				return strings.TrimPrefix(a, p)
			}
		}
		if (a == "--config" || a == "-config") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// Client is what client commands need to reach a server.
type Client struct {
	Server string
	Token  string
}

// LoadClient reads FORGE_SERVER and FORGE_TOKEN over the defaults.
func LoadClient(env Env) Client {
	c := Client{Server: "http://127.0.0.1:7700"}
	if v, ok := env("FORGE_SERVER"); ok && v != "" {
		c.Server = v
	}
	if v, ok := env("FORGE_TOKEN"); ok {
		c.Token = v
	}
	return c
}
