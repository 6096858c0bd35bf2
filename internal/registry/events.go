package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/forge-mlops/forge/internal/longpoll"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Event types.
const (
	EventVersionCreated = "version_created"
	EventVersionDeleted = "version_deleted"
	EventAliasSet       = "alias_set"
	EventAliasDeleted   = "alias_deleted"
	EventStageChanged   = "stage_changed"
	EventModelRenamed   = "model_renamed"
	EventModelDeleted   = "model_deleted"
)

// Event is one registry change, numbered by Seq in commit order.
type Event struct {
	Seq       int64
	Type      string
	Model     string
	Version   int64  // 0 for model events
	Alias     string // alias_set, alias_deleted
	Stage     string // stage_changed
	OldName   string // model_renamed
	Timestamp int64  // ms since the epoch
}

// eventLock orders event writers (sqlstore.Tx.Serialize).
const eventLock = 7704

// event records a change inside the transaction that makes it. Writers are
// serialized before drawing a sequence number, so numbers commit in order
// and a follower that has read up to N never later finds an N-1 it missed.
func (r *Registry) event(ctx context.Context, tx *sqlstore.Tx, typ, model string, version int64, detail string) error {
	if err := tx.Serialize(ctx, eventLock); err != nil {
		return fmt.Errorf("lock registry events: %w", err)
	}
	_, err := tx.Exec(ctx, "INSERT INTO registry_events (type, model, version, detail, created_at) VALUES (?, ?, ?, ?, ?)",
		typ, model, version, detail, sqlstore.Now())
	if err != nil {
		return fmt.Errorf("record %s event: %w", typ, err)
	}
	return nil
}

// Head returns the sequence number of the last event, 0 when there is none.
// A follower reads the state it needs after taking Head, then watches from it.
func (r *Registry) Head(ctx context.Context) (int64, error) {
	var seq int64
	if err := r.db.QueryRow(ctx, "SELECT COALESCE(MAX(seq), 0) FROM registry_events").Scan(&seq); err != nil {
		return 0, fmt.Errorf("read registry event head: %w", err)
	}
	return seq, nil
}

// Events returns up to limit events after since, without waiting.
func (r *Registry) Events(ctx context.Context, since int64, limit int) ([]Event, error) {
	var out []Event
	err := r.each(ctx, fmt.Sprintf(`SELECT seq, type, model, version, detail, created_at FROM registry_events
		WHERE seq > ? ORDER BY seq LIMIT %d`, limit), []any{since}, func(rows *sql.Rows) error {
		var e Event
		var detail string
		if err := rows.Scan(&e.Seq, &e.Type, &e.Model, &e.Version, &detail, &e.Timestamp); err != nil {
			return err
		}
		switch e.Type {
		case EventAliasSet, EventAliasDeleted:
			e.Alias = detail
		case EventStageChanged:
			e.Stage = detail
		case EventModelRenamed:
			e.OldName = detail
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read registry events: %w", err)
	}
	return out, nil
}

// pollInterval bounds how late a watcher learns of a change made by another
// replica, which the in-process notifier cannot see.
const pollInterval = time.Second

// Watch returns the events after since, waiting up to timeout for the first
// one. It returns no events and no error when the timeout passes.
func (r *Registry) Watch(ctx context.Context, since int64, limit int, timeout time.Duration) ([]Event, error) {
	return longpoll.Wait(ctx, r.notify, pollInterval, timeout, func() ([]Event, bool, error) {
		evs, err := r.Events(ctx, since, limit)
		return evs, len(evs) > 0, err
	})
}
