// Package datasets keeps Forge's datasets: named tables whose versions are
// immutable Parquet files in the blob store, content-addressed by sha256.
// It records each version's metadata in the SQL store, answers read-only SQL
// over them through duckq, profiles and compares them, hands them to jobs,
// and serves all of it over HTTP.
//
// Conversion from the user's files happens where the files are (the CLI);
// the server accepts Parquet only and never trusts the client's numbers: it
// re-reads every upload with DuckDB before a version is made.
package datasets

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Version is one immutable version of a dataset.
type Version struct {
	Name        string         `json:"name"`
	Version     int64          `json:"version"`
	Digest      string         `json:"digest"`
	Rows        int64          `json:"rows"`
	Bytes       int64          `json:"bytes"`
	Columns     []duckq.Column `json:"columns"`
	Source      string         `json:"source"`
	Description string         `json:"description"`
	CreatedBy   string         `json:"created_by"`
	CreatedAt   int64          `json:"created_at"` // ms since the epoch
	Parent      *int64         `json:"parent,omitempty"`
}

// Ref returns "name@version".
func (v Version) Ref() string { return v.Name + "@" + strconv.FormatInt(v.Version, 10) }

// Dataset summarizes a dataset by its latest version.
type Dataset struct {
	Name      string  `json:"name"`
	Versions  int     `json:"versions"`
	Latest    Version `json:"latest"`
	UpdatedAt int64   `json:"updated_at"`
}

// RunUse is a tracking run that used a version as an input.
type RunUse struct {
	RunID        string `json:"run_id"`
	RunName      string `json:"run_name"`
	ExperimentID string `json:"experiment_id"`
	Status       string `json:"status"`
	StartTime    int64  `json:"start_time"`
	Context      string `json:"context,omitempty"`
}

// Ref names a dataset version: Version 0 means the latest.
type Ref struct {
	Name    string
	Version int64
}

func (r Ref) String() string {
	if r.Version == 0 {
		return r.Name
	}
	return r.Name + "@" + strconv.FormatInt(r.Version, 10)
}

// validName keeps names usable as SQL identifiers without quoting when they
// are plain, and free of '@', which separates the version.
var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)

// CheckName returns an Invalid error for a name a dataset cannot have.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return forge.Errorf(forge.Invalid, "dataset name %q: want a letter or _, then up to 127 letters, digits, _ . or -", name)
	}
	return nil
}

// ParseRef reads "name" or "name@version" ("name@latest" is the latest).
func ParseRef(s string) (Ref, error) {
	name, ver, hasVer := strings.Cut(s, "@")
	if err := CheckName(name); err != nil {
		return Ref{}, err
	}
	r := Ref{Name: name}
	if hasVer && ver != "latest" {
		n, err := strconv.ParseInt(ver, 10, 64)
		if err != nil || n < 1 {
			return Ref{}, forge.Errorf(forge.Invalid, "dataset reference %q: the version after @ must be a number from 1, or latest", s)
		}
		r.Version = n
	}
	return r, nil
}

// store is the SQL side: datasets and dataset_versions.
type store struct {
	db *sqlstore.DB
}

const versionCols = "name, version, digest, n_rows, n_bytes, schema, source, description, created_by, created_at, parent"

type scanner interface{ Scan(...any) error }

func scanVersion(s scanner) (Version, error) {
	var v Version
	var cols string
	var parent sql.NullInt64
	err := s.Scan(&v.Name, &v.Version, &v.Digest, &v.Rows, &v.Bytes, &cols, &v.Source, &v.Description, &v.CreatedBy, &v.CreatedAt, &parent)
	if err != nil {
		return Version{}, err
	}
	if parent.Valid {
		v.Parent = &parent.Int64
	}
	if err := json.Unmarshal([]byte(cols), &v.Columns); err != nil {
		return Version{}, fmt.Errorf("decode columns of %s: %w", v.Ref(), err)
	}
	return v, nil
}

// get resolves a reference to its version, or a NotFound error that says
// whether the dataset or the version is missing.
func (s *store) get(ctx context.Context, r Ref) (Version, error) {
	var row *sql.Row
	if r.Version == 0 {
		row = s.db.QueryRow(ctx, "SELECT "+versionCols+" FROM dataset_versions WHERE name = ? ORDER BY version DESC LIMIT 1", r.Name)
	} else {
		row = s.db.QueryRow(ctx, "SELECT "+versionCols+" FROM dataset_versions WHERE name = ? AND version = ?", r.Name, r.Version)
	}
	v, err := scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		if r.Version != 0 && s.exists(ctx, r.Name) {
			return Version{}, forge.Errorf(forge.NotFound, "dataset %s has no version %d", r.Name, r.Version)
		}
		return Version{}, forge.Errorf(forge.NotFound, "no dataset named %s", r.Name)
	}
	if err != nil {
		return Version{}, fmt.Errorf("get dataset %s: %w", r, err)
	}
	return v, nil
}

func (s *store) exists(ctx context.Context, name string) bool {
	var n int
	err := s.db.QueryRow(ctx, "SELECT COUNT(*) FROM dataset_versions WHERE name = ?", name).Scan(&n)
	return err == nil && n > 0
}

// byDigest returns name's version with digest, if there is one.
func (s *store) byDigest(ctx context.Context, name, digest string) (Version, bool, error) {
	v, err := scanVersion(s.db.QueryRow(ctx, "SELECT "+versionCols+" FROM dataset_versions WHERE name = ? AND digest = ?", name, digest))
	if errors.Is(err, sql.ErrNoRows) {
		return Version{}, false, nil
	}
	if err != nil {
		return Version{}, false, fmt.Errorf("find dataset version by digest: %w", err)
	}
	return v, true, nil
}

// create records v as the next version of v.Name, or returns the existing
// version with the same digest (created false). Version numbers come from a
// counter row that the transaction locks, so concurrent adds queue on it.
// also, when set, runs in the same transaction once the version is in.
func (s *store) create(ctx context.Context, v Version, also func(*sqlstore.Tx, Version) error) (Version, bool, error) {
	cols, err := json.Marshal(v.Columns)
	if err != nil {
		return Version{}, false, err
	}
	for attempt := 0; ; attempt++ {
		var out Version
		created := false
		err := s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
			now := sqlstore.Now()
			if _, err := tx.Exec(ctx, "INSERT INTO datasets (name, last_version, created_at, updated_at) VALUES (?, 0, ?, ?) ON CONFLICT (name) DO NOTHING", v.Name, now, now); err != nil {
				return fmt.Errorf("create dataset %s: %w", v.Name, err)
			}
			var next int64
			if err := tx.QueryRow(ctx, "UPDATE datasets SET last_version = last_version + 1, updated_at = ? WHERE name = ? RETURNING last_version", now, v.Name).Scan(&next); err != nil {
				return fmt.Errorf("number dataset version: %w", err)
			}
			old, err := scanVersion(tx.QueryRow(ctx, "SELECT "+versionCols+" FROM dataset_versions WHERE name = ? AND digest = ?", v.Name, v.Digest))
			if err == nil {
				out = old
				return errExisting
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find dataset version by digest: %w", err)
			}
			var parent sql.NullInt64
			if err := tx.QueryRow(ctx, "SELECT MAX(version) FROM dataset_versions WHERE name = ?", v.Name).Scan(&parent); err != nil {
				return fmt.Errorf("find latest version: %w", err)
			}
			v.Version, v.CreatedAt, v.Parent = next, now, nil
			if parent.Valid {
				v.Parent = &parent.Int64
			}
			if _, err := tx.Exec(ctx, "INSERT INTO dataset_versions ("+versionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				v.Name, v.Version, v.Digest, v.Rows, v.Bytes, string(cols), v.Source, v.Description, v.CreatedBy, v.CreatedAt, parent); err != nil {
				return err
			}
			if also != nil {
				if err := also(tx, v); err != nil {
					return err
				}
			}
			out, created = v, true
			return nil
		})
		switch {
		case errors.Is(err, errExisting):
			// The counter bump rolled back with the transaction.
			return out, false, nil
		case err == nil:
			return out, created, nil
		case sqlstore.IsUniqueViolation(err) && attempt < 3:
			// Someone added the same content at the same moment (PostgreSQL
			// only: SQLite transactions are serial); the next try finds it.
			continue
		}
		return Version{}, false, fmt.Errorf("add dataset version: %w", err)
	}
}

var errExisting = errors.New("identical version exists")

// list returns every dataset with its latest version.
func (s *store) list(ctx context.Context) ([]Dataset, error) {
	rows, err := s.db.Query(ctx, `SELECT `+prefixed("v.", versionCols)+`, d.updated_at, c.n
		FROM dataset_versions v
		JOIN datasets d ON d.name = v.name
		JOIN (SELECT name, MAX(version) AS latest, COUNT(*) AS n FROM dataset_versions GROUP BY name) c
			ON c.name = v.name AND c.latest = v.version
		ORDER BY v.name`)
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	defer rows.Close()
	out := []Dataset{}
	for rows.Next() {
		var d Dataset
		var cols string
		var parent sql.NullInt64
		v := &d.Latest
		if err := rows.Scan(&v.Name, &v.Version, &v.Digest, &v.Rows, &v.Bytes, &cols, &v.Source, &v.Description, &v.CreatedBy, &v.CreatedAt, &parent, &d.UpdatedAt, &d.Versions); err != nil {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		if parent.Valid {
			v.Parent = &parent.Int64
		}
		if err := json.Unmarshal([]byte(cols), &v.Columns); err != nil {
			return nil, fmt.Errorf("decode columns of %s: %w", v.Ref(), err)
		}
		d.Name = v.Name
		out = append(out, d)
	}
	return out, rows.Err()
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// versions returns name's versions, newest first; names empty means all
// datasets.
func (s *store) versions(ctx context.Context, name string) ([]Version, error) {
	q, args := "SELECT "+versionCols+" FROM dataset_versions ORDER BY name, version DESC", []any(nil)
	if name != "" {
		q, args = "SELECT "+versionCols+" FROM dataset_versions WHERE name = ? ORDER BY version DESC", []any{name}
	}
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list dataset versions: %w", err)
	}
	defer rows.Close()
	out := []Version{}
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("list dataset versions: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// profile returns the stored profile of a version, or nil.
func (s *store) profile(ctx context.Context, v Version) ([]byte, error) {
	var p sql.NullString
	err := s.db.QueryRow(ctx, "SELECT profile FROM dataset_versions WHERE name = ? AND version = ?", v.Name, v.Version).Scan(&p)
	if err != nil {
		return nil, sqlstore.NotFound(err, "dataset %s has no version %d", v.Name, v.Version)
	}
	if !p.Valid {
		return nil, nil
	}
	return []byte(p.String), nil
}

func (s *store) setProfile(ctx context.Context, v Version, profile []byte) error {
	_, err := s.db.Exec(ctx, "UPDATE dataset_versions SET profile = ? WHERE name = ? AND version = ? AND profile IS NULL", string(profile), v.Name, v.Version)
	if err != nil {
		return fmt.Errorf("store profile of %s: %w", v.Ref(), err)
	}
	return nil
}

// remove deletes the metadata of the given versions of name; with all set,
// the dataset itself goes too, and its version numbers start again at 1.
func (s *store) remove(ctx context.Context, name string, versions []int64, all bool) error {
	return s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if all {
			if _, err := tx.Exec(ctx, "DELETE FROM dataset_versions WHERE name = ?", name); err != nil {
				return fmt.Errorf("remove dataset %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM datasets WHERE name = ?", name); err != nil {
				return fmt.Errorf("remove dataset %s: %w", name, err)
			}
			return nil
		}
		for _, n := range versions {
			if _, err := tx.Exec(ctx, "DELETE FROM dataset_versions WHERE name = ? AND version = ?", name, n); err != nil {
				return fmt.Errorf("remove dataset version %s@%d: %w", name, n, err)
			}
		}
		return nil
	})
}
