package jobs

import (
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// A job gets its spec's variables and the contract's, never the server's
// own environment.
func TestJobEnvironmentIsClean(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		t.Setenv("FORGE_DB", "postgres://forge:s3cret-password@db/forge")
		t.Setenv("FORGE_SERVER_SECRET_FOR_TEST", "do-not-leak")
		e := start(t, opts{db: db})
		j := e.final(t, e.submit(t, Spec{Command: sh("env"), Env: map[string]string{"MINE": "yes"}}).ID)
		if j.State != Succeeded {
			t.Fatalf("job = %+v", j)
		}
		out := e.logs(t, j.ID)
		for _, secret := range []string{"s3cret-password", "FORGE_DB=", "do-not-leak"} {
			if strings.Contains(out, secret) {
				t.Errorf("the job's environment has the server's %q:\n%s", secret, out)
			}
		}
		for _, want := range []string{"MINE=yes", "MLFLOW_RUN_ID=", "RANK=0", "PATH="} {
			if !strings.Contains(out, want) {
				t.Errorf("the job's environment lacks %q:\n%s", want, out)
			}
		}
	})
}
