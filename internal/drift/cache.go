package drift

import (
	"fmt"
	"strings"
	"sync"
)

// The reference of a deployment does not change while it is served, but
// its statistics (distinct counts, spread, range, quantiles) and its
// histograms took a scan each on every report. With Options.ReferenceKey
// they are computed once per key, columns and options and kept here, a
// few at a time (a deployment has one reference per model version).
const maxCached = 32

type refEntry struct {
	mu    sync.Mutex
	stats map[string]refStats // read only once set
	hists []hist              // the binned columns' reference histograms, read only once set
}

var refCache = struct {
	sync.Mutex
	m map[string]*refEntry
}{m: map[string]*refEntry{}}

// cachedReference is the entry of opts.ReferenceKey with cols; nil (that
// keeps nothing) without a key.
func cachedReference(opts Options, cols []Column, large bool) *refEntry {
	if opts.ReferenceKey == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%q %v %d %d %d", opts.ReferenceKey, large, opts.PSIBins, opts.Bins, opts.MaxCategories)
	for _, c := range cols {
		fmt.Fprintf(&b, " %q:%s", c.Name, c.Kind)
	}
	k := b.String()
	refCache.Lock()
	defer refCache.Unlock()
	e := refCache.m[k]
	if e == nil {
		if len(refCache.m) >= maxCached {
			for old := range refCache.m { // any one: references come and go rarely
				delete(refCache.m, old)
				break
			}
		}
		e = &refEntry{}
		refCache.m[k] = e
	}
	return e
}

func (e *refEntry) statsOrNil() map[string]refStats {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *refEntry) setStats(s map[string]refStats) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = s
}

func (e *refEntry) histsOrNil() []hist {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hists
}

func (e *refEntry) setHists(h []hist) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hists = h
}
