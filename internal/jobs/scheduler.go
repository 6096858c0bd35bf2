package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/forge-mlops/forge"
)

// Run re-attaches to the attempts that were running when the server last
// stopped, then schedules until ctx ends. Processes keep running when it
// returns; the next Run re-attaches to them.
func (s *Service) Run(ctx context.Context) error {
	if err := s.reconcile(ctx); err != nil {
		return err
	}
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case <-s.wake:
		case <-t.C:
		}
	}
}

func (s *Service) reconcile(ctx context.Context) error {
	running, err := s.st.list(ctx, Running, 1<<30)
	if err != nil {
		return err
	}
	for _, j := range running {
		exec := s.execs[j.Executor]
		if exec == nil {
			s.log.Warn("job ran on an executor that is not configured any more: lost", "job", j.ID, "executor", j.Executor)
			s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: fmt.Sprintf("executor %q is not configured any more", j.Executor)})
			continue
		}
		if j.Handle == "" {
			h, err := s.lookup(ctx, exec, j)
			if err != nil {
				// The cluster does not answer: whether the attempt runs is
				// unknown, so it is left as it is for the next start.
				s.log.Error("look up job started before the restart", "job", j.ID, "executor", j.Executor, "err", err)
				continue
			}
			if h == "" {
				// The server stopped between admitting and starting: whatever it
				// started is unknown.
				s.log.Warn("job was being started when the server stopped: lost", "job", j.ID)
				s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: "the server stopped while starting it"})
				continue
			}
			if err := s.st.setHandle(ctx, j.ID, j.Attempt, h); err != nil {
				return err
			}
			s.log.Info("found the attempt started before the restart", "job", j.ID, "executor", j.Executor)
			j.Handle = h
		}
		if attacher, ok := exec.(forge.Attacher); ok {
			if err := attacher.Attach(ctx, j.Handle); err != nil {
				s.log.Error("re-attach failed", "job", j.ID, "err", err)
			}
		}
		s.log.Info("re-attaching to running job", "job", j.ID, "attempt", j.Attempt, "executor", j.Executor)
		s.follow(ctx, j, j.Attempt, j.Handle)
	}
	return nil
}

// lookup finds an attempt whose handle was never recorded, on executors
// that can (Slurm knows its jobs by name); "" when there is none.
func (s *Service) lookup(ctx context.Context, exec forge.Executor, j Job) (forge.Handle, error) {
	lk, ok := exec.(lookuper)
	if !ok {
		return "", nil
	}
	h, err := lk.Lookup(ctx, j.ID, j.Attempt)
	if forge.IsKind(err, forge.NotFound) {
		return "", nil
	}
	return h, err
}

// Pass admits the queued jobs that fit, in priority then submission order,
// and returns how many. A job that does not fit now is passed over, so
// smaller jobs behind it may start (a job that can never fit is refused at
// submission).
func (s *Service) Pass(ctx context.Context) (int, error) {
	// Only executors that report a capacity limit admission; clusters queue
	// what they are given.
	type room struct {
		free forge.Resources
		full bool // nothing more fits
	}
	rooms := map[string]*room{}
	unlimited := false
	for name, exec := range s.execs {
		cr, ok := exec.(forge.CapacityReporter)
		if !ok {
			unlimited = true
			continue
		}
		_, f, err := cr.Capacity(ctx)
		if err != nil {
			s.log.Error("executor capacity", "executor", name, "err", err)
			rooms[name] = &room{full: true}
			continue
		}
		s.mu.Lock()
		rooms[name] = &room{free: f.Sub(s.pending[name])}
		s.mu.Unlock()
	}
	allFull := func() bool {
		if unlimited {
			return false
		}
		for _, r := range rooms {
			if !r.full {
				return false
			}
		}
		return true
	}
	var admit []queued
	err := s.st.eachQueued(ctx, func(q queued) bool {
		if _, ok := s.execs[q.executor]; !ok {
			return true // its executor was removed from the config: it waits
		}
		need := q.res.Times(q.nodes)
		if r := rooms[q.executor]; r != nil {
			if r.full || !need.Fits(r.free) {
				r.full = r.full || !(r.free.CPUs > 0 || r.free.GPUs > 0)
				return !allFull()
			}
			r.free = r.free.Sub(need)
		}
		admit = append(admit, q)
		return true
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range admit {
		j, ok, err := s.st.admit(ctx, q.id)
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		n++
		need := q.res.Times(q.nodes)
		s.mu.Lock()
		s.pending[j.Executor] = s.pending[j.Executor].Add(need)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.launch(ctx, j, need)
		}()
	}
	return n, nil
}

// launch prepares and starts an admitted attempt, then follows it.
func (s *Service) launch(ctx context.Context, j Job, need forge.Resources) {
	h, err := s.start(ctx, j)
	s.mu.Lock()
	s.pending[j.Executor] = s.pending[j.Executor].Sub(need)
	s.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: reconcile marks it lost on the next start
		}
		if forge.IsKind(err, forge.Unavailable) {
			s.log.Info("executor has no room yet: job back in the queue", "job", j.ID)
			if err := s.st.requeue(ctx, j.ID, j.Attempt); err != nil {
				s.log.Error("requeue failed", "job", j.ID, "err", err)
			}
			return
		}
		// What the job was given is wrong (a bundle that does not extract,
		// an input deleted since it was submitted): a fixed reason, which
		// a retry would only meet again.
		if forge.IsKind(err, forge.Invalid) || forge.IsKind(err, forge.NotFound) {
			s.log.Warn("job did not start", "job", j.ID, "err", err)
			s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonInvalid, Message: forge.Message(err)})
			return
		}
		// The cause (an OS error naming a folder of the data dir) is for the
		// server's log; the job's message is read by every client.
		s.log.Error("job did not start", "job", j.ID, "err", err)
		s.end(ctx, j, j.Attempt, "", forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: "could not start: internal error (the server's log has the cause, job " + j.ID + ")"})
		return
	}
	if err := s.st.setHandle(ctx, j.ID, j.Attempt, h); err != nil {
		s.log.Error("record handle failed: stopping the job", "job", j.ID, "err", err)
		s.execs[j.Executor].Cancel(context.WithoutCancel(ctx), h, forge.ReasonLost)
	}
	s.follow(ctx, j, j.Attempt, h)
}
