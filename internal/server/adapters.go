package server

import (
	"context"
	"strings"

	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/jobs"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sweep"
	"github.com/forge-mlops/forge/internal/tracking"
)

// jobRuns gives the jobs service the tracking runs it needs: every job gets
// a run, whose status follows the job's.
type jobRuns struct{ store *tracking.Store }

var _ jobs.Runs = jobRuns{}

func (j jobRuns) CreateRun(ctx context.Context, experiment, name string, tags map[string]string) (string, string, error) {
	expID, err := j.store.EnsureExperiment(ctx, experiment)
	if err != nil {
		return "", "", err
	}
	var kvs []tracking.KV
	for k, v := range tags {
		kvs = append(kvs, tracking.KV{Key: k, Value: v})
	}
	run, err := j.store.CreateRun(ctx, tracking.CreateRunOptions{ExperimentID: expID, Name: name, Tags: kvs, Status: "SCHEDULED"})
	return run.ID, expID, err
}

func (j jobRuns) SetRunStatus(ctx context.Context, runID, status string) error {
	var end int64
	if tracking.Terminal(status) {
		end = sqlstore.Now()
	}
	_, err := j.store.UpdateRun(ctx, runID, status, end, "")
	return err
}

// LogInput links the run to the dataset version, so `forge data show`
// lists the run and the run shows its input.
func (j jobRuns) LogInput(ctx context.Context, runID, name, ref, digest string) error {
	return j.store.LogInputs(ctx, runID, []tracking.DatasetInput{{Name: name, Digest: digest, SourceType: "forge",
		Source: "forge:" + ref, Tags: []tracking.KV{{Key: "mlflow.data.context", Value: name}}}})
}

func (j jobRuns) LogSystemMetrics(ctx context.Context, runID string, metrics map[string]float64, step int64) error {
	now := sqlstore.Now()
	ms := make([]tracking.Metric, 0, len(metrics))
	for k, v := range metrics {
		ms = append(ms, tracking.Metric{Key: k, Value: v, Timestamp: now, Step: step})
	}
	return j.store.LogBatch(ctx, runID, ms, nil, nil)
}

// jobInputs materialises a job's dataset inputs. A ref ending in ":csv"
// ("cancer@2:csv") is written as CSV, for code without a Parquet reader.
type jobInputs struct{ data *datasets.Service }

var _ jobs.Datasets = jobInputs{}

func (j jobInputs) Resolve(ctx context.Context, ref string) (string, error) {
	ref, _ = strings.CutSuffix(ref, ":csv")
	v, err := j.data.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	return v.Ref(), nil
}

func (j jobInputs) Materialize(ctx context.Context, ref, dst string) (string, string, error) {
	if ref, asCSV := strings.CutSuffix(ref, ":csv"); asCSV {
		return j.data.MaterializeCSV(ctx, ref, dst)
	}
	return j.data.Materialize(ctx, ref, dst)
}

// sweepRuns is the tracking store as sweeps use it.
type sweepRuns struct{ jobRuns }

var _ sweep.Runs = sweepRuns{}

func (s sweepRuns) LogParams(ctx context.Context, runID string, params map[string]string) error {
	kvs := make([]tracking.KV, 0, len(params))
	for k, v := range params {
		kvs = append(kvs, tracking.KV{Key: k, Value: v})
	}
	return s.store.LogBatch(ctx, runID, nil, kvs, nil)
}

func (s sweepRuns) MetricHistory(ctx context.Context, runID, key string) ([]sweep.Point, error) {
	var out []sweep.Point
	token := ""
	for {
		ms, next, err := s.store.MetricHistory(ctx, runID, key, 0, token)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out = append(out, sweep.Point{Step: m.Step, Value: m.Value, Timestamp: m.Timestamp})
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

func (s sweepRuns) LastMetric(ctx context.Context, runID, key string) (float64, bool, error) {
	run, err := s.store.GetRun(ctx, runID)
	if err != nil {
		return 0, false, err
	}
	for _, m := range run.Metrics {
		if m.Key == key {
			return m.Value, true, nil
		}
	}
	return 0, false, nil
}
