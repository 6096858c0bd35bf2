package duckq

import (
	"context"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/forge-mlops/forge"
)

// pgColumn says how one PostgreSQL result column is staged in DuckDB and
// what type it gets in the Parquet file. Types DuckDB's appender takes as Go
// values are staged natively; the rest go through their text form and a
// CAST, which keeps exact decimals exact.
type pgColumn struct {
	name   string
	stage  string // DuckDB type of the staging column
	final  string // DuckDB type in the Parquet file
	asText bool
	json   bool // encode pgx's decoded value back to JSON text
}

// ConvertPostgres runs query on the PostgreSQL server at dsn, inside a
// read-only transaction, and writes its result to dstParquet. Errors the user
// can fix (a DSN that does not connect, SQL that PostgreSQL rejects) are
// forge.Invalid.
func (e *Engine) ConvertPostgres(ctx context.Context, dsn, query, dstParquet string) (Table, error) {
	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Table{}, pgError(ctx, err, "connect to postgres")
	}
	defer pg.Close(context.WithoutCancel(ctx))
	tx, err := pg.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return Table{}, pgError(ctx, err, "begin read-only transaction")
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return Table{}, pgError(ctx, err, "postgres query")
	}
	defer rows.Close()
	cols := pgColumns(rows.FieldDescriptions())

	db, err := e.open(ctx, nil)
	if err != nil {
		return Table{}, err
	}
	defer db.Close()
	var defs, casts []string
	for _, c := range cols {
		defs = append(defs, quoteIdent(c.name)+" "+c.stage)
		casts = append(casts, fmt.Sprintf("CAST(%s AS %s) AS %s", quoteIdent(c.name), c.final, quoteIdent(c.name)))
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE pg_import ("+strings.Join(defs, ", ")+")"); err != nil {
		return Table{}, mapError(ctx, err, "stage postgres result")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return Table{}, fmt.Errorf("stage postgres result: %w", err)
	}
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "pg_import")
		if err != nil {
			return err
		}
		row := make([]driver.Value, len(cols))
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				app.Close()
				return pgError(ctx, err, "postgres query")
			}
			for i, v := range vals {
				row[i] = pgValue(v, cols[i])
			}
			if err := app.AppendRow(row...); err != nil {
				app.Close()
				return fmt.Errorf("append row: %w", err)
			}
		}
		if err := rows.Err(); err != nil {
			app.Close()
			return pgError(ctx, err, "postgres query")
		}
		return app.Close()
	})
	conn.Close()
	if err != nil {
		return Table{}, err
	}
	return writeParquet(ctx, db, "SELECT "+strings.Join(casts, ", ")+" FROM pg_import", dstParquet, ConvertOptions{})
}

func pgColumns(fields []pgconn.FieldDescription) []pgColumn {
	cols := make([]pgColumn, len(fields))
	seen := map[string]int{}
	for i, f := range fields {
		name := f.Name
		// PostgreSQL allows duplicate names in a result (SELECT 1, 1); a
		// table does not.
		if n := seen[strings.ToLower(name)]; n > 0 {
			name = fmt.Sprintf("%s_%d", name, n+1)
		}
		seen[strings.ToLower(f.Name)]++
		c := pgColumn{name: name}
		switch f.DataTypeOID {
		case pgtype.BoolOID:
			c.stage = "BOOLEAN"
		case pgtype.Int2OID:
			c.stage = "SMALLINT"
		case pgtype.Int4OID:
			c.stage = "INTEGER"
		case pgtype.Int8OID:
			c.stage = "BIGINT"
		case pgtype.Float4OID:
			c.stage = "FLOAT"
		case pgtype.Float8OID:
			c.stage = "DOUBLE"
		case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
			c.stage = "VARCHAR"
		case pgtype.ByteaOID:
			c.stage = "BLOB"
		case pgtype.DateOID:
			c.stage = "DATE"
		case pgtype.TimestampOID:
			c.stage = "TIMESTAMP"
		case pgtype.TimestamptzOID:
			c.stage = "TIMESTAMPTZ"
		case pgtype.NumericOID:
			c.stage, c.asText, c.final = "VARCHAR", true, numericType(f.TypeModifier)
		case pgtype.UUIDOID:
			c.stage, c.asText, c.final = "VARCHAR", true, "UUID"
		case pgtype.TimeOID:
			c.stage, c.asText, c.final = "VARCHAR", true, "TIME"
		case pgtype.JSONOID, pgtype.JSONBOID:
			c.stage, c.asText, c.json = "VARCHAR", true, true
		case pgtype.IntervalOID:
			c.stage, c.asText, c.final = "VARCHAR", true, "INTERVAL"
		default: // json, jsonb, arrays, inet, enums ...: their text form
			c.stage, c.asText = "VARCHAR", true
		}
		if c.final == "" {
			c.final = c.stage
		}
		cols[i] = c
	}
	return cols
}

// numericType maps numeric(p,s) to DECIMAL(p,s) where DuckDB can hold it,
// and to DOUBLE otherwise (unconstrained numeric, or precision over 38).
func numericType(typmod int32) string {
	if typmod < 4 {
		return "DOUBLE"
	}
	p, s := ((typmod-4)>>16)&0xffff, (typmod-4)&0xffff
	if p < 1 || p > 38 || s > p {
		return "DOUBLE"
	}
	return fmt.Sprintf("DECIMAL(%d,%d)", p, s)
}

// pgValue converts what pgx decoded into a value the appender takes.
func pgValue(v any, c pgColumn) driver.Value {
	if v == nil {
		return nil
	}
	if c.json {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	if !c.asText {
		if t, ok := v.(time.Time); ok {
			return t
		}
		return v
	}
	switch x := v.(type) {
	case string:
		return x
	case [16]byte:
		h := hex.EncodeToString(x[:])
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	case pgtype.Time:
		if !x.Valid {
			return nil
		}
		return time.Time{}.Add(time.Duration(x.Microseconds) * time.Microsecond).Format("15:04:05.999999")
	case pgtype.Interval:
		if !x.Valid {
			return nil
		}
		return fmt.Sprintf("%d months %d days %d microseconds", x.Months, x.Days, x.Microseconds)
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil || dv == nil {
			return nil
		}
		if s, ok := dv.(string); ok {
			return s
		}
		return fmt.Sprint(dv)
	case []any, map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	case fmt.Stringer:
		return x.String()
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// pgError marks errors PostgreSQL reports about the query or the
// connection as the user's to fix; the DSN's password is never part of them.
func pgError(ctx context.Context, err error, doing string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", doing, ctxErr)
	}
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		return forge.WrapError(forge.Invalid, err, "%s: %s (SQLSTATE %s)", doing, pge.Message, pge.Code)
	}
	var ce *pgconn.ConnectError
	var pe *pgconn.ParseConfigError
	if errors.As(err, &ce) || errors.As(err, &pe) {
		return forge.WrapError(forge.Invalid, err, "%s: %s", doing, pgconnMessage(err))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// pgconnMessage drops the DSN pgx may echo in connection errors.
func pgconnMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
