package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// NewVersion is what CreateVersion registers.
type NewVersion struct {
	Name        string
	Source      string // runs:/RUN/PATH, mlflow-artifacts:/EXP/RUN/artifacts/PATH, or any URI
	RunID       string
	RunLink     string
	Description string
	Tags        []Tag
	// Format is onnx, xgboost or other; empty detects it from the files.
	Format string
	// Uploads, when set, are the version's files; otherwise they are copied
	// from the run's artifacts that Source names.
	Uploads []Upload
	// CreateModel registers the model name if it does not exist yet, as
	// mlflow.register_model does.
	CreateModel bool
}

// Upload is a file given at registration, spooled to a local file.
type Upload struct {
	Path string // where it goes in the version, slash-separated
	File string // local file holding the content
}

func versionNotFound(name string, version int64) error { return httpapi.VersionNotFound(name, version) }

// ParseVersion reads a version number as MLflow sends it (a string).
func ParseVersion(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return 0, httpapi.BadVersion(s)
	}
	return v, nil
}

// candidate is a file of a version being registered, before it is stored.
type candidate struct {
	File
	local string // the spooled upload; "" when the file is already a blob
}

// CreateVersion validates and registers a new version. Its number is the
// model's next one, taken in the same transaction as the insert, so a
// refused registration never uses up a number.
func (r *Registry) CreateVersion(ctx context.Context, nv NewVersion) (Version, error) {
	// MLflow checks the source before the name or the model.
	if len(nv.Uploads) == 0 {
		if nv.Source == "" {
			return Version{}, httpapi.MissingParam("source")
		}
		if err := r.checkSource(ctx, nv.Source, nv.RunID); err != nil {
			return Version{}, err
		}
	}
	if err := checkName(nv.Name); err != nil {
		return Version{}, err
	}
	if err := checkDescription(nv.Description); err != nil {
		return Version{}, err
	}
	for _, t := range nv.Tags {
		if err := checkTag(t.Key, t.Value); err != nil {
			return Version{}, err
		}
	}
	switch nv.Format {
	case "", FormatONNX, FormatXGBoost, FormatOther:
	default:
		return Version{}, forge.Errorf(forge.Invalid, "unknown model format %q: want onnx, xgboost or other", nv.Format)
	}
	if !nv.CreateModel {
		// Fail fast, before reading any file.
		var one int
		err := r.db.QueryRow(ctx, "SELECT 1 FROM registered_models WHERE name = ?", nv.Name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return Version{}, modelNotFound(nv.Name)
		} else if err != nil {
			return Version{}, fmt.Errorf("look up model %q: %w", nv.Name, err)
		}
	}
	files, err := r.candidates(ctx, &nv)
	if err != nil {
		return Version{}, err
	}
	format, modelFile, sig, err := r.detect(ctx, nv.Format, files)
	if err != nil {
		return Version{}, err
	}
	var sigJSON string
	if sig != nil {
		b, err := json.Marshal(sig)
		if err != nil {
			return Version{}, fmt.Errorf("encode signature: %w", err)
		}
		sigJSON = string(b)
	}
	// Only now, with the files valid, does anything get stored.
	for i := range files {
		if files[i].local == "" {
			continue
		}
		if err := r.putFile(ctx, &files[i]); err != nil {
			return Version{}, err
		}
	}
	var number int64
	err = r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		now := sqlstore.Now()
		var id int64
		var err error
		if nv.CreateModel {
			_, err = tx.Exec(ctx, `INSERT INTO registered_models (name, description, creation_timestamp, last_updated_timestamp)
				VALUES (?, '', ?, ?) ON CONFLICT (name) DO NOTHING`, nv.Name, now, now)
			if err != nil {
				return fmt.Errorf("create model %q: %w", nv.Name, err)
			}
		}
		err = tx.QueryRow(ctx, `UPDATE registered_models SET next_version = next_version + 1, last_updated_timestamp = ?
			WHERE name = ? RETURNING id, next_version - 1`, now, nv.Name).Scan(&id, &number)
		if errors.Is(err, sql.ErrNoRows) {
			return modelNotFound(nv.Name)
		}
		if err != nil {
			return fmt.Errorf("number version of %q: %w", nv.Name, err)
		}
		var vid int64
		err = tx.QueryRow(ctx, `INSERT INTO model_versions (model_id, version, description, source, run_id, run_link,
			status, current_stage, format, model_file, signature, creation_timestamp, last_updated_timestamp)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			id, number, nv.Description, nv.Source, nv.RunID, nv.RunLink, StatusReady, StageNone,
			format, modelFile, sigJSON, now, now).Scan(&vid)
		if err != nil {
			return fmt.Errorf("insert version %d of %q: %w", number, nv.Name, err)
		}
		for _, t := range nv.Tags {
			if err := upsertTag(ctx, tx, "model_version_tags", "version_id", vid, t); err != nil {
				return err
			}
		}
		for _, f := range files {
			_, err := tx.Exec(ctx, "INSERT INTO model_version_files (version_id, path, digest, size) VALUES (?, ?, ?, ?)", vid, f.Path, string(f.Digest), f.Size)
			if err != nil {
				return fmt.Errorf("record file %s: %w", f.Path, err)
			}
		}
		return r.event(ctx, tx, EventVersionCreated, nv.Name, number, "")
	})
	if err != nil {
		return Version{}, err
	}
	r.notify.Broadcast()
	return r.GetVersion(ctx, nv.Name, number)
}

// candidates gathers the files of a new version: the uploads, or the run
// artifacts its source names. A source that names no Forge run (s3://...)
// registers a version without files, as MLflow would.
func (r *Registry) candidates(ctx context.Context, nv *NewVersion) ([]candidate, error) {
	seen := map[string]bool{}
	if len(nv.Uploads) > 0 {
		var out []candidate
		for _, u := range nv.Uploads {
			p, err := cleanPath(u.Path)
			if err != nil {
				return nil, err
			}
			if seen[p] {
				return nil, forge.Errorf(forge.Invalid, "file %q is given twice", p)
			}
			seen[p] = true
			st, err := os.Stat(u.File)
			if err != nil {
				return nil, fmt.Errorf("read upload %s: %w", p, err)
			}
			out = append(out, candidate{File: File{Path: p, Size: st.Size()}, local: u.File})
		}
		if nv.Source == "" {
			nv.Source = "upload:" + out[0].Path
		}
		return out, nil
	}
	runID, artPath, ok := RunSource(nv.Source, nv.RunID)
	if !ok {
		return nil, nil
	}
	if r.runs == nil {
		return nil, forge.Errorf(forge.Invalid, "cannot read the artifacts of run %s: this server has no tracking store", runID)
	}
	arts, err := r.runs.ListRunArtifacts(ctx, runID, artPath)
	if forge.KindOf(err) == forge.NotFound {
		// No such run here: MLflow stores the source as given, without
		// files to serve and without taking a run id from it.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if nv.RunID == "" {
		nv.RunID = runID
	}
	if len(arts) == 0 {
		return nil, forge.Errorf(forge.Invalid, "run %s has no artifacts at %q", runID, artPath)
	}
	var out []candidate
	for _, a := range arts {
		rel := a.Path
		if artPath != "" {
			if a.Path == artPath {
				rel = path.Base(a.Path)
			} else {
				rel = strings.TrimPrefix(a.Path, strings.TrimSuffix(artPath, "/")+"/")
			}
		}
		if seen[rel] {
			continue
		}
		seen[rel] = true
		out = append(out, candidate{File: File{Path: rel, Digest: a.Digest, Size: a.Size}})
	}
	// The version will refer to the artifacts' blobs without storing them:
	// renew them, so a blob sweep running now keeps them (see blobgc).
	if t, ok := r.blobs.(interface{ Touch(forge.Digest) error }); ok {
		for _, c := range out {
			if err := t.Touch(c.Digest); err != nil {
				return nil, fmt.Errorf("artifact %s of run %s: %w", c.Path, runID, err)
			}
		}
	}
	return out, nil
}

// RunSource finds the run and artifact path a version source names:
// runs:/RUN/PATH, mlflow-artifacts:/EXP/RUN/artifacts/PATH, or any URI
// containing /RUN/artifacts/ for the given run id.
func RunSource(source, runID string) (run, artPath string, ok bool) {
	if rest, found := strings.CutPrefix(source, "runs:/"); found {
		rest = strings.TrimLeft(rest, "/")
		run, artPath, _ = strings.Cut(rest, "/")
		return run, strings.Trim(artPath, "/"), run != ""
	}
	if rest, found := strings.CutPrefix(source, "mlflow-artifacts:"); found {
		if strings.HasPrefix(rest, "//") { // mlflow-artifacts://host:port/...
			rest = rest[2:]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[i:]
			} else {
				rest = ""
			}
		}
		parts := strings.SplitN(strings.TrimLeft(rest, "/"), "/", 4)
		if len(parts) >= 3 && parts[2] == "artifacts" && parts[1] != "" {
			if len(parts) == 4 {
				artPath = strings.Trim(parts[3], "/")
			}
			return parts[1], artPath, true
		}
		return "", "", false
	}
	if runID != "" {
		if _, after, found := strings.Cut(source, "/"+runID+"/artifacts"); found && (after == "" || after[0] == '/') {
			return runID, strings.Trim(after, "/"), true
		}
	}
	return "", "", false
}

// cleanPath checks a file path inside a version.
func cleanPath(p string) (string, error) {
	p = strings.TrimPrefix(strings.ReplaceAll(p, "\\", "/"), "./")
	if !fs.ValidPath(p) || p == "." {
		return "", forge.Errorf(forge.Invalid, "invalid file path %q: want a relative path without '..'", p)
	}
	return p, nil
}

const versionCols = `v.id, v.model_id, m.name, v.version, v.description, v.source, v.run_id, v.run_link, v.status,
	v.status_message, v.current_stage, v.format, v.model_file, v.signature, v.creation_timestamp, v.last_updated_timestamp`

// loadVersions reads the versions matching where, with their tags and aliases.
func (r *Registry) loadVersions(ctx context.Context, where string, args []any, order string, limit, offset int) ([]Version, error) {
	q := `SELECT ` + versionCols + ` FROM model_versions v JOIN registered_models m ON m.id = v.model_id
		WHERE ` + where + ` ORDER BY ` + order
	if limit >= 0 {
		q += fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
	}
	var out []Version
	var ids []any
	index := map[int64]int{}
	err := r.each(ctx, q, args, func(rows *sql.Rows) error {
		var v Version
		var sig string
		if err := rows.Scan(&v.id, &v.modelID, &v.Name, &v.Version, &v.Description, &v.Source, &v.RunID, &v.RunLink,
			&v.Status, &v.StatusMessage, &v.Stage, &v.Format, &v.ModelFile, &sig, &v.CreationTimestamp, &v.LastUpdatedTimestamp); err != nil {
			return err
		}
		if sig != "" {
			v.Signature = new(Signature)
			if err := json.Unmarshal([]byte(sig), v.Signature); err != nil {
				return fmt.Errorf("signature of %s version %d: %w", v.Name, v.Version, err)
			}
		}
		index[v.id] = len(out)
		ids = append(ids, v.id)
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	in := sqlstore.Placeholders(len(ids))
	err = r.each(ctx, "SELECT version_id, key, value FROM model_version_tags WHERE version_id IN ("+in+") ORDER BY key", ids, func(rows *sql.Rows) error {
		var id int64
		var t Tag
		if err := rows.Scan(&id, &t.Key, &t.Value); err != nil {
			return err
		}
		out[index[id]].Tags = append(out[index[id]].Tags, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read version tags: %w", err)
	}
	err = r.each(ctx, `SELECT v.id, a.alias FROM registered_model_aliases a
		JOIN model_versions v ON v.model_id = a.model_id AND v.version = a.version
		WHERE v.id IN (`+in+`) ORDER BY a.alias`, ids, func(rows *sql.Rows) error {
		var id int64
		var alias string
		if err := rows.Scan(&id, &alias); err != nil {
			return err
		}
		out[index[id]].Aliases = append(out[index[id]].Aliases, alias)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read version aliases: %w", err)
	}
	return out, nil
}

// GetVersion returns one version.
func (r *Registry) GetVersion(ctx context.Context, name string, version int64) (Version, error) {
	vs, err := r.loadVersions(ctx, "m.name = ? AND v.version = ?", []any{name, version}, "v.id", -1, 0)
	if err != nil {
		return Version{}, err
	}
	if len(vs) == 0 {
		return Version{}, versionNotFound(name, version)
	}
	return vs[0], nil
}

// VersionByAlias returns the version an alias points at.
func (r *Registry) VersionByAlias(ctx context.Context, name, alias string) (Version, error) {
	vs, err := r.loadVersions(ctx, `m.name = ? AND v.version = (SELECT a.version FROM registered_model_aliases a
		WHERE a.model_id = m.id AND a.alias = ?)`, []any{name, alias}, "v.id", -1, 0)
	if err != nil {
		return Version{}, err
	}
	if len(vs) == 0 {
		if _, err := r.GetModel(ctx, name); err != nil {
			return Version{}, err
		}
		return Version{}, aliasNotFound(name, alias)
	}
	return vs[0], nil
}

// Resolve finds the version that ref names: a number, "latest" (the highest
// number) or an alias.
func (r *Registry) Resolve(ctx context.Context, name, ref string) (Version, error) {
	switch {
	case ref == "" || ref == "latest":
		vs, err := r.loadVersions(ctx, "m.name = ?", []any{name}, "v.version DESC", 1, 0)
		if err != nil {
			return Version{}, err
		}
		if len(vs) == 0 {
			if _, err := r.GetModel(ctx, name); err != nil {
				return Version{}, err
			}
			return Version{}, forge.Errorf(forge.NotFound, "registered model %s has no versions", name)
		}
		return vs[0], nil
	case versionAliasRe.MatchString(ref):
		v, err := ParseVersion(strings.TrimLeft(ref, "vV"))
		if err != nil {
			return Version{}, err
		}
		return r.GetVersion(ctx, name, v)
	}
	return r.VersionByAlias(ctx, name, ref)
}

// Files returns the files of a version, in path order.
func (r *Registry) Files(ctx context.Context, name string, version int64) ([]File, error) {
	v, err := r.GetVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	var out []File
	err = r.each(ctx, "SELECT path, digest, size FROM model_version_files WHERE version_id = ? ORDER BY path", []any{v.id}, func(rows *sql.Rows) error {
		var f File
		var d string
		if err := rows.Scan(&f.Path, &d, &f.Size); err != nil {
			return err
		}
		f.Digest = forge.Digest(d)
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read files of %s version %d: %w", name, version, err)
	}
	return out, nil
}

// ReferencedDigests lists every blob some version refers to, for a blob
// collector that must not delete them with a run's artifacts.
func (r *Registry) ReferencedDigests(ctx context.Context) ([]forge.Digest, error) {
	var out []forge.Digest
	err := r.each(ctx, "SELECT DISTINCT digest FROM model_version_files ORDER BY digest", nil, func(rows *sql.Rows) error {
		var d string
		if err := rows.Scan(&d); err != nil {
			return err
		}
		out = append(out, forge.Digest(d))
		return nil
	})
	return out, err
}

// versionTx finds a version inside tx and records a change to it.
func versionTx(ctx context.Context, tx *sqlstore.Tx, name string, version int64, now int64) (modelID, id int64, err error) {
	modelID, err = touchModel(ctx, tx, name, now)
	if err != nil {
		return 0, 0, err
	}
	err = tx.QueryRow(ctx, "SELECT id FROM model_versions WHERE model_id = ? AND version = ?", modelID, version).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, versionNotFound(name, version)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("look up %s version %d: %w", name, version, err)
	}
	_, err = tx.Exec(ctx, "UPDATE model_versions SET last_updated_timestamp = ? WHERE id = ?", now, id)
	return modelID, id, err
}

// UpdateVersion sets a version's description.
func (r *Registry) UpdateVersion(ctx context.Context, name string, version int64, description string) (Version, error) {
	if err := checkDescription(description); err != nil {
		return Version{}, err
	}
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		_, id, err := versionTx(ctx, tx, name, version, sqlstore.Now())
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE model_versions SET description = ? WHERE id = ?", description, id)
		return err
	})
	if err != nil {
		return Version{}, err
	}
	return r.GetVersion(ctx, name, version)
}

// DeleteVersion deletes a version and the aliases that point at it; each
// alias deletion is an event of its own, so followers drop the alias.
func (r *Registry) DeleteVersion(ctx context.Context, name string, version int64) error {
	err := r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		modelID, id, err := versionTx(ctx, tx, name, version, sqlstore.Now())
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "DELETE FROM registered_model_aliases WHERE model_id = ? AND version = ? RETURNING alias", modelID, version)
		if err != nil {
			return fmt.Errorf("delete aliases of %s version %d: %w", name, version, err)
		}
		var aliases []string
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return err
			}
			aliases = append(aliases, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM model_versions WHERE id = ?", id); err != nil {
			return fmt.Errorf("delete %s version %d: %w", name, version, err)
		}
		for _, a := range aliases {
			if err := r.event(ctx, tx, EventAliasDeleted, name, version, a); err != nil {
				return err
			}
		}
		return r.event(ctx, tx, EventVersionDeleted, name, version, "")
	})
	if err != nil {
		return err
	}
	r.notify.Broadcast()
	return nil
}

// CanonicalStage returns MLflow's spelling of a stage, matched without case.
func CanonicalStage(s string) (string, error) {
	for _, st := range []string{StageNone, StageStaging, StageProduction, StageArchived} {
		if strings.EqualFold(s, st) {
			return st, nil
		}
	}
	return "", httpapi.BadStage(s)
}

// TransitionStage moves a version to a stage; with archiveExisting, the
// other versions in that stage (Staging or Production) become Archived in
// the same transaction.
func (r *Registry) TransitionStage(ctx context.Context, name string, version int64, stage string, archiveExisting bool) (Version, error) {
	stage, err := CanonicalStage(stage)
	if err != nil {
		return Version{}, err
	}
	if archiveExisting && stage != StageStaging && stage != StageProduction {
		return Version{}, forge.Errorf(forge.Invalid, "archive_existing_versions is only valid when moving to Staging or Production, not %s", stage)
	}
	err = r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		now := sqlstore.Now()
		modelID, id, err := versionTx(ctx, tx, name, version, now)
		if err != nil {
			return err
		}
		if archiveExisting {
			_, err := tx.Exec(ctx, `UPDATE model_versions SET current_stage = ?, last_updated_timestamp = ?
				WHERE model_id = ? AND current_stage = ? AND id <> ?`, StageArchived, now, modelID, stage, id)
			if err != nil {
				return fmt.Errorf("archive versions of %s: %w", name, err)
			}
		}
		_, err = tx.Exec(ctx, "UPDATE model_versions SET current_stage = ? WHERE id = ?", stage, id)
		if err != nil {
			return fmt.Errorf("move %s version %d to %s: %w", name, version, stage, err)
		}
		return r.event(ctx, tx, EventStageChanged, name, version, stage)
	})
	if err != nil {
		return Version{}, err
	}
	r.notify.Broadcast()
	return r.GetVersion(ctx, name, version)
}

// LatestVersions returns the newest version in each of stages (all stages
// when empty), in stage order.
func (r *Registry) LatestVersions(ctx context.Context, name string, stages []string) ([]Version, error) {
	m, err := r.GetModel(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return m.LatestVersions, nil
	}
	var out []Version
	for _, s := range stages {
		st, err := CanonicalStage(s)
		if err != nil {
			return nil, err
		}
		for _, v := range m.LatestVersions {
			if v.Stage == st {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// SetVersionTag sets (or replaces) a tag on a version.
func (r *Registry) SetVersionTag(ctx context.Context, name string, version int64, key, value string) error {
	if err := checkTag(key, value); err != nil {
		return err
	}
	return r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		_, id, err := versionTx(ctx, tx, name, version, sqlstore.Now())
		if err != nil {
			return err
		}
		return upsertTag(ctx, tx, "model_version_tags", "version_id", id, Tag{key, value})
	})
}

// DeleteVersionTag removes a tag from a version.
func (r *Registry) DeleteVersionTag(ctx context.Context, name string, version int64, key string) error {
	return r.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		_, id, err := versionTx(ctx, tx, name, version, sqlstore.Now())
		if err != nil {
			return err
		}
		res, err := tx.Exec(ctx, "DELETE FROM model_version_tags WHERE version_id = ? AND key = ?", id, key)
		if err != nil {
			return fmt.Errorf("delete tag %q: %w", key, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return forge.Errorf(forge.NotFound, "No tag with name: %s in model version (name=%s, version=%d)", key, name, version)
		}
		return nil
	})
}

// ResolveFiles returns the version ref names (a number, an alias or
// "latest") with its files: what a runtime needs to load it.
func (r *Registry) ResolveFiles(ctx context.Context, name, ref string) (Version, []File, error) {
	v, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return Version{}, nil, err
	}
	files, err := r.Files(ctx, v.Name, v.Version)
	return v, files, err
}
