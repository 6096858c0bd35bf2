package tracking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/filter"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/names"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// CreateExperiment creates an experiment and returns its id.
func (s *Store) CreateExperiment(ctx context.Context, name, artifactLocation string, tags []KV) (string, error) {
	if strings.TrimSpace(name) == "" {
		return "", forge.Errorf(forge.Invalid, "invalid experiment name: '%s'", name)
	}
	if len(name) > MaxExperimentName {
		return "", forge.Errorf(forge.Invalid, "experiment name exceeds the length limit of %d", MaxExperimentName)
	}
	if err := names.Check("experiment name", name); err != nil {
		return "", err
	}
	for _, t := range tags {
		if err := validateTag(t); err != nil {
			return "", err
		}
	}
	var id int64
	err := s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		now := sqlstore.Now()
		err := tx.QueryRow(ctx, `INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time)
			VALUES (?, '', 'active', ?, ?) RETURNING experiment_id`, name, now, now).Scan(&id)
		if sqlstore.IsUniqueViolation(err) {
			return httpapi.ExperimentExists(name)
		}
		if err != nil {
			return fmt.Errorf("create experiment: %w", err)
		}
		loc := strings.TrimRight(s.artifactRoot, "/") + "/" + strconv.FormatInt(id, 10)
		if artifactLocation != "" {
			// MLflow makes a local location absolute.
			if loc, err = AbsoluteArtifactURI(artifactLocation, s.workDir); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", loc, id); err != nil {
			return err
		}
		for _, t := range tags {
			if _, err := tx.Exec(ctx, "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value", id, t.Key, t.Value); err != nil {
				return err
			}
		}
		return nil
	})
	return strconv.FormatInt(id, 10), err
}

const experimentCols = "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time"

func scanExperiment(sc interface{ Scan(...any) error }) (Experiment, error) {
	var e Experiment
	var id int64
	err := sc.Scan(&id, &e.Name, &e.ArtifactLocation, &e.LifecycleStage, &e.CreationTime, &e.LastUpdateTime)
	e.ID = strconv.FormatInt(id, 10)
	return e, err
}

// GetExperiment returns an experiment by id, deleted or not.
func (s *Store) GetExperiment(ctx context.Context, id string) (Experiment, error) {
	n, err := parseExperimentID(id)
	if err != nil {
		return Experiment{}, err
	}
	e, err := scanExperiment(s.db.QueryRow(ctx, "SELECT "+experimentCols+" FROM experiments WHERE experiment_id = ?", n))
	if errors.Is(err, sql.ErrNoRows) {
		return e, httpapi.ExperimentNotFound(id)
	}
	if err != nil {
		return e, fmt.Errorf("get experiment: %w", err)
	}
	return e, s.loadExperimentTags(ctx, []*Experiment{&e})
}

// GetExperimentByName returns an experiment by name.
func (s *Store) GetExperimentByName(ctx context.Context, name string) (Experiment, error) {
	if names.Check("experiment name", name) != nil {
		// No such name can be stored; PostgreSQL refuses NUL and bad UTF-8 in a query.
		return Experiment{}, httpapi.ExperimentNameNotFound(name)
	}
	e, err := scanExperiment(s.db.QueryRow(ctx, "SELECT "+experimentCols+" FROM experiments WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return e, httpapi.ExperimentNameNotFound(name)
	}
	if err != nil {
		return e, fmt.Errorf("get experiment: %w", err)
	}
	return e, s.loadExperimentTags(ctx, []*Experiment{&e})
}

func (s *Store) loadExperimentTags(ctx context.Context, exps []*Experiment) error {
	if len(exps) == 0 {
		return nil
	}
	byID := map[int64]*Experiment{}
	args := make([]any, len(exps))
	for i, e := range exps {
		n, _ := strconv.ParseInt(e.ID, 10, 64)
		byID[n] = e
		args[i] = n
	}
	rows, err := s.db.Query(ctx, "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ("+sqlstore.Placeholders(len(args))+") ORDER BY key", args...)
	if err != nil {
		return fmt.Errorf("load experiment tags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kv KV
		if err := rows.Scan(&id, &kv.Key, &kv.Value); err != nil {
			return err
		}
		byID[id].Tags = append(byID[id].Tags, kv)
	}
	return rows.Err()
}

// setExperimentStage deletes or restores an experiment and its runs.
func (s *Store) setExperimentStage(ctx context.Context, id, from, to string) error {
	n, err := parseExperimentID(id)
	if err != nil {
		return err
	}
	if to == Deleted && n == 0 {
		return forge.Errorf(forge.Invalid, "cannot delete the default experiment '0'")
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var stage string
		err := tx.QueryRow(ctx, "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?", n).Scan(&stage)
		if errors.Is(err, sql.ErrNoRows) {
			return httpapi.ExperimentNotFound(id)
		}
		if err != nil {
			return err
		}
		if stage != from {
			return forge.Errorf(forge.Invalid, "cannot %s experiment %s: it is %s", map[string]string{Deleted: "delete", Active: "restore"}[to], id, stage)
		}
		now := sqlstore.Now()
		if _, err := tx.Exec(ctx, "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? WHERE experiment_id = ?", to, now, n); err != nil {
			return err
		}
		var deletedTime any
		if to == Deleted {
			deletedTime = now
		}
		_, err = tx.Exec(ctx, "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE experiment_id = ? AND lifecycle_stage = ?", to, deletedTime, n, from)
		return err
	})
}

// DeleteExperiment marks an experiment and its runs deleted.
func (s *Store) DeleteExperiment(ctx context.Context, id string) error {
	return s.setExperimentStage(ctx, id, Active, Deleted)
}

// RestoreExperiment brings a deleted experiment and its runs back.
func (s *Store) RestoreExperiment(ctx context.Context, id string) error {
	return s.setExperimentStage(ctx, id, Deleted, Active)
}

// RenameExperiment gives an active experiment a new name.
func (s *Store) RenameExperiment(ctx context.Context, id, newName string) error {
	n, err := parseExperimentID(id)
	if err != nil {
		return err
	}
	if strings.TrimSpace(newName) == "" {
		return forge.Errorf(forge.Invalid, "invalid experiment name: '%s'", newName)
	}
	if err := names.Check("experiment name", newName); err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var stage string
		err := tx.QueryRow(ctx, "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?", n).Scan(&stage)
		if errors.Is(err, sql.ErrNoRows) {
			return httpapi.ExperimentNotFound(id)
		}
		if err != nil {
			return err
		}
		if stage != Active {
			return forge.Errorf(forge.Invalid, "cannot rename a non-active experiment")
		}
		_, err = tx.Exec(ctx, "UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?", newName, sqlstore.Now(), n)
		if sqlstore.IsUniqueViolation(err) {
			return httpapi.ExperimentExists(newName)
		}
		return err
	})
}

// SetExperimentTag sets a tag on an active experiment.
func (s *Store) SetExperimentTag(ctx context.Context, id string, t KV) error {
	n, err := parseExperimentID(id)
	if err != nil {
		return err
	}
	if err := validateTag(t); err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var stage string
		err := tx.QueryRow(ctx, "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?", n).Scan(&stage)
		if errors.Is(err, sql.ErrNoRows) {
			return httpapi.ExperimentNotFound(id)
		}
		if err != nil {
			return err
		}
		if stage != Active {
			return forge.Errorf(forge.Invalid, "the experiment %s must be in the 'active' state", id)
		}
		_, err = tx.Exec(ctx, "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value", n, t.Key, t.Value)
		return err
	})
}

// ViewType selects active, deleted or all entities in a search.
type ViewType string

const (
	ActiveOnly  ViewType = "ACTIVE_ONLY"
	DeletedOnly ViewType = "DELETED_ONLY"
	AllView     ViewType = "ALL"
)

// ParseViewType accepts MLflow's view types, empty meaning ACTIVE_ONLY.
func ParseViewType(s string) (ViewType, error) {
	switch strings.ToUpper(s) {
	case "", "ACTIVE_ONLY", "1":
		return ActiveOnly, nil
	case "DELETED_ONLY", "2":
		return DeletedOnly, nil
	case "ALL", "3":
		return AllView, nil
	}
	return "", forge.Errorf(forge.Invalid, "invalid view type '%s': want ACTIVE_ONLY, DELETED_ONLY or ALL", s)
}

func (v ViewType) where(col string) (string, []any) {
	switch v {
	case DeletedOnly:
		return col + " = ?", []any{Deleted}
	case AllView:
		return "1 = 1", nil
	}
	return col + " = ?", []any{Active}
}

// SearchExperiments finds experiments with MLflow's filter and order_by.
func (s *Store) SearchExperiments(ctx context.Context, q Query) ([]Experiment, string, error) {
	clauses, err := filter.Parse(q.Filter, filter.Experiments)
	if err != nil {
		return nil, "", err
	}
	orders, err := filter.ParseOrderBy(q.OrderBy, filter.Experiments)
	if err != nil {
		return nil, "", err
	}
	limit, offset, err := q.page()
	if err != nil {
		return nil, "", err
	}
	w, args := q.View.where("e.lifecycle_stage")
	var sb sqlBuilder
	sb.where(w, args...)
	for _, c := range clauses {
		switch c.Entity {
		case filter.Tag:
			cond, a := compare("t.value", c)
			sb.where("EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id AND t.key = ? AND "+cond+")", append([]any{c.Key}, a...)...)
		default:
			cond, a := compare("e."+c.Key, c)
			sb.where(cond, a...)
		}
	}
	order := []string{}
	for _, o := range orders {
		order = append(order, "e."+o.Key+dir(o.Desc))
	}
	if len(orders) == 0 {
		order = append(order, "e.creation_time DESC")
	}
	order = append(order, "e.experiment_id ASC")
	query := "SELECT " + prefixCols("e.", experimentCols) + " FROM experiments e WHERE " + sb.cond() +
		" ORDER BY " + strings.Join(order, ", ") + " LIMIT ? OFFSET ?"
	rows, err := s.db.Query(ctx, query, append(sb.args, limit+1, offset)...)
	if err != nil {
		return nil, "", fmt.Errorf("search experiments: %w", err)
	}
	defer rows.Close()
	var out []Experiment
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = pageToken(offset + limit)
	}
	ptrs := make([]*Experiment, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	return out, next, s.loadExperimentTags(ctx, ptrs)
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

// EnsureExperiment returns the id of the experiment named name, creating it
// if needed; "" is the Default experiment.
func (s *Store) EnsureExperiment(ctx context.Context, name string) (string, error) {
	if name == "" {
		return DefaultExperimentID, nil
	}
	for {
		e, err := s.GetExperimentByName(ctx, name)
		if err == nil {
			if e.LifecycleStage != Active {
				return "", forge.Errorf(forge.Invalid, "experiment '%s' is deleted", name)
			}
			return e.ID, nil
		}
		if !forge.IsKind(err, forge.NotFound) {
			return "", err
		}
		id, err := s.CreateExperiment(ctx, name, "", nil)
		if forge.IsKind(err, forge.AlreadyExists) {
			continue // created meanwhile by someone else
		}
		return id, err
	}
}
