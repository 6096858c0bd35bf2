package jobs

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/forge-mlops/forge"
)

// ExecutorInfo is what `forge executors ls` shows of one executor.
type ExecutorInfo struct {
	Name      string `json:"name"`
	Kind      string `json:"kind,omitempty"`
	Default   bool   `json:"default"`
	Reachable bool   `json:"reachable"`
	// Error says why it is not reachable.
	Error string `json:"error,omitempty"`
	// Total is what it has in all, and Free what is not taken, where known.
	Total *forge.Resources `json:"total,omitempty"`
	Free  *forge.Resources `json:"free,omitempty"`
}

// probeTimeout bounds how long a listing waits for a cluster to answer.
const probeTimeout = 5 * time.Second

// Executors describes the executors, by name; the clusters are asked in
// parallel.
func (s *Service) Executors(ctx context.Context) []ExecutorInfo {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	names := s.names()
	out := make([]ExecutorInfo, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		out[i] = ExecutorInfo{Name: name, Kind: s.cfg.Kinds[name], Default: name == s.cfg.DefaultExecutor, Reachable: true}
		wg.Add(1)
		go func(info *ExecutorInfo) {
			defer wg.Done()
			exec := s.execs[info.Name]
			if cr, ok := exec.(forge.CapacityReporter); ok {
				total, free, err := cr.Capacity(ctx)
				if err != nil {
					info.Reachable, info.Error = false, err.Error()
					return
				}
				info.Total, info.Free = &total, &free
			}
			if probe := s.cfg.Probes[info.Name]; probe != nil {
				total, err := probe(ctx)
				if err != nil {
					info.Reachable, info.Error = false, err.Error()
					return
				}
				if total != nil {
					info.Total = total
				}
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}

// names lists the executors' names in order.
func (s *Service) names() []string {
	names := make([]string, 0, len(s.execs))
	for name := range s.execs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
