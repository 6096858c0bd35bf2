package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/runtime/process"
)

// TestProcessDeployment: a version of format other that carries its own
// predictor (a stdlib Python OIP server and its forge-serve.json) is
// deployed like any model and answers through /v2/models/NAME/infer.
func TestProcessDeployment(t *testing.T) {
	p := start(t, nil, nil)
	dir := t.TempDir()
	script, err := os.ReadFile("../runtime/process/testdata/predictor.py")
	if err != nil {
		t.Fatal(err)
	}
	man, _ := json.Marshal(process.Manifest{Command: []string{"/usr/bin/python3", "predictor.py"}})
	os.WriteFile(filepath.Join(dir, "predictor.py"), script, 0o644)
	os.WriteFile(filepath.Join(dir, process.ManifestFile), man, 0o644)
	_, err = p.reg.CreateVersion(context.Background(), registry.NewVersion{Name: "doubler", CreateModel: true, Format: registry.FormatOther,
		Uploads: []registry.Upload{
			{Path: "predictor.py", File: filepath.Join(dir, "predictor.py")},
			{Path: process.ManifestFile, File: filepath.Join(dir, process.ManifestFile)},
		}})
	if err != nil {
		t.Fatal(err)
	}
	d := p.deploy(t, "double", api.DeploymentSpec{Model: "doubler"})
	if d.Status == nil || !d.Status.Ready {
		t.Fatalf("deployment status %+v", d.Status)
	}
	body := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[[1,2,3],[4,5,6.5]]}]}`)
	resp, err := http.Post(p.url+"/v2/models/double/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Name  string
			Shape []int64
			Data  []float64
		}
	}
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 || len(out.Outputs) != 1 {
		t.Fatalf("infer: %d %s (%v)", resp.StatusCode, b, err)
	}
	o := out.Outputs[0]
	if o.Name != "y" || !slices.Equal(o.Shape, []int64{2, 3}) || !slices.Equal(o.Data, []float64{2, 4, 6, 8, 10, 13}) {
		t.Errorf("output %+v, want y [2,3] = 2x", o)
	}
}
