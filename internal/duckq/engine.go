package duckq

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/forge-mlops/forge"
)

// EngineOptions bound the resources of every DuckDB instance an Engine opens.
// Zero values leave DuckDB's defaults (80% of RAM, all cores, no spilling
// directory unless DuckDB picks one).
type EngineOptions struct {
	MemoryLimit string // DuckDB syntax, e.g. "4GB"
	Threads     int
	TempDir     string // where DuckDB spills when over MemoryLimit
	// QueryTimeout bounds each Query, on top of the caller's context.
	QueryTimeout time.Duration
}

// Engine runs dataset work on DuckDB. It holds no open database, so it is
// cheap to keep for the life of the process and safe for concurrent use.
type Engine struct {
	opts EngineOptions
}

// NewEngine checks opts by opening and closing one instance with them.
func NewEngine(opts EngineOptions) (*Engine, error) {
	e := &Engine{opts: opts}
	db, err := e.open(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("check duckdb options: %w", err)
	}
	db.Close()
	return e, nil
}

// sandbox describes the locked-down instance a user query runs in.
type sandbox struct {
	allowedPaths []string
	views        map[string]string // name -> parquet path, created before the lock
}

// open returns a database with one connection, so that session state (temp
// tables, views, settings) is seen by every statement run through it.
// With sb set, the instance can read only sb.allowedPaths and its
// configuration cannot be changed afterwards.
func (e *Engine) open(ctx context.Context, sb *sandbox) (*sql.DB, error) {
	var setup []string
	if e.opts.MemoryLimit != "" {
		setup = append(setup, "SET memory_limit = "+quoteString(e.opts.MemoryLimit))
	}
	if e.opts.Threads > 0 {
		setup = append(setup, fmt.Sprintf("SET threads = %d", e.opts.Threads))
	}
	if e.opts.TempDir != "" {
		setup = append(setup, "SET temp_directory = "+quoteString(e.opts.TempDir))
	}
	// Extensions would be fetched from the network or read from ~/.duckdb;
	// everything Forge needs (parquet, json) is built in.
	setup = append(setup,
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
	)
	if sb != nil {
		for name, path := range sb.views {
			setup = append(setup, fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM read_parquet(%s)",
				quoteIdent(name), quoteString(path)))
		}
		quoted := make([]string, len(sb.allowedPaths))
		for i, p := range sb.allowedPaths {
			quoted[i] = quoteString(p)
		}
		setup = append(setup,
			"SET allowed_paths = ["+strings.Join(quoted, ", ")+"]",
			"SET enable_external_access = false",
			"SET lock_configuration = true",
		)
	}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		for _, stmt := range setup {
			if _, err := execer.ExecContext(ctx, stmt, nil); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	// Connect now so that bad options fail here, not on first use.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, mapError(ctx, err, "open duckdb")
	}
	return db, nil
}

// mapError turns an error from DuckDB into what a caller should see: the
// context's error when the work was cancelled, forge.Invalid with the first
// line of DuckDB's message when the input or the SQL is at fault, and a
// wrapped error otherwise.
func mapError(ctx context.Context, err error, doing string) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", doing, ctxErr)
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	switch de.Type {
	case duckdb.ErrorTypeInterrupt:
		return fmt.Errorf("%s: %w", doing, context.Canceled)
	case duckdb.ErrorTypeInternal, duckdb.ErrorTypeFatal, duckdb.ErrorTypeIO,
		duckdb.ErrorTypeConnection, duckdb.ErrorTypeNullPointer:
		return fmt.Errorf("%s: %w", doing, err)
	case duckdb.ErrorTypeOutOfMemory:
		return forge.WrapError(forge.Unavailable, err, "%s: out of memory", doing)
	}
	return forge.WrapError(forge.Invalid, err, "%s", firstLine(de.Msg))
}

// firstLine keeps the part of a DuckDB message worth showing: the first
// line, without the hints and the echo of the SQL that follow it, and
// without the folders of the files it names (ClientText).
func firstLine(msg string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return ClientText(strings.TrimSpace(line))
}

// quotedPath is an absolute path as DuckDB quotes it in a message.
var quotedPath = regexp.MustCompile(`(['"])(/[^'"\n]*)(['"])`)

// ClientText makes DuckDB's text fit for a client: a file it names (an
// upload in the data dir's tmp, a dataset's blob) keeps its base name, never
// the server's folders.
func ClientText(msg string) string {
	return quotedPath.ReplaceAllStringFunc(msg, func(m string) string {
		q := m[:1]
		return q + filepath.Base(m[1:len(m)-1]) + q
	})
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// typeName accepts what a user may write as a column type in a schema
// override: letters, digits, spaces, parentheses and commas (DECIMAL(10,2),
// VARCHAR, TIMESTAMP WITH TIME ZONE). DuckDB rejects unknown names itself;
// this only keeps the text from escaping its string literal or struct.
var typeName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_ ]*(\([0-9, ]+\))?(\[\])?$`)
