package datasets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Follow is a server-side ingestor: it cuts a new version of Name from
// Source every Every, or whenever EveryRows messages are waiting.
type Follow struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	EveryMS   int64  `json:"every_ms,omitempty"`
	EveryRows int64  `json:"every_rows,omitempty"`
	Schema    string `json:"schema,omitempty"`
	CreatedBy string `json:"created_by"`
	CreatedAt int64  `json:"created_at"`
	LastRunAt int64  `json:"last_run_at"` // when the follower last looked at the source
	LastError string `json:"last_error"`
}

var everyRows = regexp.MustCompile(`^([0-9]+)\s*rows$`)

// ParseEvery reads "10m" (a duration of at least a second) or "100000rows".
func ParseEvery(s string) (ms, rows int64, err error) {
	s = strings.TrimSpace(s)
	if m := everyRows.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n < 1 {
			return 0, 0, forge.Errorf(forge.Invalid, "--every %q: want at least 1 row", s)
		}
		return 0, n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return 0, 0, forge.Errorf(forge.Invalid, "--every %q: want a duration of at least 1s (10m) or a row count (100000rows)", s)
	}
	return d.Milliseconds(), 0, nil
}

// AddFollow registers a follow, after checking that its source can be read.
// A source with a password or token is refused: the follow's row would keep
// the secret in the database.
func (s *Service) AddFollow(ctx context.Context, f Follow) (Follow, error) {
	if err := CheckName(f.Name); err != nil {
		return Follow{}, err
	}
	ep, err := queue.ParseURL(f.Source)
	if err != nil {
		return Follow{}, err
	}
	if ep.HasSecret() {
		return Follow{}, forge.Errorf(forge.Invalid, "%s: a follow cannot keep a password or token (it would be stored in the database); use a broker account without one", ep)
	}
	if (f.EveryMS > 0) == (f.EveryRows > 0) {
		return Follow{}, forge.Errorf(forge.Invalid, "a follow needs --every, a duration or a row count")
	}
	if _, err := ParseSchema(f.Schema); err != nil {
		return Follow{}, err
	}
	if rec, ok, err := s.LatestQueueRecord(ctx, f.Name); err != nil {
		return Follow{}, err
	} else if ok && rec.Source != ep.String() {
		return Follow{}, forge.Errorf(forge.Invalid, "dataset %s was read from %s, not %s", f.Name, rec.Source, ep)
	}
	src, err := s.openQueue(ctx, ep)
	if err != nil {
		return Follow{}, err
	}
	src.Close()
	f.Source, f.CreatedAt, f.LastRunAt, f.LastError = ep.String(), sqlstore.Now(), 0, ""
	_, err = s.db.Exec(ctx, `INSERT INTO dataset_follows (name, source, every_ms, every_rows, schema, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, f.Name, f.Source, f.EveryMS, f.EveryRows, f.Schema, f.CreatedBy, f.CreatedAt)
	if sqlstore.IsUniqueViolation(err) {
		return Follow{}, forge.Errorf(forge.Conflict, "dataset %s is already followed; remove that follow first", f.Name)
	}
	if err != nil {
		return Follow{}, fmt.Errorf("add follow of %s: %w", f.Name, err)
	}
	s.log.Info("dataset follow added", "dataset", f.Name, "source", f.Source)
	return f, nil
}

// Follows lists the follows by name.
func (s *Service) Follows(ctx context.Context) ([]Follow, error) {
	rows, err := s.db.Query(ctx, `SELECT name, source, every_ms, every_rows, schema, created_by, created_at, last_run_at, last_error
		FROM dataset_follows ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list follows: %w", err)
	}
	defer rows.Close()
	out := []Follow{}
	for rows.Next() {
		var f Follow
		if err := rows.Scan(&f.Name, &f.Source, &f.EveryMS, &f.EveryRows, &f.Schema, &f.CreatedBy, &f.CreatedAt, &f.LastRunAt, &f.LastError); err != nil {
			return nil, fmt.Errorf("list follows: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// RemoveFollow stops following name; its versions stay.
func (s *Service) RemoveFollow(ctx context.Context, name string) error {
	res, err := s.db.Exec(ctx, "DELETE FROM dataset_follows WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("remove follow of %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return forge.Errorf(forge.NotFound, "dataset %s is not followed", name)
	}
	return nil
}

// FollowOnce cuts the next version of a follow now: the messages after the
// latest version's offsets, or the whole topic for the first version. It
// returns the result of the ingest.
func (s *Service) FollowOnce(ctx context.Context, f Follow) (IngestResult, error) {
	schema, err := ParseSchema(f.Schema)
	if err != nil {
		return IngestResult{}, err
	}
	return s.Ingest(ctx, f.Name, IngestRequest{Source: f.Source, Continue: true, orFrom: "earliest",
		Schema: schema, Description: "followed from " + f.Source, CreatedBy: f.CreatedBy})
}

func (s *Service) followRan(ctx context.Context, name string, at int64, err error) {
	msg := ""
	if err != nil {
		msg = forge.Message(err)
	}
	s.db.Exec(ctx, "UPDATE dataset_follows SET last_run_at = ?, last_error = ? WHERE name = ?", at, msg, name)
}

// Follower runs the follows of a Service: one loop on the server, each
// follow's ingest in turn. What it records survives any crash exactly: a
// version and its offsets commit together, and the next ingest starts from
// the offsets of the latest version.
type Follower struct {
	svc  *Service
	poll time.Duration
	log  *slog.Logger
}

// NewFollower returns a Follower that looks at the follows every poll
// (default 1s).
func NewFollower(svc *Service, poll time.Duration, log *slog.Logger) *Follower {
	if poll <= 0 {
		poll = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{svc: svc, poll: poll, log: log}
}

// Run follows until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		fs, err := f.svc.Follows(ctx)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("list follows", "err", err)
		}
		for _, fl := range fs {
			if ctx.Err() != nil {
				break
			}
			f.step(ctx, fl)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// errBackoff is how long a follow that failed waits before it tries again.
const errBackoff = 10 * time.Second

func (f *Follower) step(ctx context.Context, fl Follow) {
	now := sqlstore.Now()
	since := time.Duration(now-fl.LastRunAt) * time.Millisecond
	if fl.LastError != "" && since < errBackoff {
		return
	}
	if fl.EveryMS > 0 && since < time.Duration(fl.EveryMS)*time.Millisecond {
		return
	}
	if fl.EveryRows > 0 {
		n, err := f.pending(ctx, fl)
		if err != nil {
			f.failed(ctx, fl, now, err)
			return
		}
		if n < fl.EveryRows {
			f.svc.followRan(ctx, fl.Name, now, nil) // looked: not enough yet
			return
		}
	}
	res, err := f.svc.FollowOnce(ctx, fl)
	if err != nil {
		f.failed(ctx, fl, now, err)
		return
	}
	f.svc.followRan(ctx, fl.Name, now, nil)
	if res.Created {
		f.log.Info("followed", "dataset", res.Version.Ref(), "source", fl.Source, "messages", res.Messages)
	}
}

func (f *Follower) failed(ctx context.Context, fl Follow, now int64, err error) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	f.log.Warn("follow", "dataset", fl.Name, "source", fl.Source, "err", err)
	f.svc.followRan(ctx, fl.Name, now, err)
}

// pending counts the messages published after the latest version.
func (f *Follower) pending(ctx context.Context, fl Follow) (int64, error) {
	ep, err := queue.ParseURL(fl.Source)
	if err != nil {
		return 0, err
	}
	src, err := f.svc.openQueue(ctx, ep)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	ends, err := src.Ends(ctx)
	if err != nil {
		return 0, err
	}
	rec, ok, err := f.svc.LatestQueueRecord(ctx, fl.Name)
	if err != nil {
		return 0, err
	}
	var next map[int32]int64
	if ok {
		next = queue.Nexts(rec.Ranges)
	}
	var n int64
	for p, end := range ends {
		// A partition new since the last version counts from 0 (Kafka) or
		// the start: close enough for a threshold.
		n += max(0, end-next[p])
	}
	return n, nil
}
