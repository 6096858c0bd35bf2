// Package tracking is experiment tracking with MLflow's model and rules:
// experiments, runs, and the params, metrics (full history), tags and dataset
// inputs that runs log, stored in the metadata database and searched with
// MLflow's filter grammar compiled to SQL. http.go serves it as MLflow's REST
// API 2.0, so the mlflow client works against Forge unchanged.
package tracking

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Lifecycle stages and run statuses, as MLflow spells them.
const (
	Active  = "active"
	Deleted = "deleted"
)

var runStatuses = map[string]bool{"RUNNING": true, "SCHEDULED": true, "FINISHED": true, "FAILED": true, "KILLED": true}

// Terminal reports whether a run status is final.
func Terminal(status string) bool {
	return status == "FINISHED" || status == "FAILED" || status == "KILLED"
}

// MLflow's limits (mlflow/utils/validation.py).
const (
	MaxMetricsPerBatch  = 1000
	MaxParamsPerBatch   = 100
	MaxTagsPerBatch     = 100
	MaxEntitiesPerBatch = 1000
	MaxKeyLength        = 250
	MaxParamValueLength = 6000
	MaxTagValueLength   = 8000
	MaxExperimentName   = 500
	DefaultMaxResults   = 1000
	MaxResultsLimit     = 50000
	DefaultExperimentID = "0"
)

// Experiment is a named group of runs.
type Experiment struct {
	ID               string
	Name             string
	ArtifactLocation string
	LifecycleStage   string
	CreationTime     int64
	LastUpdateTime   int64
	Tags             []KV
}

// KV is a param or a tag.
type KV struct{ Key, Value string }

// Metric is one point of a metric's history.
type Metric struct {
	Key       string
	Value     float64
	Timestamp int64
	Step      int64
	RunID     string // set by bulk history reads
}

// DatasetInput is a dataset a run used.
type DatasetInput struct {
	Name, Digest, SourceType, Source, Schema, Profile string
	Tags                                              []KV // e.g. mlflow.data.context
}

// Run is a run with everything it logged (latest metric values only).
type Run struct {
	ID             string
	ExperimentID   string
	Name           string
	UserID         string
	Status         string
	StartTime      int64
	EndTime        int64 // 0 while unset
	LifecycleStage string
	ArtifactURI    string
	Params         []KV
	Tags           []KV
	Metrics        []Metric
	Inputs         []DatasetInput
}

// Store is the tracking store over the metadata database.
type Store struct {
	db *sqlstore.DB
	// artifactRoot is where new experiments' artifacts go (ROOT/<id>) and
	// workDir what a relative artifact_location is joined to.
	artifactRoot, workDir string

	prepOnce sync.Once
	prep     *statements // nil if preparing failed: plain statements then

	pointsOnly bool // buckets from the points, never the rollups: a benchmark's baseline
}

// New returns the tracking store.
func New(db *sqlstore.DB) *Store { return &Store{db: db, artifactRoot: "mlflow-artifacts:/"} }

// SetArtifactRoot sets the artifact root of new experiments (MLflow's
// --default-artifact-root; a local path is made absolute against workDir)
// and the folder a relative artifact_location is resolved in.
func (s *Store) SetArtifactRoot(root, workDir string) error {
	if root != "" {
		abs, err := AbsoluteArtifactURI(root, workDir)
		if err != nil {
			return err
		}
		s.artifactRoot = abs
	}
	s.workDir = workDir
	return nil
}

func newRunID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// keyPattern is MLflow's rule for param, metric and tag names.
var keyPattern = regexp.MustCompile(`^[/\w.\- :]*$`)

func validateKey(kind, key string) error {
	if key == "" {
		return forge.Errorf(forge.Invalid, "missing value for required parameter '%s key'", kind)
	}
	if len(key) > MaxKeyLength {
		return forge.Errorf(forge.Invalid, "%s key '%s...' had length %d, which exceeded length limit of %d", kind, key[:20], len(key), MaxKeyLength)
	}
	if !keyPattern.MatchString(key) {
		return forge.Errorf(forge.Invalid, "invalid %s name: '%s'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)", kind, key)
	}
	if strings.Contains(key, "..") || strings.HasPrefix(key, "/") || strings.Contains(key, "//") {
		return forge.Errorf(forge.Invalid, "invalid %s name: '%s': it may not contain '..', '//' or start with '/'", kind, key)
	}
	return nil
}

func validateParam(p KV) error {
	if err := validateKey("param", p.Key); err != nil {
		return err
	}
	if len(p.Value) > MaxParamValueLength {
		return forge.Errorf(forge.Invalid, "param value '%s...' had length %d, which exceeded length limit of %d", p.Value[:20], len(p.Value), MaxParamValueLength)
	}
	return nil
}

func validateTag(t KV) error {
	if err := validateKey("tag", t.Key); err != nil {
		return err
	}
	if len(t.Value) > MaxTagValueLength {
		return forge.Errorf(forge.Invalid, "tag value '%s...' had length %d, which exceeded length limit of %d", t.Value[:20], len(t.Value), MaxTagValueLength)
	}
	return nil
}

func validateMetric(m Metric) error {
	return validateKey("metric", m.Key)
}

func validateBatch(metrics []Metric, params, tags []KV) error {
	switch {
	case len(metrics) > MaxMetricsPerBatch:
		return forge.Errorf(forge.Invalid, "a batch logging request can contain at most %d metrics. Got %d metrics. Please split up metrics across multiple requests and try again.", MaxMetricsPerBatch, len(metrics))
	case len(params) > MaxParamsPerBatch:
		return forge.Errorf(forge.Invalid, "a batch logging request can contain at most %d params. Got %d params. Please split up params across multiple requests and try again.", MaxParamsPerBatch, len(params))
	case len(tags) > MaxTagsPerBatch:
		return forge.Errorf(forge.Invalid, "a batch logging request can contain at most %d tags. Got %d tags. Please split up tags across multiple requests and try again.", MaxTagsPerBatch, len(tags))
	case len(metrics)+len(params)+len(tags) > MaxEntitiesPerBatch:
		return forge.Errorf(forge.Invalid, "a batch logging request can contain at most %d total entities (metrics, params and tags). Got %d.", MaxEntitiesPerBatch, len(metrics)+len(params)+len(tags))
	}
	seen := map[string]string{}
	for _, p := range params {
		if err := validateParam(p); err != nil {
			return err
		}
		if v, ok := seen[p.Key]; ok && v != p.Value {
			return forge.Errorf(forge.Invalid, "duplicate parameter keys have been submitted: '%s' with different values", p.Key)
		}
		seen[p.Key] = p.Value
	}
	for _, t := range tags {
		if err := validateTag(t); err != nil {
			return err
		}
	}
	for _, m := range metrics {
		if err := validateMetric(m); err != nil {
			return err
		}
	}
	return nil
}

// storedValue splits a metric value into what SQL can hold: SQLite turns
// NaN into NULL, so NaN is kept as a flag, as MLflow's own schema does.
func storedValue(v float64) (float64, bool) {
	if math.IsNaN(v) {
		return 0, true
	}
	return v, false
}

func loadedValue(v float64, isNaN bool) float64 {
	if isNaN {
		return math.NaN()
	}
	return v
}

func parseExperimentID(id string) (int64, error) {
	var n int64
	if _, err := fmt.Sscan(id, &n); err != nil || fmt.Sprint(n) != id {
		return 0, httpapi.ExperimentNotFound(id) // MLflow: 404, as for any id it does not have
	}
	return n, nil
}
