package datasets_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// fuzzEnv is a datasets service over SQLite and a blob store, served by its
// real routes; one per fuzz target, shared by its inputs.
type fuzzEnv struct {
	svc   *datasets.Service
	blobs *blob.Local
	eng   *duckq.Engine
	mux   *http.ServeMux
	dir   string
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	blobs, err := blob.NewLocal(filepath.Join(f.TempDir(), "blobs"))
	if err != nil {
		f.Fatal(err)
	}
	eng, err := duckq.NewEngine(duckq.EngineOptions{Threads: 1, MemoryLimit: "512MB"})
	if err != nil {
		f.Fatal(err)
	}
	svc := datasets.New(sqlstoretest.OpenSQLite(f), blobs, eng, datasets.Options{TempDir: f.TempDir(), MaxRows: 100}, nil)
	mux := http.NewServeMux()
	httpapi.Mount(mux, datasets.NewAPI(svc, slog.New(slog.DiscardHandler)).Routes())
	return &fuzzEnv{svc: svc, blobs: blobs, eng: eng, mux: mux, dir: f.TempDir()}
}

// stored counts what uploads leave behind: versions of name and blobs.
func (e *fuzzEnv) stored(t *testing.T, name string) (versions, blobs int) {
	vs, err := e.svc.Versions(context.Background(), name)
	if err != nil && !forge.IsKind(err, forge.NotFound) {
		t.Fatal(err)
	}
	bs, err := e.blobs.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(vs), len(bs)
}

// upload posts body as a new version of name, as `forge data add` does.
func (e *fuzzEnv) upload(t *testing.T, name string, body []byte) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/forge/v1/datasets/"+name+"/versions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.apache.parquet")
	e.mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// readable reads every row of the latest version of name: an accepted
// upload must not break later queries.
func (e *fuzzEnv) readable(t *testing.T, name string) {
	rows, err := e.svc.Query(context.Background(), `SELECT * FROM "`+name+`"`, 100)
	if err == nil {
		err = rows.ForEach(func([]any) error { return nil })
	}
	if err != nil {
		t.Fatalf("an accepted upload of %s cannot be read: %v", name, err)
	}
}

// parquetSeed converts CSV text to Parquet with duckq, as the CLI does.
func parquetSeed(f *testing.F, e *fuzzEnv, csv string) []byte {
	src := filepath.Join(e.dir, "seed.csv")
	if err := os.WriteFile(src, []byte(csv), 0o644); err != nil {
		f.Fatal(err)
	}
	dst := filepath.Join(e.dir, "seed.parquet")
	if _, err := datasets.Convert(context.Background(), e.eng, datasets.Source{Path: src}, dst); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzUploadParquet posts any bytes as a dataset upload: a 201 or 200 whose
// version reads in full, or a 4xx that stores no version and no blob;
// never a 500 or a panic.
func FuzzUploadParquet(f *testing.F) {
	e := newFuzzEnv(f)
	good := parquetSeed(f, e, "id,name,score\n1,a,0.5\n2,b,\n3,\"c,d\",1e300\n")
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(append([]byte{}, good[:len(good)-12]...), good[len(good)-4:]...))
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte{})
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		name := "up" + strconv.Itoa(n)
		versions, blobs := e.stored(t, name)
		code, resp := e.upload(t, name, body)
		switch {
		case code == http.StatusCreated || code == http.StatusOK:
			e.readable(t, name)
		case code >= 400 && code < 500:
			if v, b := e.stored(t, name); v != versions || b != blobs {
				t.Fatalf("refused upload (%d %s) stored %d versions, %d blobs", code, resp, v-versions, b-blobs)
			}
		default:
			t.Fatalf("upload of %d bytes: %d %s", len(body), code, resp)
		}
	})
}

// FuzzImportCSV converts any bytes as a CSV file, as `forge data add
// file.csv` does before the upload: a refusal is the input's fault
// (Invalid) and leaves nothing to upload; what converts uploads and reads
// back in full.
func FuzzImportCSV(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []string{
		"id,name\n1,a\n2,b\n", "a;b;c\n1;2;3\n", "x\n", "", "\n\n", "a,b\n1\n1,2,3\n", "\"unterminated\n1,2\n",
		"a,a\n1,2\n", "id,when\n1,2024-01-02\n2,not a date\n", "\xef\xbb\xbfa,b\n\xff\xfe,2\n",
	} {
		f.Add([]byte(s))
	}
	n := 0
	f.Fuzz(func(t *testing.T, csv []byte) {
		n++
		src := filepath.Join(e.dir, "in.csv")
		dst := filepath.Join(e.dir, "out.parquet")
		os.Remove(dst)
		if err := os.WriteFile(src, csv, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := datasets.Convert(context.Background(), e.eng, datasets.Source{Path: src}, dst)
		if err != nil {
			if k := forge.KindOf(err); k != forge.Invalid {
				t.Fatalf("convert %q: %v (kind %v), want Invalid", csv, err, k)
			}
			return
		}
		pq, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		name := "csv" + strconv.Itoa(n)
		if code, resp := e.upload(t, name, pq); code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("the conversion of %q is refused on upload: %d %s", csv, code, resp)
		}
		e.readable(t, name)
	})
}
