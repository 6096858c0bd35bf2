package jobs

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// BenchmarkSchedulerPass is one scheduler pass over 10,000 queued jobs of
// which none fits: the whole queue is read in admission order.
func BenchmarkSchedulerPass(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) *sqlstore.DB
	}{{"sqlite", sqlstoretest.OpenSQLite}, {"postgres", sqlstoretest.OpenPostgres}} {
		b.Run(tc.name, func(b *testing.B) {
			db := tc.open(b)
			root := b.TempDir()
			blobs, _ := blob.NewLocal(filepath.Join(root, "blobs"))
			svc, err := New(db, map[string]forge.Executor{"local": newExecutor(b, root, 0.5)}, blobs, nil, nil, Config{WorkDir: filepath.Join(root, "work")}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			spec := Spec{Command: []string{"true"}}
			spec.Normalize()
			js, _ := json.Marshal(spec)
			err = db.Tx(ctx, func(tx *sqlstore.Tx) error {
				st, err := tx.Prepare(ctx, `INSERT INTO jobs (id, name, state, priority, submitted_at, spec, cpus, memory_bytes, gpus, nodes)
					VALUES (?, 'bench', 'queued', ?, ?, ?, 1, 0, 0, 1)`)
				if err != nil {
					return err
				}
				defer st.Close()
				for i := range 10000 {
					if _, err := st.ExecContext(ctx, newID(), i%7, int64(i), string(js)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if n, err := svc.Pass(ctx); err != nil || n != 0 {
					b.Fatalf("pass: %d admitted, %v", n, err)
				}
			}
		})
	}
}
