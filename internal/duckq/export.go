package duckq

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ExportCSV writes a Parquet file as CSV (comma-separated, with a header,
// quoted where needed) to dstPath.
func (e *Engine) ExportCSV(ctx context.Context, parquetPath, dstPath string) error {
	db, err := e.open(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	q := fmt.Sprintf("COPY (SELECT * FROM read_parquet(%s)) TO %s (FORMAT csv, HEADER true)",
		quoteString(parquetPath), quoteString(dstPath))
	if _, err := db.ExecContext(ctx, q); err != nil {
		os.Remove(dstPath)
		return mapError(ctx, err, "export csv")
	}
	return nil
}

// ToCSV streams a Parquet file as CSV to w, for downloads. DuckDB writes
// only to files, so the CSV passes through a temporary file in the
// engine's TempDir.
func (e *Engine) ToCSV(ctx context.Context, parquetPath string, w io.Writer) error {
	dir, err := os.MkdirTemp(e.opts.TempDir, "duckq-csv-")
	if err != nil {
		return fmt.Errorf("export csv: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "out.csv")
	if err := e.ExportCSV(ctx, parquetPath, tmp); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("export csv: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("export csv: %w", err)
	}
	return nil
}
