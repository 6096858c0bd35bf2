package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/names"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

const (
	maxNameLen     = 256
	maxTagKeyLen   = 250
	maxTagValueLen = 5000
	maxDescLen     = 65536
)

func checkName(name string) error {
	switch {
	case name == "":
		return forge.Errorf(forge.Invalid, "registered model name cannot be empty")
	case len(name) > maxNameLen:
		return forge.Errorf(forge.Invalid, "registered model name is longer than %d characters", maxNameLen)
	}
	// Names are path segments of Forge's own endpoints and NAME in NAME@VERSION.
	return names.CheckModel("registered model name", name)
}

func checkTag(key, value string) error {
	switch {
	case key == "":
		return forge.Errorf(forge.Invalid, "tag key cannot be empty")
	case len(key) > maxTagKeyLen:
		return forge.Errorf(forge.Invalid, "tag key %.40q... is longer than %d characters", key, maxTagKeyLen)
	case len(value) > maxTagValueLen:
		return forge.Errorf(forge.Invalid, "value of tag %q is longer than %d characters", key, maxTagValueLen)
	}
	return nil
}

func checkDescription(d string) error {
	if len(d) > maxDescLen {
		return forge.Errorf(forge.Invalid, "description is longer than %d characters", maxDescLen)
	}
	return nil
}

var (
	aliasRe        = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	versionAliasRe = regexp.MustCompile(`^[vV]?[0-9]+$`)
)

// checkAlias follows MLflow: an alias must not read as a version reference
// (v3, 3) or as "latest", or NAME@REF would be ambiguous.
func checkAlias(alias string) error {
	switch {
	case alias == "":
		return forge.Errorf(forge.Invalid, "alias cannot be empty")
	case len(alias) > 255 || !aliasRe.MatchString(alias):
		return forge.Errorf(forge.Invalid, "invalid alias %q: use at most 255 letters, digits, '_' and '-'", alias)
	case strings.EqualFold(alias, "latest") || versionAliasRe.MatchString(alias):
		return forge.Errorf(forge.Invalid, "invalid alias %q: it is reserved or reads as a version number", alias)
	}
	return nil
}

func modelNotFound(name string) error { return httpapi.ModelNotFound(name) }

// modelID returns the id of a model, within tx.
func modelID(ctx context.Context, tx *sqlstore.Tx, name string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, "SELECT id FROM registered_models WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, modelNotFound(name)
	}
	if err != nil {
		return 0, fmt.Errorf("look up model %q: %w", name, err)
	}
	return id, nil
}

// touchModel records a change to a model and returns its id.
func touchModel(ctx context.Context, tx *sqlstore.Tx, name string, now int64) (int64, error) {
	id, err := modelID(ctx, tx, name)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "UPDATE registered_models SET last_updated_timestamp = ? WHERE id = ?", now, id); err != nil {
		return 0, fmt.Errorf("update model %q: %w", name, err)
	}
	return id, nil
}

// CreateModel registers a new model name.
func (r *Registry) CreateModel(ctx context.Context, name, description string, tags []Tag) (Model, error) {
	if err := checkName(name); err != nil {
		return Model{}, err
	}
	if err := checkDescription(description); err != nil {
		return Model{}, err
	}
	for _, t := range tags {
		if err := checkTag(t.Key, t.Value); err != nil {
			return Model{}, err
		}
	}
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		_, err := insertModel(ctx, tx, name, description, tags, sqlstore.Now())
		return err
	})
	if err != nil {
		return Model{}, err
	}
	return r.GetModel(ctx, name)
}

func insertModel(ctx context.Context, tx *sqlstore.Tx, name, description string, tags []Tag, now int64) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO registered_models (name, description, creation_timestamp, last_updated_timestamp)
		VALUES (?, ?, ?, ?) RETURNING id`, name, description, now, now).Scan(&id)
	if sqlstore.IsUniqueViolation(err) {
		return 0, httpapi.ModelExists(name)
	}
	if err != nil {
		return 0, fmt.Errorf("create model %q: %w", name, err)
	}
	for _, t := range tags {
		if err := upsertTag(ctx, tx, "registered_model_tags", "model_id", id, t); err != nil {
			return 0, err
		}
	}
	return id, nil
}

func upsertTag(ctx context.Context, tx *sqlstore.Tx, table, owner string, id int64, t Tag) error {
	q := `INSERT INTO ` + table + ` (` + owner + `, key, value) VALUES (?, ?, ?)
		ON CONFLICT (` + owner + `, key) DO UPDATE SET value = excluded.value`
	if _, err := tx.Exec(ctx, q, id, t.Key, t.Value); err != nil {
		return fmt.Errorf("set tag %q: %w", t.Key, err)
	}
	return nil
}

// GetModel returns a model with its tags, aliases and latest versions.
func (r *Registry) GetModel(ctx context.Context, name string) (Model, error) {
	ms, err := r.loadModels(ctx, "m.name = ?", []any{name}, "m.id", -1, 0)
	if err != nil {
		return Model{}, err
	}
	if len(ms) == 0 {
		return Model{}, modelNotFound(name)
	}
	return ms[0], nil
}

// loadModels reads the models matching where, then their tags, aliases and
// latest versions in one query each.
func (r *Registry) loadModels(ctx context.Context, where string, args []any, order string, limit, offset int) ([]Model, error) {
	q := `SELECT m.id, m.name, m.description, m.creation_timestamp, m.last_updated_timestamp
		FROM registered_models m WHERE ` + where + ` ORDER BY ` + order
	if limit >= 0 {
		q += fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
	}
	rows, err := r.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	defer rows.Close()
	var out []Model
	var ids []any
	index := map[int64]int{}
	for rows.Next() {
		var id int64
		var m Model
		if err := rows.Scan(&id, &m.Name, &m.Description, &m.CreationTimestamp, &m.LastUpdatedTimestamp); err != nil {
			return nil, fmt.Errorf("read models: %w", err)
		}
		index[id] = len(out)
		ids = append(ids, id)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	in := sqlstore.Placeholders(len(ids))
	err = r.each(ctx, "SELECT model_id, key, value FROM registered_model_tags WHERE model_id IN ("+in+") ORDER BY key", ids, func(rows *sql.Rows) error {
		var id int64
		var t Tag
		if err := rows.Scan(&id, &t.Key, &t.Value); err != nil {
			return err
		}
		out[index[id]].Tags = append(out[index[id]].Tags, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read model tags: %w", err)
	}
	err = r.each(ctx, "SELECT model_id, alias, version FROM registered_model_aliases WHERE model_id IN ("+in+") ORDER BY alias", ids, func(rows *sql.Rows) error {
		var id int64
		var a Alias
		if err := rows.Scan(&id, &a.Alias, &a.Version); err != nil {
			return err
		}
		out[index[id]].Aliases = append(out[index[id]].Aliases, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read model aliases: %w", err)
	}
	latest, err := r.loadVersions(ctx, `v.model_id IN (`+in+`) AND v.version = (SELECT MAX(w.version)
		FROM model_versions w WHERE w.model_id = v.model_id AND w.current_stage = v.current_stage)`, ids, "v.version", -1, 0)
	if err != nil {
		return nil, err
	}
	for _, v := range latest {
		i := index[v.modelID]
		out[i].LatestVersions = append(out[i].LatestVersions, v)
	}
	return out, nil
}

// each runs a read and calls fn for every row.
func (r *Registry) each(ctx context.Context, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := r.db.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RenameModel renames a model; its versions and aliases follow.
func (r *Registry) RenameModel(ctx context.Context, name, newName string) (Model, error) {
	if err := checkName(newName); err != nil {
		return Model{}, err
	}
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := modelID(ctx, tx, name)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE registered_models SET name = ?, last_updated_timestamp = ? WHERE id = ?", newName, sqlstore.Now(), id)
		if sqlstore.IsUniqueViolation(err) {
			return httpapi.ModelExists(newName)
		}
		if err != nil {
			return fmt.Errorf("rename model %q: %w", name, err)
		}
		return r.event(ctx, tx, EventModelRenamed, newName, 0, name)
	})
	if err != nil {
		return Model{}, err
	}
	r.notify.Broadcast()
	return r.GetModel(ctx, newName)
}

// UpdateModel sets a model's description.
func (r *Registry) UpdateModel(ctx context.Context, name, description string) (Model, error) {
	if err := checkDescription(description); err != nil {
		return Model{}, err
	}
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := touchModel(ctx, tx, name, sqlstore.Now())
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE registered_models SET description = ? WHERE id = ?", description, id)
		return err
	})
	if err != nil {
		return Model{}, err
	}
	return r.GetModel(ctx, name)
}

// DeleteModel deletes a model with all its versions and aliases. The blobs
// stay: other versions or runs may share them.
func (r *Registry) DeleteModel(ctx context.Context, name string) error {
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := modelID(ctx, tx, name)
		if err != nil {
			return err
		}
		// Aliases first: their foreign key points at the versions.
		for _, q := range []string{
			"DELETE FROM registered_model_aliases WHERE model_id = ?",
			"DELETE FROM model_versions WHERE model_id = ?",
			"DELETE FROM registered_models WHERE id = ?",
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("delete model %q: %w", name, err)
			}
		}
		return r.event(ctx, tx, EventModelDeleted, name, 0, "")
	})
	if err != nil {
		return err
	}
	r.notify.Broadcast()
	return nil
}

// SetModelTag sets (or replaces) a tag on a model.
func (r *Registry) SetModelTag(ctx context.Context, name, key, value string) error {
	if err := checkTag(key, value); err != nil {
		return err
	}
	return r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := touchModel(ctx, tx, name, sqlstore.Now())
		if err != nil {
			return err
		}
		return upsertTag(ctx, tx, "registered_model_tags", "model_id", id, Tag{key, value})
	})
}

// DeleteModelTag removes a tag from a model.
func (r *Registry) DeleteModelTag(ctx context.Context, name, key string) error {
	return r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := touchModel(ctx, tx, name, sqlstore.Now())
		if err != nil {
			return err
		}
		res, err := tx.Exec(ctx, "DELETE FROM registered_model_tags WHERE model_id = ? AND key = ?", id, key)
		if err != nil {
			return fmt.Errorf("delete tag %q: %w", key, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return forge.Errorf(forge.NotFound, "No tag with name: %s in registered model %s", key, name)
		}
		return nil
	})
}

// SetAlias points alias at a version, creating or moving it in one upsert:
// concurrent moves serialise on the row, and a reader sees the old version
// or the new one, never neither.
func (r *Registry) SetAlias(ctx context.Context, name, alias string, version int64) error {
	return r.moveAlias(ctx, name, alias, version, false)
}

// ForceAlias is SetAlias that moves an alias even to a version whose
// signature differs from the one it points at.
func (r *Registry) ForceAlias(ctx context.Context, name, alias string, version int64) error {
	return r.moveAlias(ctx, name, alias, version, true)
}

func (r *Registry) moveAlias(ctx context.Context, name, alias string, version int64, force bool) error {
	if err := checkAlias(alias); err != nil {
		return err
	}
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := touchModel(ctx, tx, name, sqlstore.Now())
		if err != nil {
			return err
		}
		var newSig string
		err = tx.QueryRow(ctx, "SELECT signature FROM model_versions WHERE model_id = ? AND version = ?", id, version).Scan(&newSig)
		if errors.Is(err, sql.ErrNoRows) {
			return forge.Errorf(forge.Invalid, "cannot set alias %q: Model Version (name=%s, version=%d) not found", alias, name, version)
		}
		if err != nil {
			return fmt.Errorf("set alias %q: %w", alias, err)
		}
		if !force {
			// Clients of the alias (deployments, code loading
			// models:/NAME@ALIAS) break if what they send changes.
			var cur int64
			var curSig string
			err = tx.QueryRow(ctx, `SELECT a.version, v.signature FROM registered_model_aliases a
				JOIN model_versions v ON v.model_id = a.model_id AND v.version = a.version
				WHERE a.model_id = ? AND a.alias = ?`, id, alias).Scan(&cur, &curSig)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("set alias %q: %w", alias, err)
			}
			if err == nil && cur != version {
				if diff := signatureDiff(curSig, newSig); diff != "" {
					return forge.Errorf(forge.Conflict, "alias %q of %s points at version %d, and version %d has another signature (%s): clients of the alias would break; move it anyway with --force", alias, name, cur, version, diff)
				}
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO registered_model_aliases (model_id, alias, version) VALUES (?, ?, ?)
			ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version`, id, alias, version)
		if err != nil {
			return fmt.Errorf("set alias %q: %w", alias, err)
		}
		return r.event(ctx, tx, EventAliasSet, name, version, alias)
	})
	if err != nil {
		return err
	}
	r.notify.Broadcast()
	return nil
}

// DeleteAlias removes an alias.
func (r *Registry) DeleteAlias(ctx context.Context, name, alias string) error {
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		id, err := touchModel(ctx, tx, name, sqlstore.Now())
		if err != nil {
			return err
		}
		var version int64
		err = tx.QueryRow(ctx, "DELETE FROM registered_model_aliases WHERE model_id = ? AND alias = ? RETURNING version", id, alias).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return aliasNotFound(name, alias)
		}
		if err != nil {
			return fmt.Errorf("delete alias %q: %w", alias, err)
		}
		return r.event(ctx, tx, EventAliasDeleted, name, version, alias)
	})
	if err != nil {
		return err
	}
	r.notify.Broadcast()
	return nil
}

func aliasNotFound(name, alias string) error {
	return forge.Errorf(forge.NotFound, "Registered model alias %s not found for model %s", alias, name)
}

// signatureDiff describes how two recorded signatures (JSON, "" for none)
// differ in what a client sends or gets back; "" when they agree or either
// is unknown.
func signatureDiff(oldJSON, newJSON string) string {
	if oldJSON == "" || newJSON == "" {
		return ""
	}
	var a, b Signature
	if json.Unmarshal([]byte(oldJSON), &a) != nil || json.Unmarshal([]byte(newJSON), &b) != nil {
		return ""
	}
	var parts []string
	for _, side := range []struct {
		what     string
		old, new []Tensor
	}{{"inputs", a.Inputs, b.Inputs}, {"outputs", a.Outputs, b.Outputs}} {
		if o, n := tensorList(side.old), tensorList(side.new); o != n {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", side.what, o, n))
		}
	}
	return strings.Join(parts, "; ")
}

func tensorList(ts []Tensor) string {
	var b strings.Builder
	b.WriteString("[")
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s %v", t.Name, t.Datatype, t.Shape)
	}
	b.WriteString("]")
	return b.String()
}
