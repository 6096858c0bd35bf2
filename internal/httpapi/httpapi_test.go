package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
)

func stack(t *testing.T, logs *bytes.Buffer, mux *http.ServeMux) (http.Handler, *prometheus.Registry) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(logs, nil))
	reg := prometheus.NewRegistry()
	m := httpapi.NewMetrics(reg)
	return httpapi.Chain(mux, httpapi.WithRequestID, httpapi.AccessLog(log), httpapi.Recover(log), m.Wrap,
		httpapi.RejectUnclean(log), httpapi.LimitBody(func(*http.Request) int64 { return 64 }, log)), reg
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func errorBody(t *testing.T, rec *httptest.ResponseRecorder) httpapi.ErrorBody {
	t.Helper()
	var e httpapi.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	return e
}

func TestErrorKindsMapToStatusAndCode(t *testing.T) {
	var logs bytes.Buffer
	mux := http.NewServeMux()
	var fail error
	mux.Handle("GET /x", httpapi.JSON(slog.New(slog.NewJSONHandler(&logs, nil)), func(*http.Request) (any, error) { return nil, fail }))
	h, _ := stack(t, &logs, mux)
	for _, tc := range []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{forge.Errorf(forge.Invalid, "bad x"), 400, "INVALID_PARAMETER_VALUE", "bad x"},
		{forge.Errorf(forge.NotFound, "no x"), 404, "RESOURCE_DOES_NOT_EXIST", "no x"},
		{forge.Errorf(forge.AlreadyExists, "x exists"), 409, "RESOURCE_ALREADY_EXISTS", "x exists"},
		{forge.Errorf(forge.Conflict, "busy x"), 409, "RESOURCE_CONFLICT", "busy x"},
		{forge.Errorf(forge.TooLarge, "big x"), 413, "REQUEST_LIMIT_EXCEEDED", "big x"},
		{forge.Errorf(forge.Unauthorized, "who"), 401, "UNAUTHENTICATED", "who"},
		{forge.Errorf(forge.Forbidden, "no"), 403, "PERMISSION_DENIED", "no"},
		{forge.Errorf(forge.Unavailable, "busy"), 503, "TEMPORARILY_UNAVAILABLE", "busy"},
		{errors.New("disk on fire at /secret/path"), 500, "INTERNAL_ERROR", "internal error"},
	} {
		fail = tc.err
		rec := do(h, "GET", "/x", "")
		e := errorBody(t, rec)
		if rec.Code != tc.status || e.ErrorCode != tc.code || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%v: %d %+v, want %d %s", tc.err, rec.Code, e, tc.status, tc.code)
		}
		if strings.Contains(e.Message, "/secret/path") {
			t.Errorf("the cause leaked to the client: %q", e.Message)
		}
	}
	if !strings.Contains(logs.String(), "disk on fire at /secret/path") {
		t.Error("the internal error's cause was not logged")
	}
}

// MLflow's server answers 400 for RESOURCE_ALREADY_EXISTS, and MLflow clients
// (and tests written against it) expect that on MLflow's routes; Forge's own
// API keeps 409.
func TestAlreadyExistsOnMLflowRoutesIs400(t *testing.T) {
	var logs bytes.Buffer
	mux := http.NewServeMux()
	fail := func(*http.Request) (any, error) { return nil, forge.Errorf(forge.AlreadyExists, "x exists") }
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	mux.Handle("POST /api/2.0/mlflow/experiments/create", httpapi.JSON(log, fail))
	mux.Handle("POST /ajax-api/2.0/mlflow/experiments/create", httpapi.JSON(log, fail))
	mux.Handle("POST /api/forge/v1/datasets", httpapi.JSON(log, fail))
	h, _ := stack(t, &logs, mux)
	for path, want := range map[string]int{
		"/api/2.0/mlflow/experiments/create":      400,
		"/ajax-api/2.0/mlflow/experiments/create": 400,
		"/api/forge/v1/datasets":                  409,
	} {
		rec := do(h, "POST", path, "{}")
		if e := errorBody(t, rec); rec.Code != want || e.ErrorCode != "RESOURCE_ALREADY_EXISTS" {
			t.Errorf("%s: %d %+v, want %d RESOURCE_ALREADY_EXISTS", path, rec.Code, e, want)
		}
	}
}

func TestPanicIsA500WithRequestID(t *testing.T) {
	var logs bytes.Buffer
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	h, _ := stack(t, &logs, mux)
	rec := do(h, "GET", "/boom", "")
	id := rec.Header().Get("X-Request-Id")
	e := errorBody(t, rec)
	if rec.Code != 500 || e.ErrorCode != "INTERNAL_ERROR" || id == "" || !strings.Contains(e.Message, id) {
		t.Fatalf("panic: %d %+v (request id %q)", rec.Code, e, id)
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), `"request_id":"`+id) {
		t.Fatalf("panic not logged with its request id:\n%s", logs.String())
	}
}

func TestBodyLimitAndMalformedJSON(t *testing.T) {
	var logs bytes.Buffer
	mux := http.NewServeMux()
	mux.Handle("POST /echo", httpapi.JSON(slog.New(slog.NewTextHandler(io.Discard, nil)), func(r *http.Request) (any, error) {
		var v struct {
			N int `json:"n"`
		}
		return v, httpapi.Decode(r, &v)
	}))
	h, reg := stack(t, &logs, mux)
	if rec := do(h, "POST", "/echo", `{"n": 1}`); rec.Code != 200 {
		t.Fatalf("good body: %d %s", rec.Code, rec.Body)
	}
	rec := do(h, "POST", "/echo", `{"n": "`+strings.Repeat("x", 100)+`"}`)
	if e := errorBody(t, rec); rec.Code != 413 || e.ErrorCode != "REQUEST_LIMIT_EXCEEDED" {
		t.Fatalf("oversized body: %d %+v", rec.Code, e)
	}
	for body, want := range map[string]string{`{"n": `: "malformed JSON", `{"n": "one"}`: "invalid value for n", `{"n": 1} {}`: "unexpected data", `{"n": 1}}`: "unexpected data", `{"n": 1}]`: "unexpected data", `{"n": 1} x`: "unexpected data"} {
		rec := do(h, "POST", "/echo", body)
		if e := errorBody(t, rec); rec.Code != 400 || e.ErrorCode != "INVALID_PARAMETER_VALUE" || !strings.Contains(e.Message, want) {
			t.Errorf("%q: %d %+v, want 400 mentioning %q", body, rec.Code, e, want)
		}
	}
	if rec := do(h, "GET", "/a/../b", ""); rec.Code != 400 {
		t.Errorf("a path with '..': %d", rec.Code)
	}
	// Requests are counted by route pattern and status; those refused before
	// routing (a declared length over the limit) too.
	if n := counter(t, reg, "POST /echo", "200"); n != 1 {
		t.Errorf("forge_http_requests_total{route=POST /echo, code=200} = %v, want 1", n)
	}
	if n := counter(t, reg, "unmatched", "413"); n != 1 {
		t.Errorf("forge_http_requests_total{route=unmatched, code=413} = %v, want 1", n)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, route, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "forge_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no forge_http_requests_total{route=%q, code=%q}", route, code)
	return 0
}

// Every kind has one row: REST and gRPC agree on what it means.
func TestErrorTable(t *testing.T) {
	for k, want := range map[forge.Kind]codes.Code{
		forge.Invalid: codes.InvalidArgument, forge.NotFound: codes.NotFound, forge.AlreadyExists: codes.AlreadyExists,
		forge.Conflict: codes.FailedPrecondition, forge.Unauthorized: codes.Unauthenticated, forge.Forbidden: codes.PermissionDenied,
		forge.Unavailable: codes.Unavailable, forge.TooLarge: codes.ResourceExhausted, forge.Internal: codes.Internal,
	} {
		if got := httpapi.Render(k).GRPC; got != want {
			t.Errorf("%v: gRPC %v, want %v", k, got, want)
		}
	}
	if got := httpapi.ClientMessage(forge.Errorf(forge.Internal, "password=hunter2")); got != "internal error" {
		t.Errorf("internal error shown as %q", got)
	}
}

// A step or timestamp beyond int64 is refused, not wrapped.
func TestInt64OutOfRange(t *testing.T) {
	var logs bytes.Buffer
	mux := http.NewServeMux()
	mux.Handle("POST /metric", httpapi.JSON(slog.New(slog.NewTextHandler(io.Discard, nil)), func(r *http.Request) (any, error) {
		var v struct {
			Step api.Int64 `json:"step"`
		}
		err := httpapi.Decode(r, &v)
		return map[string]int64{"step": int64(v.Step)}, err
	}))
	h, _ := stack(t, &logs, mux)
	for _, ok := range []string{`9223372036854775807`, `"-9223372036854775808"`, `1e3`} {
		if rec := do(h, "POST", "/metric", `{"step": `+ok+`}`); rec.Code != 200 {
			t.Errorf("step %s: %d %s", ok, rec.Code, rec.Body)
		}
	}
	for _, bad := range []string{`9223372036854775808`, `"9223372036854775808"`, `-9223372036854775809`, `1e20`, `-1e20`, `9.3e18`} {
		rec := do(h, "POST", "/metric", `{"step": `+bad+`}`)
		if e := errorBody(t, rec); rec.Code != 400 || e.ErrorCode != "INVALID_PARAMETER_VALUE" || !strings.Contains(e.Message, "int64 range") {
			t.Errorf("step %s: %d %+v, want 400 INVALID_PARAMETER_VALUE out of range", bad, rec.Code, e)
		}
	}
}
