package registry_test

import (
	"context"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// '@' would make NAME@VERSION ambiguous; bidi controls make a name read
// as another. Both are refused and nothing is registered.
func TestModelNamesRefused(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		for _, bad := range []string{"churn@2", "a/b", "evil\u202egnp", "x\x00"} {
			if _, err := e.reg.CreateModel(ctx, bad, "", nil); !forge.IsKind(err, forge.Invalid) {
				t.Errorf("create %q: %v, want invalid", bad, err)
			}
		}
		ms, _, err := e.reg.SearchModels(ctx, registry.Query{})
		if err != nil || len(ms) != 0 {
			t.Fatalf("models after refused creates: %v %v", ms, err)
		}
	})
}
