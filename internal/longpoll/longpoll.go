// Package longpoll is the waiting side of long-polling APIs (registry
// events, deployment changes): wake every waiter at once when this process
// changes something, and poll for changes other replicas made.
package longpoll

import (
	"context"
	"sync"
	"time"
)

// Notifier wakes every waiter at once: each Wait gets the current channel,
// and Broadcast closes it and makes a new one.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// New returns a Notifier.
func New() *Notifier { return &Notifier{ch: make(chan struct{})} }

// Changed returns a channel closed at the next Broadcast. Take it before
// reading the state it guards, so a change in between is not missed.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// Broadcast wakes everyone waiting now.
func (n *Notifier) Broadcast() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// Wait calls check until it reports done, an error, or timeout passes (then
// it returns check's last value). It checks again when n broadcasts and
// every poll interval, for changes made by other processes.
func Wait[T any](ctx context.Context, n *Notifier, poll, timeout time.Duration, check func() (T, bool, error)) (T, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		// Take the wake-up channel before checking, so a change committed
		// between the check and the wait still wakes us.
		wake := n.Changed()
		v, done, err := check()
		if err != nil || done {
			return v, err
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-deadline.C:
			return v, nil
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}
