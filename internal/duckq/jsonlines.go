package duckq

import (
	"context"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge"
)

// ConvertJSONLines writes the JSON lines at path to dstParquet, for data
// read from a message queue. Unlike Convert it infers the columns from
// every line, not a sample: a field that first appears late in a topic is
// a column, never dropped. The file must not be empty; see EmptyParquet.
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
	sel := withOverrides("read_json("+quoteString(path)+
		", format = 'newline_delimited', sample_size = -1, maximum_object_size = 67108864, ignore_errors = false)", schema)
	t, err := writeParquet(ctx, db, sel, dstParquet, ConvertOptions{})
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
