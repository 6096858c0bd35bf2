package drift

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/duckq"
)

// BenchmarkCompare is the drift report: FORGE_DRIFT_BENCH_ROWS
// current rows (default 1,000,000) x 30 numeric features against a
// reference a tenth that size, both in DuckDB tables.
func BenchmarkCompare(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("FORGE_DRIFT_BENCH_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	eng, err := duckq.NewEngine(duckq.EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	db, err := eng.Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var cols []string
	var spec []Column
	for j := range 30 {
		// Box-Muller normals; every third feature shifted in the current window.
		cols = append(cols, fmt.Sprintf("sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) + %%[1]d * %d AS f%02d", j%3/2, j))
		spec = append(spec, Column{Name: fmt.Sprintf("f%02d", j), Kind: Numeric})
	}
	sel := strings.Join(cols, ", ")
	for _, q := range []string{
		"SELECT setseed(0.5)",
		fmt.Sprintf("CREATE TABLE ref AS SELECT "+fmt.Sprintf(sel, 0)+" FROM range(%d)", rows/10),
		fmt.Sprintf("CREATE TABLE cur AS SELECT "+fmt.Sprintf(sel, 1)+" FROM range(%d)", rows),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		r, err := Compare(ctx, db, "ref", "cur", spec, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if r.Drifted != 10 {
			b.Fatalf("%d drifted, want 10", r.Drifted)
		}
	}
}
