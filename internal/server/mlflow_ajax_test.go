package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/api"
)

const ajax = "/ajax-api/2.0/mlflow/"

// MLflow's web UI calls the whole REST API under /ajax-api/ and a few
// routes only there; the answers checked are MLflow 2.12.2's.
func TestMLflowAjaxAPI(t *testing.T) {
	base := inProcess(t, nil)
	// The REST API's twin: a run made under /ajax-api/ is the same run under /api/.
	var run api.RunResponse
	mustCall(t, "POST", base+ajax+"runs/create", api.CreateRunRequest{ExperimentID: "0"}, &run)
	id := run.Run.Info.RunID
	mustCall(t, "GET", base+mlflow+"runs/get?run_id="+id, nil, &run)
	mustCall(t, "POST", base+ajax+"registered-models/create", map[string]string{"name": "m"}, nil)
	mustCall(t, "GET", base+mlflow+"registered-models/get?name=m", nil, nil)
	for _, m := range []string{`{"key":"loss","value":1.5,"timestamp":5,"step":2}`, `{"key":"loss","value":0.5,"timestamp":3,"step":3}`} {
		mustCall(t, "POST", base+ajax+"runs/log-metric", json.RawMessage(strings.Replace(m, "{", `{"run_id":"`+id+`",`, 1)), nil)
	}

	// get-history-bulk: per run (sorted), by timestamp; runs not here give nothing.
	var bulk api.MetricsResponse
	mustCall(t, "GET", base+ajax+"metrics/get-history-bulk?run_id="+id+"&run_id=nope&metric_key=loss", nil, &bulk)
	if len(bulk.Metrics) != 2 || bulk.Metrics[0].Value != 0.5 || bulk.Metrics[0].Step != 3 || bulk.Metrics[1].Timestamp != 5 || bulk.Metrics[0].RunID != id {
		t.Errorf("get-history-bulk: %+v", bulk.Metrics)
	}
	mustCall(t, "GET", base+ajax+"metrics/get-history-bulk-interval?run_ids="+id+"&metric_key=loss", nil, &bulk)
	if len(bulk.Metrics) != 2 || bulk.Metrics[0].Step != 2 {
		t.Errorf("get-history-bulk-interval: %+v", bulk.Metrics)
	}

	mustCall(t, "POST", base+mlflow+"runs/log-inputs", json.RawMessage(`{"run_id":"`+id+`","datasets":[{"tags":[{"key":"mlflow.data.context","value":"train"}],"dataset":{"name":"d1","digest":"abc","source_type":"local","source":"{}"}}]}`), nil)
	status, b := call(t, "POST", base+ajax+"experiments/search-datasets", map[string]any{"experiment_ids": []string{"0", "999"}})
	if status != 200 || string(b) != `{"dataset_summaries":[{"experiment_id":"0","name":"d1","digest":"abc","context":"train"}]}` {
		t.Errorf("search-datasets: %d %s", status, b)
	}

	// upload-artifact then get-artifact, the UI's own pair.
	up := func(q, body string) (int, string) {
		req, _ := http.NewRequest("POST", base+ajax+"upload-artifact?"+q, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Message string }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Message
	}
	for _, c := range []struct {
		q, body string
		status  int
		message string
	}{
		{"path=a", "x", 400, "Request must specify run_uuid."},
		{"run_uuid=" + id, "x", 400, "Request must specify path."},
		{"run_uuid=" + id + "&path=../a.txt", "x", 400, "Invalid path"},
		{"run_uuid=" + id + "&path=/etc/a.txt", "x", 400, "Invalid path"},
		{"run_uuid=" + id + "&path=a", "", 400, "Request must specify data."},
		{"run_uuid=nope&path=a", "x", 404, "Run with id=nope not found"},
		{"run_uuid=" + id + "&path=dir/a.txt", "hello <b>dir/a.txt</b>", 200, ""},
	} {
		if status, msg := up(c.q, c.body); status != c.status || msg != c.message {
			t.Errorf("upload-artifact?%s: %d %q, want %d %q", c.q, status, msg, c.status, c.message)
		}
	}
	checkDownload(t, base+"/get-artifact?run_id="+id+"&path=dir/a.txt", "dir/a.txt")
	checkDownload(t, base+"/api/2.0/mlflow-artifacts/artifacts/0/"+id+"/artifacts/dir/a.txt", "dir/a.txt")
	checkDownload(t, base+"/ajax-api/2.0/mlflow-artifacts/artifacts/0/"+id+"/artifacts/dir/a.txt", "dir/a.txt")

	// A version made from the run serves the same file at model-versions/get-artifact.
	mustCall(t, "POST", base+ajax+"model-versions/create", map[string]string{"name": "m", "source": "runs:/" + id + "/dir"}, nil)
	checkDownload(t, base+"/model-versions/get-artifact?name=m&version=1&path=a.txt", "dir/a.txt")

	promptlab := `{"experiment_id":"0","run_name":"p","prompt_template":"Say {{ x }}","prompt_parameters":[{"key":"x","value":"hi"}],` +
		`"model_route":"chat","model_parameters":[{"key":"temperature","value":"0.1"}],"model_input":"Say hi","model_output":"hi",` +
		`"mlflow_version":"2.12.2"}`
	var pl api.RunResponse
	mustCall(t, "POST", base+ajax+"runs/create-promptlab-run", json.RawMessage(promptlab), &pl)
	params := map[string]string{}
	for _, p := range pl.Run.Data.Params {
		params[p.Key] = p.Value
	}
	if pl.Run.Info.Status != "FINISHED" || params["model_route"] != "chat" || params["prompt_template"] != "Say {{ x }}" || params["temperature"] != "0.1" {
		t.Errorf("promptlab run: %+v", pl.Run)
	}
	status, b = call(t, "GET", base+"/get-artifact?run_id="+pl.Run.Info.RunID+"&path=eval_results_table.json", nil)
	if status != 200 || string(b) != `{"columns":["x","prompt","output"],"data":[["hi","Say hi","hi"]]}` {
		t.Errorf("eval_results_table.json: %d %s", status, b)
	}

	checkMLflow(t, base, []mlflowCase{
		{name: "bulk without run", method: "GET", path: ajax + "metrics/get-history-bulk?metric_key=loss", status: 400,
			code: "INVALID_PARAMETER_VALUE", message: "GetMetricHistoryBulk request must specify at least one run_id."},
		{name: "bulk without key", method: "GET", path: ajax + "metrics/get-history-bulk?run_id=" + id, status: 400,
			code: "INVALID_PARAMETER_VALUE", message: "GetMetricHistoryBulk request must specify a metric_key."},
		{name: "datasets without experiments", method: "POST", path: ajax + "experiments/search-datasets", body: `{}`, status: 400,
			code: "INVALID_PARAMETER_VALUE", message: "SearchDatasets request must specify at least one experiment_id."},
		{name: "promptlab without template", method: "POST", path: ajax + "runs/create-promptlab-run", body: `{"experiment_id":"0"}`,
			status: 400, code: "INVALID_PARAMETER_VALUE", message: "CreatePromptlabRun request must specify prompt_template."},
		{name: "get-artifact ..", method: "GET", path: "/get-artifact?run_id=" + id + "&path=../x", status: 400,
			code: "INVALID_PARAMETER_VALUE", message: "Invalid path"},
		{name: "get-artifact no run", method: "GET", path: "/get-artifact?path=x", status: 404,
			code: "RESOURCE_DOES_NOT_EXIST", message: "Run with id=None not found"},
		{name: "get-artifact unknown run", method: "GET", path: "/get-artifact?run_id=nope&path=a", status: 404,
			code: "RESOURCE_DOES_NOT_EXIST", message: "Run with id=nope not found"},
		{name: "version artifact ..", method: "GET", path: "/model-versions/get-artifact?name=m&version=1&path=a/../../x", status: 400,
			code: "INVALID_PARAMETER_VALUE", message: "Invalid path"},
		// No gateway: the UI's listing is empty, as in MLflow; a call through it is refused.
		{name: "gateway listing", method: "GET", path: ajax + "gateway-proxy", status: 200},
		{name: "gateway call", method: "POST", path: ajax + "gateway-proxy", body: `{"gateway_path":"api/2.0/endpoints/x/invocations"}`,
			status: 503, code: "TEMPORARILY_UNAVAILABLE", message: `this server has no AI gateway (MLflow's deployments server) configured: cannot proxy "api/2.0/endpoints/x/invocations"`},
		{name: "unknown ajax path", method: "GET", path: ajax + "nope", status: 404, code: "ENDPOINT_NOT_FOUND", message: "no API endpoint GET " + ajax + "nope"},
	})
}
