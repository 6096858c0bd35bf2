package duckq

import (
	"context"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge"
)

// ConvertJSONLines writes the JSON lines at path to dstParquet, for data
// read from a message queue. The columns are inferred from DuckDB's sample
// of the lines; a line the sample did not foresee (a field that first
// appears late, a type that changes) makes DuckDB fail rather than drop
// it, and then the file is read again with every line sampled, so no field
// is ever lost and the common case reads the file once. The file must not
// be empty; see EmptyParquet.
func (e *Engine) ConvertJSONLines(ctx context.Context, path string, schema []Column, dstParquet string) (Table, error) {
	for _, c := range schema {
		if c.Name == "" || !typeName.MatchString(c.Type) {
			return Table{}, forge.Errorf(forge.Invalid, "schema override for column %q: bad type %q", c.Name, c.Type)
		}
	}
	db, err := e.open(ctx, nil)
	if err != nil {
		return Table{}, err
	}
	defer db.Close()
	read := func(sample string) string {
		return withOverrides("read_json("+quoteString(path)+", format = 'newline_delimited'"+sample+", ignore_errors = false)", schema)
	}
	t, err := writeParquet(ctx, db, read(""), dstParquet, ConvertOptions{})
	if err != nil && forge.KindOf(err) == forge.Invalid && ctx.Err() == nil {
		t, err = writeParquet(ctx, db, read(", sample_size = -1"), dstParquet, ConvertOptions{})
	}
	return t, tidyMessage(err, []string{path})
}

// EmptyParquet writes a Parquet file with the columns given and no rows.
func (e *Engine) EmptyParquet(ctx context.Context, cols []Column, dstParquet string) (Table, error) {
	var sel []string
	for _, c := range cols {
		if !typeName.MatchString(c.Type) {
			return Table{}, forge.Errorf(forge.Invalid, "column %q: bad type %q", c.Name, c.Type)
		}
		sel = append(sel, fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, quoteIdent(c.Name)))
	}
	db, err := e.open(ctx, nil)
	if err != nil {
		return Table{}, err
	}
	defer db.Close()
	return writeParquet(ctx, db, "SELECT "+strings.Join(sel, ", ")+" LIMIT 0", dstParquet, ConvertOptions{})
}

// ParquetToJSONLines writes a Parquet file's rows, in order, as JSON lines
// to dst: how a queue range that started on Go's columnar path goes back
// to ConvertJSONLines when a message leaves that path.
func (e *Engine) ParquetToJSONLines(ctx context.Context, src, dst string) error {
	db, err := e.open(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "COPY (SELECT * FROM read_parquet("+quoteString(src)+")) TO "+quoteString(dst)+" (FORMAT json)")
	return mapError(ctx, err, "convert")
}
