package sqlstore_test

import (
	"context"
	"fmt"
	"maps"
	"math"
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

// A bulk insert stores every row once, the same on both dialects: text that
// needs quoting, ±Inf, booleans, int64 extremes; a conflicting row is
// skipped by the suffix.
func TestBulkInsert(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		if _, err := db.Exec(ctx, "CREATE TABLE bulk_t (run TEXT, k TEXT, v DOUBLE PRECISION, n BOOLEAN, s BIGINT, PRIMARY KEY (run, k))"); err != nil {
			t.Fatal(err)
		}
		b, err := db.PrepareBulk(ctx, "bulk_t", []string{"run"},
			[]sqlstore.BulkColumn{{Name: "k", Type: "text"}, {Name: "v", Type: "float8"}, {Name: "n", Type: "boolean"}, {Name: "s", Type: "bigint"}}, "ON CONFLICT DO NOTHING")
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{`a"b\c`, "é ✓", "inf", "-inf", "a"}
		vals := []float64{1.5, -2, math.Inf(1), math.Inf(-1), 7}
		nans := []bool{true, false, false, true, false}
		steps := []int64{math.MaxInt64, math.MinInt64, 0, 1, 2}
		if err := db.Tx(ctx, func(tx *sqlstore.Tx) error {
			return tx.ExecBulk(ctx, b, []any{"r1"}, keys, vals, nans, steps)
		}); err != nil {
			t.Fatal(err)
		}
		// Again with one new row: the others conflict and are skipped.
		if err := db.Tx(ctx, func(tx *sqlstore.Tx) error {
			return tx.ExecBulk(ctx, b, []any{"r1"}, []string{"a", "new"}, []float64{99, 3}, []bool{true, true}, []int64{9, 9})
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Tx(ctx, func(tx *sqlstore.Tx) error {
			return tx.ExecBulk(ctx, b, []any{"r1"}, []string{"x"}, []float64{1, 2}, []bool{true}, []int64{1})
		}); err == nil {
			t.Error("columns of different lengths were accepted")
		}
		rows, err := db.Query(ctx, "SELECT k, v, n, s FROM bulk_t WHERE run = ? ORDER BY s", "r1")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]string{}
		for rows.Next() {
			var k string
			var v float64
			var n bool
			var s int64
			if err := rows.Scan(&k, &v, &n, &s); err != nil {
				t.Fatal(err)
			}
			got[k] = fmt.Sprint(v, n, s)
		}
		want := map[string]string{`a"b\c`: "1.5 true 9223372036854775807", "é ✓": "-2 false -9223372036854775808",
			"inf": "+Inf false 0", "-inf": "-Inf true 1", "a": "7 false 2", "new": "3 true 9"}
		if !maps.Equal(got, want) {
			t.Errorf("rows %v\nwant %v", got, want)
		}
	})
}
