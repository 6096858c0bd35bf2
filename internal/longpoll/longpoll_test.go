package longpoll_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/longpoll"
)

func TestBroadcastWakesWaiters(t *testing.T) {
	n := longpoll.New()
	var version atomic.Int64
	done := make(chan int64)
	for i := 0; i < 3; i++ {
		go func() {
			v, _ := longpoll.Wait(context.Background(), n, time.Hour, time.Hour, func() (int64, bool, error) {
				v := version.Load()
				return v, v > 0, nil
			})
			done <- v
		}()
	}
	time.Sleep(20 * time.Millisecond)
	version.Store(1)
	n.Broadcast()
	for i := 0; i < 3; i++ {
		select {
		case v := <-done:
			if v != 1 {
				t.Fatalf("woke with %d", v)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter was not woken by the broadcast (the poll interval is an hour)")
		}
	}
}

func TestTimeoutAndPoll(t *testing.T) {
	n := longpoll.New()
	calls := 0
	v, err := longpoll.Wait(context.Background(), n, 10*time.Millisecond, 100*time.Millisecond, func() (int, bool, error) {
		calls++
		return calls, false, nil
	})
	if err != nil || v < 3 {
		t.Fatalf("after the timeout: %d checks, err %v; want several polls", v, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := longpoll.Wait(ctx, n, time.Hour, time.Hour, func() (int, bool, error) { return 0, false, nil }); err != context.Canceled {
		t.Fatalf("cancelled wait: %v", err)
	}
}
