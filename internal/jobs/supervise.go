package jobs

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/forge-mlops/forge"
)

// follow supervises a started attempt in a goroutine: timeout, cancel
// requests, metrics, and its end.
func (s *Service) follow(ctx context.Context, j Job, attempt int, h forge.Handle) {
	s.mu.Lock()
	s.watching[j.ID] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.watching, j.ID)
			s.mu.Unlock()
		}()
		s.supervise(ctx, j, attempt, h)
	}()
}

func (s *Service) supervise(ctx context.Context, j Job, attempt int, h forge.Handle) {
	exec := s.execs[j.Executor]
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		exit forge.Exit
		err  error
	}
	done := make(chan result, 1)
	go func() {
		e, err := exec.Wait(wctx, h)
		done <- result{e, err}
	}()

	// A cancel that came while starting, or before a restart, is acted on now.
	if cur, err := s.st.get(ctx, j.ID); err == nil && cur.CancelRequested {
		exec.Cancel(ctx, h, forge.ReasonCancelled)
	}
	var timeout <-chan time.Time
	if d, _ := j.Spec.TimeoutDuration(); d > 0 {
		started := time.UnixMilli(j.StartedAt)
		if j.StartedAt == 0 {
			started = time.Now()
		}
		t := time.NewTimer(time.Until(started.Add(d)))
		defer t.Stop()
		timeout = t.C
	}
	sampler, _ := exec.(forge.Sampler)
	var sample <-chan time.Time
	if sampler != nil && s.runs != nil {
		t := time.NewTicker(s.cfg.SampleEvery)
		defer t.Stop()
		sample = t.C
	}
	var last forge.Usage
	var step int64
	runID := j.RunID
	for {
		select {
		case r := <-done:
			if r.err != nil {
				if ctx.Err() == nil {
					s.log.Error("wait for job failed", "job", j.ID, "err", r.err)
				}
				return // the next server start re-attaches
			}
			s.end(ctx, j, attempt, h, r.exit)
			return
		case <-timeout:
			s.log.Info("job past its timeout: stopping it", "job", j.ID, "timeout", j.Spec.Timeout)
			if err := exec.Cancel(ctx, h, forge.ReasonTimeout); err != nil {
				s.log.Error("stop job past its timeout", "job", j.ID, "err", err)
			}
		case <-sample:
			if runID == "" {
				if cur, err := s.st.get(ctx, j.ID); err == nil {
					runID = cur.RunID
				}
			}
			u, err := sampler.Usage(ctx, h)
			if err != nil || runID == "" {
				continue
			}
			m := map[string]float64{"system/memory_mb": float64(u.MemoryBytes) / (1 << 20)}
			if !last.At.IsZero() {
				if dt := u.At.Sub(last.At).Seconds(); dt > 0 {
					m["system/cpu_percent"] = 100 * (u.CPUSeconds - last.CPUSeconds) / dt
				}
			}
			last = u
			if err := s.runs.LogSystemMetrics(ctx, runID, m, step); err != nil {
				s.log.Warn("log system metrics", "job", j.ID, "err", err)
			}
			step++
		case <-ctx.Done():
			return
		}
	}
}

// end records an attempt's end: its log goes to the blob store, and the job
// is queued again if its retry policy says so, or ends.
func (s *Service) end(ctx context.Context, j Job, attempt int, h forge.Handle, exit forge.Exit) {
	// Recording the end must not be cut short by a shutdown that began
	// after the processes ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// The processes are gone: so is their token.
	s.dropToken(ctx, j.ID, attempt)
	var digest string
	var size int64
	if exec := s.execs[j.Executor]; h != "" && exec != nil {
		if r, err := exec.Logs(ctx, h, 0); err == nil {
			info, err := s.blobs.Put(ctx, r)
			r.Close()
			if err != nil {
				s.log.Error("store job log", "job", j.ID, "err", err)
			} else {
				digest, size = string(info.Digest), info.Size
			}
		}
	}
	cur, err := s.st.get(ctx, j.ID)
	if err != nil {
		s.log.Error("read job at its end", "job", j.ID, "err", err)
		return
	}
	next := Succeeded
	switch {
	case !exit.Failed():
	case exit.Reason == forge.ReasonCancelled || exit.Reason == forge.ReasonPruned || cur.CancelRequested:
		next = Cancelled
		if exit.Reason != forge.ReasonPruned {
			exit.Reason = forge.ReasonCancelled
		}
	case attempt <= cur.Spec.MaxRetries && cur.Spec.retryable(exit):
		next = Queued
	default:
		next = Failed
	}
	if err := s.st.finish(ctx, j.ID, attempt, exit, digest, size, next); err != nil {
		s.log.Error("record job end", "job", j.ID, "err", err)
		return
	}
	s.log.Info("job attempt ended", "job", j.ID, "attempt", attempt, "code", exit.Code, "reason", exit.Reason, "state", next)
	if s.runs != nil && cur.RunID != "" && next.Final() {
		status := map[State]string{Succeeded: "FINISHED", Failed: "FAILED", Cancelled: "KILLED"}[next]
		if err := s.runs.SetRunStatus(ctx, cur.RunID, status); err != nil {
			s.log.Warn("set run status", "job", j.ID, "err", err)
		}
	}
	os.RemoveAll(filepath.Join(s.attemptDir(j.ID, attempt), "code"))
	s.poke()
	if next.Final() && s.cfg.OnEnd != nil {
		s.cfg.OnEnd()
	}
}
