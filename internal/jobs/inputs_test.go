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
	gone   map[string]bool   // versions that resolve but are deleted before the job starts
}

func (v versions) Resolve(ctx context.Context, ref string) (string, error) {
	base, _ := strings.CutSuffix(ref, ":csv")
	if !strings.Contains(base, "@") {
		base += "@" + v.latest
	}
	if _, ok := v.files[base]; !ok && !v.gone[base] {
		return "", forge.Errorf(forge.NotFound, "no dataset version %s", base)
	}
	return base, nil
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
	})
}

// TestInputRefusedAtSubmit: a job whose input does not exist (a typo) is
// refused when submitted, with the reason, and nothing is queued; one whose
// input goes away before it starts fails for that fixed reason and is not
// retried, whatever its retries.
func TestInputRefusedAtSubmit(t *testing.T) {
	data := versions{latest: "1", files: map[string]string{"cancer@1": "PAR1\n"}, gone: map[string]bool{"old@1": true}}
	e := start(t, opts{datasets: data})
	ctx := context.Background()
	_, err := e.svc.Submit(ctx, Spec{Name: "typo", Command: sh("true"), Inputs: map[string]string{"train": "cancr"}})
	if !forge.IsKind(err, forge.Invalid) || !strings.Contains(err.Error(), "input train=cancr: no dataset version cancr@1") {
		t.Fatalf("submit with an unknown input: %v, want Invalid naming it", err)
	}
	if js, _ := e.svc.List(ctx, "", 0); len(js) != 0 {
		t.Errorf("a refused job was stored: %+v", js)
	}

	j := e.final(t, e.submit(t, Spec{Name: "gone", Command: sh("true"), MaxRetries: 3, Inputs: map[string]string{"x": "old@1"}}).ID)
	if j.State != Failed || len(j.Attempts) != 1 || j.Attempts[0].Reason != forge.ReasonInvalid || !strings.Contains(j.Attempts[0].Message, "input x=old@1") {
		t.Errorf("input gone at start: state %s, attempts %+v; want one failed attempt, reason invalid", j.State, j.Attempts)
	}
}
