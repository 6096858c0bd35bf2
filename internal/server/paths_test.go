package server_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/config"
)

// Errors caused by what a client sent say what is wrong without the
// server's folders: DuckDB names the upload's temporary file in the data
// dir, and a query's file by its full path.
func TestErrorsShowNoServerPaths(t *testing.T) {
	var dir string
	base := inProcess(t, func(c *config.Server) { dir = c.DataDir })
	// "PAR1" at both ends, a footer length pointing nowhere.
	footer := append(append([]byte("PAR1"), bytes.Repeat([]byte{0xee}, 100)...), 0xff, 0xff, 0, 0, 'P', 'A', 'R', '1')
	for _, rq := range []struct {
		name, method, path, ctype, body, want string
	}{
		{"bad footer", "POST", "/api/forge/v1/datasets/x/versions", "application/vnd.apache.parquet", string(footer), "Footer length error in file 'upload.parquet'"},
		{"signatures only", "POST", "/api/forge/v1/datasets/x/versions", "application/vnd.apache.parquet", "PAR1PAR1PAR1PAR1", "not a readable Parquet file"},
		{"query a data dir file", "POST", "/api/forge/v1/query", "application/json", `{"sql":"SELECT * FROM read_parquet('` + dir + `/forge.db')"}`, "forge.db"},
	} {
		req, _ := http.NewRequest(rq.method, base+rq.path, strings.NewReader(rq.body))
		req.Header.Set("Content-Type", rq.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), rq.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", rq.name, resp.StatusCode, b, rq.want)
		}
		if strings.Contains(string(b), dir) || strings.Contains(string(b), "/tmp/") {
			t.Errorf("%s: the body shows a server path: %s", rq.name, b)
		}
	}
}

// Over MLflow's artifact proxy, a file under a file is a 400 that says so,
// and the listing keeps only the first.
func TestArtifactFileOrFolderHTTP(t *testing.T) {
	base := inProcess(t, nil)
	run := createRun(t, base)
	art := base + "/api/2.0/mlflow-artifacts/artifacts/0/" + run + "/artifacts/"
	put := func(p string) (int, string) {
		req, _ := http.NewRequest("PUT", art+p, strings.NewReader("bytes of "+p))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := put("a"); code != 200 {
		t.Fatalf("put a: %d %s", code, body)
	}
	if code, body := put("a/b"); code != 400 || !strings.Contains(body, "which is a file") {
		t.Errorf("put a/b over the file a: %d %s, want 400 saying a is a file", code, body)
	}
	if code, body := put("c/d"); code != 200 {
		t.Fatalf("put c/d: %d %s", code, body)
	}
	if code, body := put("c"); code != 400 || !strings.Contains(body, "is a folder") {
		t.Errorf("put c over the folder c: %d %s, want 400 saying c is a folder", code, body)
	}
	status, b := call(t, "GET", base+"/api/2.0/mlflow/artifacts/list?run_id="+run, nil)
	if status != 200 || strings.Count(string(b), `"path"`) != 2 || !strings.Contains(string(b), `"path":"a","is_dir":false`) || !strings.Contains(string(b), `"path":"c","is_dir":true`) {
		t.Errorf("listing after the refused uploads: %d %s", status, b)
	}
}
