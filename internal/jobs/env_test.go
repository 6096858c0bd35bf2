package jobs

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/auth"
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

// Each attempt gets a token of its own for the job's run, deleted when the
// attempt ends; a token the spec sets itself is kept.
func TestJobTokenPerAttempt(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		tokens := auth.New(db)
		e := start(t, opts{db: db, tokens: tokens})
		j := e.final(t, e.submit(t, Spec{Command: sh(`echo "attempt $FORGE_ATTEMPT token $MLFLOW_TRACKING_TOKEN forge $FORGE_TOKEN"; [ "$FORGE_ATTEMPT" = 2 ]`), MaxRetries: 1}).ID)
		if j.State != Succeeded || j.Attempt != 2 {
			t.Fatalf("job = %+v", j)
		}
		var logs strings.Builder
		for attempt := 1; attempt <= 2; attempt++ {
			if err := e.svc.Logs(context.Background(), j.ID, attempt, false, &logs); err != nil {
				t.Fatal(err)
			}
		}
		seen := regexp.MustCompile(`attempt (\d) token (\S+) forge (\S+)`).FindAllStringSubmatch(logs.String(), -1)
		if len(seen) != 2 || seen[0][2] == seen[1][2] || seen[0][2] != seen[0][3] || !strings.HasPrefix(seen[0][2], "forge_job_") {
			t.Fatalf("tokens seen by the attempts: %q, want one per attempt, the same in both variables", seen)
		}
		for _, s := range seen {
			if _, err := tokens.Check(context.Background(), s[2]); !forge.IsKind(err, forge.Unauthorized) {
				t.Errorf("attempt %s's token after its end: %v, want Unauthorized", s[1], err)
			}
		}
		list, err := tokens.List(context.Background())
		if err != nil || len(list) != 0 {
			t.Errorf("tokens left after the job: %+v %v", list, err)
		}
		j = e.final(t, e.submit(t, Spec{Command: sh(`echo "mine=$FORGE_TOKEN mlflow=$MLFLOW_TRACKING_TOKEN"`), Env: map[string]string{"FORGE_TOKEN": "my-own"}}).ID)
		if out := e.logs(t, j.ID); !strings.Contains(out, "mine=my-own mlflow=forge_job_") {
			t.Errorf("a spec's own FORGE_TOKEN: %s", out)
		}
	})
}
