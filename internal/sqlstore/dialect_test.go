package sqlstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// LIKE is case-sensitive and ILIKE is not, with the same answers on both
// dialects; GLOB's own wildcards in a LIKE pattern are plain characters.
func TestLikeAndILike(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		for i, name := range []string{"Alpha", "alpha", "a*b", "axb", "a_b", "a[1]"} {
			if _, err := db.Exec(ctx, "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)", name, name, i); err != nil {
				t.Fatal(err)
			}
		}
		d := db.Dialect()
		for _, tc := range []struct {
			ilike   bool
			pattern string
			want    []string
		}{
			{false, "alpha", []string{"alpha"}},
			{false, "A%", []string{"Alpha"}},
			{true, "ALPHA", []string{"Alpha", "alpha"}},
			{false, "a*b", []string{"a*b"}},
			{false, "a_b", []string{"a*b", "a_b", "axb"}},
			{false, "a[1]", []string{"a[1]"}},
			{false, "a?b", nil},
		} {
			cond, args := d.Like("name", tc.pattern)
			if tc.ilike {
				cond, args = d.ILike("name", tc.pattern)
			}
			rows, err := db.Query(ctx, "SELECT name FROM tokens WHERE "+cond+" ORDER BY name", args...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var s string
				rows.Scan(&s)
				got = append(got, s)
			}
			rows.Close()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ilike %v %q: %q, want %q", tc.ilike, tc.pattern, got, tc.want)
			}
		}
		if !db.HasTable(ctx, "tokens") || db.HasTable(ctx, "no_such_table") {
			t.Error("HasTable is wrong about tokens or no_such_table")
		}
		if err := db.Tx(ctx, func(tx *sqlstore.Tx) error { return tx.Serialize(ctx, 42) }); err != nil {
			t.Errorf("serialize: %v", err)
		}
	})
}
