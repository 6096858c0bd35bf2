package jobs

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// State is where a job is in its life.
type State string

const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Final reports whether the job will not change any more.
func (s State) Final() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Job is a submitted job and what became of it.
type Job struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	State           State        `json:"state"`
	Priority        int          `json:"priority"`
	SubmittedAt     int64        `json:"submitted_at"` // ms since the epoch
	Spec            Spec         `json:"spec"`
	Executor        string       `json:"executor"` // the name of the executor that runs it
	Attempt         int          `json:"attempt"`  // attempts started so far
	Handle          forge.Handle `json:"-"`
	StartedAt       int64        `json:"started_at,omitempty"`
	FinishedAt      int64        `json:"finished_at,omitempty"`
	ExitCode        *int         `json:"exit_code,omitempty"`
	Reason          forge.Reason `json:"reason,omitempty"`
	Message         string       `json:"message,omitempty"`
	CancelRequested bool         `json:"cancel_requested,omitempty"`
	RunID           string       `json:"run_id,omitempty"`
	ExperimentID    string       `json:"experiment_id,omitempty"`
	Attempts        []Attempt    `json:"attempts,omitempty"`
}

// Attempt is one try at running a job.
type Attempt struct {
	Attempt    int          `json:"attempt"`
	Executor   string       `json:"executor"`
	Handle     forge.Handle `json:"-"`
	StartedAt  int64        `json:"started_at"`
	FinishedAt int64        `json:"finished_at,omitempty"`
	ExitCode   *int         `json:"exit_code,omitempty"`
	Reason     forge.Reason `json:"reason,omitempty"`
	Message    string       `json:"message,omitempty"`
	LogDigest  string       `json:"log_digest,omitempty"`
	LogSize    int64        `json:"log_size,omitempty"`
}

// store is the jobs' tables.
type store struct{ db *sqlstore.DB }

var idSeq atomic.Uint32

// newID makes a job id that sorts by submission time, also within a
// millisecond (the queue's last tie-break), and is unique across servers.
func newID() string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("j%011x%04x%s", time.Now().UnixMilli(), uint16(idSeq.Add(1)), hex.EncodeToString(b[:]))
}

func (st *store) insert(ctx context.Context, j *Job) error {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return err
	}
	r := j.Spec.Resources()
	_, err = st.db.Exec(ctx, `INSERT INTO jobs (id, name, state, priority, submitted_at, spec, cpus, memory_bytes, gpus, nodes, executor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Name, string(j.State), j.Priority, j.SubmittedAt, string(spec), r.CPUs, r.MemoryBytes, r.GPUs, j.Spec.Nodes, j.Executor)
	if err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	return nil
}

const jobCols = `id, name, state, priority, submitted_at, spec, attempt, handle, started_at, finished_at,
	exit_code, reason, message, cancel_requested, run_id, experiment_id, executor`

type scanner interface{ Scan(...any) error }

func scanJob(s scanner) (Job, error) {
	var j Job
	var spec string
	var handle, reason, msg, runID, expID sql.NullString
	var started, finished, code sql.NullInt64
	var cancel int
	err := s.Scan(&j.ID, &j.Name, &j.State, &j.Priority, &j.SubmittedAt, &spec, &j.Attempt, &handle,
		&started, &finished, &code, &reason, &msg, &cancel, &runID, &expID, &j.Executor)
	if err != nil {
		return j, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return j, fmt.Errorf("job %s: stored spec: %w", j.ID, err)
	}
	j.Handle, j.Reason, j.Message = forge.Handle(handle.String), forge.Reason(reason.String), msg.String
	j.StartedAt, j.FinishedAt = started.Int64, finished.Int64
	if code.Valid {
		c := int(code.Int64)
		j.ExitCode = &c
	}
	j.CancelRequested, j.RunID, j.ExperimentID = cancel != 0, runID.String, expID.String
	return j, nil
}

func (st *store) get(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(st.db.QueryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
	if err != nil {
		return j, sqlstore.NotFound(err, "no job %q", id)
	}
	rows, err := st.db.Query(ctx, `SELECT attempt, executor, handle, started_at, finished_at, exit_code, reason, message, log_digest, log_size
		FROM job_attempts WHERE job_id = ? ORDER BY attempt`, id)
	if err != nil {
		return j, fmt.Errorf("read attempts of job %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Attempt
		var handle, reason, msg, digest sql.NullString
		var finished, code, size sql.NullInt64
		if err := rows.Scan(&a.Attempt, &a.Executor, &handle, &a.StartedAt, &finished, &code, &reason, &msg, &digest, &size); err != nil {
			return j, err
		}
		a.Handle, a.Reason, a.Message, a.LogDigest = forge.Handle(handle.String), forge.Reason(reason.String), msg.String, digest.String
		a.FinishedAt, a.LogSize = finished.Int64, size.Int64
		if code.Valid {
			c := int(code.Int64)
			a.ExitCode = &c
		}
		j.Attempts = append(j.Attempts, a)
	}
	return j, rows.Err()
}

// list returns jobs newest first, optionally in one state.
func (st *store) list(ctx context.Context, state State, limit int) ([]Job, error) {
	q, args := "SELECT "+jobCols+" FROM jobs", []any{}
	if state != "" {
		q += " WHERE state = ?"
		args = append(args, string(state))
	}
	q += " ORDER BY submitted_at DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := st.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// queued is what the scheduler needs of a queued job.
type queued struct {
	id       string
	executor string
	res      forge.Resources // per node
	nodes    int
}

// eachQueued calls fn on queued jobs in admission order (priority, then
// submission) until fn returns false: one indexed scan.
func (st *store) eachQueued(ctx context.Context, fn func(q queued) bool) error {
	rows, err := st.db.Query(ctx, `SELECT id, executor, cpus, memory_bytes, gpus, nodes FROM jobs
		WHERE state = 'queued' ORDER BY priority DESC, submitted_at, id`)
	if err != nil {
		return fmt.Errorf("read queue: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var q queued
		if err := rows.Scan(&q.id, &q.executor, &q.res.CPUs, &q.res.MemoryBytes, &q.res.GPUs, &q.nodes); err != nil {
			return err
		}
		if !fn(q) {
			break
		}
	}
	return rows.Err()
}

// admit moves a queued job to running with a new attempt; false if it was
// not queued any more (cancelled meanwhile).
func (st *store) admit(ctx context.Context, id string) (Job, bool, error) {
	var ok bool
	now := sqlstore.Now()
	err := st.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE jobs SET state = 'running', attempt = attempt + 1, started_at = ?, handle = NULL,
			exit_code = NULL, reason = NULL, message = NULL WHERE id = ? AND state = 'queued'`, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		ok = true
		_, err = tx.Exec(ctx, `INSERT INTO job_attempts (job_id, attempt, started_at, executor)
			SELECT id, attempt, ?, executor FROM jobs WHERE id = ?`, now, id)
		return err
	})
	if err != nil || !ok {
		return Job{}, false, err
	}
	j, err := st.get(ctx, id)
	return j, err == nil, err
}

// requeue undoes an admission whose start the executor refused for now.
func (st *store) requeue(ctx context.Context, id string, attempt int) error {
	return st.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM job_attempts WHERE job_id = ? AND attempt = ?", id, attempt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE jobs SET state = 'queued', attempt = attempt - 1, started_at = NULL WHERE id = ? AND attempt = ?", id, attempt)
		return err
	})
}

func (st *store) setHandle(ctx context.Context, id string, attempt int, h forge.Handle) error {
	return st.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE jobs SET handle = ? WHERE id = ? AND attempt = ?", string(h), id, attempt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE job_attempts SET handle = ? WHERE job_id = ? AND attempt = ?", string(h), id, attempt)
		return err
	})
}

func (st *store) setRun(ctx context.Context, id, runID, expID string) error {
	_, err := st.db.Exec(ctx, "UPDATE jobs SET run_id = ?, experiment_id = ? WHERE id = ?", runID, expID, id)
	return err
}

// finish records how an attempt ended and moves the job to next (queued
// again for a retry, or a final state).
func (st *store) finish(ctx context.Context, id string, attempt int, exit forge.Exit, logDigest string, logSize int64, next State) error {
	now := sqlstore.Now()
	return st.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE job_attempts SET finished_at = ?, exit_code = ?, reason = ?, message = ?, log_digest = ?, log_size = ?
			WHERE job_id = ? AND attempt = ?`, now, exit.Code, string(exit.Reason), exit.Message, nullable(logDigest), logSize, id, attempt); err != nil {
			return err
		}
		var finished any
		if next.Final() {
			finished = now
		}
		_, err := tx.Exec(ctx, `UPDATE jobs SET state = ?, finished_at = ?, exit_code = ?, reason = ?, message = ?, handle = NULL
			WHERE id = ? AND attempt = ?`, string(next), finished, exit.Code, string(exit.Reason), exit.Message, id, attempt)
		return err
	})
}

// requestCancel cancels a queued job at once, or marks a running one for
// the supervisor; it returns the job as it is now.
func (st *store) requestCancel(ctx context.Context, id string) (Job, error) {
	err := st.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, "SELECT state FROM jobs WHERE id = ?", id).Scan(&state); err != nil {
			return sqlstore.NotFound(err, "no job %q", id)
		}
		switch State(state) {
		case Queued:
			_, err := tx.Exec(ctx, `UPDATE jobs SET state = 'cancelled', reason = 'cancelled', cancel_requested = 1,
				finished_at = ?, message = 'cancelled before it started' WHERE id = ?`, sqlstore.Now(), id)
			return err
		case Running:
			_, err := tx.Exec(ctx, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", id)
			return err
		}
		return forge.Errorf(forge.Conflict, "job %s has already ended (%s)", id, state)
	})
	if err != nil {
		return Job{}, err
	}
	return st.get(ctx, id)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
