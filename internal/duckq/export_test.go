package duckq

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestToCSV(t *testing.T) {
	e := newTestEngine(t, EngineOptions{TempDir: t.TempDir()})
	dir := t.TempDir()
	original := "id,region,amount\n1,north,10.5\n2,south,\n3,\"east, \"\"far\"\"\",7.0\n"
	src := writeFile(t, dir, "in.csv", original)
	pq := filepath.Join(dir, "in.parquet")
	if _, err := e.Convert(context.Background(), Source{Path: src}, pq, ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.ToCSV(context.Background(), pq, &buf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(original, buf.String()); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}

	// The export reads back to the same rows.
	out := filepath.Join(dir, "out.csv")
	if err := e.ExportCSV(context.Background(), pq, out); err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	var same bool
	err := db.QueryRow(`SELECT count(*) = 0 FROM (
		(SELECT * FROM read_csv(?) EXCEPT ALL SELECT * FROM read_parquet(?))
		UNION ALL (SELECT * FROM read_parquet(?) EXCEPT ALL SELECT * FROM read_csv(?)))`, out, pq, pq, out).Scan(&same)
	if err != nil || !same {
		t.Errorf("exported CSV differs from the Parquet rows (%v)", err)
	}
	if entries, _ := os.ReadDir(e.opts.TempDir); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}
