package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestSubmitRefusesUnknownInput: `forge run -i train=cancr` (a typo) is a
// 400 at submit time naming the input, through the real datasets service,
// and no job is stored; so are an unknown executor and impossible
// resources.
func TestSubmitRefusesUnknownInput(t *testing.T) {
	base := inProcess(t, nil)
	for _, tt := range []struct {
		spec map[string]any
		want string
	}{
		{map[string]any{"command": []string{"true"}, "inputs": map[string]string{"train": "cancr"}}, `input train=cancr: `},
		{map[string]any{"command": []string{"true"}, "inputs": map[string]string{"train": "cancr@2:csv"}}, `input train=cancr@2:csv: `},
		{map[string]any{"command": []string{"true"}, "executor": "slrum"}, `"slrum" is not one of this server's executors`},
		{map[string]any{"command": []string{"true"}, "memory": "lots"}, `memory: "lots" is not a size`},
		{map[string]any{"command": []string{"true"}, "cpus": 100000}, "more than executor"},
	} {
		status, body := call(t, "POST", base+"/api/forge/v1/jobs", tt.spec)
		var e struct{ Message string }
		json.Unmarshal(body, &e)
		if status != http.StatusBadRequest || !strings.Contains(e.Message, tt.want) {
			t.Errorf("submit %v: %d %s, want 400 with %q", tt.spec, status, body, tt.want)
		}
	}
	status, body := call(t, "GET", base+"/api/forge/v1/jobs", nil)
	if status != http.StatusOK || strings.Contains(string(body), `"id"`) {
		t.Errorf("jobs after refusals: %d %s, want none", status, body)
	}
}
