package datasets_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// serve mounts the API on a real HTTP server; done receives each finished
// request's path, to see handlers end.
func serve(t *testing.T, e *env) (string, chan string) {
	t.Helper()
	mux := http.NewServeMux()
	httpapi.Mount(mux, datasets.NewAPI(e.svc, nil).Routes())
	done := make(chan string, 100)
	h := httpapi.Chain(mux, httpapi.WithRequestID)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		done <- r.URL.Path
	}))
	t.Cleanup(srv.Close)
	return srv.URL, done
}

func post(t *testing.T, url, ctype string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTP(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		base, _ := serve(t, e)
		api := base + "/api/forge/v1"
		p1, _ := e.parquet(t, "v1", salesV1)
		b1, _ := os.ReadFile(p1)

		code, body := post(t, api+"/datasets/sales/versions?source=test", "application/vnd.apache.parquet", b1)
		if code != http.StatusCreated || !strings.Contains(body, `"version":1`) || !strings.Contains(body, `"created":true`) {
			t.Fatalf("upload: %d %s", code, body)
		}
		code, body = post(t, api+"/datasets/sales/versions", "application/vnd.apache.parquet", b1)
		if code != http.StatusOK || !strings.Contains(body, `"created":false`) {
			t.Fatalf("identical upload: %d %s", code, body)
		}
		code, body = post(t, api+"/datasets/sales/versions", "text/csv", []byte(salesV1))
		if code != http.StatusBadRequest || !strings.Contains(body, "not a Parquet file") {
			t.Fatalf("CSV upload: %d %s", code, body)
		}
		if n := e.blobCount(t); n != 1 {
			t.Fatalf("%d blobs, want 1", n)
		}

		// Data with its checksum.
		resp, err := http.Get(api + "/datasets/sales/versions/1/data")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, _ := fileDigest(t, p1)
		if resp.StatusCode != 200 || !bytes.Equal(got, b1) || resp.Header.Get("X-Content-Sha256") != want {
			t.Fatalf("data: %d, %d bytes, sha %q", resp.StatusCode, len(got), resp.Header.Get("X-Content-Sha256"))
		}
		// The same rows as CSV, for job code without a Parquet reader, with the
		// hash of the bytes sent and the dataset's own digest.
		resp, err = http.Get(api + "/datasets/sales/versions/1/data?format=csv")
		if err != nil {
			t.Fatal(err)
		}
		csv, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sum := sha256.Sum256(csv)
		if resp.StatusCode != 200 || resp.Header.Get("X-Content-Sha256") != hex.EncodeToString(sum[:]) || resp.Header.Get("X-Forge-Dataset-Digest") != want {
			t.Fatalf("csv data: %d, sha %q (body hashes to %x), dataset digest %q", resp.StatusCode, resp.Header.Get("X-Content-Sha256"), sum, resp.Header.Get("X-Forge-Dataset-Digest"))
		}
		if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(lines) != strings.Count(strings.TrimSpace(salesV1), "\n")+1 {
			t.Fatalf("csv has %d lines, the source %d:\n%s", len(lines), strings.Count(strings.TrimSpace(salesV1), "\n")+1, csv)
		}
		for path, status := range map[string]int{
			"/datasets/sales/versions/1/data?format=xml": 400,
			"/datasets/sales/versions/2":                 404,
			"/datasets/nosuch/versions/latest":           404,
			"/datasets/sales/versions/x":                 400,
			"/datasets/sales/versions/1/data":            200,
			"/datasets/nosuch/versions/1/data":           404,
			"/datasets/sales/versions/latest":            200,
			"/dataset-diff?a=sales@1&b=sales@9":          404,
			"/dataset-diff?a=sales@1":                    400,
		} {
			resp, err := http.Get(api + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, status)
			}
		}

		// Streaming: header, rows, trailer.
		code, body = post(t, api+"/query", "application/json", []byte(`{"sql":"SELECT i, i::VARCHAR AS s, DATE '2024-01-01' + i::INTEGER AS d, 'NaN'::DOUBLE AS n FROM range(5) t(i)","limit":3}`))
		lines := strings.Split(strings.TrimSpace(body), "\n")
		if code != 200 || len(lines) != 5 {
			t.Fatalf("query: %d %q", code, body)
		}
		if lines[0] != `{"columns":[{"name":"i","type":"BIGINT"},{"name":"s","type":"VARCHAR"},{"name":"d","type":"DATE"},{"name":"n","type":"DOUBLE"}]}` ||
			lines[2] != `[1,"1","2024-01-02","NaN"]` || lines[4] != `{"rows":3,"truncated":true}` {
			t.Fatalf("query lines:\n%s", body)
		}
		for q, status := range map[string]int{
			`{"sql":"SELECT * FROM \"sales@4\""}`: 404,
			`{"sql":"SELEC 1"}`:                   400,
			`{"sql":"SELECT 1", "limit": -1}`:     400,
			`{"sql": 1}`:                          400,
		} {
			if code, body := post(t, api+"/query", "application/json", []byte(q)); code != status {
				t.Errorf("query %s: %d %s, want %d", q, code, body, status)
			}
		}
		code, body = post(t, api+"/query", "application/json", []byte(`{"sql":"SELECT nocolumn FROM sales"}`))
		if code != 400 || !strings.Contains(body, "nocolumn") {
			t.Errorf("SQL error: %d %s, want 400 with DuckDB's message", code, body)
		}
		// A timeout ends a runaway query with a trailer... or before any row.
		code, body = post(t, api+"/query", "application/json", []byte(`{"sql":"SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b","timeout_ms":300}`))
		if code != 400 || !strings.Contains(body, "timeout") {
			t.Errorf("timeout: %d %s", code, body)
		}

		req, _ := http.NewRequest(http.MethodDelete, api+"/datasets/sales/versions/latest", nil)
		resp, _ = http.DefaultClient.Do(req)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("DELETE latest: %d, want 400", resp.StatusCode)
		}
	})
}

// TestQueryCancelledByClient checks that a client going away stops the
// query on the server, well before it would have finished.
func TestQueryCancelledByClient(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		base, done := serve(t, e)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/forge/v1/query",
			strings.NewReader(`{"sql":"SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"}`))
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		time.Sleep(500 * time.Millisecond)
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("the query answered before it was cancelled")
		}
		// 10^12 rows would take hours; the handler must end at once.
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the server kept running the query after the client left")
		}
	})
}

// TestQueryStreams reads a large result line by line as it arrives.
func TestQueryStreams(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		base, _ := serve(t, e)
		resp, err := http.Post(base+"/api/forge/v1/query", "application/json", strings.NewReader(`{"sql":"SELECT range AS i, 'x' || range AS s FROM range(100000)"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Fatalf("content type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		n := 0
		var last string
		for sc.Scan() {
			n++
			last = sc.Text()
		}
		var trailer struct {
			Rows      int64 `json:"rows"`
			Truncated bool  `json:"truncated"`
		}
		// The service's cap is 1000 rows.
		if err := json.Unmarshal([]byte(last), &trailer); err != nil || n != 1002 || trailer.Rows != 1000 || !trailer.Truncated {
			t.Fatalf("%d lines, trailer %q", n, last)
		}
	})
}

// TestUploadWithCorruptedPagesRefused: a Parquet file whose footer is intact
// but whose data pages are damaged is refused with 400 before anything is
// stored, instead of being accepted and breaking every later query.
func TestUploadWithCorruptedPagesRefused(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		base, _ := serve(t, e)
		api := base + "/api/forge/v1"
		var csv strings.Builder
		csv.WriteString("id,label\n")
		for i := range 20000 {
			fmt.Fprintf(&csv, "%d,label-%d-%x\n", i, i*7919%10007, i*31337)
		}
		p, tab := e.parquet(t, "big", csv.String())
		if tab.Rows != 20000 {
			t.Fatalf("fixture: %d rows", tab.Rows)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// The footer (metadata) is at the end, the data pages start after the
		// leading "PAR1": damage bytes well inside the data, far from the footer.
		footer := int(binary.LittleEndian.Uint32(b[len(b)-8:])) + 8
		if footer > len(b)/2 {
			t.Fatalf("fixture: footer %d bytes of %d, want a file mostly data", footer, len(b))
		}
		for _, at := range []int{len(b) / 4, len(b) / 2} {
			bad := append([]byte{}, b...)
			for i := at; i < at+4096; i++ {
				bad[i] = 0xff
			}
			code, body := post(t, api+"/datasets/broken/versions", "application/vnd.apache.parquet", bad)
			if code != http.StatusBadRequest || !strings.Contains(body, "not a readable Parquet file") {
				t.Errorf("upload damaged at byte %d: %d %s, want 400 saying it is not readable", at, code, body)
			}
		}
		if n := e.blobCount(t); n != 0 {
			t.Errorf("%d blobs stored after a refused upload, want 0", n)
		}
		if list, _ := e.svc.List(context.Background()); len(list) != 0 {
			t.Errorf("datasets after a refused upload: %+v", list)
		}
		// The intact file is still accepted.
		if code, body := post(t, api+"/datasets/broken/versions", "application/vnd.apache.parquet", b); code != http.StatusCreated {
			t.Errorf("intact upload: %d %s", code, body)
		}
	})
}
