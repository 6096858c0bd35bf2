package duckq

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/forge-mlops/forge"
)

// Rows streams the result of Engine.Query. Call Close when done, also after
// an error, to free the DuckDB instance behind it.
type Rows struct {
	Columns []Column

	db        *sql.DB
	rows      *sql.Rows
	cancel    context.CancelFunc
	ctxErr    func() error // the query context's Err, to tell cancellation from failure
	limit     int
	n         int
	vals      []any
	truncated bool
	err       error
	remote    *remoteRows // set when the query runs in a worker process
}

// Query runs one read-only SELECT over the given datasets and returns at most
// limit rows (0: no limit). tables maps the names the SQL uses, such as
// `sales` or `"sales@3"`, to Parquet files; those files are the only ones
// the query can read. Anything but a single SELECT, reading another file,
// changing a setting, attaching, installing or loading, is a forge.Invalid
// error, as is any error in the SQL. Cancelling ctx, or QueryTimeout passing,
// interrupts the query and returns at once an error wrapping the context's
// error, while DuckDB is still stopping. A query waits for a slot of the
// engine's budget; with the queue full it is refused with forge.Unavailable.
func (e *Engine) Query(ctx context.Context, query string, tables map[string]string, limit int) (*Rows, error) {
	if limit < 0 {
		return nil, forge.Errorf(forge.Invalid, "limit %d: must not be negative", limit)
	}
	sb := &sandbox{views: make(map[string]string, len(tables))}
	for name, path := range tables {
		if name == "" {
			return nil, forge.Errorf(forge.Invalid, "empty table name")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("table %q: %w", name, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("table %q: %w", name, err)
		}
		sb.views[name] = abs
		sb.allowedPaths = append(sb.allowedPaths, abs)
	}

	var cancel context.CancelFunc
	if e.opts.QueryTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, e.opts.QueryTimeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	if e.workers != nil {
		return e.queryIsolated(ctx, cancel, query, sb.views, limit)
	}
	r := &Rows{cancel: cancel, ctxErr: ctx.Err, limit: limit}
	// DuckDB looks for an interrupt between chunks of work, and one chunk
	// of an expression such as repeat('x', 10000000) over 2048 rows can
	// take minutes. The query runs aside so that the caller hears of the
	// deadline when it passes; an abandoned query keeps its slot of the
	// engine's budget until DuckDB lets go of it.
	done := make(chan error, 1)
	go func() { done <- r.start(ctx, e, sb, query) }()
	select {
	case err := <-done:
		if err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		err := fmt.Errorf("query: %w", ctx.Err())
		go func() {
			<-done
			r.Close()
		}()
		return nil, err
	}
}

// start opens the sandbox, checks the query and runs it, leaving the
// result in r.
func (r *Rows) start(ctx context.Context, e *Engine, sb *sandbox, query string) error {
	var err error
	r.db, err = e.open(ctx, sb)
	if err != nil {
		return err
	}
	if err := checkSelect(ctx, r.db, query); err != nil {
		return err
	}
	// DuckDB materializes a result before the first row is read, so the
	// limit must be part of the query, not of the iteration. One row more
	// than asked tells whether the result was cut.
	body := strings.TrimRight(strings.TrimSpace(query), "; \t\r\n")
	run := body
	if r.limit > 0 {
		run = fmt.Sprintf("SELECT * FROM (\n%s\n) AS forge_query LIMIT %d", body, r.limit+1)
	}
	r.rows, err = r.db.QueryContext(ctx, run)
	if err != nil {
		return mapError(ctx, err, "query") // before Close cancels ctx
	}
	types, err := r.rows.ColumnTypes()
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	for _, ct := range types {
		r.Columns = append(r.Columns, Column{Name: ct.Name(), Type: ct.DatabaseTypeName()})
	}
	return nil
}

// checkSelect lets through one SELECT statement and nothing else. DuckDB's
// own locks (no external access, locked configuration) already stop writes
// to disk and setting changes; this stops the rest (CREATE, INSERT, a
// statement hidden after a semicolon, which the driver would run before the
// last one) and gives a clearer error for all of them.
func checkSelect(ctx context.Context, db *sql.DB, query string) error {
	var parsed string
	if err := db.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", query).Scan(&parsed); err != nil {
		return mapError(ctx, err, "parse query")
	}
	var out struct {
		Error        bool              `json:"error"`
		ErrorType    string            `json:"error_type"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(parsed), &out); err != nil {
		return fmt.Errorf("parse query: %w", err)
	}
	switch {
	case out.Error && strings.Contains(out.ErrorMessage, "Only SELECT"):
		return forge.Errorf(forge.Invalid, "only SELECT queries are allowed")
	case out.Error:
		return forge.Errorf(forge.Invalid, "%s", firstLine(out.ErrorMessage))
	case len(out.Statements) == 0:
		return forge.Errorf(forge.Invalid, "empty query")
	case len(out.Statements) > 1:
		return forge.Errorf(forge.Invalid, "one statement at a time: the query has %d", len(out.Statements))
	}
	return nil
}

// Next advances to the next row; it returns false at the end, at the limit,
// or on an error (see Err).
func (r *Rows) Next() bool {
	if r.remote != nil {
		return r.err == nil && r.nextRemote()
	}
	if r.err != nil || r.rows == nil {
		return false
	}
	if r.limit > 0 && r.n == r.limit {
		r.truncated = r.rows.Next()
		return false
	}
	if !r.rows.Next() {
		r.err = r.mapError(r.rows.Err())
		return false
	}
	if r.vals == nil {
		r.vals = make([]any, len(r.Columns))
	}
	ptrs := make([]any, len(r.vals))
	for i := range r.vals {
		ptrs[i] = &r.vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		r.err = fmt.Errorf("query: read row: %w", err)
		return false
	}
	for i, v := range r.vals {
		r.vals[i] = normalize(v)
	}
	r.n++
	return true
}

// Values returns the current row. The slice is reused by the next call to
// Next. Values are nil, bool, integers, float64, string, []byte, time.Time,
// or lists and maps of these; decimals come as float64 and UUIDs and huge
// integers as strings, so every value encodes to JSON.
func (r *Rows) Values() []any { return r.vals }

// Truncated reports, once Next has returned false, whether rows beyond the
// limit were left out.
func (r *Rows) Truncated() bool { return r.truncated }

// Err returns the error that ended the iteration, if any.
func (r *Rows) Err() error { return r.err }

// Close releases the query's DuckDB instance. It is safe to call twice.
func (r *Rows) Close() error {
	if r.remote != nil {
		r.closeRemote()
	}
	if r.rows != nil {
		r.rows.Close()
		r.rows = nil
	}
	if r.db != nil {
		r.db.Close()
		r.db = nil
	}
	r.cancel()
	return nil
}

func (r *Rows) mapError(err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := r.ctxErr(); ctxErr != nil {
		return fmt.Errorf("query: %w", ctxErr)
	}
	return mapError(context.Background(), err, "query")
}

// ForEach calls fn for every row until the end, the limit, or an error from
// fn, which it returns. It closes r.
func (r *Rows) ForEach(fn func(row []any) error) error {
	defer r.Close()
	for r.Next() {
		if err := fn(r.vals); err != nil {
			return err
		}
	}
	return r.Err()
}

func normalize(v any) any {
	switch x := v.(type) {
	case duckdb.Decimal:
		return x.Float64()
	case duckdb.UUID:
		return x.String()
	case *big.Int:
		if x.IsInt64() {
			return x.Int64()
		}
		return x.String()
	case duckdb.Interval:
		return fmt.Sprintf("%d months %d days %s", x.Months, x.Days, time.Duration(x.Micros)*time.Microsecond)
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}
