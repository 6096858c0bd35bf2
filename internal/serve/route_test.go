package serve

import (
	"encoding/json"
	"testing"
)

// TestRouteNamesTheEndpoint: called through a deployment (a route), the
// response's model_name is the deployment's name, as OIP clients check, and
// the request series carry the deployment; called by its own name, the
// model answers as itself.
func TestRouteNamesTheEndpoint(t *testing.T) {
	e := newEnv(t, map[string]string{"cancer-xgb/1": "xgb_binary.json"}, BatchOptions{})
	if err := e.s.Route("cancer", []Target{{Model: "cancer-xgb", Version: "1", Weight: 100}}); err != nil {
		t.Fatal(err)
	}
	ref := readReference(t, "xgb_binary.reference.json")
	for _, name := range []string{"cancer", "cancer-xgb"} {
		code, _, body := e.post(t, "/v2/models/"+name+"/infer", inferBody("input__0", ref.rows(0, 2), ""), -1)
		if code != 200 {
			t.Fatalf("infer %s: %d %s", name, code, body)
		}
		var r struct {
			ModelName    string `json:"model_name"`
			ModelVersion string `json:"model_version"`
		}
		json.Unmarshal(body, &r)
		if r.ModelName != name || r.ModelVersion != "1" {
			t.Errorf("called %s: model_name %q version %q, want %q 1", name, r.ModelName, r.ModelVersion, name)
		}
	}
	if got := e.metric(t, "nv_inference_request_success", map[string]string{"model": "cancer-xgb", "deployment": "cancer"}); got != 1 {
		t.Errorf("successes labelled deployment=cancer: %v, want 1", got)
	}
	if got := e.metric(t, "nv_inference_request_success", map[string]string{"model": "cancer-xgb", "deployment": ""}); got != 1 {
		t.Errorf("successes by the model's own name: %v, want 1", got)
	}
	if got := e.metric(t, "nv_inference_count", map[string]string{"deployment": "cancer"}); got != 2 {
		t.Errorf("inferences labelled deployment=cancer: %v, want 2 rows", got)
	}
}
