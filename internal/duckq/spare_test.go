package duckq

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setting reads one of DuckDB's settings through db.
func setting(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("SELECT current_setting('" + name + "')::VARCHAR").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (s *spares) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spare != nil && !s.making
}

// An open takes the instance made ahead, gives it the setup of its own
// caller (a sandbox after an open without one, and the other way round),
// and starts making the next.
func TestOpenTakesTheSpare(t *testing.T) {
	e := newTestEngine(t, EngineOptions{MemoryLimit: "256MiB", Threads: 1, TempDir: t.TempDir()})
	p := datasets(t, e, map[string]string{"a": "x\n1\n2\n"})
	waitFor(t, "the spare", e.spares.ready)
	e.spares.mu.Lock()
	want := e.spares.spare
	e.spares.mu.Unlock()

	r, err := e.Query(context.Background(), "SELECT sum(x) FROM a", map[string]string{"a": p["a"]}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, r); len(got) != 1 || got[0][0] != float64(3) && got[0][0] != int64(3) {
		t.Errorf("sum = %v, want 3", got)
	}
	e.spares.mu.Lock()
	if e.spares.spare == want {
		t.Error("the query did not take the spare")
	}
	e.spares.mu.Unlock()
	waitFor(t, "the next spare", e.spares.ready)

	// The locked sandbox of the query stays with its instance: the next
	// open gets a fresh one, with full access and the engine's settings.
	db, err := e.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := setting(t, db, "lock_configuration"); got != "false" {
		t.Errorf("lock_configuration = %s after a sandboxed query, want false", got)
	}
	if got := setting(t, db, "threads"); got != "1" {
		t.Errorf("threads = %s, want 1", got)
	}
	if _, err := db.Exec("SET threads = 1"); err != nil {
		t.Errorf("an open instance's settings cannot be changed: %v", err)
	}
}

// A lone instance runs on all the budget's threads; one opened beside it
// gets its share, and the threads come back when it closes.
func TestThreadsLoneAndShared(t *testing.T) {
	e := newTestEngine(t, EngineOptions{Threads: 4, MaxConcurrent: 2, MemoryLimit: "512MiB"})
	ctx := context.Background()
	first, err := e.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := setting(t, first, "threads"); got != "4" {
		t.Errorf("lone instance: threads = %s, want 4", got)
	}
	second, err := e.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := setting(t, second, "threads"); got != "2" {
		t.Errorf("second instance: threads = %s, want its share 2", got)
	}
	// The memory limit is a hard share whatever the load.
	for _, db := range []*sql.DB{first, second} {
		if got := setting(t, db, "memory_limit"); !strings.HasPrefix(got, "256") {
			t.Errorf("memory_limit = %s, want 256 MiB (half of the budget)", got)
		}
	}
	first.Close()
	second.Close()
	again, err := e.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got := setting(t, again, "threads"); got != "4" {
		t.Errorf("lone again: threads = %s, want 4", got)
	}
}

// osThreads is the process's count of OS threads, DuckDB's workers among
// them.
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads in /proc/self/status")
	return 0
}

// Close frees the spare and the goroutine that makes it: engines made,
// used and closed leave no instance (each with its worker threads) and no
// goroutine behind, and an open after Close fails.
func TestCloseLeavesNothing(t *testing.T) {
	cycle := func() {
		e, err := NewEngine(EngineOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		db, err := e.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if e.spares.spare != nil || e.spares.making {
			t.Fatal("a spare is left after Close")
		}
		if _, err := e.Open(context.Background()); !errors.Is(err, errClosed) {
			t.Fatalf("open after Close: %v, want %v", err, errClosed)
		}
	}
	cycle() // the runtime's and DuckDB's one-time threads
	goroutines, threads := runtime.NumGoroutine(), osThreads(t)
	const n = 30
	for range n {
		cycle()
	}
	// Each leaked spare would hold its worker threads (DuckDB starts one
	// per core) and leave n behind; a few threads the Go runtime starts on
	// its own are allowed for.
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines+2 })
	if got := osThreads(t); got > threads+(n/3) {
		t.Errorf("OS threads went from %d to %d over %d engines", threads, got, n)
	}
}
