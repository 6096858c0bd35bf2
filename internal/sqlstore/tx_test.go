package sqlstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// A transaction that panics, or whose context ends while it runs, leaves
// nothing behind, and the writer takes the next transaction.
func TestTxPanicAndCancel(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		ins := "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)"
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the panic did not come through")
				}
			}()
			db.Tx(ctx, func(tx *sqlstore.Tx) error {
				if _, err := tx.Exec(ctx, ins, "panicked", "h", 1); err != nil {
					t.Fatal(err)
				}
				panic("boom")
			})
		}()

		// A context cancelled before the transaction begins refuses it.
		done, cancel := context.WithCancel(ctx)
		cancel()
		if err := db.Tx(done, func(tx *sqlstore.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Tx with a cancelled context: %v, want context.Canceled", err)
		}

		// Cancelled while it runs, then failing: rolled back.
		mid, cancel := context.WithCancel(ctx)
		err := db.Tx(mid, func(tx *sqlstore.Tx) error {
			if _, err := tx.Exec(mid, ins, "cancelled", "h", 2); err != nil {
				return err
			}
			cancel()
			return errors.New("give up")
		})
		if err == nil || err.Error() != "give up" {
			t.Fatalf("Tx: %v, want give up", err)
		}

		if err := db.Tx(ctx, func(tx *sqlstore.Tx) error {
			_, err := tx.Exec(ctx, ins, "after", "h", 3)
			return err
		}); err != nil {
			t.Fatalf("the writer after a panic and a rollback: %v", err)
		}
		var names []string
		rows, err := db.Query(ctx, "SELECT name FROM tokens ORDER BY name")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			rows.Scan(&n)
			names = append(names, n)
		}
		if len(names) != 1 || names[0] != "after" {
			t.Fatalf("tokens %v, want only [after]", names)
		}
	})
}
