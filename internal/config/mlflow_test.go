package config_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// `mlflow server` command lines, taken as they are.
func TestMLflowServerFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		db, addr   string
		root, dest string
		serve      bool
	}{
		{args: nil, addr: "127.0.0.1:7700", serve: true},
		{args: []string{"--backend-store-uri", "sqlite:///mlflow.db"}, db: "sqlite:mlflow.db", addr: "127.0.0.1:7700", serve: true},
		{args: []string{"--backend-store-uri", "sqlite:////var/lib/mlflow.db"}, db: "sqlite:/var/lib/mlflow.db", addr: "127.0.0.1:7700", serve: true},
		{args: []string{"--backend-store-uri", "postgresql://u:p@db:5432/mlflow"}, db: "postgresql://u:p@db:5432/mlflow", addr: "127.0.0.1:7700", serve: true},
		{args: []string{"--backend-store-uri", "postgresql+psycopg2://u@db/mlflow"}, db: "postgresql://u@db/mlflow", addr: "127.0.0.1:7700", serve: true},
		{args: []string{"--host", "0.0.0.0", "--port", "5000"}, addr: "0.0.0.0:5000", serve: true},
		{args: []string{"--port", "5001"}, addr: "127.0.0.1:5001", serve: true},
		{args: []string{"--no-serve-artifacts", "--default-artifact-root", "s3://bucket/mlflow"}, addr: "127.0.0.1:7700", root: "s3://bucket/mlflow"},
		{args: []string{"--serve-artifacts", "--artifacts-destination", "/srv/arts"}, addr: "127.0.0.1:7700", dest: "/srv/arts", serve: true},
		{args: []string{"--artifacts-destination", "file:///srv/arts"}, addr: "127.0.0.1:7700", dest: "/srv/arts", serve: true},
	} {
		c, err := load(tc.args, env())
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if c.DB != tc.db || c.Addr != tc.addr || c.Artifacts.DefaultRoot != tc.root || c.Artifacts.Destination != tc.dest || c.Artifacts.Serve != tc.serve {
			t.Errorf("%v: db %q addr %q root %q dest %q serve %v", tc.args, c.DB, c.Addr, c.Artifacts.DefaultRoot, c.Artifacts.Destination, c.Artifacts.Serve)
		}
	}
	c, err := load([]string{"--artifacts-destination", "arts"}, env())
	if abs, _ := filepath.Abs("arts"); err != nil || c.Artifacts.Destination != abs {
		t.Errorf("relative destination: %q, %v", c.Artifacts.Destination, err)
	}
	c, err = load(nil, env("FORGE_SERVE_ARTIFACTS=false", "FORGE_DEFAULT_ARTIFACT_ROOT=/srv/mlruns"))
	if err != nil || c.Artifacts.Serve || c.ArtifactRoot() != "/srv/mlruns" {
		t.Errorf("from the environment: %+v, %v", c.Artifacts, err)
	}
}

func TestMLflowServerFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-serve-artifacts"}, "Option 'default-artifact-root' is required when backend store is not local file based and artifact serving is disabled."},
		{[]string{"--no-serve-artifacts", "--default-artifact-root", "mlflow-artifacts:/"}, "needs the artifact proxy"},
		{[]string{"--backend-store-uri", "./mlruns"}, "Forge keeps tracking data in SQLite or PostgreSQL"},
		{[]string{"--backend-store-uri", "mysql://u@h/db"}, "want sqlite:///PATH or postgresql://"},
		{[]string{"--backend-store-uri", "sqlite:///"}, "want a database file"},
		{[]string{"--backend-store-uri", "sqlite:///a.db", "--db", "postgres://x"}, "not both"},
		{[]string{"--host", "0.0.0.0", "--addr", "127.0.0.1:1"}, "not both"},
		{[]string{"--port", "70000"}, "is not a port"},
		{[]string{"--artifacts-destination", "s3://bucket/x"}, "want a path"},
	} {
		_, err := load(tc.args, env())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
