package tracking

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/names"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// CreateRunOptions are the fields of runs/create.
type CreateRunOptions struct {
	ExperimentID string
	UserID       string
	Name         string
	StartTime    int64
	Tags         []KV
	Status       string // RUNNING unless given (jobs create SCHEDULED runs)
}

// randomRunName names a run nobody named like MLflow does
// (adjective-noun-number), from its id.
func randomRunName(id string) string {
	n, _ := strconv.ParseUint(id[:16], 16, 64)
	return names.Readable(n)
}

// CreateRun starts a run in an active experiment.
func (s *Store) CreateRun(ctx context.Context, o CreateRunOptions) (Run, error) {
	if o.ExperimentID == "" {
		o.ExperimentID = DefaultExperimentID
	}
	expID, err := parseExperimentID(o.ExperimentID)
	if err != nil {
		return Run{}, err
	}
	if o.Status == "" {
		o.Status = "RUNNING"
	}
	if err := names.Check("run name", o.Name); err != nil {
		return Run{}, err
	}
	if !runStatuses[o.Status] {
		return Run{}, forge.Errorf(forge.Invalid, "invalid run status '%s'", o.Status)
	}
	for _, t := range o.Tags {
		if err := validateTag(t); err != nil {
			return Run{}, err
		}
	}
	id := newRunID()
	if o.Name == "" {
		for _, t := range o.Tags {
			if t.Key == "mlflow.runName" {
				o.Name = t.Value
			}
		}
	}
	if o.Name == "" {
		o.Name = randomRunName(id)
	}
	if o.StartTime == 0 {
		o.StartTime = sqlstore.Now()
	}
	run := Run{ID: id, ExperimentID: o.ExperimentID, Name: o.Name, UserID: o.UserID, Status: o.Status,
		StartTime: o.StartTime, LifecycleStage: Active}
	err = s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var stage, loc string
		err := tx.QueryRow(ctx, "SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = ?", expID).Scan(&stage, &loc)
		if errors.Is(err, sql.ErrNoRows) {
			return httpapi.ExperimentNotFound(o.ExperimentID)
		}
		if err != nil {
			return err
		}
		if stage != Active {
			return forge.Errorf(forge.Invalid, "the experiment %s must be in the 'active' state; current state: %s", o.ExperimentID, stage)
		}
		run.ArtifactURI = loc + "/" + id + "/artifacts"
		if _, err := tx.Exec(ctx, `INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, lifecycle_stage, artifact_uri)
			VALUES (?, ?, ?, ?, ?, ?, 'active', ?)`, id, expID, o.Name, o.UserID, o.Status, o.StartTime, run.ArtifactURI); err != nil {
			return fmt.Errorf("create run: %w", err)
		}
		tags := append([]KV{{"mlflow.runName", o.Name}}, o.Tags...)
		if o.UserID != "" {
			tags = append(tags, KV{"mlflow.user", o.UserID})
		}
		return upsertTags(ctx, tx, id, tags)
	})
	if err != nil {
		return Run{}, err
	}
	return s.GetRun(ctx, id)
}

func upsertTags(ctx context.Context, tx *sqlstore.Tx, runID string, tags []KV) error {
	for _, t := range tags {
		if _, err := tx.Exec(ctx, "INSERT INTO tags (run_uuid, key, value) VALUES (?, ?, ?) ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value", runID, t.Key, t.Value); err != nil {
			return fmt.Errorf("set tag: %w", err)
		}
		if t.Key == "mlflow.runName" {
			if _, err := tx.Exec(ctx, "UPDATE runs SET name = ? WHERE run_uuid = ?", t.Value, runID); err != nil {
				return err
			}
		}
	}
	return nil
}

const runCols = "run_uuid, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri"

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var exp int64
	var end sql.NullInt64
	err := sc.Scan(&r.ID, &exp, &r.Name, &r.UserID, &r.Status, &r.StartTime, &end, &r.LifecycleStage, &r.ArtifactURI)
	r.ExperimentID = strconv.FormatInt(exp, 10)
	r.EndTime = end.Int64
	return r, err
}

// GetRun returns a run with its params, tags, latest metrics and inputs.
func (s *Store) GetRun(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(s.db.QueryRow(ctx, "SELECT "+runCols+" FROM runs WHERE run_uuid = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, httpapi.RunNotFound(id)
	}
	if err != nil {
		return r, fmt.Errorf("get run: %w", err)
	}
	runs := []Run{r}
	if err := s.loadRunData(ctx, runs); err != nil {
		return r, err
	}
	return runs[0], nil
}

// The statements of the logging hot path, prepared once: parsing them again
// on every call was a sixth of a log-metric request's CPU.
const (
	qRunStage     = "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?"
	qInsMetric    = "INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
	qUpsertLatest = `INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step
			WHERE excluded.step > latest_metrics.step
			   OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp)
			   OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp AND excluded.value > latest_metrics.value)`
)

// metricColumns are the per-point columns of the one-statement batch
// insert (sqlstore.Bulk), after run_uuid.
var metricColumns = []sqlstore.BulkColumn{{Name: "key", Type: "text"}, {Name: "value", Type: "float8"},
	{Name: "is_nan", Type: "boolean"}, {Name: "timestamp", Type: "bigint"}, {Name: "step", Type: "bigint"}}

// bulkMetrics is the batch size from which the one-statement insert is used.
const bulkMetrics = 8

type statements struct {
	runStage, insMetric, upsertLatest *sqlstore.Stmt
	insMetrics, upsertRollups         *sqlstore.Bulk
}

// metricsColumns are a batch's metricColumns.
func metricsColumns(ms []Metric) []any {
	keys, values, nans := make([]string, len(ms)), make([]float64, len(ms)), make([]bool, len(ms))
	timestamps, steps := make([]int64, len(ms)), make([]int64, len(ms))
	for i, m := range ms {
		keys[i], timestamps[i], steps[i] = m.Key, m.Timestamp, m.Step
		values[i], nans[i] = storedValue(m.Value)
	}
	return []any{keys, values, nans, timestamps, steps}
}

// statements prepares the hot path's statements on first use, outside any
// transaction (SQLite's writer is a single connection).
func (s *Store) statements(ctx context.Context) *statements {
	s.prepOnce.Do(func() {
		var st statements
		var err error
		if st.runStage, err = s.db.PrepareWrite(ctx, qRunStage); err != nil {
			return
		}
		if st.insMetric, err = s.db.PrepareWrite(ctx, qInsMetric); err != nil {
			return
		}
		if st.upsertLatest, err = s.db.PrepareWrite(ctx, qUpsertLatest); err != nil {
			return
		}
		if st.insMetrics, err = s.db.PrepareBulk(ctx, "metrics", []string{"run_uuid"}, metricColumns, "ON CONFLICT DO NOTHING RETURNING key, is_nan, timestamp, step, value"); err != nil {
			return
		}
		if st.upsertRollups, err = s.db.PrepareBulk(ctx, "metric_rollups", []string{"run_uuid"}, rollupColumns, rollupUpsert(s.db.Dialect())); err != nil {
			return
		}
		s.prep = &st
	})
	return s.prep
}

// activeRun checks inside a write transaction that a run exists and is
// active, as every logging call requires.
func activeRun(ctx context.Context, tx *sqlstore.Tx, id string) error {
	return activeRunWith(ctx, tx, nil, id)
}

func activeRunWith(ctx context.Context, tx *sqlstore.Tx, st *statements, id string) error {
	var stage string
	var err error
	if st != nil {
		err = tx.QueryRowStmt(ctx, st.runStage, id).Scan(&stage)
	} else {
		err = tx.QueryRow(ctx, qRunStage, id).Scan(&stage)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return httpapi.RunNotFound(id)
	}
	if err != nil {
		return err
	}
	if stage != Active {
		return forge.Errorf(forge.Invalid, "the run %s must be in the 'active' state. Current state is %s.", id, stage)
	}
	return nil
}

// UpdateRun changes a run's status, end time or name.
func (s *Store) UpdateRun(ctx context.Context, id, status string, endTime int64, name string) (Run, error) {
	if status != "" && !runStatuses[status] {
		return Run{}, forge.Errorf(forge.Invalid, "invalid run status '%s'", status)
	}
	if err := names.Check("run name", name); err != nil {
		return Run{}, err
	}
	err := s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if err := activeRun(ctx, tx, id); err != nil {
			return err
		}
		if status != "" {
			if _, err := tx.Exec(ctx, "UPDATE runs SET status = ? WHERE run_uuid = ?", status, id); err != nil {
				return err
			}
		}
		if endTime != 0 {
			if _, err := tx.Exec(ctx, "UPDATE runs SET end_time = ? WHERE run_uuid = ?", endTime, id); err != nil {
				return err
			}
		}
		if name != "" {
			return upsertTags(ctx, tx, id, []KV{{"mlflow.runName", name}})
		}
		return nil
	})
	if err != nil {
		return Run{}, err
	}
	return s.GetRun(ctx, id)
}

func (s *Store) setRunStage(ctx context.Context, id, from, to string) error {
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var stage string
		err := tx.QueryRow(ctx, "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", id).Scan(&stage)
		if errors.Is(err, sql.ErrNoRows) {
			return httpapi.RunNotFound(id)
		}
		if err != nil {
			return err
		}
		var deleted any
		if to == Deleted {
			deleted = sqlstore.Now()
		}
		_, err = tx.Exec(ctx, "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_uuid = ?", to, deleted, id)
		return err
	})
}

// DeleteRun marks a run deleted.
func (s *Store) DeleteRun(ctx context.Context, id string) error {
	return s.setRunStage(ctx, id, Active, Deleted)
}

// RestoreRun brings a deleted run back.
func (s *Store) RestoreRun(ctx context.Context, id string) error {
	return s.setRunStage(ctx, id, Deleted, Active)
}

// LogBatch logs metrics, params and tags to an active run, all or nothing.
func (s *Store) LogBatch(ctx context.Context, runID string, metrics []Metric, params, tags []KV) error {
	if err := validateBatch(metrics, params, tags); err != nil {
		return err
	}
	st := s.statements(ctx)
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if err := activeRunWith(ctx, tx, st, runID); err != nil {
			return err
		}
		if err := insertParams(ctx, tx, runID, params); err != nil {
			return err
		}
		if err := insertMetrics(ctx, tx, st, runID, metrics); err != nil {
			return err
		}
		return upsertTags(ctx, tx, runID, tags)
	})
}

// insertParams logs params; logging the same value again is fine, changing
// it is not (MLflow's rule: params are the run's inputs, fixed once logged).
func insertParams(ctx context.Context, tx *sqlstore.Tx, runID string, params []KV) error {
	for _, p := range params {
		var old string
		err := tx.QueryRow(ctx, "SELECT value FROM params WHERE run_uuid = ? AND key = ?", runID, p.Key).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.Exec(ctx, "INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)", runID, p.Key, p.Value); err != nil {
				return fmt.Errorf("log param: %w", err)
			}
		case err != nil:
			return err
		case old != p.Value:
			return forge.Errorf(forge.Invalid, "changing param values is not allowed. Param with key='%s' was already logged with value='%s' for run ID='%s'. Attempted logging new value '%s'.", p.Key, old, runID, p.Value)
		}
	}
	return nil
}

func insertMetrics(ctx context.Context, tx *sqlstore.Tx, st *statements, runID string, metrics []Metric) error {
	if len(metrics) == 0 {
		return nil
	}
	var res sql.Result
	exec := func(q string, stmt func(*statements) *sqlstore.Stmt, args ...any) error {
		var err error
		if st != nil {
			res, err = tx.ExecStmt(ctx, stmt(st), args...)
		} else {
			res, err = tx.Exec(ctx, q, args...)
		}
		return err
	}
	// The points stored (not those already there) go to the rollups.
	var cells rollup
	bulk := len(metrics) >= bulkMetrics && st != nil
	if bulk {
		if err := insertBulk(ctx, tx, st, runID, metrics, &cells); err != nil {
			return err
		}
	}
	// Only the newest point per key can change latest_metrics; find it first
	// so a 1000-point batch costs one upsert per key, not one per point.
	latest := map[string]Metric{}
	var keys []string
	for _, m := range metrics {
		if !bulk {
			v, isNaN := storedValue(m.Value)
			if err := exec(qInsMetric, func(st *statements) *sqlstore.Stmt { return st.insMetric }, runID, m.Key, v, isNaN, m.Timestamp, m.Step); err != nil {
				return fmt.Errorf("log metric: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("log metric: %w", err)
			} else if n == 1 && !isNaN {
				cells.add(m.Key, m.Step, m.Timestamp, v)
			}
		}
		cur, ok := latest[m.Key]
		if !ok {
			keys = append(keys, m.Key)
		}
		if !ok || newer(m, cur) {
			latest[m.Key] = m
		}
	}
	if err := cells.write(ctx, tx, st, runID); err != nil {
		return err
	}
	for _, k := range keys {
		m := latest[k]
		v, isNaN := storedValue(m.Value)
		if err := exec(qUpsertLatest, func(st *statements) *sqlstore.Stmt { return st.upsertLatest }, runID, m.Key, v, isNaN, m.Timestamp, m.Step); err != nil {
			return fmt.Errorf("update latest metric: %w", err)
		}
	}
	return nil
}

// newer orders points as MLflow picks the latest: step, timestamp, value.
func newer(a, b Metric) bool {
	if a.Step != b.Step {
		return a.Step > b.Step
	}
	if a.Timestamp != b.Timestamp {
		return a.Timestamp > b.Timestamp
	}
	return a.Value > b.Value || (math.IsNaN(b.Value) && !math.IsNaN(a.Value))
}

// DeleteTag removes a tag from an active run.
func (s *Store) DeleteTag(ctx context.Context, runID, key string) error {
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if err := activeRun(ctx, tx, runID); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, "DELETE FROM tags WHERE run_uuid = ? AND key = ?", runID, key)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return forge.Errorf(forge.NotFound, "no tag with name: %s in run with id %s", key, runID)
		}
		return nil
	})
}

// LogInputs records datasets a run used.
func (s *Store) LogInputs(ctx context.Context, runID string, inputs []DatasetInput) error {
	for _, in := range inputs {
		if in.Name == "" || in.Digest == "" {
			return forge.Errorf(forge.Invalid, "a dataset input needs a name and a digest")
		}
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if err := activeRun(ctx, tx, runID); err != nil {
			return err
		}
		for _, in := range inputs {
			context := ""
			for _, t := range in.Tags {
				if t.Key == "mlflow.data.context" {
					context = t.Value
				}
			}
			tags, _ := json.Marshal(in.Tags)
			if _, err := tx.Exec(ctx, `INSERT INTO run_inputs (run_uuid, dataset_name, dataset_digest, source_type, source, schema, profile, context, tags_json)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_uuid, dataset_name, dataset_digest) DO UPDATE SET context = excluded.context, tags_json = excluded.tags_json`,
				runID, in.Name, in.Digest, in.SourceType, in.Source, in.Schema, in.Profile, context, string(tags)); err != nil {
				return fmt.Errorf("log input: %w", err)
			}
		}
		return nil
	})
}

// LogModel appends a model's JSON to the run's mlflow.log-model.history tag,
// as MLflow's server does.
func (s *Store) LogModel(ctx context.Context, runID, modelJSON string) error {
	var model map[string]any
	if err := json.Unmarshal([]byte(modelJSON), &model); err != nil {
		return forge.Errorf(forge.Invalid, "model_json is not valid JSON: %v", err)
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if err := activeRun(ctx, tx, runID); err != nil {
			return err
		}
		var history []any
		var old string
		err := tx.QueryRow(ctx, "SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlflow.log-model.history'", runID).Scan(&old)
		if err == nil {
			json.Unmarshal([]byte(old), &history)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		history = append(history, model)
		b, _ := json.Marshal(history)
		return upsertTags(ctx, tx, runID, []KV{{"mlflow.log-model.history", string(b)}})
	})
}

// MetricHistory returns every point of one metric of a run, by step and time.
func (s *Store) MetricHistory(ctx context.Context, runID, key string, maxResults int, token string) ([]Metric, string, error) {
	if _, err := s.runExists(ctx, runID); err != nil {
		return nil, "", err
	}
	q := Query{MaxResults: maxResults, PageToken: token}
	if maxResults == 0 {
		q.MaxResults = MaxResultsLimit
	}
	limit, offset, err := q.page()
	if err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, `SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_uuid = ? AND key = ?
		ORDER BY step, timestamp, value LIMIT ? OFFSET ?`, runID, key, limit+1, offset)
	if err != nil {
		return nil, "", fmt.Errorf("metric history: %w", err)
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		var isNaN bool
		if err := rows.Scan(&m.Key, &m.Value, &isNaN, &m.Timestamp, &m.Step); err != nil {
			return nil, "", err
		}
		m.Value = loadedValue(m.Value, isNaN)
		out = append(out, m)
	}
	next := ""
	if len(out) > limit {
		out, next = out[:limit], pageToken(offset+limit)
	}
	return out, next, rows.Err()
}

func (s *Store) runExists(ctx context.Context, runID string) (string, error) {
	var stage string
	err := s.db.QueryRow(ctx, "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", runID).Scan(&stage)
	if errors.Is(err, sql.ErrNoRows) {
		return "", httpapi.RunNotFound(runID)
	}
	return stage, err
}

// MetricHistoryBulkInterval returns, for each run, at most maxResults points
// of a metric between startStep and endStep (inclusive; zero endStep means
// no bound), sampling steps evenly and always keeping the first and last,
// as MLflow's get-history-bulk-interval does for charts.
func (s *Store) MetricHistoryBulkInterval(ctx context.Context, runIDs []string, key string, startStep, endStep int64, maxResults int) ([]Metric, error) {
	// MLflow caps this at 100 runs; charts comparing more runs are common
	// enough that Forge takes up to 1000.
	if len(runIDs) == 0 || len(runIDs) > 1000 {
		return nil, forge.Errorf(forge.Invalid, "get-history-bulk-interval takes 1 to 1000 run_ids, got %d", len(runIDs))
	}
	if maxResults <= 0 {
		maxResults = 320
	}
	var out []Metric
	for _, id := range runIDs {
		if _, err := s.runExists(ctx, id); err != nil {
			return nil, err
		}
		q := "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_uuid = ? AND key = ? AND step >= ?"
		args := []any{id, key, startStep}
		if endStep != 0 {
			q += " AND step <= ?"
			args = append(args, endStep)
		}
		rows, err := s.db.Query(ctx, q+" ORDER BY step, timestamp", args...)
		if err != nil {
			return nil, err
		}
		var pts []Metric
		for rows.Next() {
			m := Metric{RunID: id}
			var isNaN bool
			if err := rows.Scan(&m.Key, &m.Value, &isNaN, &m.Timestamp, &m.Step); err != nil {
				rows.Close()
				return nil, err
			}
			m.Value = loadedValue(m.Value, isNaN)
			pts = append(pts, m)
		}
		rows.Close()
		out = append(out, sampleSteps(pts, maxResults)...)
	}
	return out, nil
}

// sampleSteps keeps the points of at most n distinct steps, evenly spread.
func sampleSteps(pts []Metric, n int) []Metric {
	var steps []int64
	for i, p := range pts {
		if i == 0 || p.Step != pts[i-1].Step {
			steps = append(steps, p.Step)
		}
	}
	if len(steps) <= n {
		return pts
	}
	keep := map[int64]bool{steps[0]: true, steps[len(steps)-1]: true}
	for i := 0; i < n-2; i++ {
		keep[steps[1+i*(len(steps)-2)/(n-2)]] = true
	}
	var out []Metric
	for _, p := range pts {
		if keep[p.Step] {
			out = append(out, p)
		}
	}
	return out
}
