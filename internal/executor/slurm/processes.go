package slurm

import (
	"context"
	"fmt"
	"sort"

	"github.com/forge-mlops/forge"
)

// Processes implements forge.ProcessReporter from the exit files the
// tasks write on the shared file system (code, time, node): the tasks
// that have ended, each with its node and exit. Tasks still running, and
// their PIDs, are not known here (they live on the nodes): they are left
// out.
func (e *Executor) Processes(ctx context.Context, fh forge.Handle) ([]forge.Process, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return nil, err
	}
	rs := rankExits(h.Dir)
	sort.Slice(rs, func(i, j int) bool { return rs[i].rank < rs[j].rank })
	out := make([]forge.Process, 0, len(rs))
	for _, r := range rs {
		p := forge.Process{Rank: r.rank, Node: r.node, State: "exited", Code: r.code}
		if r.code > 128 { // bash reports a task killed by signal N as 128+N
			p.Signal, p.Message = r.code-128, fmt.Sprintf("killed by signal %d", r.code-128)
		}
		out = append(out, p)
	}
	return out, ctx.Err()
}
