package duckq

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/forge-mlops/forge"
)

// budget shares one memory limit and one thread count among the DuckDB
// instances an Engine has open at once. DuckDB's memory_limit holds per
// instance, so n instances each given limit/n never hold more than limit
// together; a slot is taken before an instance opens and given back when it
// closes, and callers past the slots wait in a queue of bounded length.
//
// Threads are shared more loosely, as an excess costs time, not memory: an
// instance gets the threads no other holds, and at least its equal share.
// A lone query runs on all of them; a second one beside it on its share,
// so that together they use at most the budget plus the shares of the
// others.
//
// One shared instance would let a lone query use the whole limit, but
// allowed_paths and lock_configuration are instance-wide in DuckDB, so it
// could not give each query a sandbox that sees only its own datasets.
type budget struct {
	slots    chan struct{}
	queued   atomic.Int64
	maxQueue int64
	memory   string // each instance's share, in DuckDB syntax; "" for DuckDB's default
	threads  int    // each instance's least share; 0 for DuckDB's default
	total    int    // all the threads; 0 for DuckDB's default

	mu   sync.Mutex
	held int // threads of the instances open now
}

// slot is one instance's place in the budget.
type slot struct {
	threads int // 0: DuckDB's default
	release func()
}

func newBudget(opts EngineOptions) (*budget, error) {
	n := opts.MaxConcurrent
	if n <= 0 {
		n = 1
	}
	b := &budget{slots: make(chan struct{}, n), maxQueue: int64(opts.MaxQueued)}
	if opts.MemoryLimit != "" {
		total, err := parseBytes(opts.MemoryLimit)
		if err != nil {
			return nil, err
		}
		b.memory = fmt.Sprintf("%dB", total/int64(n))
	}
	if opts.Threads > 0 {
		b.threads = max(1, opts.Threads/n)
		b.total = max(opts.Threads, b.threads)
	}
	return b, nil
}

// errBusy is what a caller gets when every slot is taken and the queue is
// full: the server is overloaded, not broken, and the client may retry.
func (b *budget) errBusy() error {
	return forge.Errorf(forge.Unavailable, "the query engine is busy (%d running, %d waiting): try again later",
		cap(b.slots), b.maxQueue)
}

// acquire takes a slot, waiting in the queue while ctx allows, with its
// threads. The slot's release gives it back; it is safe to call more than
// once.
func (b *budget) acquire(ctx context.Context) (slot, error) {
	select {
	case b.slots <- struct{}{}:
	default:
		if b.queued.Add(1) > b.maxQueue && b.maxQueue > 0 {
			b.queued.Add(-1)
			return slot{}, b.errBusy()
		}
		select {
		case b.slots <- struct{}{}:
			b.queued.Add(-1)
		case <-ctx.Done():
			b.queued.Add(-1)
			return slot{}, fmt.Errorf("wait for the query engine: %w", ctx.Err())
		}
	}
	threads := 0
	if b.total > 0 {
		b.mu.Lock()
		threads = max(b.threads, b.total-b.held)
		b.held += threads
		b.mu.Unlock()
	}
	var once sync.Once
	return slot{threads: threads, release: func() {
		once.Do(func() {
			b.mu.Lock()
			b.held -= threads
			b.mu.Unlock()
			<-b.slots
		})
	}}, nil
}

// slotConnector gives an instance's slot back when database/sql closes the
// connector, which it does from DB.Close after DuckDB's own Close: every
// instance opened through the budget releases it exactly when its memory
// is freed.
type slotConnector struct {
	driver.Connector
	release func()
}

func (c *slotConnector) Close() error {
	var err error
	if cl, ok := c.Connector.(io.Closer); ok {
		err = cl.Close()
	}
	c.release()
	return err
}

// parseBytes reads a size as DuckDB writes one: a number and an optional
// unit, decimal (KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	mult, ok := map[string]float64{
		"": 1, "b": 1, "bytes": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if err != nil || !ok || v <= 0 {
		return 0, forge.Errorf(forge.Invalid, "memory limit %q: want a size such as 4GB or 512MiB", s)
	}
	return int64(v * mult), nil
}
