package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The MLflow REST API 2.0 wire types, with MLflow's JSON field names.

// Float is a double as MLflow's protobuf JSON carries it: a number, or the
// strings "NaN", "Infinity" and "-Infinity" for the values JSON cannot hold.
type Float float64

func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *Float) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	switch s {
	case "NaN", "nan":
		*f = Float(math.NaN())
		return nil
	case "Infinity", "inf", "+Infinity":
		*f = Float(math.Inf(1))
		return nil
	case "-Infinity", "-inf":
		*f = Float(math.Inf(-1))
		return nil
	case "null":
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", string(b))
	}
	*f = Float(v)
	return nil
}

// Int64 is an int64 that also accepts a JSON string, as protobuf JSON (and
// query strings) give them.
type Int64 int64

func (n *Int64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	b = bytes.Trim(b, `"`)
	if len(b) == 0 {
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%s is out of the int64 range", string(b))
	}
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != math.Trunc(f) {
			return fmt.Errorf("%s is not an integer", string(b))
		}
		// 2^63 is exact in a float64; int64 of anything outside is undefined.
		if f < -(1<<63) || f >= 1<<63 {
			return fmt.Errorf("%s is out of the int64 range", string(b))
		}
		v = int64(f)
	}
	*n = Int64(v)
	return nil
}

// KV is a param or a tag.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Experiment is MLflow's Experiment.
type Experiment struct {
	ExperimentID     string `json:"experiment_id"`
	Name             string `json:"name"`
	ArtifactLocation string `json:"artifact_location"`
	LifecycleStage   string `json:"lifecycle_stage"`
	LastUpdateTime   int64  `json:"last_update_time"`
	CreationTime     int64  `json:"creation_time"`
	Tags             []KV   `json:"tags,omitempty"`
}

// Metric is one metric point.
type Metric struct {
	Key       string `json:"key"`
	Value     Float  `json:"value"`
	Timestamp Int64  `json:"timestamp"`
	Step      Int64  `json:"step"`
	RunID     string `json:"run_id,omitempty"`
}

// RunInfo is MLflow's RunInfo.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunUUID        string `json:"run_uuid"`
	RunName        string `json:"run_name"`
	ExperimentID   string `json:"experiment_id"`
	UserID         string `json:"user_id"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time"`
	EndTime        int64  `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// RunData is what a run logged.
type RunData struct {
	Metrics []Metric `json:"metrics,omitempty"`
	Params  []KV     `json:"params,omitempty"`
	Tags    []KV     `json:"tags,omitempty"`
}

// InputDataset is MLflow's Dataset: what a run logged as an input.
type InputDataset struct {
	Name       string `json:"name"`
	Digest     string `json:"digest"`
	SourceType string `json:"source_type"`
	Source     string `json:"source"`
	Schema     string `json:"schema,omitempty"`
	Profile    string `json:"profile,omitempty"`
}

// DatasetInput is a dataset with the tags of its use (mlflow.data.context).
type DatasetInput struct {
	Tags    []KV         `json:"tags,omitempty"`
	Dataset InputDataset `json:"dataset"`
}

// RunInputs holds a run's dataset inputs.
type RunInputs struct {
	DatasetInputs []DatasetInput `json:"dataset_inputs,omitempty"`
}

// Run is MLflow's Run.
type Run struct {
	Info   RunInfo   `json:"info"`
	Data   RunData   `json:"data"`
	Inputs RunInputs `json:"inputs"`
}

// FileInfo is an artifact listing entry.
type FileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size,omitempty"`
}

// Requests and responses.

type CreateExperimentRequest struct {
	Name             string `json:"name"`
	ArtifactLocation string `json:"artifact_location"`
	Tags             []KV   `json:"tags"`
}

type CreateExperimentResponse struct {
	ExperimentID string `json:"experiment_id"`
}

type ExperimentIDRequest struct {
	ExperimentID string `json:"experiment_id"`
}

type GetExperimentByNameRequest struct {
	ExperimentName string `json:"experiment_name"`
}

type ExperimentResponse struct {
	Experiment Experiment `json:"experiment"`
}

type UpdateExperimentRequest struct {
	ExperimentID string `json:"experiment_id"`
	NewName      string `json:"new_name"`
}

type SetExperimentTagRequest struct {
	ExperimentID string `json:"experiment_id"`
	Key          string `json:"key"`
	Value        string `json:"value"`
}

type SearchExperimentsRequest struct {
	MaxResults Int64    `json:"max_results"`
	PageToken  string   `json:"page_token"`
	Filter     string   `json:"filter"`
	OrderBy    []string `json:"order_by"`
	ViewType   string   `json:"view_type"`
}

type SearchExperimentsResponse struct {
	Experiments   []Experiment `json:"experiments"`
	NextPageToken string       `json:"next_page_token,omitempty"`
}

type CreateRunRequest struct {
	ExperimentID string `json:"experiment_id"`
	UserID       string `json:"user_id"`
	RunName      string `json:"run_name"`
	StartTime    Int64  `json:"start_time"`
	Tags         []KV   `json:"tags"`
}

type RunResponse struct {
	Run Run `json:"run"`
}

// RunIDRequest names a run; MLflow accepts run_id or the older run_uuid.
type RunIDRequest struct {
	RunID   string `json:"run_id"`
	RunUUID string `json:"run_uuid"`
}

type UpdateRunRequest struct {
	RunID   string `json:"run_id"`
	RunUUID string `json:"run_uuid"`
	Status  string `json:"status"`
	EndTime Int64  `json:"end_time"`
	RunName string `json:"run_name"`
}

type UpdateRunResponse struct {
	RunInfo RunInfo `json:"run_info"`
}

type LogMetricRequest struct {
	RunID     string `json:"run_id"`
	RunUUID   string `json:"run_uuid"`
	Key       string `json:"key"`
	Value     *Float `json:"value"`
	Timestamp Int64  `json:"timestamp"`
	Step      Int64  `json:"step"`
}

type LogParamRequest struct {
	RunID   string  `json:"run_id"`
	RunUUID string  `json:"run_uuid"`
	Key     string  `json:"key"`
	Value   *string `json:"value"`
}

type SetTagRequest = LogParamRequest

type DeleteTagRequest struct {
	RunID string `json:"run_id"`
	Key   string `json:"key"`
}

type LogBatchRequest struct {
	RunID   string   `json:"run_id"`
	Metrics []Metric `json:"metrics"`
	Params  []KV     `json:"params"`
	Tags    []KV     `json:"tags"`
}

type LogModelRequest struct {
	RunID     string `json:"run_id"`
	ModelJSON string `json:"model_json"`
}

type LogInputsRequest struct {
	RunID    string         `json:"run_id"`
	Datasets []DatasetInput `json:"datasets"`
}

type SearchRunsRequest struct {
	ExperimentIDs []string `json:"experiment_ids"`
	Filter        string   `json:"filter"`
	RunViewType   string   `json:"run_view_type"`
	MaxResults    Int64    `json:"max_results"`
	OrderBy       []string `json:"order_by"`
	PageToken     string   `json:"page_token"`
}

type SearchRunsResponse struct {
	Runs          []Run  `json:"runs,omitempty"`
	NextPageToken string `json:"next_page_token,omitempty"`
}

type GetMetricHistoryRequest struct {
	RunID      string `json:"run_id"`
	RunUUID    string `json:"run_uuid"`
	MetricKey  string `json:"metric_key"`
	PageToken  string `json:"page_token"`
	MaxResults Int64  `json:"max_results"`
}

type MetricsResponse struct {
	Metrics       []Metric `json:"metrics"`
	NextPageToken string   `json:"next_page_token,omitempty"`
}

type GetMetricHistoryBulkIntervalRequest struct {
	RunIDs     []string `json:"run_ids"`
	MetricKey  string   `json:"metric_key"`
	StartStep  Int64    `json:"start_step"`
	EndStep    Int64    `json:"end_step"`
	MaxResults Int64    `json:"max_results"`
}

type ListArtifactsRequest struct {
	RunID     string `json:"run_id"`
	RunUUID   string `json:"run_uuid"`
	Path      string `json:"path"`
	PageToken string `json:"page_token"`
}

type ListArtifactsResponse struct {
	RootURI string     `json:"root_uri,omitempty"`
	Files   []FileInfo `json:"files,omitempty"`
}
