package tracking_test

import (
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

// Names that would not read as stored are refused and nothing is created.
func TestBadNamesRefused(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		s := tracking.New(db)
		for _, bad := range []string{"a\x00b", "a\xffb", "model\u202egnp.exe", "x\u2068y"} {
			_, err := s.CreateExperiment(ctx, bad, "", nil)
			mustKind(t, err, forge.Invalid)
			if _, err := s.GetExperimentByName(ctx, bad); !forge.IsKind(err, forge.NotFound) {
				t.Errorf("experiment %q after a refused create: %v", bad, err)
			}
			_, err = s.CreateRun(ctx, tracking.CreateRunOptions{Name: bad})
			mustKind(t, err, forge.Invalid)
		}
		id, err := s.CreateExperiment(ctx, "good", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		mustKind(t, s.RenameExperiment(ctx, id, "bad\u202e"), forge.Invalid)
		if e, _ := s.GetExperiment(ctx, id); e.Name != "good" {
			t.Errorf("name after a refused rename: %q", e.Name)
		}
	})
}
