// Command datasets benchmarks Forge's datasets against DuckDB itself, side by
// side in one run on the same files:
//
//  1. import of a generated CSV through `forge data add` (conversion with
//     duckq, upload, the server's check and store) vs DuckDB's
//     COPY (SELECT * FROM read_csv(...)) TO 'x.parquet';
//  2. a GROUP BY over -rows rows through the query API of a running server
//     (HTTP, NDJSON streaming) vs the same SQL on the same Parquet file in
//     DuckDB directly;
//  3. the profile of -profile-rows rows by 20 columns.
//
// The server runs in this process on a real TCP port, with the same code
// that `forge server` mounts; the add path is the code `forge data add` runs.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

func main() {
	sizeMB := flag.Int("size", 100, "CSV size in MB for the import benchmark (1000 for the real run)")
	rows := flag.Int("rows", 10_000_000, "rows for the GROUP BY benchmark")
	profileRows := flag.Int("profile-rows", 10_000_000, "rows for the profile benchmark (20 columns)")
	reps := flag.Int("reps", 3, "repetitions of each query (the best counts)")
	dir := flag.String("dir", "", "work folder (default: a temp folder, removed at the end)")
	only := flag.String("only", "import,groupby,profile", "which benchmarks to run")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "forge-bench-datasets-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	ctx := context.Background()
	threads := runtime.NumCPU()
	b, err := newBench(ctx, *dir, threads)
	if err != nil {
		log.Fatal(err)
	}
	defer b.close()
	fmt.Printf("machine: %d cores, DuckDB threads %d, work folder %s\n\n", runtime.NumCPU(), threads, *dir)
	if strings.Contains(*only, "import") {
		must(b.importCSV(ctx, *sizeMB))
	}
	if strings.Contains(*only, "groupby") {
		must(b.groupBy(ctx, *rows, *reps))
	}
	if strings.Contains(*only, "profile") {
		must(b.profile(ctx, *profileRows))
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

type bench struct {
	dir     string
	threads int
	eng     *duckq.Engine
	db      *sqlstore.DB
	srv     *httptest.Server
	client  *api.Client
	plain   *sql.DB
	blobs   *blob.Local
}

func newBench(ctx context.Context, dir string, threads int) (*bench, error) {
	db, err := sqlstore.Open(ctx, sqlstore.Options{DataDir: dir})
	if err != nil {
		return nil, err
	}
	blobs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, err
	}
	opts := duckq.EngineOptions{Threads: threads, MemoryLimit: "4GB", TempDir: filepath.Join(dir, "duckdb-tmp")}
	eng, err := duckq.NewEngine(opts)
	if err != nil {
		return nil, err
	}
	svc := datasets.New(db, blobs, eng, datasets.Options{TempDir: dir, Threads: threads, MemoryLimit: "4GB"}, nil)
	mux := http.NewServeMux()
	datasets.NewAPI(svc, nil).Register(mux)
	srv := httptest.NewServer(httpapi.Chain(mux, httpapi.WithRequestID))
	plain, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	plain.SetMaxOpenConns(1)
	if _, err := plain.Exec(fmt.Sprintf("SET threads = %d; SET memory_limit = '4GB'", threads)); err != nil {
		return nil, err
	}
	return &bench{dir: dir, threads: threads, eng: eng, db: db, srv: srv, client: api.NewClient(srv.URL, ""), plain: plain, blobs: blobs}, nil
}

func (b *bench) close() {
	b.srv.Close()
	b.plain.Close()
	b.db.Close()
}

func q(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// importCSV generates a CSV of about mb MB with 12 columns of mixed types.
func (b *bench) importCSV(ctx context.Context, mb int) error {
	path := filepath.Join(b.dir, fmt.Sprintf("import-%dmb.csv", mb))
	n := mb * 1_000_000 / 130 // about 130 bytes a row
	start := time.Now()
	_, err := b.plain.Exec(fmt.Sprintf(`COPY (
		SELECT i AS id, (hash(i) %% 100000)::BIGINT AS qty, (hash(i + 1) %% 1000000)::DOUBLE / 100 AS price,
			['north', 'south', 'east', 'west'][1 + (hash(i + 2) %% 4)::INTEGER] AS region,
			'customer-' || (hash(i + 3) %% 1000000) AS customer,
			DATE '2020-01-01' + (i %% 2000)::INTEGER AS day, hash(i + 4) %% 2 = 0 AS paid,
			TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (i %% 100000000) SECOND AS ts,
			(hash(i + 5) %% 1000)::INTEGER - 500 AS delta, ((hash(i + 6) %% 10000)::DOUBLE / 7)::DECIMAL(12, 3) AS discount,
			'sku-' || (hash(i + 7) %% 5000) AS sku, (hash(i + 8) %% 100)::DOUBLE / 3 AS score
		FROM range(%d) r(i)) TO %s (FORMAT csv, HEADER true)`, n, q(path)))
	if err != nil {
		return fmt.Errorf("generate csv: %w", err)
	}
	st, _ := os.Stat(path)
	fmt.Printf("1. import: CSV of %d rows x 12 columns, %.0f MB (generated in %s)\n", n, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))

	// DuckDB itself, then Forge; then both again, so that neither gets only
	// a cold page cache.
	var duck, forgeT []time.Duration
	for rep := 0; rep < 2; rep++ {
		out := filepath.Join(b.dir, "duck.parquet")
		t0 := time.Now()
		if _, err := b.plain.Exec(fmt.Sprintf("COPY (SELECT * FROM read_csv(%s)) TO %s (FORMAT parquet)", q(path), q(out))); err != nil {
			return fmt.Errorf("duckdb copy: %w", err)
		}
		duck = append(duck, time.Since(t0))
		os.Remove(out)

		name := fmt.Sprintf("import%d", rep)
		t0 = time.Now()
		pq := filepath.Join(b.dir, "forge-add.parquet")
		if _, err := datasets.Convert(ctx, b.eng, datasets.Source{Path: path}, pq); err != nil {
			return err
		}
		conv := time.Since(t0)
		f, err := os.Open(pq)
		if err != nil {
			return err
		}
		res, err := b.client.AddDatasetVersion(ctx, name, f, path, "", "bench")
		f.Close()
		os.Remove(pq)
		if err != nil {
			return err
		}
		forgeT = append(forgeT, time.Since(t0))
		fmt.Printf("   rep %d: duckdb COPY %s | forge data add %s (convert %s, upload+check+store %s; %s, %d rows)\n", rep+1,
			duck[rep].Round(time.Millisecond), forgeT[rep].Round(time.Millisecond), conv.Round(time.Millisecond),
			(forgeT[rep] - conv).Round(time.Millisecond), res.Version.Ref(), res.Version.Rows)
	}
	d, f := best(duck), best(forgeT)
	fmt.Printf("   best: duckdb %s, forge %s: forge runs at %.0f%% of DuckDB's speed (target >= 80%%)\n\n",
		d.Round(time.Millisecond), f.Round(time.Millisecond), 100*d.Seconds()/f.Seconds())
	return nil
}

func best(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[0]
}

// groupBy adds an n-row dataset and runs one GROUP BY through the API and
// in DuckDB directly on the dataset's own Parquet file.
func (b *bench) groupBy(ctx context.Context, n, reps int) error {
	src := filepath.Join(b.dir, "events.parquet")
	_, err := b.plain.Exec(fmt.Sprintf(`COPY (
		SELECT i AS id, 'user-' || (hash(i) %% 100000) AS user_id, ['click', 'view', 'buy', 'share', 'like'][1 + (hash(i + 1) %% 5)::INTEGER] AS kind,
			(hash(i + 2) %% 10000)::DOUBLE / 100 AS value, DATE '2023-01-01' + (i %% 365)::INTEGER AS day
		FROM range(%d) r(i)) TO %s (FORMAT parquet)`, n, q(src)))
	if err != nil {
		return fmt.Errorf("generate events: %w", err)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	res, err := b.client.AddDatasetVersion(ctx, "events", f, src, "", "bench")
	f.Close()
	if err != nil {
		return err
	}
	fmt.Printf("2. GROUP BY over %s (%d rows)\n", res.Version.Ref(), res.Version.Rows)
	const body = "SELECT kind, day, count(*) AS n, sum(value) AS total, avg(value) AS mean FROM %s GROUP BY kind, day ORDER BY kind, day"
	var viaAPI, direct []time.Duration
	var apiRows, directRows int
	// The same file the server reads: the blob of the version.
	blobPath, err := b.blobs.Path(forge.Digest(res.Version.Digest))
	if err != nil {
		return err
	}
	for rep := 0; rep < reps; rep++ {
		t0 := time.Now()
		s, err := b.client.Query(ctx, api.QueryRequest{SQL: fmt.Sprintf(body, "events")})
		if err != nil {
			return err
		}
		apiRows = 0
		for s.Next() {
			apiRows++
		}
		s.Close()
		if err := s.Err(); err != nil {
			return err
		}
		viaAPI = append(viaAPI, time.Since(t0))

		t0 = time.Now()
		rs, err := b.plain.Query(fmt.Sprintf(body, "read_parquet("+q(blobPath)+")"))
		if err != nil {
			return err
		}
		directRows = 0
		cols, _ := rs.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rs.Next() {
			if err := rs.Scan(ptrs...); err != nil {
				return err
			}
			directRows++
		}
		rs.Close()
		direct = append(direct, time.Since(t0))
		fmt.Printf("   rep %d: forge data query (HTTP) %s | duckdb direct %s\n", rep+1, viaAPI[rep].Round(time.Millisecond), direct[rep].Round(time.Millisecond))
	}
	if apiRows != directRows {
		return fmt.Errorf("row counts differ: API %d, DuckDB %d", apiRows, directRows)
	}
	a, d := best(viaAPI), best(direct)
	fmt.Printf("   best: forge %s, duckdb %s, %d result rows: forge/duckdb = %.2fx (target <= 1.2x)\n\n",
		a.Round(time.Millisecond), d.Round(time.Millisecond), apiRows, a.Seconds()/d.Seconds())
	return nil
}

// profile adds an n x 20 dataset and times its first profile request, the
// one that computes it.
func (b *bench) profile(ctx context.Context, n int) error {
	src := filepath.Join(b.dir, "wide.parquet")
	var cols []string
	for i := 0; i < 10; i++ {
		cols = append(cols, fmt.Sprintf("(hash(i + %d) %% 1000000)::DOUBLE / 1000 AS num%d", i, i))
	}
	for i := 0; i < 3; i++ {
		cols = append(cols, fmt.Sprintf("'cat-' || (hash(i + %d) %% 20) AS low%d", 20+i, i))
		cols = append(cols, fmt.Sprintf("'id-' || (hash(i + %d) %% 5000000) AS high%d", 30+i, i))
	}
	cols = append(cols, "DATE '2020-01-01' + (i % 1500)::INTEGER AS day",
		"TIMESTAMP '2020-01-01' + INTERVAL (i % 10000000) SECOND AS ts",
		"hash(i + 40) % 3 = 0 AS flag",
		"CASE WHEN i % 10 = 0 THEN NULL ELSE (hash(i + 41) % 100)::INTEGER END AS sparse")
	_, err := b.plain.Exec(fmt.Sprintf("COPY (SELECT %s FROM range(%d) r(i)) TO %s (FORMAT parquet)", strings.Join(cols, ", "), n, q(src)))
	if err != nil {
		return fmt.Errorf("generate wide: %w", err)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	res, err := b.client.AddDatasetVersion(ctx, "wide", f, src, "", "bench")
	f.Close()
	if err != nil {
		return err
	}
	t0 := time.Now()
	p, err := b.client.DatasetProfile(ctx, "wide")
	if err != nil {
		return err
	}
	first := time.Since(t0)
	t0 = time.Now()
	if _, err := b.client.DatasetProfile(ctx, "wide"); err != nil {
		return err
	}
	fmt.Printf("3. profile of %s: %d rows x %d columns in %s (target < 15 s); served again from the store in %s\n",
		res.Version.Ref(), p.Profile.Rows, len(p.Profile.Columns), first.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	return nil
}
