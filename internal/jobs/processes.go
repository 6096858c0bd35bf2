package jobs

import (
	"context"

	"github.com/forge-mlops/forge"
)

// Process is one process of a job's latest attempt, as the executor that
// runs it knows it (the local executor: the processes it started and the
// exits their shims recorded).
type Process struct {
	Rank    int    `json:"rank"`
	Node    string `json:"node,omitempty"`
	PID     int    `json:"pid,omitempty"`
	State   string `json:"state"` // running, exited or lost
	Code    *int   `json:"exit_code,omitempty"`
	Signal  int    `json:"signal,omitempty"`
	Message string `json:"message,omitempty"`
}

// Processes lists the processes of the job's latest attempt; nil when its
// executor does not report them (Slurm, Kubernetes) or the attempt has not
// started. Its errors are the executor's (a trace it no longer has is not
// one: the list is then empty).
func (s *Service) Processes(ctx context.Context, j Job) ([]Process, error) {
	if len(j.Attempts) == 0 {
		return nil, nil
	}
	a := j.Attempts[len(j.Attempts)-1]
	rep, ok := s.execs[a.Executor].(forge.ProcessReporter)
	if !ok || a.Handle == "" {
		return nil, nil
	}
	ps, err := rep.Processes(ctx, a.Handle)
	if err != nil {
		return nil, err
	}
	out := make([]Process, len(ps))
	for i, p := range ps {
		out[i] = Process{Rank: p.Rank, Node: p.Node, PID: p.PID, State: p.State, Signal: p.Signal, Message: p.Message}
		if p.State == "exited" {
			out[i].Code = &p.Code
		}
	}
	return out, nil
}
