package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// versions holds dataset versions as files, the way the datasets service
// materialises them: a copy of the version's bytes, and its sha256.
type versions struct {
	latest string            // what a ref without @version means
	files  map[string]string // "name@version" and "name@version:csv": content
}

func (v versions) Materialize(ctx context.Context, ref, dst string) (string, string, error) {
	base, csv := strings.CutSuffix(ref, ":csv")
	if !strings.Contains(base, "@") {
		base += "@" + v.latest
	}
	parquet, ok := v.files[base]
	if !ok {
		return "", "", forge.Errorf(forge.NotFound, "dataset %s not found", base)
	}
	body := parquet
	if csv {
		body = v.files[base+":csv"]
	}
	if err := os.WriteFile(dst, []byte(body), 0o644); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(parquet))
	return base, hex.EncodeToString(sum[:]), nil
}

// A job's inputs are written under its code folder, and the process finds
// them at FORGE_INPUT_<NAME>, an absolute path, in the format asked for.
func TestInputs(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		data := versions{latest: "3", files: map[string]string{
			"sales@2": "PAR1 v2\n", "sales@3": "PAR1 v3\n", "sales@3:csv": "region,units\nnorth,7\n",
		}}
		e := start(t, opts{db: db, datasets: data})
		j := e.submit(t, Spec{Name: "reads", Command: sh(`echo "train=$FORGE_INPUT_TRAIN old=$FORGE_INPUT_OLD"; cd / && cat "$FORGE_INPUT_TRAIN" "$FORGE_INPUT_OLD"`),
			Inputs: map[string]string{"train": "sales:csv", "old": "sales@2"}})
		j = e.final(t, j.ID)
		out := e.logs(t, j.ID)
		if j.State != Succeeded {
			t.Fatalf("job %s:\n%s", j.State, out)
		}
		code := filepath.Join(e.root, "work", j.ID, "1", "code")
		for _, want := range []string{
			"[0] train=" + code + "/.forge/inputs/train.csv old=" + code + "/.forge/inputs/old.parquet\n",
			"[0] region,units\n", "[0] north,7\n", "[0] PAR1 v2\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log has no %q:\n%s", want, out)
			}
		}
		sum := sha256.Sum256([]byte("PAR1 v3\n"))
		e.runs.mu.Lock()
		tags := e.runs.tags[j.RunID]
		e.runs.mu.Unlock()
		if got, want := tags["forge.input.train"], "sales@3 sha256:"+hex.EncodeToString(sum[:]); got != want {
			t.Errorf("run tag forge.input.train = %q, want %q", got, want)
		}

		// An input that does not resolve fails the attempt with the reason.
		j = e.final(t, e.submit(t, Spec{Name: "missing", Command: sh("true"), Inputs: map[string]string{"x": "nope@1"}}).ID)
		if j.State != Failed || !strings.Contains(j.Attempts[0].Message, "input x=nope@1") {
			t.Errorf("missing input: state %s, attempt %+v", j.State, j.Attempts)
		}
	})
}
