package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/ort"
	"github.com/forge-mlops/forge/internal/runtime/onnxrt"
	"github.com/forge-mlops/forge/internal/runtime/xgbrt"
)

const fixtures = "../../testdata/models"

// ortLibrary finds ONNX Runtime as a developer's machine has it; a missing
// library fails the test, since ONNX serving is not optional.
func ortLibrary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("FORGE_ONNXRUNTIME_LIB")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		path = ort.CachedLibraryPath(filepath.Join(home, ".cache", "forge"))
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ONNX Runtime library not found at %s: run scripts/fetch-onnxruntime.sh (or set FORGE_ONNXRUNTIME_LIB)", path)
	}
	return path
}

func runtimes(t testing.TB) map[string]forge.Runtime {
	return map[string]forge.Runtime{
		"onnx":    onnxrt.New(ortLibrary(t), ort.Options{IntraOpThreads: 1}),
		"xgboost": xgbrt.Runtime{},
	}
}

// repo lays out a model repository: each entry maps "NAME/VERSION" to a
// fixture file, copied in as model.onnx or model.json.
func repo(t testing.TB, entries map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for nv, fixture := range entries {
		path := fixture
		if !filepath.IsAbs(path) {
			path = filepath.Join(fixtures, fixture)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			// Not a fixture: the content itself (for broken models).
			b = []byte(fixture)
			fixture = "model.onnx"
		}
		name := "model.json"
		if strings.HasSuffix(fixture, ".onnx") {
			name = "model.onnx"
		}
		if err := os.MkdirAll(filepath.Join(dir, nv), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, nv, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type env struct {
	s   *Server
	reg *prometheus.Registry
	url string
}

func newEnv(t testing.TB, entries map[string]string, batch BatchOptions) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(Options{Runtimes: runtimes(t), MaxBodyBytes: 1 << 20, Version: "test"}, log, reg)
	t.Cleanup(func() { s.Close() })
	if entries != nil {
		s.LoadRepository(context.Background(), repo(t, entries), LoadOptions{Batch: batch})
	}
	mux := http.NewServeMux()
	httpapi.Mount(mux, s.Routes())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &env{s: s, reg: reg, url: hs.URL}
}

// post sends body (with the binary header if hlen >= 0) and returns the
// status, headers and body.
func (e *env) post(t testing.TB, path string, body []byte, hlen int) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if hlen >= 0 {
		req.Header.Set(headerLength, strconv.Itoa(hlen))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *env) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metric sums a counter's series whose labels include want.
func (e *env) metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// reference is a fixture's inputs and outputs computed by its own library;
// null inputs are NaN.
type reference struct {
	Inputs  [][]*float64 `json:"inputs"`
	Outputs [][]float64  `json:"outputs"`
}

func readReference(t testing.TB, name string) reference {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func (r reference) rows(lo, hi int) [][]float32 {
	var out [][]float32
	for _, row := range r.Inputs[lo:hi] {
		var x []float32
		for _, v := range row {
			if v == nil {
				x = append(x, float32(math.NaN()))
			} else {
				x = append(x, float32(*v))
			}
		}
		out = append(out, x)
	}
	return out
}

// jsonRows writes rows as a nested JSON array, NaN as null.
func jsonRows(rows [][]float32) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j, v := range r {
			if j > 0 {
				b.WriteByte(',')
			}
			if v != v {
				b.WriteString("null")
			} else {
				b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

func inferBody(input string, rows [][]float32, extra string) []byte {
	return []byte(fmt.Sprintf(`{"id":"r1","inputs":[{"name":%q,"shape":[%d,%d],"datatype":"FP32","data":%s}]%s}`,
		input, len(rows), len(rows[0]), jsonRows(rows), extra))
}

type inferResponseJSON struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name       string          `json:"name"`
		Datatype   string          `json:"datatype"`
		Shape      []int64         `json:"shape"`
		Data       []float64       `json:"data"`
		Parameters map[string]any  `json:"parameters"`
		Raw        json.RawMessage `json:"-"`
	} `json:"outputs"`
}

func checkClose(t testing.TB, what string, got []float64, want [][]float64, tol float64) {
	t.Helper()
	k := len(want[0])
	if len(got) != len(want)*k {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want)*k)
	}
	for i, row := range want {
		for j, w := range row {
			if g := got[i*k+j]; math.Abs(g-w) > tol {
				t.Errorf("%s: row %d col %d: got %v, reference %v", what, i, j, g, w)
			}
		}
	}
}

func float32s(b []byte) []float64 {
	out := make([]float64, len(b)/4)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return out
}

// dirFS copies a fixture into a version folder and returns it as an fs.FS.
func dirFS(t testing.TB, fixture string) fs.FS {
	t.Helper()
	dir := repo(t, map[string]string{"m/1": fixture})
	return os.DirFS(filepath.Join(dir, "m", "1"))
}
