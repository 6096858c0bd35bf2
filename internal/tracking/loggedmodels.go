package tracking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// MLflow 3's logged models (mlflow.log_model in 3.x creates one, uploads
// its files through the artifact proxy to its artifact_uri, then finalizes
// it): created PENDING, finalized READY or UPLOAD_FAILED, with tags and
// params, listed by experiment.

// Logged model statuses, as MLflow 3 spells them.
const (
	ModelPending      = "LOGGED_MODEL_PENDING"
	ModelReady        = "LOGGED_MODEL_READY"
	ModelUploadFailed = "LOGGED_MODEL_UPLOAD_FAILED"
)

// LoggedModel is a model logged to an experiment.
type LoggedModel struct {
	ID, ExperimentID, Name, ModelType, SourceRunID string
	Status, StatusMessage, CreatorID, ArtifactURI  string
	CreationTime, LastUpdatedTime                  int64
	Tags, Params                                   []KV
}

// NewLoggedModel is what CreateLoggedModel records.
type NewLoggedModel struct {
	ExperimentID, Name, ModelType, SourceRunID, CreatorID string
	Tags, Params                                          []KV
}

func loggedModelNotFound(id string) error {
	return forge.Errorf(forge.NotFound, "Logged model with ID '%s' not found.", id)
}

// CreateLoggedModel records a PENDING model in an active experiment; its
// artifacts go to EXPERIMENT_LOCATION/models/ID/artifacts.
func (s *Store) CreateLoggedModel(ctx context.Context, nm NewLoggedModel) (LoggedModel, error) {
	if nm.ExperimentID == "" {
		return LoggedModel{}, httpapi.MissingParam("experiment_id")
	}
	expID, err := parseExperimentID(nm.ExperimentID)
	if err != nil {
		return LoggedModel{}, err
	}
	for _, kv := range append(append([]KV(nil), nm.Tags...), nm.Params...) {
		if err := validateTag(kv); err != nil {
			return LoggedModel{}, err
		}
	}
	id := "m-" + newRunID()
	if nm.Name == "" {
		nm.Name = randomRunName(id[2:])
	}
	if nm.SourceRunID != "" {
		if _, err := s.runExists(ctx, nm.SourceRunID); err != nil {
			return LoggedModel{}, err
		}
	}
	now := sqlstore.Now()
	err = s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var stage, loc string
		err := tx.QueryRow(ctx, "SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = ?", expID).Scan(&stage, &loc)
		if errors.Is(err, sql.ErrNoRows) {
			return httpapi.ExperimentNotFound(nm.ExperimentID)
		}
		if err != nil {
			return err
		}
		if stage != Active {
			return forge.Errorf(forge.Invalid, "the experiment %s must be in the 'active' state; current state: %s", nm.ExperimentID, stage)
		}
		_, err = tx.Exec(ctx, `INSERT INTO logged_models (model_id, experiment_id, name, model_type, source_run_id, status, creator_id,
			artifact_uri, creation_time, last_updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, expID, nm.Name, nm.ModelType, nm.SourceRunID, ModelPending, nm.CreatorID,
			strings.TrimRight(loc, "/")+"/models/"+id+"/artifacts", now, now)
		if err != nil {
			return fmt.Errorf("create logged model: %w", err)
		}
		if err := upsertModelKVs(ctx, tx, "logged_model_tags", id, nm.Tags); err != nil {
			return err
		}
		return upsertModelKVs(ctx, tx, "logged_model_params", id, nm.Params)
	})
	if err != nil {
		return LoggedModel{}, err
	}
	return s.GetLoggedModel(ctx, id)
}

func upsertModelKVs(ctx context.Context, tx *sqlstore.Tx, table, id string, kvs []KV) error {
	for _, kv := range kvs {
		_, err := tx.Exec(ctx, "INSERT INTO "+table+` (model_id, key, value) VALUES (?, ?, ?)
			ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value`, id, kv.Key, kv.Value)
		if err != nil {
			return fmt.Errorf("record %s of logged model %s: %w", table, id, err)
		}
	}
	return nil
}

const loggedModelCols = `model_id, experiment_id, name, model_type, source_run_id, status, status_message, creator_id,
	artifact_uri, creation_time, last_updated_time`

func scanLoggedModel(sc interface{ Scan(...any) error }) (LoggedModel, error) {
	var m LoggedModel
	var exp int64
	err := sc.Scan(&m.ID, &exp, &m.Name, &m.ModelType, &m.SourceRunID, &m.Status, &m.StatusMessage, &m.CreatorID,
		&m.ArtifactURI, &m.CreationTime, &m.LastUpdatedTime)
	m.ExperimentID = strconv.FormatInt(exp, 10)
	return m, err
}

// GetLoggedModel returns a logged model with its tags and params.
func (s *Store) GetLoggedModel(ctx context.Context, id string) (LoggedModel, error) {
	m, err := scanLoggedModel(s.db.QueryRow(ctx, "SELECT "+loggedModelCols+" FROM logged_models WHERE model_id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, loggedModelNotFound(id)
	}
	if err != nil {
		return m, fmt.Errorf("get logged model: %w", err)
	}
	return m, s.loadModelKVs(ctx, &m)
}

func (s *Store) loadModelKVs(ctx context.Context, m *LoggedModel) error {
	for _, t := range []struct {
		table string
		dst   *[]KV
	}{{"logged_model_tags", &m.Tags}, {"logged_model_params", &m.Params}} {
		rows, err := s.db.Query(ctx, "SELECT key, value FROM "+t.table+" WHERE model_id = ? ORDER BY key", m.ID)
		if err != nil {
			return fmt.Errorf("load %s: %w", t.table, err)
		}
		for rows.Next() {
			var kv KV
			if err := rows.Scan(&kv.Key, &kv.Value); err != nil {
				rows.Close()
				return err
			}
			*t.dst = append(*t.dst, kv)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// FinalizeLoggedModel sets a model's status once its upload is over.
func (s *Store) FinalizeLoggedModel(ctx context.Context, id, status string) (LoggedModel, error) {
	if status != ModelReady && status != ModelUploadFailed {
		return LoggedModel{}, forge.Errorf(forge.Invalid, "Invalid value %s for parameter 'status' supplied: want %s or %s", status, ModelReady, ModelUploadFailed)
	}
	res, err := s.db.Exec(ctx, "UPDATE logged_models SET status = ?, last_updated_time = ? WHERE model_id = ?", status, sqlstore.Now(), id)
	if err != nil {
		return LoggedModel{}, fmt.Errorf("finalize logged model: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return LoggedModel{}, loggedModelNotFound(id)
	}
	return s.GetLoggedModel(ctx, id)
}

// SetLoggedModelTags and LogLoggedModelParams add or replace key/values.
func (s *Store) SetLoggedModelTags(ctx context.Context, id string, tags []KV) error {
	return s.modelKVs(ctx, "logged_model_tags", id, tags)
}

func (s *Store) LogLoggedModelParams(ctx context.Context, id string, params []KV) error {
	return s.modelKVs(ctx, "logged_model_params", id, params)
}

func (s *Store) modelKVs(ctx context.Context, table, id string, kvs []KV) error {
	for _, kv := range kvs {
		if err := validateTag(kv); err != nil {
			return err
		}
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM logged_models WHERE model_id = ?", id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return loggedModelNotFound(id)
		}
		if err != nil {
			return err
		}
		return upsertModelKVs(ctx, tx, table, id, kvs)
	})
}

// DeleteLoggedModelTag removes one tag.
func (s *Store) DeleteLoggedModelTag(ctx context.Context, id, key string) error {
	if _, err := s.GetLoggedModel(ctx, id); err != nil {
		return err
	}
	res, err := s.db.Exec(ctx, "DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?", id, key)
	if err != nil {
		return fmt.Errorf("delete logged model tag: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return forge.Errorf(forge.NotFound, "No tag with key '%s' found for logged model with ID '%s'.", key, id)
	}
	return nil
}

// DeleteLoggedModel removes a model, its tags, params and run outputs; its
// artifacts stay under the proxy, as runs' do.
func (s *Store) DeleteLoggedModel(ctx context.Context, id string) error {
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		for _, q := range []string{"DELETE FROM run_outputs WHERE model_id = ?", "DELETE FROM logged_model_tags WHERE model_id = ?",
			"DELETE FROM logged_model_params WHERE model_id = ?"} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("delete logged model: %w", err)
			}
		}
		res, err := tx.Exec(ctx, "DELETE FROM logged_models WHERE model_id = ?", id)
		if err != nil {
			return fmt.Errorf("delete logged model: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return loggedModelNotFound(id)
		}
		return nil
	})
}

// LogOutputs records the models a run produced.
func (s *Store) LogOutputs(ctx context.Context, runID string, models []string, steps []int64) error {
	if _, err := s.runExists(ctx, runID); err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		for i, id := range models {
			var one int
			err := tx.QueryRow(ctx, "SELECT 1 FROM logged_models WHERE model_id = ?", id).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return loggedModelNotFound(id)
			}
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO run_outputs (run_uuid, model_id, step) VALUES (?, ?, ?)
				ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step`, runID, id, steps[i])
			if err != nil {
				return fmt.Errorf("log outputs: %w", err)
			}
		}
		return nil
	})
}
