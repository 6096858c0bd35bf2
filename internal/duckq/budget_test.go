package duckq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
)

// procStatusKB reads a field such as VmHWM from /proc/self/status, in KiB.
func procStatusKB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// Concurrent queries that build huge strings are refused with an out of
// memory error once they reach their share of the engine's budget, and
// the process's peak memory stays within the budget (plus what Go and
// DuckDB hold outside it). Without the shared budget each instance would
// get all 600 MiB, and five together would go far past it.
func TestBudgetHoldsAcrossConcurrentQueries(t *testing.T) {
	const budgetMB = 600
	e := newTestEngine(t, EngineOptions{MemoryLimit: strconv.Itoa(budgetMB) + "MiB", Threads: 5, MaxConcurrent: 5,
		TempDir: t.TempDir(), QueryTimeout: time.Minute})
	// Writing 5 to clear_refs resets VmHWM to the current RSS.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS: %v", err)
	}
	base := procStatusKB(t, "VmHWM")

	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.Query(context.Background(), "select length(string_agg(repeat('x', 1000000), '')) from range(100000)", nil, 0)
			if err == nil {
				err = r.ForEach(func([]any) error { return nil })
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "out of memory") || forge.KindOf(err) != forge.Unavailable {
			t.Errorf("query %d: got %v, want an out of memory error (Unavailable)", i, err)
		}
	}
	// 200 MiB for the Go runtime, DuckDB's instances and its allocator's
	// slack, which the budget does not count.
	peak := procStatusKB(t, "VmHWM") - base
	t.Logf("peak RSS grew by %d MiB", peak>>10)
	if peak > (budgetMB+200)<<10 {
		t.Errorf("peak RSS grew by %d MiB, budget %d MiB", peak>>10, budgetMB)
	}

	// A query that fits in its share still runs.
	r, err := e.Query(context.Background(), "select length(string_agg(repeat('x', 1000000), '')) from range(20)", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rows := collect(t, r); len(rows) != 1 || rows[0][0] != int64(20_000_000) {
		t.Errorf("got %v, want [[20000000]]", rows)
	}
}

// With every slot taken and the queue full, a query is refused at once as
// busy; a queued one runs when a slot is given back.
func TestBudgetQueueAndBusy(t *testing.T) {
	e := newTestEngine(t, EngineOptions{MaxConcurrent: 1, MaxQueued: 1})
	held, err := e.open(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan error, 1)
	go func() {
		r, err := e.Query(context.Background(), "SELECT 42", nil, 0)
		if err == nil {
			err = r.ForEach(func(row []any) error {
				if fmt.Sprint(row[0]) != "42" {
					return errors.New("wrong answer")
				}
				return nil
			})
		}
		queued <- err
	}()
	for e.budget.queued.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	_, err = e.Query(context.Background(), "SELECT 1", nil, 0)
	if forge.KindOf(err) != forge.Unavailable || !strings.Contains(err.Error(), "busy") {
		t.Errorf("third query: got %v, want Unavailable, busy", err)
	}
	held.Close()
	if err := <-queued; err != nil {
		t.Errorf("queued query: %v", err)
	}
	// A query waiting for a slot past its deadline gives up with the deadline.
	held, err = e.open(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.Query(ctx, "SELECT 1", nil, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting query: got %v, want context.DeadlineExceeded", err)
	}
}

// DuckDB checks for an interrupt only between chunks of work; one chunk of
// levenshtein over long strings runs for a minute or more. The query's
// timeout still answers the caller when it passes.
func TestQueryTimeoutAnswersDuringLongChunk(t *testing.T) {
	e := newTestEngine(t, EngineOptions{Threads: 1, QueryTimeout: time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := e.Query(context.Background(),
			"select max(levenshtein(repeat('a', 40000) || a.range, repeat('b', 40000))) from range(8) a", nil, 0)
		done <- err
	}()
	// A guard against a hang, far beyond the one-second timeout; the
	// query itself runs for minutes.
	guard := time.NewTimer(20 * time.Second)
	defer guard.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
	case <-guard.C:
		t.Fatal("the query did not return long after its timeout")
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4GB": 4e9, "512MiB": 512 << 20, "1.5 GB": 1.5e9, "100": 100, "2kb": 2000} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "4 parsecs", "0"} {
		if _, err := parseBytes(in); forge.KindOf(err) != forge.Invalid {
			t.Errorf("parseBytes(%q): got %v, want Invalid", in, err)
		}
	}
}
