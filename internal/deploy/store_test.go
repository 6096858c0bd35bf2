package deploy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// A deployment's payload log settings (rate, reference, logged columns)
// are stored and read back on both databases; a changed column list is a
// changed deployment; a rate out of range is refused and not stored.
func TestStorePayloadSettings(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		s := NewStore(db)
		d := Deployment{Name: "cancer-api", Model: "cancer", Ref: "1", PayloadRate: 0.25, Reference: "train@3", PayloadColumns: []string{"f00", "f01"}}
		if _, err := s.Put(ctx, d); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "cancer-api")
		if err != nil || got.PayloadRate != 0.25 || got.Reference != "train@3" || !slices.Equal(got.PayloadColumns, d.PayloadColumns) {
			t.Fatalf("read back %+v, %v", got, err)
		}
		before, _ := s.List(ctx)
		d.PayloadColumns = []string{"f00", "f01", "f02"}
		if _, err := s.Put(ctx, d); err != nil {
			t.Fatal(err)
		}
		after, _ := s.List(ctx)
		if Revision(before) == Revision(after) || after[0].equal(before[0]) {
			t.Errorf("a changed column list: revision %s -> %s, equal %v", Revision(before), Revision(after), after[0].equal(before[0]))
		}
		bad := d
		bad.PayloadRate = 1.5
		if _, err := s.Put(ctx, bad); forge.KindOf(err) != forge.Invalid || !strings.Contains(err.Error(), "payload log rate 1.5") {
			t.Errorf("rate 1.5: %v, want invalid", err)
		}
		if got, _ := s.Get(ctx, "cancer-api"); got.PayloadRate != 0.25 {
			t.Errorf("after a refused put: rate %v, want 0.25 kept", got.PayloadRate)
		}
	})
}
