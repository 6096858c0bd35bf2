package duckq

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/forge-mlops/forge"
)

// EngineOptions bound the resources of all the DuckDB instances an Engine
// has open at once: queries, conversions, profiles and diffs share them.
// Zero values leave DuckDB's defaults (80% of RAM, all cores, no spilling
// directory unless DuckDB picks one) and run one instance at a time.
type EngineOptions struct {
	// MemoryLimit is the budget of all instances together (DuckDB syntax,
	// e.g. "4GB"); each of the MaxConcurrent instances gets an equal share.
	MemoryLimit string
	// Threads is shared the same way, at least one per instance.
	Threads int
	TempDir string // where DuckDB spills when over its share of MemoryLimit
	// QueryTimeout bounds each Query, waiting for a slot included, on top
	// of the caller's context.
	QueryTimeout time.Duration
	// MaxConcurrent is how many instances may be open at once (0: one);
	// MaxQueued how many callers may wait for one before the rest are
	// refused with forge.Unavailable (0: no limit).
	MaxConcurrent int
	MaxQueued     int
	// Isolate runs users' queries (Query) in worker processes, each held
	// by the operating system to its share of MemoryLimit plus a margin
	// and killed at its deadline (see worker.go). Forge's own work (Open:
	// imports, profiles, diffs) stays in this process.
	Isolate bool
}

// Engine runs dataset work on DuckDB. It holds no open database, only a
// spare instance made ahead (see spare.go), so it is cheap to keep for the
// life of the process and safe for concurrent use. Close frees the spare.
type Engine struct {
	opts    EngineOptions
	budget  *budget
	spares  spares
	workers *workerPool // nil unless opts.Isolate
}

// NewEngine checks opts by opening and closing one instance with them.
func NewEngine(opts EngineOptions) (*Engine, error) {
	b, err := newBudget(opts)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, budget: b}
	db, err := e.open(context.Background(), nil)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("check duckdb options: %w", err)
	}
	db.Close()
	if opts.Isolate {
		if e.workers, err = newWorkerPool(b, opts.TempDir); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Close frees the spare instance, waits for one being made, and stops the
// idle worker processes. Work in progress is not affected (a query keeps
// its worker until it ends); an open after Close fails.
func (e *Engine) Close() error {
	if e.workers != nil {
		e.workers.close()
	}
	return e.spares.close()
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
//
// It waits for a slot of the engine's budget; closing the database gives
// the slot back.
func (e *Engine) open(ctx context.Context, sb *sandbox) (*sql.DB, error) {
	slot, err := e.budget.acquire(ctx)
	if err != nil {
		return nil, err
	}
	var setup []string
	if e.budget.memory != "" {
		setup = append(setup, "SET memory_limit = "+quoteString(e.budget.memory))
	}
	if slot.threads > 0 {
		setup = append(setup, fmt.Sprintf("SET threads = %d", slot.threads))
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
	in, err := e.spares.take()
	if err != nil {
		slot.release()
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	in.ctx, in.setup = ctx, setup
	db := sql.OpenDB(&slotConnector{Connector: in.connector, release: slot.release})
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

// Open returns a fresh DuckDB instance with the engine's resource bounds
// and full file access, for callers inside Forge that build their own SQL
// (never a user's query: use Query for those). The caller closes it.
func (e *Engine) Open(ctx context.Context) (*sql.DB, error) { return e.open(ctx, nil) }
