package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// part is a long-lived piece of the server (the job scheduler, the
// deployment controller) that runs beside the HTTP server.
type part struct {
	name string
	run  func(context.Context) error
}

// group runs the parts and restarts any that stops before shutdown, with
// backoff; while a part is down the server is not ready, and /readyz names
// it.
type group struct {
	backoff, maxBackoff time.Duration
	restarts            *prometheus.CounterVec

	mu   sync.Mutex
	down map[string]bool               // parts waiting to restart
	stop map[string]context.CancelFunc // ends a part's current run
}

func newGroup(reg prometheus.Registerer) *group {
	g := &group{backoff: 100 * time.Millisecond, maxBackoff: 30 * time.Second, down: map[string]bool{}, stop: map[string]context.CancelFunc{},
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forge_part_restarts_total",
			Help: "Restarts of the server's long-lived parts after they stopped."}, []string{"part"})}
	reg.MustRegister(g.restarts)
	return g
}

// run supervises p until ctx ends.
func (g *group) run(ctx context.Context, p part, log func(msg string, args ...any)) {
	backoff := g.backoff
	g.restarts.WithLabelValues(p.name) // the series exists at 0
	for {
		pctx, cancel := context.WithCancel(ctx)
		g.mu.Lock()
		g.stop[p.name] = cancel
		delete(g.down, p.name)
		g.mu.Unlock()
		start := time.Now()
		err := p.run(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("returned without an error")
		}
		if time.Since(start) > time.Minute {
			backoff = g.backoff // it had been running fine
		}
		g.mu.Lock()
		g.down[p.name] = true
		g.mu.Unlock()
		g.restarts.WithLabelValues(p.name).Inc()
		log("background part stopped; restarting", "part", p.name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, g.maxBackoff)
	}
}

// unready names the parts that are down, or "" when all run. Only the
// names: /readyz answers anyone, the causes go to the log.
func (g *group) unready() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for name := range g.down {
		out = append(out, name)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// kill ends a part's current run as if it had died.
func (g *group) kill(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cancel := g.stop[name]; cancel != nil {
		cancel()
	}
}
