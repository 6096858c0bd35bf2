package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// traced runs fn under a DevTools trace (the devtools.timeline category,
// what the Performance panel records) and writes to w the renderer's
// events by total time: where a scroll's frames go (style, layout, paint,
// script). Times are inclusive: a parent's includes its children's.
func (b *browser) traced(w io.Writer, what string, fn func() error) error {
	var mu sync.Mutex
	var events []json.RawMessage
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *tracing.EventDataCollected:
			mu.Lock()
			for _, v := range e.Value {
				events = append(events, json.RawMessage(v))
			}
			mu.Unlock()
		case *tracing.EventTracingComplete:
			close(done)
		}
	})
	start := tracing.Start().WithTransferMode(tracing.TransferModeReportEvents).
		WithTraceConfig(&tracing.TraceConfig{IncludedCategories: []string{"devtools.timeline", "blink", "cc"}})
	if err := chromedp.Run(b.ctx, start); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	ferr := fn()
	if err := chromedp.Run(b.ctx, tracing.End()); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	select {
	case <-done:
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	type agg struct {
		name string
		n    int
		us   float64
	}
	by := map[string]*agg{}
	mu.Lock()
	for _, raw := range events {
		var e struct {
			Name string  `json:"name"`
			Ph   string  `json:"ph"`
			Dur  float64 `json:"dur"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Ph != "X" {
			continue
		}
		a := by[e.Name]
		if a == nil {
			a = &agg{name: e.Name}
			by[e.Name] = a
		}
		a.n++
		a.us += e.Dur

	}
	mu.Unlock()
	list := make([]*agg, 0, len(by))
	for _, a := range by {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].us > list[j].us })
	fmt.Fprintf(w, "trace of %s, events by total time:\n", what)
	for _, a := range list[:min(25, len(list))] {
		fmt.Fprintf(w, "  %-40s %6d x %9.1f ms\n", a.name, a.n, a.us/1000)
	}
	return ferr
}
