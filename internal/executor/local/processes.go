package local

import (
	"context"
	"fmt"
	"strconv"

	"github.com/forge-mlops/forge"
)

// Processes implements forge.ProcessReporter: each process the attempt
// started, with its PID, its node (the local executor's nodes are
// numbered: rank / procs_per_node) and, once it has ended, the exit its
// shim recorded. A process gone without an exit file is lost. The exit
// files stay in the attempt's folder after the attempt.
func (e *Executor) Processes(ctx context.Context, fh forge.Handle) ([]forge.Process, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return nil, err
	}
	out := make([]forge.Process, 0, len(h.Procs))
	for _, p := range h.Procs {
		proc := forge.Process{Rank: p.Rank, PID: p.PID}
		if h.PPN > 0 {
			proc.Node = strconv.Itoa(p.Rank / h.PPN)
		}
		rec, ok := readExit(exitPath(h.Dir, p.Rank))
		switch {
		case ok:
			proc.State, proc.Code, proc.Signal, proc.Message = "exited", rec.Code, rec.Signal, rec.Msg
			if rec.OOM {
				proc.Message = "out of memory"
			} else if rec.Signal != 0 && rec.Msg == "" {
				proc.Message = fmt.Sprintf("killed by signal %d", rec.Signal)
			}
		case alive(p.PID, p.Start):
			proc.State = "running"
		default:
			proc.State, proc.Message = "lost", "the process is gone and left no exit status"
		}
		out = append(out, proc)
	}
	return out, ctx.Err()
}
