package monitor

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

// Labels are stored per deployment, request and row on both databases; a
// label sent again replaces the first (and counts as sent then); labels
// older than since are not read.
func TestStoreLabels(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		if err := storeLabels(ctx, db, "a", []label{{"r1", 0, "1"}, {"r1", 1, "0"}, {"r2", 0, "cat"}}, 1000); err != nil {
			t.Fatal(err)
		}
		if err := storeLabels(ctx, db, "b", []label{{"r1", 0, "7"}}, 1000); err != nil {
			t.Fatal(err)
		}
		if err := storeLabels(ctx, db, "a", []label{{"r1", 1, "1"}}, 2000); err != nil {
			t.Fatal(err)
		}
		read := func(since int64) []label {
			var out []label
			if err := readLabels(ctx, db, "a", since, func(l label) error { out = append(out, l); return nil }); err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(out, func(x, y label) int { return cmpString(x.id+string(rune('0'+x.row)), y.id+string(rune('0'+y.row))) })
			return out
		}
		if got, want := read(0), []label{{"r1", 0, "1"}, {"r1", 1, "1"}, {"r2", 0, "cat"}}; !slices.Equal(got, want) {
			t.Errorf("labels of a: %v, want %v", got, want)
		}
		if got, want := read(1500), []label{{"r1", 1, "1"}}; !slices.Equal(got, want) {
			t.Errorf("labels of a since 1500: %v, want %v", got, want)
		}
	})
}
