package duckq

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge"
)

// ReadParquet checks that path is a Parquet file DuckDB can read in full and
// returns its row count and schema. count(*) alone is answered from the
// footer; hashing every column of every row decodes every page once, so a
// file with damaged data is refused here rather than failing every later
// query. A file DuckDB cannot read is a forge.Invalid error.
func (e *Engine) ReadParquet(ctx context.Context, path string) (Table, error) {
	db, err := e.open(ctx, nil)
	if err != nil {
		return Table{}, err
	}
	defer db.Close()
	src := "read_parquet(" + quoteString(path) + ")"
	var t Table
	rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * FROM "+src)
	if err != nil {
		return Table{}, badParquet(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Column
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&c.Name, &c.Type, &null, &key, &def, &extra); err != nil {
			return Table{}, fmt.Errorf("describe parquet: %w", err)
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return Table{}, badParquet(ctx, err)
	}
	if len(t.Columns) == 0 {
		return Table{}, forge.Errorf(forge.Invalid, "a Parquet file with no columns")
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	var sum any
	scan := "SELECT count(*), bit_xor(hash(" + strings.Join(cols, ", ") + ")) FROM " + src
	if err := db.QueryRowContext(ctx, scan).Scan(&t.Rows, &sum); err != nil {
		return Table{}, badParquet(ctx, err)
	}
	return t, nil
}

func badParquet(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("read parquet: %w", ctx.Err())
	}
	return forge.WrapError(forge.Invalid, err, "not a readable Parquet file: %s", firstLine(err.Error()))
}
