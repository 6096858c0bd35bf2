package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// BulkColumn is a column that a bulk insert fills row by row, with its
// PostgreSQL array element type: text, float8, boolean or bigint.
type BulkColumn struct {
	Name, Type string
}

// Bulk inserts many rows in one statement. The rows travel as one JSON
// array on SQLite (json_each unpacks it: binding each value through cgo cost
// more than SQLite's work) and as one array per column on PostgreSQL
// (unnest zips them back into rows: one statement per row was a round trip
// each).
type Bulk struct {
	st    *Stmt  // SQLite, prepared
	pg    string // PostgreSQL
	types []string
}

// PrepareBulk prepares "INSERT INTO table (fixed..., cols...) ... suffix",
// where the fixed columns take one value for every row. Like PrepareWrite,
// call it outside any transaction.
func (db *DB) PrepareBulk(ctx context.Context, table string, fixed []string, cols []BulkColumn, suffix string) (*Bulk, error) {
	names := append([]string(nil), fixed...)
	b := &Bulk{}
	for _, c := range cols {
		switch c.Type {
		case "text", "float8", "boolean", "bigint":
		default:
			return nil, fmt.Errorf("bulk insert into %s: column %s: type %q is not text, float8, boolean or bigint", table, c.Name, c.Type)
		}
		names = append(names, c.Name)
		b.types = append(b.types, c.Type)
	}
	head := "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") SELECT " + strings.Repeat("?, ", len(fixed))
	if db.dialect == Postgres {
		var sel, arrays, alias []string
		for i, c := range cols {
			sel = append(sel, "u.c"+strconv.Itoa(i))
			arrays = append(arrays, "?::"+c.Type+"[]")
			alias = append(alias, "c"+strconv.Itoa(i))
		}
		b.pg = head + strings.Join(sel, ", ") + " FROM unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(alias, ", ") + ") " + suffix
		return b, nil
	}
	var sel []string
	for i := range cols {
		sel = append(sel, "json_extract(value, '$["+strconv.Itoa(i)+"]')")
	}
	// WHERE true: SQLite's parser needs it before an upsert's ON CONFLICT.
	st, err := db.PrepareWrite(ctx, head+strings.Join(sel, ", ")+" FROM json_each(?) WHERE true "+suffix)
	if err != nil {
		return nil, err
	}
	b.st = st
	return b, nil
}

// ExecBulk inserts the rows: fixed are the fixed columns' values, and cols
// one slice per column, in PrepareBulk's order and of one length: []string
// for text, []float64 for float8 (NaN is stored as NULL), []bool for
// boolean, []int64 for bigint.
func (tx *Tx) ExecBulk(ctx context.Context, b *Bulk, fixed []any, cols ...any) error {
	rows, err := tx.bulk(ctx, b, false, fixed, cols)
	if rows != nil {
		rows.Close()
	}
	return err
}

// QueryBulk is ExecBulk for a statement whose suffix ends in RETURNING:
// its rows are those the statement inserted (ON CONFLICT DO NOTHING
// returns none for a row already stored), on both dialects.
func (tx *Tx) QueryBulk(ctx context.Context, b *Bulk, fixed []any, cols ...any) (*sql.Rows, error) {
	return tx.bulk(ctx, b, true, fixed, cols)
}

func (tx *Tx) bulk(ctx context.Context, b *Bulk, query bool, fixed []any, cols []any) (*sql.Rows, error) {
	if len(cols) != len(b.types) {
		return nil, fmt.Errorf("bulk insert: %d columns, want %d", len(cols), len(b.types))
	}
	args := append(append([]any{}, fixed...), cols...)
	if tx.db.dialect != Postgres {
		rows, err := rowsJSON(cols)
		if err != nil {
			return nil, err
		}
		args = append(append([]any{}, fixed...), rows)
	}
	switch {
	case query && tx.db.dialect == Postgres:
		return tx.Query(ctx, b.pg, args...)
	case query:
		return tx.QueryStmt(ctx, b.st, args...)
	case tx.db.dialect == Postgres:
		_, err := tx.Exec(ctx, b.pg, args...)
		return nil, err
	}
	_, err := tx.ExecStmt(ctx, b.st, args...)
	return nil, err
}

// rowsJSON writes columns as a JSON5 array of rows (JSON5 so that
// ±Infinity pass).
func rowsJSON(cols []any) (string, error) {
	n := -1
	for _, c := range cols {
		var l int
		switch c := c.(type) {
		case []string:
			l = len(c)
		case []float64:
			l = len(c)
		case []bool:
			l = len(c)
		case []int64:
			l = len(c)
		default:
			return "", fmt.Errorf("bulk insert: a column of %T", c)
		}
		if n >= 0 && l != n {
			return "", fmt.Errorf("bulk insert: columns of %d and %d rows", n, l)
		}
		n = l
	}
	b := make([]byte, 0, n*16*len(cols)+2)
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, c := range cols {
			if j > 0 {
				b = append(b, ',')
			}
			switch c := c.(type) {
			case []string:
				s, _ := json.Marshal(c[i])
				b = append(b, s...)
			case []float64:
				switch v := c[i]; {
				case math.IsNaN(v):
					b = append(b, "null"...)
				case math.IsInf(v, 1):
					b = append(b, "Infinity"...)
				case math.IsInf(v, -1):
					b = append(b, "-Infinity"...)
				default:
					b = strconv.AppendFloat(b, v, 'g', -1, 64)
				}
			case []bool:
				if c[i] {
					b = append(b, '1')
				} else {
					b = append(b, '0')
				}
			case []int64:
				b = strconv.AppendInt(b, c[i], 10)
			}
		}
		b = append(b, ']')
	}
	return string(append(b, ']')), nil
}
