package tracking_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
	"github.com/forge-mlops/forge/internal/tracking"
)

// The goal: search over 100,000 runs with a metric filter, ordered
// by a metric, answers in under 100 ms at the median. The store is filled
// once per benchmark run (in the parent benchmark's temp dir, or a fresh
// PostgreSQL database) and shared by the b.N iterations.
//
//	go test ./internal/tracking -run '^$' -bench SearchRuns100k -benchtime 50x
func BenchmarkSearchRuns100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	dbs := map[string]func(testing.TB) (*sqlstore.DB, error){
		"sqlite": func(testing.TB) (*sqlstore.DB, error) {
			return sqlstore.Open(context.Background(), sqlstore.Options{DataDir: dir})
		},
		"postgres": func(tb testing.TB) (*sqlstore.DB, error) {
			return sqlstore.Open(context.Background(), sqlstore.Options{URL: sqlstoretest.PostgresURL(tb)})
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		var store *tracking.Store
		var exp string
		b.Run(name, func(b *testing.B) {
			if store == nil {
				db, err := dbs[name](b)
				if err != nil {
					b.Fatal(err)
				}
				store, exp = populateRuns(b, db, n)
			}
			q := tracking.Query{ExperimentIDs: []string{exp}, Filter: "metrics.acc > 0.5",
				OrderBy: []string{"metrics.acc DESC"}, MaxResults: 100}
			b.ResetTimer()
			for b.Loop() {
				runs, _, err := store.SearchRuns(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if len(runs) != 100 || runs[0].Metrics[0].Key != "acc" || runs[0].Metrics[0].Value <= runs[99].Metrics[0].Value {
					b.Fatalf("search gave %d runs, not the top 100 by acc", len(runs))
				}
			}
		})
	}
}

// BenchmarkSearchAll1000 is scenario (d) of bench/tracking at the store:
// every run of a 1,000-run experiment, one page.
func BenchmarkSearchAll1000(b *testing.B) {
	db, err := sqlstore.Open(context.Background(), sqlstore.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	store, exp := populateRuns(b, db, 1000)
	q := tracking.Query{ExperimentIDs: []string{exp}, MaxResults: 1000}
	for b.Loop() {
		runs, _, err := store.SearchRuns(context.Background(), q)
		if err != nil || len(runs) != 1000 {
			b.Fatalf("search: %d runs, %v", len(runs), err)
		}
	}
}

// BenchmarkLogBatch1000 is one request of scenario (b): 1,000 points of one
// metric in one LogBatch.
func BenchmarkLogBatch1000(b *testing.B) {
	db, err := sqlstore.Open(context.Background(), sqlstore.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := tracking.New(db)
	run, err := s.CreateRun(context.Background(), tracking.CreateRunOptions{})
	if err != nil {
		b.Fatal(err)
	}
	step := 0
	for b.Loop() {
		ms := make([]tracking.Metric, 1000)
		for i := range ms {
			ms[i] = tracking.Metric{Key: "loss", Value: float64(step), Timestamp: 1, Step: int64(step)}
			step++
		}
		if err := s.LogBatch(context.Background(), run.ID, ms, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// populateRuns fills a new experiment with n finished runs, each with the
// metrics acc, loss and f1 (one point each), the params lr and depth and a
// run name tag, written with multi-row INSERTs in one transaction: going
// through CreateRun and LogBatch would take minutes for 100,000 runs.
func populateRuns(b *testing.B, db *sqlstore.DB, n int) (*tracking.Store, string) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	s := tracking.New(db)
	exp, err := s.CreateExperiment(ctx, fmt.Sprintf("bench-%d", n), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	expID, _ := strconv.ParseInt(exp, 10, 64)
	rng := rand.New(rand.NewPCG(42, 1))
	now := time.Now().UnixMilli()
	var runs, params, tags, metrics [][]any
	for i := range n {
		id := fmt.Sprintf("%032x", i)
		t := now - int64(n-i)
		runs = append(runs, []any{id, expID, fmt.Sprintf("run-%d", i), "bench", "FINISHED", t, t + 1000, "active", "mlflow-artifacts:/" + exp + "/" + id + "/artifacts"})
		params = append(params, []any{id, "lr", fmt.Sprintf("%.4f", rng.Float64()/10)}, []any{id, "depth", fmt.Sprint(rng.IntN(10) + 2)})
		tags = append(tags, []any{id, "mlflow.runName", fmt.Sprintf("run-%d", i)})
		for _, k := range []string{"acc", "loss", "f1"} {
			metrics = append(metrics, []any{id, k, rng.Float64(), false, t, int64(0)})
		}
	}
	err = db.Tx(ctx, func(tx *sqlstore.Tx) error {
		for _, ins := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"runs", []string{"run_uuid", "experiment_id", "name", "user_id", "status", "start_time", "end_time", "lifecycle_stage", "artifact_uri"}, runs},
			{"params", []string{"run_uuid", "key", "value"}, params},
			{"tags", []string{"run_uuid", "key", "value"}, tags},
			{"metrics", []string{"run_uuid", "key", "value", "is_nan", "timestamp", "step"}, metrics},
			{"latest_metrics", []string{"run_uuid", "key", "value", "is_nan", "timestamp", "step"}, metrics},
		} {
			if err := insertRows(ctx, tx, ins.table, ins.cols, ins.rows); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if db.Dialect() == sqlstore.Postgres {
		// What autovacuum does shortly after a load this size.
		if _, err := db.Exec(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%s: %d runs populated in %s", db.Dialect(), n, time.Since(start).Round(time.Millisecond))
	return s, exp
}

// insertRows inserts rows with multi-row INSERTs of at most 8,000 arguments.
func insertRows(ctx context.Context, tx *sqlstore.Tx, table string, cols []string, rows [][]any) error {
	per := 8000 / len(cols)
	row := "(" + sqlstore.Placeholders(len(cols)) + ")"
	for start := 0; start < len(rows); start += per {
		part := rows[start:min(start+per, len(rows))]
		args := make([]any, 0, len(part)*len(cols))
		for _, r := range part {
			args = append(args, r...)
		}
		q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", len(part)), ", ")
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	return nil
}
