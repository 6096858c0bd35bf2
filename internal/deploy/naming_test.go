package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/httpapi"
	"github.com/forge-mlops/forge/internal/serve"
)

type tensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMeta struct {
	Platform string       `json:"platform"`
	Inputs   []tensorMeta `json:"inputs"`
	Outputs  []tensorMeta `json:"outputs"`
}

func getMeta(t *testing.T, url string) modelMeta {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	var m modelMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSameNamesBothWays: one XGBoost file has the same metadata and takes
// the same request whether it is deployed from the registry or served from
// a model repository folder (issue 17: input__0 one way, input the other).
func TestSameNamesBothWays(t *testing.T) {
	p := start(t, nil, nil)
	p.register(t, "reg", "xgb_regression.json", 0, "")
	p.deploy(t, "cancer", api.DeploymentSpec{Model: "reg"})
	deployed := getMeta(t, p.url+"/v2/models/cancer")

	repo := t.TempDir()
	b, err := os.ReadFile(filepath.Join(fixtures, "xgb_regression.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(repo, "reg", "1"), 0o755)
	if err := os.WriteFile(filepath.Join(repo, "reg", "1", "model.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := newServer()
	t.Cleanup(func() { srv.Close() })
	if err := srv.LoadRepository(context.Background(), repo, serve.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	httpapi.Mount(mux, srv.Routes())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	fromRepo := getMeta(t, hs.URL+"/v2/models/reg")

	if d := cmp.Diff(deployed, fromRepo); d != "" {
		t.Errorf("metadata differs (-deployed +model repository):\n%s", d)
	}
	if deployed.Inputs[0].Name != "input__0" {
		t.Errorf("input named %q, want input__0 (Triton FIL's naming)", deployed.Inputs[0].Name)
	}
	// The same request body answers both ways.
	y1, err := infer(http.DefaultClient, p.url, "cancer")
	if err != nil {
		t.Fatal(err)
	}
	y2, err := infer(http.DefaultClient, hs.URL, "reg")
	if err != nil {
		t.Fatal(err)
	}
	if y1 != y2 {
		t.Errorf("deployed answers %v, model repository %v", y1, y2)
	}
}
