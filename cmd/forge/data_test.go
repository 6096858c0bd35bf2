package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/executor/local"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// TestMain stops the throwaway PostgreSQL that the data tests start. The
// test binary doubles as the local executor's shim, as forge does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.Shim(os.Args[2:]))
	}
	os.Exit(sqlstoretest.Main(m))
}

// dataServer serves the datasets API over a SQLite store and a blob folder.
func dataServer(t *testing.T, db *sqlstore.DB) string {
	t.Helper()
	blobs, err := blob.NewLocal(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	svc := datasets.New(db, blobs, eng, datasets.Options{TempDir: t.TempDir()}, nil)
	mux := http.NewServeMux()
	httpapi.Mount(mux, datasets.NewAPI(svc, nil).Routes())
	srv := httptest.NewServer(httpapi.Chain(mux, httpapi.WithRequestID))
	t.Cleanup(srv.Close)
	return srv.URL
}

func dataCLI(server string, args ...string) (string, string, error) {
	var out, errw bytes.Buffer
	err := run(context.Background(), append(args, "--server", server), &out, &errw)
	return out.String(), errw.String(), err
}

func writeData(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDataCLI(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		srv := dataServer(t, db)
		dir := t.TempDir()
		must := func(args ...string) string {
			t.Helper()
			out, errOut, err := dataCLI(srv, args...)
			if err != nil {
				t.Fatalf("forge %s: %v\n%s", strings.Join(args, " "), err, errOut)
			}
			return out
		}
		contains := func(what, out string, wants ...string) {
			t.Helper()
			for _, w := range wants {
				if !strings.Contains(out, w) {
					t.Errorf("%s: no %q in:\n%s", what, w, out)
				}
			}
		}

		csvPath := writeData(t, dir, "sales.csv", "id,region,amount,day\n1,north,10.5,2024-01-01\n2,south,20,2024-01-02\n3,north,7.25,2024-01-03\n")
		contains("add csv", must("data", "add", "sales", csvPath, "--description", "first cut"), "added sales@1: 3 rows, 4 columns")
		contains("re-add", must("data", "add", "sales", csvPath), "unchanged", "sales@1")
		tsv := writeData(t, dir, "sales.tsv", "id\tregion\tamount\tday\n1\tnorth\t10.5\t2024-01-01\n2\tsouth\t20\t2024-01-02\n3\tnorth\t7.25\t2024-01-03\n4\teast\t99\t2024-01-04\n")
		contains("add tsv", must("data", "add", "sales", tsv), "added sales@2: 4 rows")
		jsonl := writeData(t, dir, "regions.jsonl", `{"region":"north","manager":"ann"}`+"\n"+`{"region":"south","manager":"bob"}`+"\n")
		contains("add jsonl", must("data", "add", "regions", jsonl), "added regions@1: 2 rows, 2 columns")
		writeData(t, dir, "parts/a.csv", "k;v\n1;x\n")
		writeData(t, dir, "parts/b.csv", "k;v\n2;y\n3;z\n")
		contains("add folder", must("data", "add", "parts", filepath.Join(dir, "parts"), "--delimiter", ";", "--schema", "k:INTEGER"), "added parts@1: 3 rows, 2 columns")
		noHeader := writeData(t, dir, "nh.csv", "1,2\n3,4\n")
		contains("add --no-header", must("data", "add", "nh", noHeader, "--no-header"), "added nh@1: 2 rows")

		// ls and show.
		contains("ls", must("data", "ls"), "NAME", "sales", "regions", "parts")
		show := must("data", "show", "sales@1")
		contains("show", show, "sales@1", "first cut", csvPath, "amount", "DOUBLE", "day", "DATE", "used by no runs")
		contains("show latest", must("data", "show", "sales"), "sales@2", "parent", "sales@1")
		var shown struct {
			Version struct {
				Digest string `json:"digest"`
				Rows   int64  `json:"rows"`
			} `json:"version"`
		}
		if err := json.Unmarshal([]byte(must("data", "show", "sales@2", "-o", "json")), &shown); err != nil || shown.Version.Rows != 4 {
			t.Fatalf("show -o json: %+v %v", shown, err)
		}

		// query: table, csv, json, parquet, joins, versions, limits.
		q := `SELECT r.manager, sum(s.amount) AS total FROM "sales@2" s JOIN regions r USING (region) GROUP BY 1 ORDER BY 1`
		contains("query table", must("data", "query", q), "manager", "total", "ann", "17.75", "bob", "(2 rows)")
		if out := must("data", "query", q, "-o", "csv"); out != "manager,total\nann,17.75\nbob,20\n" {
			t.Errorf("query csv:\n%s", out)
		}
		if out := must("data", "query", q, "-o", "json"); out != `{"manager":"ann","total":17.75}`+"\n"+`{"manager":"bob","total":20}`+"\n" {
			t.Errorf("query json:\n%s", out)
		}
		contains("query limit", must("data", "query", "SELECT * FROM range(500)", "--limit", "10"), "(10 rows shown; the result has more")
		contains("query default", must("data", "query", "SELECT * FROM range(500)"), "(100 rows shown")
		_, errOut, _ := dataCLI(srv, "data", "query", "SELECT * FROM range(500)", "-o", "csv", "--limit", "10")
		contains("csv note", errOut, "more than 10 rows")
		pq := filepath.Join(dir, "out.parquet")
		must("data", "query", `SELECT id, day, amount FROM sales ORDER BY id`, "-o", "parquet", "--out", pq)
		contains("parquet back", must("data", "add", "fromquery", pq), "added fromquery@1: 4 rows, 3 columns")
		contains("parquet types", must("data", "show", "fromquery"), "BIGINT", "DATE", "DOUBLE")
		if _, _, err := dataCLI(srv, "data", "query", `SELECT * FROM "sales@7"`); err == nil || !strings.Contains(err.Error(), "no version 7") {
			t.Errorf("unknown version: %v", err)
		}
		if _, _, err := dataCLI(srv, "data", "query", `SELECT nocol FROM sales`); err == nil || !strings.Contains(err.Error(), "nocol") {
			t.Errorf("SQL error: %v", err)
		}
		if _, _, err := dataCLI(srv, "data", "query", `SELECT sum(a.range*b.range) FROM range(100000) a, range(100000) b`, "--timeout", "200ms"); err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("--timeout: %v", err)
		}

		// profile, diff.
		contains("profile", must("data", "profile", "sales"), "sales@2: 4 rows", "amount", "DOUBLE", "north (2)")
		var prof struct {
			Profile struct {
				Columns []struct {
					Name  string   `json:"name"`
					Nulls int64    `json:"nulls"`
					Mean  *float64 `json:"mean"`
				} `json:"columns"`
			} `json:"profile"`
		}
		if err := json.Unmarshal([]byte(must("data", "profile", "sales@1", "-o", "json")), &prof); err != nil || len(prof.Profile.Columns) != 4 || prof.Profile.Columns[2].Mean == nil {
			t.Fatalf("profile -o json: %+v %v", prof, err)
		}
		contains("diff", must("data", "diff", "sales@1", "sales@2"), "sales@1 -> sales@2: rows 3 -> 4 (+1)", "amount", "PSI")
		var d struct {
			Diff struct {
				RowsA int64 `json:"rows_a"`
				RowsB int64 `json:"rows_b"`
			} `json:"diff"`
		}
		if err := json.Unmarshal([]byte(must("data", "diff", "sales@1", "sales@2", "-o", "json")), &d); err != nil || d.Diff.RowsA != 3 || d.Diff.RowsB != 4 {
			t.Fatalf("diff -o json: %+v %v", d, err)
		}

		// get: Parquet verified, and CSV.
		got := filepath.Join(dir, "got.parquet")
		contains("get", must("data", "get", "sales@2", "--out", got), "sales@2 ->", "verified")
		b, _ := os.ReadFile(got)
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) != shown.Version.Digest {
			t.Fatalf("downloaded file does not hash to the version's digest")
		}
		gotCSV := filepath.Join(dir, "got.csv")
		var res struct{ Dataset, File, SHA256 string }
		if err := json.Unmarshal([]byte(must("data", "get", "sales@1", "--out", gotCSV, "-o", "json")), &res); err != nil || res.Dataset != "sales@1" || res.File != gotCSV {
			t.Errorf("get -o json: %+v %v", res, err)
		}
		if b, _ := os.ReadFile(gotCSV); string(b) != "id,region,amount,day\n1,north,10.5,2024-01-01\n2,south,20.0,2024-01-02\n3,north,7.25,2024-01-03\n" {
			t.Errorf("get csv:\n%s", b)
		}
		// The old -o FILE still writes the file, and says it is deprecated.
		os.Remove(got)
		if _, stderr, err := dataCLI(srv, "data", "get", "sales@2", "-o", got); err != nil || !strings.Contains(stderr, "deprecated") || !strings.Contains(stderr, "--out") {
			t.Errorf("get -o FILE: %v, stderr %q", err, stderr)
		}
		if _, err := os.Stat(got); err != nil {
			t.Errorf("get -o FILE wrote nothing: %v", err)
		}
		if _, _, err := dataCLI(srv, "data", "get", "sales@2", "-o", "yaml", "--out", got); err == nil || !strings.Contains(err.Error(), "want table, wide or json") {
			t.Errorf("get -o yaml --out: %v", err)
		}
		if _, _, err := dataCLI(srv, "data", "get", "nosuch", "--out", got); err == nil || !strings.Contains(err.Error(), "no dataset named nosuch") {
			t.Errorf("get unknown: %v", err)
		}

		// rm.
		contains("rm", must("data", "rm", "sales@1"), "removed sales@1")
		if _, _, err := dataCLI(srv, "data", "show", "sales@1"); err == nil || !strings.Contains(err.Error(), "no version 1") {
			t.Errorf("show removed: %v", err)
		}
		contains("rm all", must("data", "rm", "nh"), "removed nh@1")
	})
}

// TestDataAddBadInput checks that bad files fail in the CLI with the file
// (and line) named, and that nothing reaches the server.
func TestDataAddBadInput(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		srv := dataServer(t, db)
		dir := t.TempDir()
		for _, c := range []struct {
			name, file, content string
			args                []string
			wants               []string
		}{
			{"ragged", "ragged.csv", "a,b\n1,2\n3,4,5\n6,7\n", nil, []string{"ragged.csv", "line 3"}},
			{"utf8", "bad.csv", "a,b\n1,caf\xe9\n", nil, []string{"bad.csv"}},
			{"text in number", "num.csv", "a,b\n1,2\nx,3\n", []string{"--schema", "a:BIGINT"}, []string{"num.csv", "x"}},
			{"empty", "empty.csv", "", nil, []string{"empty.csv", "empty"}},
			{"wrong extension", "fake.parquet", "a,b\n1,2\n", nil, []string{"fake.parquet"}},
			{"missing", "missing.csv", "", []string{"--delimiter", ";"}, []string{"missing.csv"}},
		} {
			path := filepath.Join(dir, c.file)
			if c.name != "missing" {
				writeData(t, dir, c.file, c.content)
			}
			_, _, err := dataCLI(srv, append([]string{"data", "add", "bad", path}, c.args...)...)
			if err == nil {
				t.Errorf("%s: no error", c.name)
				continue
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not mention %q", c.name, err, w)
				}
			}
		}
		out, _, err := dataCLI(srv, "data", "ls", "-o", "json")
		if err != nil || strings.TrimSpace(out) != "[]" {
			t.Fatalf("datasets after bad input: %s %v", out, err)
		}
		for _, args := range [][]string{
			{"data", "add", "x"},
			{"data", "add", "bad name", "f.csv"},
			{"data", "add", "x", "f.csv", "--header", "--no-header"},
			{"data", "query", "SELECT 1", "-o", "parquet"},
			{"data", "get", "x"},
			{"data", "show", "x@0"},
		} {
			if _, _, err := dataCLI(srv, args...); err == nil {
				t.Errorf("forge %s: no error", strings.Join(args, " "))
			}
		}
	})
}

// TestDataAddPostgres imports a query's result from a real PostgreSQL.
func TestDataAddPostgres(t *testing.T) {
	srv := dataServer(t, sqlstoretest.OpenSQLite(t))
	url := sqlstoretest.PostgresURL(t)
	ctx := context.Background()
	pg, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	if _, err := pg.Exec(ctx, `CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(12,2));
		INSERT INTO orders (customer, total) SELECT 'c' || (i % 7), i * 0.25 FROM generate_series(1, 1000) i`); err != nil {
		t.Fatal(err)
	}
	var want string
	if err := pg.QueryRow(ctx, "SELECT count(*)::text || '|' || sum(total)::float8::text FROM orders WHERE customer <> 'c0'").Scan(&want); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := dataCLI(srv, "data", "add", "orders", url, "--query", "SELECT * FROM orders WHERE customer <> 'c0'")
	if err != nil {
		t.Fatalf("add from postgres: %v %s", err, errOut)
	}
	if !strings.Contains(out, "added orders@1") {
		t.Fatalf("add: %s", out)
	}
	got, _, err := dataCLI(srv, "data", "query", "SELECT count(*)::VARCHAR || '|' || sum(total)::DOUBLE::VARCHAR AS x FROM orders", "-o", "csv")
	if err != nil || strings.TrimSpace(got) != "x\n"+want {
		t.Fatalf("imported data: %q %v; PostgreSQL says %s", got, err, want)
	}
	if _, _, err := dataCLI(srv, "data", "add", "orders2", url); err == nil || !strings.Contains(err.Error(), "--query") {
		t.Fatalf("postgres without --query: %v", err)
	}
}
