// Package sqlstore is Forge's metadata database: SQLite (the embedded default)
// or PostgreSQL behind one type. Each concept package (tracking, registry,
// jobs ...) writes its queries against DB with `?` placeholders and a portable
// SQL subset; DB rebinds them for PostgreSQL. The schema is embedded as
// versioned migrations, one folder per dialect, applied at Open.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/mattn/go-sqlite3"
)

// Dialect is the SQL flavour behind a DB.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Options says which database to open.
type Options struct {
	// URL is empty for SQLite in DataDir, "sqlite:PATH", or "postgres://...".
	URL     string
	DataDir string
	Logger  *slog.Logger
}

// DB is an open metadata database with its schema up to date.
type DB struct {
	dialect Dialect
	// w takes every write. On SQLite it is one connection, so writers queue in
	// Go instead of failing with "database is locked"; r is a pool of
	// read-only connections that WAL lets run beside the writer.
	w, r   *sql.DB
	rebind sync.Map // query -> query with $n placeholders (PostgreSQL)
}

// Open opens (creating if needed) the database and applies migrations.
func Open(ctx context.Context, opts Options) (*DB, error) {
	var db *DB
	var err error
	switch {
	case strings.HasPrefix(opts.URL, "postgres://"), strings.HasPrefix(opts.URL, "postgresql://"):
		db, err = openPostgres(ctx, opts.URL)
	case opts.URL == "" || strings.HasPrefix(opts.URL, "sqlite:"):
		path := strings.TrimPrefix(opts.URL, "sqlite:")
		if path == "" {
			path = filepath.Join(opts.DataDir, "forge.db")
		}
		db, err = openSQLite(ctx, path)
	default:
		return nil, fmt.Errorf("open database: unsupported URL %q", opts.URL)
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	// synchronous=NORMAL in WAL mode: a commit survives the process being
	// killed (the WAL is in the OS page cache); only a power cut can lose the
	// last commits. That keeps a write at tens of microseconds, not an fsync.
	// LIKE is case-sensitive, as in PostgreSQL and MLflow; ILIKE is LOWER() LIKE LOWER().
	// Each connection keeps its last 128 prepared statements: parsing SQL
	// again was a sixth of the server's CPU when creating runs.
	common := "_busy_timeout=10000&_foreign_keys=on&_synchronous=NORMAL&_cslike=true&_stmt_cache_size=128"
	w, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_txlock=immediate&"+common)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, sqliteCause(err))
	}
	// Make sure WAL is really on (the DSN option is applied per connection).
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: cannot enable WAL (mode %q): %v", path, mode, err)
	}
	r, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&"+common)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	return &DB{dialect: SQLite, w: w, r: r}, nil
}

func sqliteCause(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrCantOpen {
		return fmt.Errorf("cannot create or open the database file (is the folder writable?): %w", err)
	}
	return err
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	where := dsn
	if u, err := url.Parse(dsn); err == nil {
		where = u.Host + u.Path
	}
	p, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	p.SetMaxOpenConns(32)
	p.SetMaxIdleConns(32)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.PingContext(pctx); err != nil {
		p.Close()
		// pgx lists every address it tried on its own line; keep one line.
		msg := strings.Join(strings.Fields(err.Error()), " ")
		return nil, fmt.Errorf("connect to postgres %s: %s", where, msg)
	}
	return &DB{dialect: Postgres, w: p, r: p}, nil
}

// Dialect says which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close closes every connection.
func (db *DB) Close() error {
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// Ping checks that the database answers (for readiness).
func (db *DB) Ping(ctx context.Context) error { return db.w.PingContext(ctx) }

// Rebind turns `?` placeholders into the dialect's. Queries must not contain a
// literal `?` in a string.
func (db *DB) Rebind(q string) string {
	if db.dialect != Postgres {
		return q
	}
	if v, ok := db.rebind.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	s := b.String()
	db.rebind.Store(q, s)
	return s
}

// Query runs a read on the reader pool.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.r.QueryContext(ctx, db.Rebind(q), args...)
}

// EachString runs a read whose rows are one text column and calls fn with
// each non-null value.
func (db *DB) EachString(ctx context.Context, q string, fn func(string)) error {
	rows, err := db.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return err
		}
		if v.Valid {
			fn(v.String)
		}
	}
	return rows.Err()
}

// QueryRow runs a single-row read on the reader pool.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.r.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Exec runs one write statement on the writer.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.w.ExecContext(ctx, db.Rebind(q), args...)
}

// Tx is a write transaction: a *sql.Tx on PostgreSQL, the writer
// connection itself on SQLite (see DB.Tx).
type Tx struct {
	tx *sql.Tx
	// c is SQLite's writer connection, in a transaction begun by hand.
	c  *sql.Conn
	db *DB
}

// runner is what *sql.Tx and *sql.Conn both do.
type runner interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, q string) (*sql.Stmt, error)
}

func (tx *Tx) run(ctx context.Context) (runner, context.Context) {
	if tx.c != nil {
		// A statement, once the transaction has begun, runs to its end: a
		// context without Done keeps go-sqlite3 on its synchronous path,
		// where a cancellable one costs a goroutine and a channel
		// handoff per statement (two thread wake-ups on a busy machine).
		return tx.c, context.WithoutCancel(ctx)
	}
	return tx.tx, ctx
}

// Dialect says which database this is.
func (tx *Tx) Dialect() Dialect { return tx.db.dialect }

func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r, ctx := tx.run(ctx)
	return r.ExecContext(ctx, tx.db.Rebind(q), args...)
}

func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r, ctx := tx.run(ctx)
	return r.QueryContext(ctx, tx.db.Rebind(q), args...)
}

func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	r, ctx := tx.run(ctx)
	return r.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// Prepare prepares a statement for repeated use inside the transaction.
func (tx *Tx) Prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	r, ctx := tx.run(ctx)
	return r.PrepareContext(ctx, tx.db.Rebind(q))
}

// Stmt is a write statement prepared once, for the hot paths: SQLite
// otherwise parses the SQL again on every call.
type Stmt struct {
	s *sql.Stmt
	q string // rebound
}

// PrepareWrite prepares q on the writer. Call it at start-up, never inside
// a transaction: on SQLite the writer is one connection, which the
// transaction holds.
func (db *DB) PrepareWrite(ctx context.Context, q string) (*Stmt, error) {
	q = db.Rebind(q)
	if db.dialect == SQLite {
		// The writer connection keeps its prepared statements itself
		// (_stmt_cache_size); check that q parses now, as Prepare did.
		s, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		s.Close()
		return &Stmt{q: q}, nil
	}
	s, err := db.w.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", q, err)
	}
	return &Stmt{s: s, q: q}, nil
}

// ExecStmt runs a prepared statement in the transaction.
func (tx *Tx) ExecStmt(ctx context.Context, st *Stmt, args ...any) (sql.Result, error) {
	if tx.c != nil || st.s == nil {
		r, ctx := tx.run(ctx)
		return r.ExecContext(ctx, st.q, args...)
	}
	return tx.tx.StmtContext(ctx, st.s).ExecContext(ctx, args...)
}

// QueryStmt runs a prepared query in the transaction (an INSERT with
// RETURNING).
func (tx *Tx) QueryStmt(ctx context.Context, st *Stmt, args ...any) (*sql.Rows, error) {
	if tx.c != nil || st.s == nil {
		r, ctx := tx.run(ctx)
		return r.QueryContext(ctx, st.q, args...)
	}
	return tx.tx.StmtContext(ctx, st.s).QueryContext(ctx, args...)
}

// QueryRowStmt runs a prepared single-row query in the transaction.
func (tx *Tx) QueryRowStmt(ctx context.Context, st *Stmt, args ...any) *sql.Row {
	if tx.c != nil || st.s == nil {
		r, ctx := tx.run(ctx)
		return r.QueryRowContext(ctx, st.q, args...)
	}
	return tx.tx.StmtContext(ctx, st.s).QueryRowContext(ctx, args...)
}

// Tx runs fn in a write transaction, committing if fn returns nil. On SQLite
// the transaction starts IMMEDIATE, so it never fails half-way on a lock.
func (db *DB) Tx(ctx context.Context, fn func(*Tx) error) error {
	if db.dialect == SQLite {
		return db.sqliteTx(ctx, fn)
	}
	stx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// After a commit this is a no-op; after a panic in fn it frees the
	// connection and its locks.
	defer stx.Rollback()
	if err := fn(&Tx{tx: stx, db: db}); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// sqliteTx runs fn in a transaction begun by hand on the writer connection.
// database/sql's BeginTx starts a goroutine per transaction to watch the
// context, and go-sqlite3 one per statement: on a log-metric that was most
// of the server's thread wake-ups. Waiting for the writer still honours
// ctx; once begun, the transaction runs to commit or rollback.
func (db *DB) sqliteTx(ctx context.Context, fn func(*Tx) error) error {
	c, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer c.Close()
	bg := context.WithoutCancel(ctx)
	if _, err := c.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	open := true
	defer func() {
		// fn failed, panicked or the commit failed: never hand the
		// connection back inside a transaction.
		if open {
			c.ExecContext(bg, "ROLLBACK")
		}
	}()
	if err := fn(&Tx{c: c, db: db}); err != nil {
		return err
	}
	if _, err := c.ExecContext(bg, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	open = false
	return nil
}

// IsUniqueViolation reports whether err is a unique-constraint failure, on
// either dialect.
func IsUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// NotFound maps sql.ErrNoRows to a forge.NotFound error with msg.
func NotFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return forge.Errorf(forge.NotFound, format, args...)
	}
	return err
}

// StringsTable returns a table expression of values with columns i (the
// position in values, from 0) and v (the value), bound to a single argument,
// for joining a table to a list of keys of any length.
func (db *DB) StringsTable(values []string) (string, any) {
	if db.dialect == Postgres {
		return "(SELECT u.i - 1 AS i, u.v FROM unnest(?::text[]) WITH ORDINALITY AS u(v, i))", values
	}
	b, _ := json.Marshal(values)
	return "(SELECT key AS i, value AS v FROM json_each(?))", string(b)
}

// Placeholders returns "?, ?, ?" with n marks, for IN lists.
func Placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// Now is the time stored for "now": milliseconds since the epoch, as MLflow does.
func Now() int64 { return time.Now().UnixMilli() }

// EnsureDir creates dir, failing with a clear message when it cannot.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".writable-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
