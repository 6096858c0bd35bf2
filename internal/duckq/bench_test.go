package duckq

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Benchmarks compare Forge's paths with plain DuckDB doing the same work in
// the same process, and report the ratio. Sizes come from the environment so
// that bench/ can run them at full size:
//
//	DUCKQ_BENCH_CSV_MB   size of the generated CSV for the import benchmark (default 100)
//	DUCKQ_BENCH_ROWS     rows for the profile and group-by benchmarks (default 10000000)
//	DUCKQ_BENCH_DIR      where to write the data (default a temporary folder)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchDir(b *testing.B) string {
	if d := os.Getenv("DUCKQ_BENCH_DIR"); d != "" {
		return d
	}
	return b.TempDir()
}

func plainDuckDB(b *testing.B) *sql.DB {
	b.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	return db
}

// generateWide writes rows x 20 columns to a Parquet file: 10 numbers, 6
// texts of low and high cardinality, a date, a timestamp, a boolean.
func generateWide(b *testing.B, dir string, rows int) string {
	b.Helper()
	path := filepath.Join(dir, fmt.Sprintf("wide-%d.parquet", rows))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	db := plainDuckDB(b)
	start := time.Now()
	_, err := db.Exec(fmt.Sprintf(`COPY (
		SELECT i AS id,
			(hash(i) %% 1000000)::BIGINT AS n1,
			(hash(i + 1) %% 1000)::INTEGER AS n2,
			(hash(i + 2) %% 100000)::DOUBLE / 7 AS d1,
			sqrt((hash(i + 3) %% 10000)::DOUBLE) AS d2,
			CASE WHEN i %% 7 = 0 THEN NULL ELSE (hash(i + 4) %% 5000)::DOUBLE END AS d3,
			(i %% 97)::SMALLINT AS n3,
			ln(1 + (hash(i + 5) %% 100000)::DOUBLE) AS d4,
			((hash(i + 6) %% 2000000)::DOUBLE - 1000000) / 100 AS d5,
			(hash(i + 7) %% 12345)::DECIMAL(12,2) AS dec1,
			['north', 'south', 'east', 'west'][1 + (hash(i + 8) %% 4)::INTEGER] AS region,
			'cat' || (hash(i + 9) %% 50) AS category,
			'user' || (hash(i + 10) %% 100000) AS user_name,
			md5(i::VARCHAR) AS token,
			CASE WHEN i %% 3 = 0 THEN NULL ELSE 'sku' || (i %% 1000) END AS sku,
			'city' || (hash(i + 11) %% 500) AS city,
			DATE '2020-01-01' + (i %% 2000)::INTEGER AS day,
			TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND AS ts,
			hash(i + 12) %% 2 = 0 AS flag,
			(hash(i + 13) %% 100)::TINYINT AS n4
		FROM range(%d) r(i)) TO %s (FORMAT parquet)`, rows, quoteString(path)))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d rows in %v", rows, time.Since(start))
	return path
}

// BenchmarkProfile10M profiles 10 million rows by 20 columns.
func BenchmarkProfile10M(b *testing.B) {
	rows := benchEnv("DUCKQ_BENCH_ROWS", 10_000_000)
	path := generateWide(b, benchDir(b), rows)
	e := newTestEngine(b, EngineOptions{})
	b.ResetTimer()
	for b.Loop() {
		p, err := e.Profile(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		if p.Rows != int64(rows) {
			b.Fatalf("rows %d", p.Rows)
		}
	}
}

// generateCSV writes a CSV of about mb megabytes: ints, doubles, text of low
// and high cardinality, dates.
func generateCSV(b *testing.B, dir string, mb int) string {
	b.Helper()
	path := filepath.Join(dir, fmt.Sprintf("import-%dmb.csv", mb))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	rows := mb * 1_000_000 / 75 // about 75 bytes a row
	db := plainDuckDB(b)
	_, err := db.Exec(fmt.Sprintf(`COPY (
		SELECT i AS id, (hash(i) %% 100000)::BIGINT AS qty, (hash(i + 1) %% 1000000)::DOUBLE / 100 AS price,
			['north', 'south', 'east', 'west'][1 + (hash(i + 2) %% 4)::INTEGER] AS region,
			'customer-' || (hash(i + 3) %% 1000000) AS customer,
			DATE '2020-01-01' + (i %% 2000)::INTEGER AS day, hash(i + 4) %% 2 = 0 AS paid
		FROM range(%d) r(i)) TO %s (FORMAT csv, HEADER true)`, rows, quoteString(path)))
	if err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkImportCSV converts a generated CSV to Parquet through Convert and
// through plain DuckDB, COPY (SELECT * FROM read_csv(...)) TO ... parquet
// with DuckDB's defaults (snappy) and with Forge's compression, and reports
// the times and the ratios (forge time / DuckDB time).
func BenchmarkImportCSV(b *testing.B) {
	dir := benchDir(b)
	csvPath := generateCSV(b, dir, benchEnv("DUCKQ_BENCH_CSV_MB", 100))
	fi, _ := os.Stat(csvPath)
	e := newTestEngine(b, EngineOptions{})
	db := plainDuckDB(b)
	var forge, plain, same time.Duration
	runForge := func() {
		start := time.Now()
		if _, err := e.Convert(context.Background(), Source{Path: csvPath}, filepath.Join(dir, "forge.parquet"), ConvertOptions{}); err != nil {
			b.Fatal(err)
		}
		forge += time.Since(start)
	}
	runPlain := func(opts string, total *time.Duration) {
		start := time.Now()
		q := fmt.Sprintf("COPY (SELECT * FROM read_csv(%s)) TO %s (FORMAT parquet%s)",
			quoteString(csvPath), quoteString(filepath.Join(dir, "plain.parquet")), opts)
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	b.ResetTimer()
	// Alternate which goes first, so the page cache and a busy shared
	// machine favour neither.
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			runForge()
			runPlain("", &plain)
			runPlain(", "+ParquetCompression, &same)
		} else {
			runPlain(", "+ParquetCompression, &same)
			runPlain("", &plain)
			runForge()
		}
	}
	n := float64(b.N)
	b.ReportMetric(forge.Seconds()/n, "forge_s")
	b.ReportMetric(plain.Seconds()/n, "duckdb_s")
	b.ReportMetric(same.Seconds()/n, "duckdb_same_s")
	b.ReportMetric(forge.Seconds()/plain.Seconds(), "ratio")
	b.ReportMetric(forge.Seconds()/same.Seconds(), "ratio_same")
	b.ReportMetric(float64(fi.Size())/1e6/(forge.Seconds()/n), "forge_MB/s")
}

// BenchmarkGroupBy10M runs one GROUP BY over 10 million rows through
// Engine.Query (a fresh locked-down instance per query, rows read to the
// end) and through a plain DuckDB connection, and reports the ratio.
func BenchmarkGroupBy10M(b *testing.B) {
	rows := benchEnv("DUCKQ_BENCH_ROWS", 10_000_000)
	path := generateWide(b, benchDir(b), rows)
	query := `SELECT region, category, count(*) AS n, avg(d1) AS mean_d1, sum(n1) AS total, max(day) AS last_day
		FROM sales GROUP BY region, category ORDER BY region, category`
	e := newTestEngine(b, EngineOptions{})
	db := plainDuckDB(b)
	if _, err := db.Exec("CREATE VIEW sales AS SELECT * FROM read_parquet(" + quoteString(path) + ")"); err != nil {
		b.Fatal(err)
	}
	var forge, plain time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		r, err := e.Query(context.Background(), query, map[string]string{"sales": path}, 10000)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := r.ForEach(func([]any) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		forge += time.Since(start)

		start = time.Now()
		rs, err := db.Query(query)
		if err != nil {
			b.Fatal(err)
		}
		m := 0
		for rs.Next() {
			vals := make([]any, 6)
			ptrs := make([]any, 6)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				b.Fatal(err)
			}
			m++
		}
		rs.Close()
		plain += time.Since(start)
		if n != m || n != 200 {
			b.Fatalf("forge %d groups, duckdb %d, want 200", n, m)
		}
	}
	n := float64(b.N)
	b.ReportMetric(forge.Seconds()/n, "forge_s")
	b.ReportMetric(plain.Seconds()/n, "duckdb_s")
	b.ReportMetric(forge.Seconds()/plain.Seconds(), "ratio")
}
