package datasets

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/duckq"
)

// Source is what `forge data add` reads: files or a folder, or a PostgreSQL
// query.
type Source struct {
	// Path is a file, a folder, or a postgres:// URL.
	Path      string
	Delimiter string
	Header    *bool
	Schema    []duckq.Column
	// Query is the SELECT to run when Path is a PostgreSQL URL.
	Query string
}

// IsPostgres reports whether the source is a PostgreSQL URL.
func (s Source) IsPostgres() bool {
	return strings.HasPrefix(s.Path, "postgres://") || strings.HasPrefix(s.Path, "postgresql://")
}

// Describe is the source as recorded with a version: an absolute path, or
// the PostgreSQL URL without its password, and the query.
func (s Source) Describe() string {
	if s.IsPostgres() {
		u, err := url.Parse(s.Path)
		if err != nil {
			return "postgres"
		}
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		q.Del("password")
		u.RawQuery = q.Encode()
		return u.String() + " query: " + s.Query
	}
	if abs, err := filepath.Abs(s.Path); err == nil {
		return abs
	}
	return s.Path
}

// ParseSchema reads "col:type,col:type". A type may itself hold a comma
// (DECIMAL(10,2)), so commas inside parentheses do not split.
func ParseSchema(s string) ([]duckq.Column, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, s[start:])
	var cols []duckq.Column
	for _, p := range parts {
		name, typ, ok := strings.Cut(strings.TrimSpace(p), ":")
		if !ok || strings.TrimSpace(name) == "" || strings.TrimSpace(typ) == "" {
			return nil, forge.Errorf(forge.Invalid, "--schema %q: want col:type,col:type", s)
		}
		cols = append(cols, duckq.Column{Name: strings.TrimSpace(name), Type: strings.TrimSpace(typ)})
	}
	return cols, nil
}

// Convert writes the source as one Parquet file at dst, with duckq. This is
// the client side of `forge data add`: the files and the database are
// reachable from where the CLI runs, and Parquet is compact to upload.
func Convert(ctx context.Context, eng *duckq.Engine, src Source, dst string) (duckq.Table, error) {
	if src.IsPostgres() {
		if strings.TrimSpace(src.Query) == "" {
			return duckq.Table{}, forge.Errorf(forge.Invalid, "a postgres:// source needs --query \"SELECT ...\"")
		}
		return eng.ConvertPostgres(ctx, src.Path, src.Query, dst)
	}
	if src.Query != "" {
		return duckq.Table{}, forge.Errorf(forge.Invalid, "--query applies to postgres:// sources only")
	}
	t, err := eng.Convert(ctx, duckq.Source{Path: src.Path, Delimiter: src.Delimiter, Header: src.Header, Schema: src.Schema}, dst, duckq.ConvertOptions{})
	if err != nil {
		return duckq.Table{}, fmt.Errorf("convert %s: %w", src.Path, err)
	}
	return t, nil
}
