package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) { os.Exit(sqlstoretest.Main(m)) }

func TestMigrationsApplied(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		var v int
		if err := db.QueryRow(ctx, "SELECT MAX(version) FROM forge_schema").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := sqlstore.SchemaVersion(db.Dialect()); v != want {
			t.Fatalf("schema version %d, want %d", v, want)
		}
		if sqlstore.SchemaVersion(sqlstore.SQLite) != sqlstore.SchemaVersion(sqlstore.Postgres) {
			t.Fatal("sqlite and postgres migrations differ in number")
		}
	})
}

func TestUniqueViolationAndRebind(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		ins := "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)"
		if _, err := db.Exec(ctx, ins, "a", "h1", 1); err != nil {
			t.Fatal(err)
		}
		_, err := db.Exec(ctx, ins, "a", "h2", 2)
		if !sqlstore.IsUniqueViolation(err) {
			t.Fatalf("duplicate name: got %v, want a unique violation", err)
		}
		// A failed transaction leaves nothing behind.
		err = db.Tx(ctx, func(tx *sqlstore.Tx) error {
			if _, err := tx.Exec(ctx, ins, "b", "h3", 3); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, ins, "a", "h4", 4)
			return err
		})
		if err == nil {
			t.Fatal("transaction with a duplicate committed")
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM tokens WHERE name IN ("+sqlstore.Placeholders(2)+")", "a", "b").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d rows after a rolled-back transaction, want 1", n)
		}
	})
}

// Many concurrent writers never see "database is locked" and lose nothing.
func TestConcurrentWriters(t *testing.T) {
	sqlstoretest.ForEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for w := 0; w < 20; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					name := fmt.Sprintf("w%d-%d", w, i)
					err := db.Tx(ctx, func(tx *sqlstore.Tx) error {
						_, err := tx.Exec(ctx, "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)", name, name, i)
						return err
					})
					if err != nil {
						errs <- err
					}
					var got string
					if err := db.QueryRow(ctx, "SELECT hash FROM tokens WHERE name = ?", name).Scan(&got); err != nil {
						errs <- fmt.Errorf("read own write %s: %w", name, err)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		var n int
		db.QueryRow(ctx, "SELECT COUNT(*) FROM tokens").Scan(&n)
		if n != 400 {
			t.Fatalf("%d rows, want 400", n)
		}
	})
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, url, dir string) {
		db, err := sqlstore.Open(ctx, sqlstore.Options{URL: url, DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "INSERT INTO forge_schema (version, name, applied_at) VALUES (?, ?, ?)", 9999, "future", 0); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = sqlstore.Open(ctx, sqlstore.Options{URL: url, DataDir: dir})
		if err == nil || !strings.Contains(err.Error(), "newer than this forge binary") {
			t.Fatalf("open of a newer schema: got %v", err)
		}
	}
	t.Run("sqlite", func(t *testing.T) { check(t, "", t.TempDir()) })
	t.Run("postgres", func(t *testing.T) { check(t, sqlstoretest.PostgresURL(t), "") })
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := sqlstore.Open(ctx, sqlstore.Options{URL: "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"})
	if err == nil || !strings.Contains(err.Error(), "connect to postgres 127.0.0.1:1") {
		t.Fatalf("unreachable postgres: got %v", err)
	}
	dir := filepath.Join(t.TempDir(), "missing", "deeper")
	_, err = sqlstore.Open(ctx, sqlstore.Options{DataDir: dir})
	if err == nil {
		t.Fatal("open in a missing folder succeeded")
	}
}
