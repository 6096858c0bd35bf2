package tracking

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"

	"github.com/forge-mlops/forge/internal/sqlstore"
)

// The metric_rollups table (migration 0014) holds each run's history of a
// key cut into cells of 8, 16 and 64 steps, so that a chart reads an eighth to
// a 64th of the rows (see rollupBuckets). The points a write stored, and
// only those (a point logged again is stored once), are added to their
// cells in the same transaction.

// rollupShifts are the cells' sizes: 8, 16 and 64 steps.
var rollupShifts = [...]uint{3, 4, 6}

type cellKey struct {
	key   string
	shift uint
	cell  int64
}

type cell struct {
	stepMin, stepMax, timeMin, timeMax int64
	min, max, sum                      float64
	n                                  int64
}

// rollup gathers a write's new points by cell.
type rollup struct {
	cells map[cellKey]*cell
	order []cellKey
}

func (r *rollup) add(key string, step, ts int64, v float64) {
	if r.cells == nil {
		r.cells = map[cellKey]*cell{}
	}
	for _, shift := range rollupShifts {
		k := cellKey{key, shift, step >> shift}
		c := r.cells[k]
		if c == nil {
			r.cells[k] = &cell{step, step, ts, ts, v, v, v, 1}
			r.order = append(r.order, k)
			continue
		}
		c.stepMin, c.stepMax, c.timeMin, c.timeMax = min(c.stepMin, step), max(c.stepMax, step), min(c.timeMin, ts), max(c.timeMax, ts)
		c.min, c.max, c.sum, c.n = math.Min(c.min, v), math.Max(c.max, v), c.sum+v, c.n+1
	}
}

var rollupColumns = []sqlstore.BulkColumn{{Name: "key", Type: "text"}, {Name: "shift", Type: "bigint"}, {Name: "cell", Type: "bigint"},
	{Name: "step_min", Type: "bigint"}, {Name: "step_max", Type: "bigint"}, {Name: "time_min", Type: "bigint"}, {Name: "time_max", Type: "bigint"},
	{Name: "vmin", Type: "float8"}, {Name: "vmax", Type: "float8"}, {Name: "vsum", Type: "float8"}, {Name: "n", Type: "bigint"}}

// rollupUpsert is the ON CONFLICT clause that merges a cell into the one
// stored.
func rollupUpsert(d sqlstore.Dialect) string {
	least, greatest := "min", "max"
	if d == sqlstore.Postgres {
		least, greatest = "LEAST", "GREATEST"
	}
	set := []string{}
	for _, c := range []struct{ col, fn string }{{"step_min", least}, {"step_max", greatest}, {"time_min", least}, {"time_max", greatest}, {"vmin", least}, {"vmax", greatest}} {
		set = append(set, fmt.Sprintf("%s = %s(metric_rollups.%s, excluded.%s)", c.col, c.fn, c.col, c.col))
	}
	set = append(set, "vsum = metric_rollups.vsum + excluded.vsum", "n = metric_rollups.n + excluded.n")
	return "ON CONFLICT (run_uuid, key, shift, cell) DO UPDATE SET " + strings.Join(set, ", ")
}

// write adds the cells to those stored: in one statement with the
// prepared bulk upsert, else one statement a cell.
func (r *rollup) write(ctx context.Context, tx *sqlstore.Tx, st *statements, runID string) error {
	if len(r.order) == 0 {
		return nil
	}
	if st != nil {
		n := len(r.order)
		keys, shifts, cells := make([]string, n), make([]int64, n), make([]int64, n)
		smin, smax, tmin, tmax, cnt := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		vmin, vmax, vsum := make([]float64, n), make([]float64, n), make([]float64, n)
		for i, k := range r.order {
			c := r.cells[k]
			keys[i], shifts[i], cells[i] = k.key, int64(k.shift), k.cell
			smin[i], smax[i], tmin[i], tmax[i], cnt[i] = c.stepMin, c.stepMax, c.timeMin, c.timeMax, c.n
			vmin[i], vmax[i], vsum[i] = c.min, c.max, c.sum
		}
		if err := tx.ExecBulk(ctx, st.upsertRollups, []any{runID}, keys, shifts, cells, smin, smax, tmin, tmax, vmin, vmax, vsum, cnt); err != nil {
			return fmt.Errorf("update metric rollups: %w", err)
		}
		return nil
	}
	q := "INSERT INTO metric_rollups (run_uuid, key, shift, cell, step_min, step_max, time_min, time_max, vmin, vmax, vsum, n) VALUES (" +
		sqlstore.Placeholders(12) + ") " + rollupUpsert(tx.Dialect())
	for _, k := range r.order {
		c := r.cells[k]
		if _, err := tx.Exec(ctx, q, runID, k.key, int64(k.shift), k.cell, c.stepMin, c.stepMax, c.timeMin, c.timeMax, c.min, c.max, c.sum, c.n); err != nil {
			return fmt.Errorf("update metric rollups: %w", err)
		}
	}
	return nil
}

// insertBulk inserts the points in one statement and adds those it stored
// to cells.
func insertBulk(ctx context.Context, tx *sqlstore.Tx, st *statements, runID string, metrics []Metric, cells *rollup) error {
	rows, err := tx.QueryBulk(ctx, st.insMetrics, []any{runID}, metricsColumns(metrics)...)
	if err != nil {
		return fmt.Errorf("log metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var isNaN bool
		var ts, step int64
		var v sql.NullFloat64
		if err := rows.Scan(&key, &isNaN, &ts, &step, &v); err != nil {
			return fmt.Errorf("log metrics: %w", err)
		}
		if !isNaN {
			cells.add(key, step, ts, v.Float64)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("log metrics: %w", err)
	}
	return rows.Close()
}
