// Package registry is Forge's model registry: registered models, their
// numbered versions, tags, aliases and MLflow's legacy stages, behind
// MLflow's model-registry REST API 2.0 and Forge's own upload, download and
// watch endpoints.
//
// A version's files are copied into the content-addressed blob store when it
// is registered and the registry keeps its own (path, digest, size) list, so
// a version never depends on the run it came from. ONNX and XGBoost files are
// parsed at registration and their signature recorded; a file that claims to
// be one of them and does not parse is refused before anything is stored.
// Every change that a watcher cares about (a version registered or deleted,
// an alias moved or deleted) is written to an events table in the same
// transaction, so followers on other replicas see it in commit order.
package registry

import (
	"context"
	"log/slog"
	"os"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/longpoll"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Formats a version can have.
const (
	FormatONNX    = "onnx"
	FormatXGBoost = "xgboost"
	FormatOther   = "other" // servable only by a process runtime
)

// Stages are MLflow's legacy stages.
const (
	StageNone       = "None"
	StageStaging    = "Staging"
	StageProduction = "Production"
	StageArchived   = "Archived"
)

// Statuses of a version. Registration is synchronous, so a version is READY
// when it exists; FAILED_REGISTRATION is kept for MLflow clients that set it.
const (
	StatusReady  = "READY"
	StatusFailed = "FAILED_REGISTRATION"
)

// File is one file of a model version (or of a run's artifacts).
type File struct {
	Path   string       `json:"path"` // slash-separated, relative
	Digest forge.Digest `json:"digest"`
	Size   int64        `json:"size"`
}

// RunArtifacts lists a run's artifact files. The tracking package implements
// it; versions created from `runs:/RUN/PATH` sources resolve through it.
type RunArtifacts interface {
	// ListRunArtifacts returns every file at or under path (a file or a
	// folder, "" for all), recursively, with Path relative to the run's
	// artifact root. An unknown run is a NotFound error.
	ListRunArtifacts(ctx context.Context, runID, path string) ([]File, error)
}

// RunArtifactsFunc adapts a function to RunArtifacts, so the server can wire
// the tracking store in without either package importing the other.
type RunArtifactsFunc func(ctx context.Context, runID, path string) ([]File, error)

func (f RunArtifactsFunc) ListRunArtifacts(ctx context.Context, runID, path string) ([]File, error) {
	return f(ctx, runID, path)
}

// Tag is a key and value on a model or a version.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Alias points a name at one version of a model.
type Alias struct {
	Alias   string `json:"alias"`
	Version int64  `json:"version"`
}

// Model is a registered model.
type Model struct {
	Name                 string
	Description          string
	CreationTimestamp    int64 // ms since the epoch
	LastUpdatedTimestamp int64
	Tags                 []Tag     // sorted by key
	Aliases              []Alias   // sorted by alias
	LatestVersions       []Version // the newest version in each stage
}

// Version is one version of a registered model.
type Version struct {
	id, modelID          int64
	Name                 string
	Version              int64
	Description          string
	Source               string
	RunID                string
	RunLink              string
	Status               string
	StatusMessage        string
	Stage                string
	Format               string
	ModelFile            string     // the file the format was read from; "" for other
	Signature            *Signature // nil for format other
	CreationTimestamp    int64
	LastUpdatedTimestamp int64
	Tags                 []Tag
	Aliases              []string
}

// Signature is what a served model takes and returns, in Open Inference
// Protocol terms, plus what the format itself records.
type Signature struct {
	Inputs  []Tensor     `json:"inputs"`
	Outputs []Tensor     `json:"outputs"`
	ONNX    *ONNXInfo    `json:"onnx,omitempty"`
	XGBoost *XGBoostInfo `json:"xgboost,omitempty"`
}

// Tensor is one input or output: an OIP datatype (FP32 ...) and a shape with
// -1 for a dynamic dimension.
type Tensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ONNXInfo is what an ONNX file says about itself.
type ONNXInfo struct {
	IRVersion int64  `json:"ir_version"`
	Opset     int64  `json:"opset"`
	Producer  string `json:"producer,omitempty"`
}

// XGBoostInfo is what an XGBoost JSON model says about itself.
type XGBoostInfo struct {
	Objective   string `json:"objective"`
	NumFeatures int    `json:"num_features"`
	NumClasses  int    `json:"num_classes"`
	NumTrees    int    `json:"num_trees"`
	Version     string `json:"xgboost_version,omitempty"`
}

// Registry is the model registry over a metadata database and a blob store.
type Registry struct {
	db     *sqlstore.DB
	blobs  forge.BlobStore
	runs   RunArtifacts
	log    *slog.Logger
	notify *longpoll.Notifier
	// TempDir is where uploads are spooled while they are validated; the
	// system's temp dir when empty.
	TempDir string
}

// New returns a registry. runs may be nil, in which case versions can only
// be created from uploaded files.
func New(db *sqlstore.DB, blobs forge.BlobStore, runs RunArtifacts, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{db: db, blobs: blobs, runs: runs, log: log.With("sys", "registry"), notify: longpoll.New()}
}

func (r *Registry) tempDir() string {
	if r.TempDir != "" {
		return r.TempDir
	}
	return os.TempDir()
}

// BlobRefs lists the blobs of every model version's files (blobgc.Referrer).
func (r *Registry) BlobRefs(ctx context.Context, keep func(forge.Digest)) error {
	return r.db.EachString(ctx, "SELECT DISTINCT digest FROM model_version_files", func(d string) { keep(forge.Digest(d)) })
}
