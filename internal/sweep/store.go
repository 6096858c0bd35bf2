package sweep

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Sweep states.
const (
	Running  = "running"
	Stopped  = "stopped"
	Finished = "finished"
	Failed   = "failed"
)

// Trial states.
const (
	TrialPending   = "pending" // row written, job not yet submitted
	TrialRunning   = "running"
	TrialComplete  = "complete"
	TrialPruned    = "pruned" // stopped early: its job cancelled with reason pruned
	TrialFailed    = "failed"
	TrialCancelled = "cancelled"
)

// Sweep is a stored sweep.
type Sweep struct {
	Name         string `json:"name"`
	Spec         Spec   `json:"spec"`
	State        string `json:"state"`
	Message      string `json:"message,omitempty"`
	CreatedAt    int64  `json:"created_at"`
	FinishedAt   int64  `json:"finished_at,omitempty"`
	ParentRunID  string `json:"parent_run_id,omitempty"`
	ExperimentID string `json:"experiment_id,omitempty"`
}

// Trial is one point of a sweep.
type Trial struct {
	Number  int               `json:"number"`
	Params  map[string]string `json:"params"`
	State   string            `json:"state"`
	JobID   string            `json:"job_id,omitempty"`
	RunID   string            `json:"run_id,omitempty"`
	Value   *float64          `json:"value,omitempty"`
	Message string            `json:"message,omitempty"`
	logged  bool
	fresh   bool // added by this process: no job submitted for it before
}

type store struct{ db *sqlstore.DB }

func (st store) create(ctx context.Context, sw *Sweep) error {
	spec, err := json.Marshal(sw.Spec)
	if err != nil {
		return err
	}
	var n int
	if err := st.db.QueryRow(ctx, "SELECT COUNT(*) FROM sweeps WHERE name = ?", sw.Name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return forge.Errorf(forge.AlreadyExists, "name: a sweep %q exists", sw.Name)
	}
	_, err = st.db.Exec(ctx, `INSERT INTO sweeps (name, spec, state, created_at, parent_run_id, experiment_id) VALUES (?, ?, ?, ?, ?, ?)`,
		sw.Name, string(spec), sw.State, sw.CreatedAt, sw.ParentRunID, sw.ExperimentID)
	if err != nil {
		return fmt.Errorf("insert sweep: %w", err)
	}
	return nil
}

const sweepCols = "name, spec, state, message, created_at, finished_at, parent_run_id, experiment_id"

func scanSweep(sc interface{ Scan(...any) error }) (Sweep, error) {
	var sw Sweep
	var spec string
	var fin sql.NullInt64
	if err := sc.Scan(&sw.Name, &spec, &sw.State, &sw.Message, &sw.CreatedAt, &fin, &sw.ParentRunID, &sw.ExperimentID); err != nil {
		return sw, err
	}
	sw.FinishedAt = fin.Int64
	if err := json.Unmarshal([]byte(spec), &sw.Spec); err != nil {
		return sw, fmt.Errorf("sweep %s: stored spec: %w", sw.Name, err)
	}
	// Normalize restores what it derives (categorical choices).
	if err := sw.Spec.Normalize(); err != nil {
		return sw, fmt.Errorf("sweep %s: stored spec: %w", sw.Name, err)
	}
	return sw, nil
}

func (st store) get(ctx context.Context, name string) (Sweep, error) {
	sw, err := scanSweep(st.db.QueryRow(ctx, "SELECT "+sweepCols+" FROM sweeps WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return sw, forge.Errorf(forge.NotFound, "no sweep %q", name)
	}
	return sw, err
}

// list returns sweeps newest first, only running ones if active.
func (st store) list(ctx context.Context, active bool) ([]Sweep, error) {
	q := "SELECT " + sweepCols + " FROM sweeps"
	if active {
		q += " WHERE state = 'running'"
	}
	rows, err := st.db.Query(ctx, q+" ORDER BY created_at DESC, name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Sweep
	for rows.Next() {
		sw, err := scanSweep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sw)
	}
	return out, rows.Err()
}

func (st store) setState(ctx context.Context, name, state, msg string, finished int64) error {
	_, err := st.db.Exec(ctx, "UPDATE sweeps SET state = ?, message = ?, finished_at = ? WHERE name = ?",
		state, msg, sql.NullInt64{Int64: finished, Valid: finished != 0}, name)
	return err
}

func (st store) trials(ctx context.Context, name string) ([]Trial, error) {
	rows, err := st.db.Query(ctx, `SELECT number, params, state, job_id, run_id, logged, value, message
		FROM sweep_trials WHERE sweep = ? ORDER BY number`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Trial
	for rows.Next() {
		var t Trial
		var params string
		var logged int
		var v sql.NullFloat64
		if err := rows.Scan(&t.Number, &params, &t.State, &t.JobID, &t.RunID, &logged, &v, &t.Message); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(params), &t.Params); err != nil {
			return nil, fmt.Errorf("sweep %s trial %d: %w", name, t.Number, err)
		}
		t.logged = logged != 0
		if v.Valid {
			t.Value = &v.Float64
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (st store) addTrial(ctx context.Context, name string, t Trial) error {
	params, err := json.Marshal(t.Params)
	if err != nil {
		return err
	}
	_, err = st.db.Exec(ctx, "INSERT INTO sweep_trials (sweep, number, params, state) VALUES (?, ?, ?, ?)",
		name, t.Number, string(params), t.State)
	return err
}

func (st store) updateTrial(ctx context.Context, name string, t Trial) error {
	var v sql.NullFloat64
	if t.Value != nil {
		v = sql.NullFloat64{Float64: *t.Value, Valid: true}
	}
	logged := 0
	if t.logged {
		logged = 1
	}
	_, err := st.db.Exec(ctx, "UPDATE sweep_trials SET state = ?, job_id = ?, run_id = ?, logged = ?, value = ?, message = ? WHERE sweep = ? AND number = ?",
		t.State, t.JobID, t.RunID, logged, v, t.Message, name, t.Number)
	return err
}
