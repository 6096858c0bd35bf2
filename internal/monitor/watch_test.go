package monitor

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/deploy"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Run makes a pass on every tick of its (here injected) ticker and when
// Sync asks, and stops when its context ends; Sync needs it running.
func TestRunTicksAndStops(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqlstore.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ticks := make(chan time.Time) // unbuffered: a send returns once Run took the tick
	m := New(Monitor{Deployments: deploy.NewStore(db), Log: slog.New(slog.DiscardHandler), Watch: Watch{Ticks: ticks}}, nil)
	if err := m.Sync(ctx); err == nil {
		t.Fatal("Sync with Run not running: no error")
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	for range 3 { // the first send returns once Run is in its loop
		ticks <- time.Now()
	}
	// Once the third tick's pass is over, Sync's pass is a fourth: a Sync
	// while the third has not yet begun would be met by it, rightly.
	for deadline := time.Now().Add(10 * time.Second); m.passes() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d passes after 3 ticks", m.passes())
		}
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.passes(); n != 4 {
		t.Errorf("%d passes after 3 ticks and a Sync, want 4", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := m.Sync(ctx); err == nil {
		t.Error("Sync after Run stopped: no error")
	}
}
