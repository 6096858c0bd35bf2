package server_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
)

func experimentLocation(t *testing.T, base string, body map[string]string) (id, loc string) {
	t.Helper()
	var created api.CreateExperimentResponse
	mustCall(t, "POST", base+mlflow+"experiments/create", body, &created)
	var got api.ExperimentResponse
	mustCall(t, "GET", base+mlflow+"experiments/get?experiment_id="+created.ExperimentID, nil, &got)
	return created.ExperimentID, got.Experiment.ArtifactLocation
}

// Experiments' artifact locations as MLflow 2.12.2's server gave them: its
// default root is the proxy; a relative path is joined to the working
// directory and stays a path; a relative file: URI becomes file:///ABS.
func TestMLflowArtifactLocations(t *testing.T) {
	wd, _ := os.Getwd()
	base := inProcess(t, nil)
	for _, c := range []struct{ given, want string }{
		{"", "mlflow-artifacts:/1"},
		{"rel/dir", filepath.Join(wd, "rel/dir")},
		{"file:rel/dir", "file://" + filepath.Join(wd, "rel/dir")},
		{"/abs/dir", "/abs/dir"},
		{"s3://b/p", "s3://b/p"},
	} {
		id, loc := experimentLocation(t, base, map[string]string{"name": "e-" + c.given, "artifact_location": c.given})
		if loc != c.want {
			t.Errorf("artifact_location %q: experiment %s at %q, want %q", c.given, id, loc, c.want)
		}
		var run api.RunResponse
		mustCall(t, "POST", base+mlflow+"runs/create", api.CreateRunRequest{ExperimentID: id}, &run)
		if want := c.want + "/" + run.Run.Info.RunID + "/artifacts"; run.Run.Info.ArtifactURI != want {
			t.Errorf("run of %q: artifact_uri %q, want %q", c.given, run.Run.Info.ArtifactURI, want)
		}
	}

	// --default-artifact-root file:///..., with the proxy off: the client
	// writes the files itself; a version from such a run is stored as given.
	root := t.TempDir()
	base = inProcess(t, func(c *config.Server) {
		c.Artifacts.DefaultRoot = "file://" + root
		c.Artifacts.Serve = false
	})
	id, loc := experimentLocation(t, base, map[string]string{"name": "e"})
	if loc != "file://"+root+"/"+id {
		t.Errorf("under a file root: %q", loc)
	}
	var run api.RunResponse
	mustCall(t, "POST", base+mlflow+"runs/create", api.CreateRunRequest{ExperimentID: id}, &run)
	mustCall(t, "POST", base+mlflow+"registered-models/create", map[string]string{"name": "m"}, nil)
	var v api.ModelVersionResponse
	mustCall(t, "POST", base+mlflow+"model-versions/create", map[string]string{"name": "m", "source": "runs:/" + run.Run.Info.RunID + "/model"}, &v)
	if v.ModelVersion.Source != "runs:/"+run.Run.Info.RunID+"/model" {
		t.Errorf("version of a run with a file root: %+v", v.ModelVersion)
	}
	for _, p := range []string{"/api/2.0/mlflow-artifacts/artifacts/x.txt", "/ajax-api/2.0/mlflow-artifacts/artifacts/x.txt"} {
		status, b := call(t, "PUT", base+p, "x")
		want := "Endpoint: " + p + " disabled due to the mlflow server running with `--no-serve-artifacts`."
		if status != http.StatusServiceUnavailable || !strings.HasPrefix(string(b), want) {
			t.Errorf("PUT %s with the proxy off: %d %q", p, status, b)
		}
	}
}

// An `mlflow server` command line runs Forge: the SQLite file is where
// SQLAlchemy would put it (sqlite:///x.db is relative to the working
// directory) and a relative --default-artifact-root is made absolute.
func TestMLflowServerCommandLine(t *testing.T) {
	bin := forgePath(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "server", "--backend-store-uri", "sqlite:///mlflow.db", "--default-artifact-root", "./mlruns",
		"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--data-dir", "data", "--grpc-addr", "127.0.0.1:0", "--log-level", "warn")
	cmd.Dir = dir
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "mlflow.db")); err != nil {
		t.Errorf("sqlite:///mlflow.db: %v", err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if _, loc := experimentLocation(t, base, map[string]string{"name": "e"}); loc != filepath.Join(real, "mlruns", "1") && loc != filepath.Join(dir, "mlruns", "1") {
		t.Errorf("experiment under ./mlruns: %q", loc)
	}
}
