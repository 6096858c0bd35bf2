package duckq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge"
)

// A query run in a worker process gives the same columns, values (of the
// same Go types), truncation and errors as one run in this process.
func TestIsolatedQueryMatchesInProcess(t *testing.T) {
	local := newTestEngine(t, EngineOptions{QueryTimeout: time.Minute})
	iso := newTestEngine(t, EngineOptions{QueryTimeout: time.Minute, Isolate: true, MemoryLimit: "1GB"})
	t.Cleanup(func() { iso.Close() })

	dir := t.TempDir()
	path := filepath.Join(dir, "t.parquet")
	db, err := local.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`COPY (SELECT i AS id, i * 1.5 AS x, 'row ' || i AS name, i % 2 = 0 AS even,
		TIMESTAMP '2026-01-02 03:04:05' + INTERVAL (i) SECOND AS at, [i, i + 1] AS pair,
		{'a': i, 'b': 'x'} AS st, CAST(i AS DECIMAL(10, 2)) AS dec, CASE WHEN i = 3 THEN NULL ELSE i END AS maybe,
		'\xAA\xBB'::BLOB AS raw
		FROM range(1000) t(i)) TO '` + path + `' (FORMAT parquet)`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]string{"t": path}
	for _, q := range []struct {
		sql   string
		limit int
	}{
		{"SELECT * FROM t ORDER BY id", 0},
		{"SELECT * FROM t ORDER BY id", 300}, // more than one batch, and cut
		{"SELECT even, count(*), sum(x) FROM t GROUP BY even ORDER BY even", 0},
	} {
		want, wantCols, wantCut := run(t, local, q.sql, tables, q.limit)
		got, gotCols, gotCut := run(t, iso, q.sql, tables, q.limit)
		if diff := cmp.Diff(wantCols, gotCols); diff != "" {
			t.Errorf("%s: columns (-in process +isolated):\n%s", q.sql, diff)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: rows (-in process +isolated):\n%s", q.sql, diff)
		}
		if wantCut != gotCut {
			t.Errorf("%s limit %d: truncated %v, want %v", q.sql, q.limit, gotCut, wantCut)
		}
	}
	for _, bad := range []string{"SELEC 1", "COPY t TO '/tmp/x.csv'", "SELECT * FROM read_csv('/etc/passwd')", "SELECT 1; SELECT 2"} {
		_, wantErr := local.Query(context.Background(), bad, tables, 0)
		_, gotErr := iso.Query(context.Background(), bad, tables, 0)
		if wantErr == nil || gotErr == nil {
			t.Fatalf("%s: errors %v and %v, want both to fail", bad, wantErr, gotErr)
		}
		if forge.KindOf(gotErr) != forge.KindOf(wantErr) || forge.Message(gotErr) != forge.Message(wantErr) {
			t.Errorf("%s: isolated error %v (%v), in process %v (%v)", bad, gotErr, forge.KindOf(gotErr), wantErr, forge.KindOf(wantErr))
		}
	}
}

func run(t *testing.T, e *Engine, sql string, tables map[string]string, limit int) ([][]any, []Column, bool) {
	t.Helper()
	r, err := e.Query(context.Background(), sql, tables, limit)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	cols := r.Columns
	rows := collect(t, r)
	return rows, cols, r.Truncated()
}

// One chunk of repeat('x', 10000000) over 3,000 rows asks DuckDB for about
// 20 GB outside its memory_limit, which in this process nothing stops. In
// a worker the operating system refuses it: the queries fail as out of
// memory, this process does not grow, and the engine answers afterwards.
func TestIsolatedQueryCannotTakeTheMachinesMemory(t *testing.T) {
	e := newTestEngine(t, EngineOptions{Isolate: true, MemoryLimit: "600MiB", Threads: 2, MaxConcurrent: 2,
		QueryTimeout: 2 * time.Minute, TempDir: t.TempDir()})
	t.Cleanup(func() { e.Close() })
	// Writing 5 to clear_refs resets VmHWM to the current RSS.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	base := procStatusKB(t, "VmHWM")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.Query(context.Background(), "SELECT max(length(repeat('x', 10000000) || i)) FROM range(3000) t(i)", nil, 0)
			if err == nil {
				err = r.ForEach(func([]any) error { return nil })
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || forge.KindOf(err) != forge.Unavailable ||
			!(strings.Contains(err.Error(), "out of memory") || strings.Contains(err.Error(), "more memory than its share")) {
			t.Errorf("query %d: got %v, want an out of memory error (Unavailable)", i, err)
		}
	}
	if peak := procStatusKB(t, "VmHWM"); peak-base > 200<<10 {
		t.Errorf("this process grew from %d to %d KiB: the query ran in it", base, peak)
	}
	r, err := e.Query(context.Background(), "SELECT 42", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, r); len(got) != 1 || got[0][0] != int32(42) {
		t.Errorf("after the refused queries: got %v, want [[42]]", got)
	}
}

// At its deadline a query's worker is killed: the caller hears of the
// deadline, the process is gone, and the engine's only slot is free for the
// next query at once.
func TestIsolatedQueryIsKilledAtItsDeadline(t *testing.T) {
	e := newTestEngine(t, EngineOptions{Isolate: true, MemoryLimit: "500MiB", Threads: 1, MaxConcurrent: 1,
		QueryTimeout: time.Second})
	t.Cleanup(func() { e.Close() })
	var mu sync.Mutex
	var pids []int
	e.workers.started = func(pid int) { mu.Lock(); pids = append(pids, pid); mu.Unlock() }

	r, err := e.Query(context.Background(), "SELECT sum(hash(i)) FROM range(1000000000000) t(i)", nil, 0)
	if err == nil {
		err = r.ForEach(func([]any) error { return nil })
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
	mu.Lock()
	first := pids[0]
	mu.Unlock()
	if err := syscall.Kill(first, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("worker %d still exists after the deadline (kill 0: %v)", first, err)
	}
	r, err = e.Query(context.Background(), "SELECT 1", nil, 0)
	if err != nil {
		t.Fatalf("the next query: %v", err)
	}
	collect(t, r)
}
