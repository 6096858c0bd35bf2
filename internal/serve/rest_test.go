package serve

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRESTHealthAndMetadata(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx", "mlp/2": "mlp.onnx", "wine/3": "xgb_multiclass.json"}, BatchOptions{})
	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/mlp/ready", "/v2/models/mlp/versions/1/ready"} {
		if code, body := e.get(t, p); code != 200 {
			t.Errorf("GET %s = %d %s", p, code, body)
		}
	}
	_, body := e.get(t, "/v2")
	var sm ServerMetadataJSON
	json.Unmarshal(body, &sm)
	if sm.Name != "forge" || !slices.Contains(sm.Extensions, "binary_tensor_data") {
		t.Errorf("server metadata = %s", body)
	}
	_, body = e.get(t, "/v2/models/mlp")
	var md modelMetadataJSON
	if err := json.Unmarshal(body, &md); err != nil {
		t.Fatal(err)
	}
	want := modelMetadataJSON{Name: "mlp", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs:  []tensorMetadataJSON{{"input", "FP32", []int64{-1, 4}}},
		Outputs: []tensorMetadataJSON{{"output", "FP32", []int64{-1, 3}}}}
	if diff := cmp.Diff(want, md); diff != "" {
		t.Errorf("mlp metadata (-want +got):\n%s", diff)
	}
	_, body = e.get(t, "/v2/models/wine/versions/3")
	json.Unmarshal(body, &md)
	if md.Platform != "xgboost" || !slices.Equal(md.Inputs[0].Shape, []int64{-1, 13}) || !slices.Equal(md.Outputs[0].Shape, []int64{-1, 3}) {
		t.Errorf("xgboost metadata = %s", body)
	}
	for p, code := range map[string]int{"/v2/models/nope": 404, "/v2/models/mlp/versions/9": 404, "/v2/models/nope/ready": 404} {
		if got, body := e.get(t, p); got != code || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s = %d %s, want %d with an error", p, got, body, code)
		}
	}
}

func TestRESTInferMLP(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{})
	ref := readReference(t, "mlp.reference.json")
	n := len(ref.Inputs)

	// Nested JSON, all rows in one request.
	code, h, body := e.post(t, "/v2/models/mlp/infer", inferBody("input", ref.rows(0, n), ""), -1)
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("infer = %d %s", code, body)
	}
	var r inferResponseJSON
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.ModelName != "mlp" || r.ModelVersion != "1" || r.ID != "r1" || r.Outputs[0].Name != "output" || !slices.Equal(r.Outputs[0].Shape, []int64{int64(n), 3}) {
		t.Fatalf("response header fields: %+v", r)
	}
	checkClose(t, "nested", r.Outputs[0].Data, ref.Outputs, 1e-6)

	// Flat JSON, one row, with the version in the path.
	row := ref.rows(7, 8)[0]
	flat := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[%v,%v,%v,%v]}]}`, row[0], row[1], row[2], row[3])
	code, _, body = e.post(t, "/v2/models/mlp/versions/1/infer", []byte(flat), -1)
	json.Unmarshal(body, &r)
	if code != 200 {
		t.Fatalf("flat: %d %s", code, body)
	}
	checkClose(t, "flat", r.Outputs[0].Data, ref.Outputs[7:8], 1e-6)
}

// TestRESTBinary sends the input as binary data and asks for the output in
// binary, then mixes: binary input, JSON output.
func TestRESTBinary(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx"}, BatchOptions{})
	ref := readReference(t, "mlp.reference.json")
	rows := ref.rows(0, 20)
	var raw []byte
	for _, r := range rows {
		for _, v := range r {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	}
	header := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[20,4],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, len(raw))
	code, h, body := e.post(t, "/v2/models/mlp/infer", append([]byte(header), raw...), len(header))
	if code != 200 {
		t.Fatalf("binary infer = %d %s", code, body)
	}
	if h.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	n, err := strconv.Atoi(h.Get(headerLength))
	if err != nil || n > len(body) {
		t.Fatalf("%s = %q for a %d-byte body", headerLength, h.Get(headerLength), len(body))
	}
	var r inferResponseJSON
	if err := json.Unmarshal(body[:n], &r); err != nil {
		t.Fatalf("JSON part %q: %v", body[:n], err)
	}
	if size := r.Outputs[0].Parameters["binary_data_size"]; size != float64(20*3*4) || len(body)-n != 20*3*4 {
		t.Fatalf("binary_data_size %v, tail %d bytes", size, len(body)-n)
	}
	checkClose(t, "binary output", float32s(body[n:]), ref.Outputs[:20], 1e-6)

	// Per-output binary_data false wins over binary_data_output.
	header = fmt.Sprintf(`{"inputs":[{"name":"input","shape":[20,4],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true},"outputs":[{"name":"output","parameters":{"binary_data":false}}]}`, len(raw))
	code, h, body = e.post(t, "/v2/models/mlp/infer", append([]byte(header), raw...), len(header))
	if code != 200 || h.Get(headerLength) != "" {
		t.Fatalf("JSON output = %d %s (header %q)", code, body, h.Get(headerLength))
	}
	json.Unmarshal(body, &r)
	checkClose(t, "json output", r.Outputs[0].Data, ref.Outputs[:20], 1e-6)
}

func TestRESTInferXGBoost(t *testing.T) {
	fixtures := []string{"xgb_binary", "xgb_multiclass", "xgb_softmax", "xgb_regression"}
	entries := map[string]string{}
	for _, f := range fixtures {
		entries[f+"/1"] = f + ".json"
	}
	e := newEnv(t, entries, BatchOptions{})
	for _, f := range fixtures {
		t.Run(f, func(t *testing.T) {
			ref := readReference(t, f+".reference.json")
			rows := ref.rows(0, len(ref.Inputs))
			code, _, body := e.post(t, "/v2/models/"+f+"/infer", inferBody("input__0", rows, ""), -1)
			if code != 200 {
				t.Fatalf("infer = %d %s", code, body)
			}
			var r inferResponseJSON
			json.Unmarshal(body, &r)
			// Outputs are float32 printed shortest, so they round-trip; the
			// regression model's values are in the hundreds.
			tol := 1e-6
			if f == "xgb_regression" {
				tol = 1e-4
			}
			checkClose(t, f, r.Outputs[0].Data, ref.Outputs, tol)
			// FP64 input is converted.
			b := strings.Replace(string(inferBody("input__0", rows[:3], "")), `"FP32"`, `"FP64"`, 1)
			code, _, body = e.post(t, "/v2/models/"+f+"/infer", []byte(b), -1)
			json.Unmarshal(body, &r)
			if code != 200 {
				t.Fatalf("FP64 infer = %d %s", code, body)
			}
			checkClose(t, f+" FP64", r.Outputs[0].Data, ref.Outputs[:3], tol)
		})
	}
}

// TestRESTBadInput checks every refusal's status and that its message says
// what was expected.
func TestRESTBadInput(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx", "xgb/1": "xgb_binary.json"}, BatchOptions{})
	one := `"shape":[1,4],"datatype":"FP32","data":[1,2,3,4]`
	tests := []struct {
		name, path, body string
		hlen             int
		code             int
		want             string
	}{
		{"wrong input name", "mlp", `{"inputs":[{"name":"x",` + one + `}]}`, -1, 400, `unknown input "x"; the model's inputs are "input" FP32 [-1,4]`},
		{"missing input", "mlp", `{"inputs":[]}`, -1, 400, `missing input "input" FP32 [-1,4]`},
		{"wrong shape", "mlp", `{"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}`, -1, 400, "shape [2,2], want [-1,4]"},
		{"wrong datatype", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]}`, -1, 400, "datatype INT32, want FP32"},
		{"unknown datatype", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP8","data":[1,2,3,4]}]}`, -1, 400, `datatype "FP8"`},
		{"too few elements", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}`, -1, 400, "3 data elements, its shape needs 4"},
		{"too many elements", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4,5]}]}`, -1, 400, "more data elements than the 4"},
		{"string in numbers", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,"a",3,4]}]}`, -1, 400, "a string where datatype FP32 needs a number"},
		{"NaN into ONNX", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,null,3,4]}]}`, -1, 400, "holds NaN"},
		{"negative dim", "mlp", `{"inputs":[{"name":"input","shape":[-1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, -1, 400, "non-negative"},
		{"malformed JSON", "mlp", `{"inputs":[{"name":"input",`, -1, 400, "malformed JSON"},
		{"wrong JSON type", "mlp", `{"inputs":{"name":"input"}}`, -1, 400, "malformed request: inputs must be a JSON array, not an object"},
		{"wrong field type", "mlp", `{"inputs":[{"name":5}]}`, -1, 400, "inputs[0].name must be a JSON string, not a number"},
		{"duplicate member", "mlp", `{"inputs":[],"inputs":[]}`, -1, 400, "duplicate object member name"},
		{"unknown output", "mlp", `{"inputs":[{"name":"input",` + one + `}],"outputs":[{"name":"probs"}]}`, -1, 400, `unknown output "probs"; the model's outputs are "output" FP32 [-1,3]`},
		{"binary header over body", "mlp", `{"inputs":[]}`, 500, 400, "but the body has only"},
		{"binary size over tail", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}` + "|12345678", -2, 400, "overruns"},
		{"binary size wrong for shape", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":8}}]}` + "|12345678", -2, 400, "need 16"},
		{"binary tail left over", "mlp", `{"inputs":[{"name":"input",` + one + `}]}` + "|1234", -2, 400, "4 bytes follow the JSON header"},
		{"unknown model", "nope", `{"inputs":[]}`, -1, 404, `unknown model "nope"`},
		{"unknown version", "mlp/versions/7", `{"inputs":[]}`, -1, 404, "unknown version 7"},
		{"xgb wrong width", "xgb", `{"inputs":[{"name":"input__0",` + one + `}]}`, -1, 400, "shape [1,4], want [-1,30]"},
		{"body over limit", "mlp", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[` + strings.Repeat("1,", 1<<20) + `1]}]}`, -1, 413, "larger than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, hlen := tt.body, tt.hlen
			if hlen == -2 { // "|" separates the JSON header from the binary tail
				hlen = strings.Index(body, "|")
				body = strings.Replace(body, "|", "", 1)
			}
			code, _, resp := e.post(t, "/v2/models/"+tt.path+"/infer", []byte(body), hlen)
			body = string(resp)
			var eb struct{ Error string }
			if err := json.Unmarshal([]byte(body), &eb); err != nil {
				t.Fatalf("body %q is not {\"error\": ...}: %v", body, err)
			}
			if code != tt.code || !strings.Contains(eb.Error, tt.want) {
				t.Errorf("= %d %q, want %d containing %q", code, eb.Error, tt.code, tt.want)
			}
		})
	}
	// The server is still up and answering.
	code, _, body := e.post(t, "/v2/models/mlp/infer", []byte(`{"inputs":[{"name":"input",`+one+`}]}`), -1)
	if code != 200 {
		t.Errorf("after bad input: %d %s", code, body)
	}
	if got := e.metric(t, "nv_inference_request_failure", map[string]string{"model": "mlp", "reason": "OTHER"}); got == 0 {
		t.Errorf("no failures counted with reason OTHER")
	}
}

// TestFailedModel: a model that does not load is listed with the reason,
// makes the server not ready, and the others are served.
func TestFailedModel(t *testing.T) {
	e := newEnv(t, map[string]string{"mlp/1": "mlp.onnx", "broken/1": "this is not an ONNX model"}, BatchOptions{})
	if code, _ := e.get(t, "/v2/health/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("ready = %d with a failed model, want 503", code)
	}
	code, body := e.get(t, "/v2/models/broken")
	var md modelMetadataJSON
	json.Unmarshal(body, &md)
	if code != 200 || md.State != "FAILED" || md.Reason == "" {
		t.Errorf("broken metadata = %d %s, want state FAILED with a reason", code, body)
	}
	if code, _ := e.get(t, "/v2/models/broken/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("broken ready = %d, want 503", code)
	}
	code, _, body = e.post(t, "/v2/models/broken/infer", []byte(`{"inputs":[]}`), -1)
	if code != 503 || !strings.Contains(string(body), "failed to load") {
		t.Errorf("infer on broken = %d %s", code, body)
	}
	code, _, body = e.post(t, "/v2/models/mlp/infer", []byte(`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`), -1)
	if code != 200 {
		t.Errorf("mlp beside a broken model = %d %s", code, body)
	}
}

// A stopping server says it is not ready, on REST and by Ready (gRPC's
// ServerReady reads the same), and still answers inference until its
// listeners close: balancers move away before anything is refused.
func TestStoppingIsNotReadyButServes(t *testing.T) {
	e := newEnv(t, map[string]string{"xgb/1": "xgb_binary.json"}, BatchOptions{})
	if code, body := e.get(t, "/v2/health/ready"); code != 200 {
		t.Fatalf("before stopping: %d %s", code, body)
	}
	e.s.Stop()
	if code, body := e.get(t, "/v2/health/ready"); code != http.StatusServiceUnavailable || e.s.Ready() {
		t.Errorf("stopping: ready answers %d %s (Ready %v), want 503", code, body, e.s.Ready())
	}
	row := make([]float32, 30)
	if code, _, body := e.post(t, "/v2/models/xgb/infer", inferBody("input__0", [][]float32{row}, ""), -1); code != 200 {
		t.Errorf("inference while stopping: %d %s, want 200", code, body)
	}
	if code, _ := e.get(t, "/v2/health/live"); code != 200 {
		t.Errorf("live while stopping: %d, want 200", code)
	}
}
