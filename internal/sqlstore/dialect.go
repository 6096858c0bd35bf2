package sqlstore

import (
	"context"
	"fmt"
	"strings"
)

// The SQL that differs between SQLite and PostgreSQL lives here, so the
// domain packages write one query for both.

// Like is the condition that col matches the LIKE pattern, case-sensitively
// on both dialects as MLflow's LIKE is: SQLite's LIKE ignores ASCII case, so
// there it becomes GLOB.
func (d Dialect) Like(col, pattern string) (string, []any) {
	if d == SQLite {
		return col + " GLOB ?", []any{likeToGlob(pattern)}
	}
	return col + " LIKE ?", []any{pattern}
}

// ILike is the condition that col matches the LIKE pattern, ignoring case.
func (d Dialect) ILike(col, pattern string) (string, []any) {
	if d == SQLite {
		return "LOWER(" + col + ") LIKE LOWER(?)", []any{pattern}
	}
	return col + " ILIKE ?", []any{pattern}
}

// likeToGlob rewrites a LIKE pattern as a GLOB one, quoting GLOB's own
// wildcards.
func likeToGlob(p string) string {
	var b strings.Builder
	for _, c := range p {
		switch c {
		case '%':
			b.WriteByte('*')
		case '_':
			b.WriteByte('?')
		case '*', '?', '[':
			b.WriteByte('[')
			b.WriteRune(c)
			b.WriteByte(']')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// HasTable reports whether the schema has table, for references to parts of
// Forge that a database may not have yet.
func (db *DB) HasTable(ctx context.Context, table string) bool {
	q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if db.dialect == Postgres {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
	}
	var n int
	return db.QueryRow(ctx, q, table).Scan(&n) == nil && n > 0
}

// Serialize makes the transaction's writers that name the same lock run one
// after another until they commit, so that sequence numbers they draw commit
// in order (a follower that has read up to N never later finds an N-1 it
// missed). SQLite has one writer at a time already; PostgreSQL takes a
// transaction-scoped advisory lock.
func (tx *Tx) Serialize(ctx context.Context, lock int64) error {
	if tx.db.dialect != Postgres {
		return nil
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(?)", lock); err != nil {
		return fmt.Errorf("take write lock %d: %w", lock, err)
	}
	return nil
}
