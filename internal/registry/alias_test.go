package registry_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/registry"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// TestAliasSignatureChange: moving an alias to a version that takes or
// gives other tensors is refused (409, the difference shown, nothing
// moved) unless forced; one with the same signature moves freely.
func TestAliasSignatureChange(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		for _, f := range []string{"xgb_binary.json", "xgb_binary.json", "xgb_multiclass.json"} {
			p := filepath.Join(t.TempDir(), "model.json")
			os.WriteFile(p, fixture(t, f), 0o644)
			if _, err := e.reg.CreateVersion(ctx, registry.NewVersion{Name: "cancer", CreateModel: true, Uploads: []registry.Upload{{Path: "model.json", File: p}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.reg.SetAlias(ctx, "cancer", "prod", 1); err != nil {
			t.Fatal(err)
		}
		if err := e.reg.SetAlias(ctx, "cancer", "prod", 2); err != nil {
			t.Errorf("same signature: %v", err)
		}
		err := e.reg.SetAlias(ctx, "cancer", "prod", 3)
		if !forge.IsKind(err, forge.Conflict) || !strings.Contains(err.Error(), "inputs [input__0 FP32 [-1 30]] -> [input__0 FP32 [-1 13]]") ||
			!strings.Contains(err.Error(), "outputs [output__0 FP32 [-1]] -> [output__0 FP32 [-1 3]]") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("moving to another signature: %v", err)
		}
		if v, err := e.reg.VersionByAlias(ctx, "cancer", "prod"); err != nil || v.Version != 2 {
			t.Errorf("after the refusal prod is at %d (%v), want 2", v.Version, err)
		}
		// Over MLflow's REST route: 409, then force.
		msg := e.refused("POST", "/api/2.0/mlflow/registered-models/alias", map[string]any{"name": "cancer", "alias": "prod", "version": "3"}, http.StatusConflict, "RESOURCE_CONFLICT")
		if !strings.Contains(msg, "another signature") {
			t.Errorf("REST refusal: %q", msg)
		}
		e.must("POST", "/api/2.0/mlflow/registered-models/alias", map[string]any{"name": "cancer", "alias": "prod", "version": "3", "force": true})
		if v, _ := e.reg.VersionByAlias(ctx, "cancer", "prod"); v.Version != 3 {
			t.Errorf("forced move: prod at %d, want 3", v.Version)
		}
		// A new alias has nothing to break.
		if err := e.reg.SetAlias(ctx, "cancer", "staging", 1); err != nil {
			t.Errorf("new alias: %v", err)
		}
	})
}
