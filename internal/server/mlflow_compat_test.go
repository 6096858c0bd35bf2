package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
)

// The answers below are MLflow 2.12.2's server's, seen on the wire
// (../shared/peers/mlflow-2.12.2/server.sh, SQLite backend, artifact proxy):
// Forge must give the same status, error_code and message.

type mlflowCase struct {
	name           string
	method, path   string
	body           string
	status         int
	code, message  string // code "" expects a 200
	messagePrefix  bool   // message is a prefix (MLflow appends the database's error)
	afterwardsPath string // optional GET that must still answer 404 (nothing stored)
}

func checkMLflow(t *testing.T, base string, cases []mlflowCase) {
	t.Helper()
	for _, c := range cases {
		var in any
		if c.body != "" {
			in = json.RawMessage(c.body)
		}
		status, b := call(t, c.method, base+c.path, in, "Content-Type", "application/json")
		if status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, status, c.status, b)
			continue
		}
		if c.code == "" {
			continue
		}
		var e struct{ ErrorCode, Message string }
		if err := json.Unmarshal(b, &struct {
			ErrorCode *string `json:"error_code"`
			Message   *string `json:"message"`
		}{&e.ErrorCode, &e.Message}); err != nil {
			t.Errorf("%s: %v: %s", c.name, err, b)
			continue
		}
		okMsg := e.Message == c.message || c.messagePrefix && strings.HasPrefix(e.Message, c.message)
		if e.ErrorCode != c.code || !okMsg {
			t.Errorf("%s:\n got %s %q\nwant %s %q", c.name, e.ErrorCode, e.Message, c.code, c.message)
		}
	}
}

// model-versions/create as MLflow's client sends it: a runs:/ source whose
// run is not on this server is stored as given (MLflow does not look the run
// up); one whose run is here gets Forge's copy of the run's files.
func TestMLflowVersionSourceOfUnknownRun(t *testing.T) {
	base := inProcess(t, nil)
	mustCall(t, "POST", base+mlflow+"registered-models/create", map[string]string{"name": "m1"}, nil)

	var out api.ModelVersionResponse
	mustCall(t, "POST", base+mlflow+"model-versions/create", map[string]string{"name": "m1", "source": "runs:/deadbeef/model"}, &out)
	if v := out.ModelVersion; v.Version != "1" || v.Source != "runs:/deadbeef/model" || v.RunID != "" || v.Status != "READY" {
		t.Errorf("unknown run: %+v, want version 1, the source as given, no run_id, READY", v)
	}
	// With the run id given too, MLflow stores both as given.
	mustCall(t, "POST", base+mlflow+"model-versions/create", map[string]string{"name": "m1", "source": "runs:/deadbeef/model", "run_id": "deadbeef"}, &out)
	if v := out.ModelVersion; v.Version != "2" || v.RunID != "deadbeef" {
		t.Errorf("unknown run with run_id: %+v", v)
	}

	// A run that exists: the version holds the run's files.
	run := createRun(t, base)
	var got api.RunResponse
	mustCall(t, "GET", base+mlflow+"runs/get?run_id="+run, nil, &got)
	root := strings.TrimPrefix(got.Run.Info.ArtifactURI, "mlflow-artifacts:")
	if status, b := call(t, "PUT", base+"/api/2.0/mlflow-artifacts/artifacts"+root+"/model/MLmodel", json.RawMessage(`"flavors: {}"`)); status != 200 {
		t.Fatalf("upload: %d %s", status, b)
	}
	mustCall(t, "POST", base+mlflow+"model-versions/create", map[string]string{"name": "m1", "source": "runs:/" + run + "/model"}, &out)
	if v := out.ModelVersion; v.Version != "3" || v.RunID != run {
		t.Errorf("known run: %+v, want version 3 of run %s", v, run)
	}
	status, b := call(t, "GET", base+"/api/forge/v1/models/m1/versions/3/files/MLmodel", nil)
	if status != 200 || string(b) != `"flavors: {}"` {
		t.Errorf("the version's copy of MLmodel: %d %q", status, b)
	}
}

// Sources MLflow refuses for safety, refused in its words and before the
// model is looked up (an unknown model with a bad source is a 400).
func TestMLflowUnsafeVersionSources(t *testing.T) {
	base := inProcess(t, nil)
	mustCall(t, "POST", base+mlflow+"registered-models/create", map[string]string{"name": "m1"}, nil)
	const local = "Invalid model version source: '%s'. To use a local path as a model version source, the run_id request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the run_id."
	const relative = "Invalid model version source: '%s'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
	bad := func(src, tmpl string) mlflowCase {
		b, _ := json.Marshal(map[string]string{"name": "m1", "source": src})
		return mlflowCase{name: src, method: "POST", path: mlflow + "model-versions/create", body: string(b),
			status: 400, code: "INVALID_PARAMETER_VALUE", message: strings.Replace(tmpl, "%s", src, 1)}
	}
	create := mlflow + "model-versions/create"
	cases := []mlflowCase{
		bad("/tmp/x", local),
		bad("file:///tmp/x", local),
		bad("relative/path", local),
		bad("mlflow-artifacts://host/models/../../../", relative),
		bad("http://host/models/../../", relative),
		bad("s3://b/a/../c", relative),
		bad("s3://b/c/..", relative),
		bad("s3://bucket/a/./b", relative),
		bad("mlflow-artifacts://h/..%2f..%2f", relative),
		bad("runs:/abc/../x", relative),
		bad("s3://bucket", relative),
		{name: "local path, unknown run", method: "POST", path: create, body: `{"name":"m1","source":"/tmp/x","run_id":"abc"}`,
			status: 404, code: "RESOURCE_DOES_NOT_EXIST", message: "Run with id=abc not found"},
		{name: "source before model", method: "POST", path: create, body: `{"name":"nope","source":"/tmp/x"}`,
			status: 400, code: "INVALID_PARAMETER_VALUE", message: strings.Replace(local, "%s", "/tmp/x", 1)},
		{name: "unknown model", method: "POST", path: create, body: `{"name":"nope","source":"s3://b/c"}`,
			status: 404, code: "RESOURCE_DOES_NOT_EXIST", message: "Registered Model with name=nope not found"},
		{name: "no source", method: "POST", path: create, body: `{"name":"m1"}`, status: 400, code: "INVALID_PARAMETER_VALUE",
			message: "Missing value for required parameter 'source'. See the API docs for more information about request parameters."},
		{name: "no name", method: "POST", path: create, body: `{"source":"s3://x"}`, status: 400, code: "INVALID_PARAMETER_VALUE",
			message: "Missing value for required parameter 'name'. See the API docs for more information about request parameters."},
		// What MLflow accepts: encoded dots that decode to a name, models:/ sources, doubled slashes.
		{name: "%2e%2e inside a segment", method: "POST", path: create, body: `{"name":"m1","source":"s3://b/a%2e%2e/c"}`, status: 200},
		{name: "models:/", method: "POST", path: create, body: `{"name":"m1","source":"models:/m1/1"}`, status: 200},
		{name: "doubled slashes", method: "POST", path: create, body: `{"name":"m1","source":"s3://bucket/a//b/"}`, status: 200},
	}
	checkMLflow(t, base, cases)
	// Only the three accepted sources made versions.
	var out api.ModelVersionsResponse
	mustCall(t, "GET", base+mlflow+"model-versions/search?filter=name%3D%27m1%27", nil, &out)
	if len(out.ModelVersions) != 3 {
		t.Errorf("%d versions stored, want 3: %+v", len(out.ModelVersions), out.ModelVersions)
	}
}

// Downloads as MLflow's server sends them (artifact proxy, get-artifact):
// an attachment, nosniff, the type from the name, text files as text/plain.
var mlflowDownloadTypes = map[string]string{
	"x.html": "text/html", "x.htm": "text/html", "x.png": "image/png", "x.json": "text/plain", "x.svg": "image/svg+xml",
	"x.js": "text/plain", "m.onnx": "application/octet-stream", "MLmodel": "text/plain", "x.yaml": "text/plain",
	"x.csv": "text/plain", "x.txt.html": "text/html", "x.xhtml": "application/xhtml+xml", "x.pkl": "application/octet-stream",
	"x.md": "text/plain", "x.xml": "text/plain", "dir/a.txt": "text/plain",
}

func checkDownload(t *testing.T, url, name string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	h := resp.Header
	base := name[strings.LastIndex(name, "/")+1:]
	if resp.StatusCode != 200 || string(b) != "hello <b>"+name+"</b>" || h.Get("Content-Type") != mlflowDownloadTypes[name] ||
		h.Get("Content-Disposition") != "attachment; filename="+base || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: %d %q, Content-Type %q (want %q), Content-Disposition %q, X-Content-Type-Options %q", url, resp.StatusCode, b,
			h.Get("Content-Type"), mlflowDownloadTypes[name], h.Get("Content-Disposition"), h.Get("X-Content-Type-Options"))
	}
}

func TestMLflowArtifactDownloadHeaders(t *testing.T) {
	base := inProcess(t, nil)
	const proxy = "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/"
	for name := range mlflowDownloadTypes {
		req, _ := http.NewRequest("PUT", base+proxy+name, strings.NewReader("hello <b>"+name+"</b>"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("upload %s: %v %v", name, err, resp)
		}
		resp.Body.Close()
		checkDownload(t, base+proxy+name, name)
	}
}

// The common errors, in MLflow's words and in the order MLflow checks the
// fields, as MLflow 2.12.2's server answered each request.
func TestMLflowErrorTexts(t *testing.T) {
	base := inProcess(t, nil)
	mustCall(t, "POST", base+mlflow+"experiments/create", map[string]string{"name": "e1"}, nil)
	mustCall(t, "POST", base+mlflow+"registered-models/create", map[string]string{"name": "m1"}, nil)
	const hint = " See the API docs for more information about request parameters."
	missing := func(p string) string { return "Missing value for required parameter '" + p + "'." + hint }
	bad := func(v, p, ty string) string {
		return "Invalid value " + v + " for parameter '" + p + "' supplied. Hint: Value was of type '" + ty + "'." + hint
	}
	const inv, nf, exists = "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
	get := func(path string, status int, code, msg string) mlflowCase {
		return mlflowCase{name: "GET " + path, method: "GET", path: mlflow + path, status: status, code: code, message: msg}
	}
	post := func(path, body string, status int, code, msg string) mlflowCase {
		return mlflowCase{name: path + " " + body, method: "POST", path: mlflow + path, body: body, status: status, code: code, message: msg}
	}
	checkMLflow(t, base, []mlflowCase{
		get("runs/get?run_id=nope", 404, nf, "Run with id=nope not found"),
		get("runs/get", 400, inv, missing("run_id")),
		get("experiments/get?experiment_id=999", 404, nf, "No Experiment with id=999 exists"),
		get("experiments/get?experiment_id=abc", 404, nf, "No Experiment with id=abc exists"),
		get("experiments/get-by-name?experiment_name=zz", 404, nf, "Could not find experiment with name 'zz'"),
		get("registered-models/get?name=zz", 404, nf, "Registered Model with name=zz not found"),
		get("model-versions/get?name=m1&version=99", 404, nf, "Model Version (name=m1, version=99) not found"),
		get("model-versions/get?name=m1&version=x", 400, inv, "Model version must be an integer, got 'x'"),
		get("artifacts/list?run_id=nope", 404, nf, "Run with id=nope not found"),
		{name: "experiment exists", method: "POST", path: mlflow + "experiments/create", body: `{"name":"e1"}`, status: 400, code: exists,
			message: "Experiment(name=e1) already exists.", messagePrefix: true},
		{name: "model exists", method: "POST", path: mlflow + "registered-models/create", body: `{"name":"m1"}`, status: 400, code: exists,
			message: "Registered Model (name=m1) already exists.", messagePrefix: true},
		post("experiments/create", `{}`, 400, inv, missing("name")),
		post("experiments/create", `{"name":""}`, 400, inv, missing("name")),
		post("experiments/create", `{"name":5}`, 400, inv, bad("5", "name", "int")),
		post("experiments/create", `{"name":"z","tags":"x"}`, 400, inv, bad("x", "tags", "str")),
		post("experiments/delete", `{"experiment_id":"999"}`, 404, nf, "No Experiment with id=999 exists"),
		post("runs/create", `{"experiment_id":"999"}`, 404, nf, "No Experiment with id=999 exists"),
		post("runs/create", `{"experiment_id":"abc"}`, 404, nf, "No Experiment with id=abc exists"),
		post("runs/create", `{"experiment_id":"0","start_time":"abc"}`, 400, inv, bad("abc", "start_time", "str")),
		post("runs/log-metric", `{"run_id":31}`, 400, inv, bad("31", "run_id", "int")),
		post("runs/log-metric", `{"run_id":["a",1],"key":"k"}`, 400, inv, bad("['a', 1]", "run_id", "list")),
		post("runs/log-metric", `{"run_id":{"a":true},"key":"k"}`, 400, inv, bad("{'a': True}", "run_id", "dict")),
		post("runs/log-metric", `{"run_id":"x","key":5,"value":1,"timestamp":1}`, 400, inv, bad("5", "key", "int")),
		post("runs/log-metric", `{"run_id":"x","key":"k","value":"abc","timestamp":1}`, 400, inv, bad("abc", "value", "str")),
		post("runs/log-metric", `{"run_id":"x","key":"k","timestamp":1}`, 400, inv, missing("value")),
		post("runs/log-metric", `{"key":"a","value":1,"timestamp":1}`, 400, inv, missing("run_id")),
		post("runs/log-metric", `{"run_id":"nope","key":"a","value":1,"timestamp":1}`, 404, nf, "Run with id=nope not found"),
		post("runs/set-tag", `{"run_id":"x","key":"k","value":3}`, 400, inv, bad("3", "value", "int")),
		post("runs/log-inputs", `{"datasets":5}`, 400, inv, missing("run_id")),
		post("runs/log-inputs", `{"run_id":"x","datasets":5}`, 400, inv, bad("5", "datasets", "int")),
		post("runs/log-batch", `{"run_id":"x","metrics":{}}`, 400, inv, bad("{}", "metrics", "dict")),
		post("runs/log-batch", `{"run_id":5,"metrics":{}}`, 400, inv, bad("5", "run_id", "int")),
		post("runs/log-batch", `{"metrics":[{"key":"a"}]}`, 400, inv, missing("run_id")),
		post("runs/log-batch", `{"run_id":"nope"}`, 404, nf, "Run with id=nope not found"),
		post("runs/update", `{"run_id":"nope","status":"FINISHED"}`, 404, nf, "Run with id=nope not found"),
		post("runs/delete", `{"run_id":"nope"}`, 404, nf, "Run with id=nope not found"),
		post("registered-models/rename", `{"name":"zz","new_name":"yy"}`, 404, nf, "Registered Model with name=zz not found"),
		post("model-versions/create", `{"name":"m1","source":"s3://b/m"}`, 200, "", ""),
		post("model-versions/transition-stage", `{"name":"m1","version":"1","stage":"Bogus"}`, 400, inv,
			"Invalid Model Version stage: Bogus. Value must be one of None, Staging, Production, Archived."),
	})
	// MLflow matches no run for an experiment id it does not have.
	status, b := call(t, "POST", base+mlflow+"runs/search", map[string]any{"experiment_ids": []string{"abc"}})
	if status != 200 || strings.Contains(string(b), "run_id") {
		t.Errorf("search of experiment abc: %d %s", status, b)
	}
}
