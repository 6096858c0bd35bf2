package datasets_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

type env struct {
	svc   *datasets.Service
	db    *sqlstore.DB
	blobs *blob.Local
	eng   *duckq.Engine
	dir   string
}

func newEnv(t *testing.T, db *sqlstore.DB) *env {
	t.Helper()
	blobs, err := blob.NewLocal(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 2, MemoryLimit: "1GB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	svc := datasets.New(db, blobs, eng, datasets.Options{TempDir: t.TempDir(), MaxRows: 1000}, nil)
	return &env{svc: svc, db: db, blobs: blobs, eng: eng, dir: t.TempDir()}
}

// parquet converts CSV text to a Parquet file with duckq, as the CLI does.
func (e *env) parquet(t *testing.T, name, csv string) (string, duckq.Table) {
	t.Helper()
	src := filepath.Join(e.dir, name+".csv")
	if err := os.WriteFile(src, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(e.dir, name+".parquet")
	tab, err := datasets.Convert(context.Background(), e.eng, datasets.Source{Path: src}, dst)
	if err != nil {
		t.Fatalf("convert %s: %v", name, err)
	}
	return dst, tab
}

func (e *env) add(t *testing.T, name, path string) (datasets.Version, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, created, err := e.svc.Add(context.Background(), name, f, datasets.AddInfo{Source: path, CreatedBy: "alice"})
	if err != nil {
		t.Fatalf("add %s: %v", name, err)
	}
	return v, created
}

func (e *env) blobCount(t *testing.T) int {
	t.Helper()
	bs, err := e.blobs.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(bs)
}

func fileDigest(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), int64(len(b))
}

const salesV1 = "id,region,amount\n1,north,10.5\n2,south,20\n3,north,7.25\n"
const salesV2 = "id,region,amount\n1,north,10.5\n2,south,20\n3,north,7.25\n4,east,1\n"

func TestVersions(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		p1, tab1 := e.parquet(t, "v1", salesV1)
		v1, created := e.add(t, "sales", p1)
		digest, size := fileDigest(t, p1)
		if !created || v1.Version != 1 || v1.Parent != nil || v1.Digest != digest || v1.Bytes != size || v1.Rows != tab1.Rows || v1.CreatedBy != "alice" {
			t.Fatalf("first add: %+v created=%v; want version 1 of %d rows, digest %s, %d bytes", v1, created, tab1.Rows, digest, size)
		}
		if fmt.Sprint(v1.Columns) != fmt.Sprint(tab1.Columns) {
			t.Fatalf("columns %v, want %v (as duckq wrote them)", v1.Columns, tab1.Columns)
		}

		// The same bytes again: the same version, nothing new stored.
		again, created := e.add(t, "sales", p1)
		if created || again.Version != 1 || e.blobCount(t) != 1 {
			t.Fatalf("identical re-add: %+v created=%v blobs=%d; want version 1, not created, 1 blob", again, created, e.blobCount(t))
		}

		p2, tab2 := e.parquet(t, "v2", salesV2)
		v2, created := e.add(t, "sales", p2)
		if !created || v2.Version != 2 || v2.Parent == nil || *v2.Parent != 1 || v2.Rows != tab2.Rows {
			t.Fatalf("second add: %+v; want version 2 with parent 1 and %d rows", v2, tab2.Rows)
		}
		// The same content under another name is that name's version 1 and
		// shares the blob.
		other, _ := e.add(t, "sales_copy", p1)
		if other.Version != 1 || other.Digest != v1.Digest || e.blobCount(t) != 2 {
			t.Fatalf("copy: %+v, %d blobs; want version 1 sharing the blob (2 blobs)", other, e.blobCount(t))
		}

		latest, err := e.svc.Get(ctx, "sales")
		if err != nil || latest.Version != 2 {
			t.Fatalf("get latest: %+v %v", latest, err)
		}
		got, err := e.svc.Get(ctx, "sales@1")
		if err != nil || got.Digest != v1.Digest {
			t.Fatalf("get sales@1: %+v %v", got, err)
		}
		for _, ref := range []string{"sales@3", "nosuch", "nosuch@1"} {
			if _, err := e.svc.Get(ctx, ref); !forge.IsKind(err, forge.NotFound) {
				t.Errorf("get %s: %v, want NotFound", ref, err)
			}
		}
		for _, ref := range []string{"sales@0", "sales@x", "1bad", "a b", ""} {
			if _, err := e.svc.Get(ctx, ref); !forge.IsKind(err, forge.Invalid) {
				t.Errorf("get %q: %v, want Invalid", ref, err)
			}
		}
		list, err := e.svc.List(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "sales" || list[0].Versions != 2 || list[0].Latest.Version != 2 {
			t.Fatalf("list: %+v %v", list, err)
		}

		// A removed version's number is not given again.
		if _, err := e.svc.Remove(ctx, "sales@2", false); err != nil {
			t.Fatal(err)
		}
		p3, _ := e.parquet(t, "v3", salesV2+"5,west,2\n")
		v3, _ := e.add(t, "sales", p3)
		if v3.Version != 3 || *v3.Parent != 1 {
			t.Fatalf("after removing version 2: %+v, want version 3 with parent 1", v3)
		}
	})
}

func TestAddRefusesWhatIsNotParquet(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		good, _ := e.parquet(t, "good", salesV1)
		b, _ := os.ReadFile(good)
		// Valid signatures at both ends around damaged content.
		damaged := append(append([]byte{}, b[:8]...), bytes.Repeat([]byte{0xff}, 64)...)
		damaged = append(damaged, b[len(b)-8:]...)
		for name, body := range map[string][]byte{
			"csv":     []byte(salesV1),
			"empty":   nil,
			"damaged": damaged,
			"magic":   []byte("PAR1PAR1PAR1"),
		} {
			_, _, err := e.svc.Add(ctx, "sales", bytes.NewReader(body), datasets.AddInfo{})
			if !forge.IsKind(err, forge.Invalid) {
				t.Errorf("%s: %v, want Invalid", name, err)
			}
		}
		if _, _, err := e.svc.Add(ctx, "bad name", bytes.NewReader(b), datasets.AddInfo{}); !forge.IsKind(err, forge.Invalid) {
			t.Errorf("bad name: %v, want Invalid", err)
		}
		if n := e.blobCount(t); n != 0 {
			t.Errorf("%d blobs stored after refused uploads, want 0", n)
		}
		if list, _ := e.svc.List(ctx); len(list) != 0 {
			t.Errorf("datasets after refused uploads: %+v", list)
		}
	})
}

func TestRemoveRefusedWhileUsed(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		p1, _ := e.parquet(t, "v1", salesV1)
		v1, _ := e.add(t, "sales", p1)
		p2, _ := e.parquet(t, "v2", salesV2)
		e.add(t, "sales", p2)

		tr := tracking.New(db)
		run, err := tr.CreateRun(ctx, tracking.CreateRunOptions{Name: "train"})
		if err != nil {
			t.Fatal(err)
		}
		// What an MLflow client sends with log-inputs and a Forge digest.
		err = tr.LogInputs(ctx, run.ID, []tracking.DatasetInput{{Name: "sales", Digest: v1.Digest, SourceType: "forge",
			Tags: []tracking.KV{{Key: "mlflow.data.context", Value: "training"}}}})
		if err != nil {
			t.Fatal(err)
		}
		got, runs, err := e.svc.Show(ctx, "sales@1")
		if err != nil || got.Version != 1 || len(runs) != 1 || runs[0].RunID != run.ID || runs[0].RunName != "train" {
			t.Fatalf("show sales@1: %+v %+v %v; want run %s", got, runs, err, run.ID)
		}
		if _, runs, _ := e.svc.Show(ctx, "sales@2"); len(runs) != 0 {
			t.Fatalf("sales@2 used by %+v, want none", runs)
		}

		for _, ref := range []string{"sales@1", "sales"} {
			_, err = e.svc.Remove(ctx, ref, false)
			if !forge.IsKind(err, forge.Conflict) || !strings.Contains(err.Error(), run.ID) || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("remove %s while used: %v, want a Conflict naming the run and --force", ref, err)
			}
		}
		if _, err := e.svc.Get(ctx, "sales@1"); err != nil {
			t.Fatalf("refused remove removed it: %v", err)
		}
		removed, err := e.svc.Remove(ctx, "sales@1", true)
		if err != nil || len(removed) != 1 {
			t.Fatalf("forced remove: %+v %v", removed, err)
		}
		if _, err := e.svc.Get(ctx, "sales@1"); !forge.IsKind(err, forge.NotFound) {
			t.Fatalf("after forced remove: %v, want NotFound", err)
		}
		// Metadata only: the blob stays.
		if n := e.blobCount(t); n != 2 {
			t.Fatalf("%d blobs after remove, want 2", n)
		}
		if _, err := e.svc.Remove(ctx, "sales", false); err != nil {
			t.Fatalf("remove unused dataset: %v", err)
		}
		if _, err := e.svc.Get(ctx, "sales"); !forge.IsKind(err, forge.NotFound) {
			t.Fatalf("after removing the dataset: %v, want NotFound", err)
		}
	})
}

func queryAll(t *testing.T, svc *datasets.Service, q string, limit int) ([][]any, bool) {
	t.Helper()
	rows, err := svc.Query(context.Background(), q, limit)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	var out [][]any
	err = rows.ForEach(func(r []any) error {
		out = append(out, append([]any(nil), r...))
		return nil
	})
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return out, rows.Truncated()
}

func TestQuery(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		p1, _ := e.parquet(t, "v1", salesV1)
		e.add(t, "sales", p1)
		p2, _ := e.parquet(t, "v2", salesV2)
		e.add(t, "sales", p2)
		pr, _ := e.parquet(t, "regions", "region,manager\nnorth,ann\nsouth,bob\neast,cid\n")
		e.add(t, "regions", pr)

		rows, _ := queryAll(t, e.svc, `SELECT count(*) FROM sales`, 0)
		if fmt.Sprint(rows) != "[[4]]" {
			t.Errorf("latest: %v, want 4 rows", rows)
		}
		rows, _ = queryAll(t, e.svc, `SELECT count(*) FROM "sales@1"`, 0)
		if fmt.Sprint(rows) != "[[3]]" {
			t.Errorf("sales@1: %v, want 3 rows", rows)
		}
		rows, _ = queryAll(t, e.svc, `SELECT r.manager, sum(s.amount) FROM "sales@1" s JOIN regions r USING (region) GROUP BY 1 ORDER BY 1`, 0)
		if fmt.Sprint(rows) != "[[ann 17.75] [bob 20]]" {
			t.Errorf("join: %v", rows)
		}
		rows, truncated := queryAll(t, e.svc, `SELECT id FROM sales ORDER BY id`, 2)
		if len(rows) != 2 || !truncated {
			t.Errorf("limit 2: %v truncated=%v", rows, truncated)
		}
		// The server's cap (1000 here) applies over a larger or no limit.
		rows, truncated = queryAll(t, e.svc, `SELECT * FROM range(5000)`, 0)
		if len(rows) != 1000 || !truncated {
			t.Errorf("cap: %d rows truncated=%v, want 1000 and truncated", len(rows), truncated)
		}

		for q, kind := range map[string]forge.Kind{
			`SELECT * FROM "sales@9"`:                      forge.NotFound,
			`SELECT * FROM "nosuch@1"`:                     forge.NotFound,
			`SELECT * FROM nosuch`:                         forge.NotFound,
			`SELEC 1`:                                      forge.Invalid,
			`SELECT nocolumn FROM sales`:                   forge.Invalid,
			`COPY (SELECT 1) TO '/tmp/x.csv'`:              forge.Invalid,
			`SELECT * FROM read_csv('/etc/passwd')`:        forge.Invalid,
			`ATTACH '/tmp/x.db'`:                           forge.Invalid,
			"SELECT 1; SELECT * FROM sales":                forge.Invalid,
			"":                                             forge.Invalid,
			`SELECT * FROM read_parquet('` + p1 + `')`:     forge.Invalid,
			`CREATE TABLE t AS SELECT * FROM "sales@1"`:    forge.Invalid,
			`SELECT * FROM sales WHERE amount = 'not num'`: forge.Invalid,
		} {
			r, err := e.svc.Query(ctx, q, 0)
			if err == nil {
				err = r.ForEach(func([]any) error { return nil })
			}
			if !forge.IsKind(err, kind) {
				t.Errorf("%q: %v, want %v", q, err, kind)
			}
		}
	})
}

// Queries back to back run on instances the engine made ahead: each gets
// its own sandbox, so one that names only regions cannot read the sales
// blob the query before it read, and each answers with its own tables.
func TestQueriesBackToBackKeepTheirSandbox(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		p1, _ := e.parquet(t, "v1", salesV1)
		v, _ := e.add(t, "sales", p1)
		pr, _ := e.parquet(t, "regions", "region,manager\nnorth,ann\nsouth,bob\neast,cid\n")
		e.add(t, "regions", pr)
		blobPath, err := e.blobs.Path(forge.Digest(v.Digest))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if rows, _ := queryAll(t, e.svc, `SELECT count(*) FROM sales`, 0); fmt.Sprint(rows) != "[[3]]" {
				t.Errorf("round %d: sales: %v, want 3 rows", i, rows)
			}
			r, err := e.svc.Query(ctx, `SELECT count(*) FROM regions, read_parquet('`+blobPath+`')`, 0)
			if err == nil {
				err = r.ForEach(func([]any) error { return nil })
			}
			if !forge.IsKind(err, forge.Invalid) {
				t.Errorf("round %d: a query on regions read the sales blob: %v, want Invalid", i, err)
			}
			if rows, _ := queryAll(t, e.svc, `SELECT count(*) FROM regions`, 0); fmt.Sprint(rows) != "[[3]]" {
				t.Errorf("round %d: regions: %v, want 3 rows", i, rows)
			}
		}
	})
}

func TestProfileStoredOnce(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		p1, _ := e.parquet(t, "v1", salesV1)
		v1, _ := e.add(t, "sales", p1)
		want, err := e.eng.Profile(ctx, p1)
		if err != nil {
			t.Fatal(err)
		}
		_, first, err := e.svc.Profile(ctx, "sales")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(first), `"rows":3`) || !strings.Contains(string(first), fmt.Sprintf(`"approx_distinct":%d`, want.Columns[1].ApproxDistinct)) {
			t.Fatalf("profile %s does not match duckq's %+v", first, want)
		}
		// With the file gone, only the stored profile can answer.
		path, _ := e.blobs.Path(forge.Digest(v1.Digest))
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		_, second, err := e.svc.Profile(ctx, "sales@1")
		if err != nil || string(second) != string(first) {
			t.Fatalf("second profile: %s %v; want the stored one", second, err)
		}
	})
}

func TestDiffAndMaterialize(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		p1, _ := e.parquet(t, "v1", salesV1)
		e.add(t, "sales", p1)
		p2, _ := e.parquet(t, "v2", "id,region,amount,paid\n1,north,100,true\n2,south,200,false\n")
		e.add(t, "sales", p2)
		want, err := e.eng.Diff(ctx, p1, p2)
		if err != nil {
			t.Fatal(err)
		}
		va, vb, d, err := e.svc.Diff(ctx, "sales@1", "sales@2")
		if err != nil || va.Version != 1 || vb.Version != 2 {
			t.Fatal(va, vb, err)
		}
		if d.RowsA != 3 || d.RowsB != 2 || len(d.Added) != 1 || d.Added[0].Name != "paid" || jsonOf(t, d) != jsonOf(t, want) {
			t.Fatalf("diff %+v, want %+v", d, want)
		}
		if _, _, _, err := e.svc.Diff(ctx, "sales@1", "sales@7"); !forge.IsKind(err, forge.NotFound) {
			t.Fatalf("diff with a missing version: %v", err)
		}

		dst := filepath.Join(t.TempDir(), "in.parquet")
		ref, digest, err := e.svc.Materialize(ctx, "sales", dst)
		if err != nil || ref != "sales@2" {
			t.Fatalf("materialize: %s %v", ref, err)
		}
		if got, _ := fileDigest(t, dst); got != digest {
			t.Fatalf("materialized file has digest %s, want %s", got, digest)
		}
		// A job writing to its input must not damage the stored version.
		os.WriteFile(dst, []byte("scribble"), 0o644)
		if _, _, err := e.svc.Materialize(ctx, "sales@2", dst); err != nil {
			t.Fatal(err)
		}
		if got, _ := fileDigest(t, dst); got != digest {
			t.Fatalf("the blob changed when the job wrote to its input")
		}
		if _, _, err := e.svc.Materialize(ctx, "nosuch", dst); !forge.IsKind(err, forge.NotFound) {
			t.Fatalf("materialize unknown: %v", err)
		}
	})
}

// TestPostgresSource imports a table from a real PostgreSQL through
// ConvertPostgres, as `forge data add NAME postgres://... --query` does.
func TestPostgresSource(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		url := sqlstoretest.PostgresURL(t)
		pg, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close(ctx)
		if _, err := pg.Exec(ctx, `CREATE TABLE customers (id int PRIMARY KEY, name text, balance numeric(10,2), since date);
		INSERT INTO customers SELECT i, 'c' || i, i * 1.5, DATE '2024-01-01' + i FROM generate_series(1, 250) i`); err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, db)
		src := datasets.Source{Path: strings.Replace(url, "forge@", "forge:secret@", 1), Query: "SELECT * FROM customers WHERE id <= 200"}
		dst := filepath.Join(t.TempDir(), "c.parquet")
		tab, err := datasets.Convert(ctx, e.eng, src, dst)
		if err != nil {
			t.Fatal(err)
		}
		if tab.Rows != 200 || len(tab.Columns) != 4 {
			t.Fatalf("converted %+v, want 200 rows of 4 columns", tab)
		}
		if d := src.Describe(); strings.Contains(d, "secret") || !strings.Contains(d, "customers WHERE id <= 200") {
			t.Fatalf("recorded source %q: want the query and no password", d)
		}
		v, _ := e.add(t, "customers", dst)
		var sum float64
		var maxSince string
		if err := pg.QueryRow(ctx, "SELECT sum(balance)::float8, max(since)::text FROM customers WHERE id <= 200").Scan(&sum, &maxSince); err != nil {
			t.Fatal(err)
		}
		rows, _ := queryAll(t, e.svc, "SELECT sum(balance)::DOUBLE, max(since)::VARCHAR FROM customers", 0)
		if fmt.Sprint(rows) != fmt.Sprint([][]any{{sum, maxSince}}) || v.Rows != 200 {
			t.Fatalf("imported data: %v (%d rows), PostgreSQL says %v %v", rows, v.Rows, sum, maxSince)
		}

		if _, err := datasets.Convert(ctx, e.eng, datasets.Source{Path: url}, dst); !forge.IsKind(err, forge.Invalid) {
			t.Fatalf("postgres without --query: %v", err)
		}
		if _, err := datasets.Convert(ctx, e.eng, datasets.Source{Path: url, Query: "SELECT * FROM nosuch"}, dst); !forge.IsKind(err, forge.Invalid) {
			t.Fatalf("postgres bad query: %v", err)
		}
	})
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSchema(t *testing.T) {
	cols, err := datasets.ParseSchema("id:BIGINT, price:DECIMAL(10,2),day:DATE")
	if err != nil || fmt.Sprint(cols) != "[{id BIGINT} {price DECIMAL(10,2)} {day DATE}]" {
		t.Fatalf("%v %v", cols, err)
	}
	if _, err := datasets.ParseSchema("id"); err == nil {
		t.Fatal("want an error for a column without a type")
	}
}
