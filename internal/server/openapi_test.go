package server_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The OpenAPI document is generated from the route table; the golden file
// holds it, so a route added, removed or given other access shows in review
// (regenerate with go test ./internal/server -run TestOpenAPI -update).
func TestOpenAPI(t *testing.T) {
	base := inProcess(t, nil)
	status, got := call(t, "GET", base+"/api/openapi.json", nil)
	if status != 200 {
		t.Fatalf("GET /api/openapi.json: %d %s", status, got)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(got, &doc); err != nil || doc.OpenAPI != "3.0.3" {
		t.Fatalf("not an OpenAPI 3 document: %v %.200s", err, got)
	}
	for _, p := range []string{"/api/forge/v1/tokens", "/v2/models/{name}/infer", "/api/forge/v1/models/{name}/versions/{ref}/files/{path}"} {
		if doc.Paths[p] == nil {
			t.Errorf("the document lacks %s", p)
		}
	}
	golden := filepath.Join("testdata", "openapi.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("GET /api/openapi.json differs from %s; if the change is meant, rerun with -update", golden)
	}
}
