package sweep

import (
	"context"
	"fmt"

	"github.com/forge-mlops/forge"
)

// prunePass reads the intermediate metric of the sweep's trials and stops
// the running ones that the early stopping rule gives up on: the trial is
// recorded as pruned first, then its job is cancelled with reason pruned
// (followPruned cancels again after a restart in between).
func (s *Service) prunePass(ctx context.Context, sw Sweep, ts []Trial) error {
	es := sw.Spec.EarlyStopping
	if es == nil || es.Type == "none" {
		return nil
	}
	maximize := sw.Spec.Objective.Goal == "maximize"
	var curves []Curve
	for _, t := range ts {
		if t.RunID == "" {
			continue
		}
		final := t.State != TrialRunning && t.State != TrialPending
		ps, ok := s.curves[t.RunID]
		if !ok || !final {
			raw, err := s.runs.MetricHistory(ctx, t.RunID, es.Metric)
			if err != nil {
				return fmt.Errorf("trial %d: read %s: %w", t.Number, es.Metric, err)
			}
			ps = LowerBetter(raw, maximize)
			// A pruned trial's curve is kept only once its job has
			// ended: until then it may log more.
			if final && (t.State != TrialPruned || s.ended[t.JobID]) {
				s.curves[t.RunID] = ps
			}
		}
		if len(ps) > 0 {
			curves = append(curves, Curve{Number: t.Number, Complete: t.State == TrialComplete, Points: ps})
		}
	}
	for i := range ts {
		t := &ts[i]
		if t.State != TrialRunning {
			continue
		}
		var me Curve
		var others []Curve
		for _, c := range curves {
			if c.Number == t.Number {
				me = c
			} else {
				others = append(others, c)
			}
		}
		stop, why := es.Prune(me, others)
		if !stop {
			continue
		}
		last := me.Points[len(me.Points)-1]
		v := last.Value
		if maximize {
			v = -v
		}
		t.State, t.Value, t.Message = TrialPruned, &v, fmt.Sprintf("pruned at step %d: %s", last.Step, why)
		if err := s.st.updateTrial(ctx, sw.Name, *t); err != nil {
			return err
		}
		s.log.Info("trial pruned", "sweep", sw.Name, "trial", t.Number, "step", last.Step, "why", why)
		if _, err := s.jobs.CancelFor(ctx, t.JobID, forge.ReasonPruned); err != nil && !forge.IsKind(err, forge.Conflict) {
			s.log.Warn("cancel pruned trial", "sweep", sw.Name, "trial", t.Number, "job", t.JobID, "err", err)
		}
	}
	return nil
}

// followPruned watches a pruned trial's job until it has ended, asking
// again for the cancel if it was not recorded (a restart in between).
func (s *Service) followPruned(ctx context.Context, t *Trial) error {
	if t.JobID == "" || s.ended[t.JobID] {
		return nil
	}
	j, err := s.jobs.Get(ctx, t.JobID)
	if err != nil {
		return err
	}
	if j.State.Final() {
		s.ended[t.JobID] = true
		return nil
	}
	if !j.CancelRequested {
		if _, err := s.jobs.CancelFor(ctx, t.JobID, forge.ReasonPruned); err != nil && !forge.IsKind(err, forge.Conflict) {
			return err
		}
	}
	return nil
}
