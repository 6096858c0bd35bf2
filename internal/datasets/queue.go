package datasets

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/kafka"
	"github.com/forge-mlops/forge/internal/queue/natsjs"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// IngestRequest asks for a version read from a message queue.
type IngestRequest struct {
	// Source is kafka://... or nats://..., credentials included; empty
	// with Continue: the source of the latest version.
	Source      string         `json:"source"`
	From        string         `json:"from,omitempty"`
	Until       string         `json:"until,omitempty"`
	Continue    bool           `json:"continue,omitempty"`
	Schema      []duckq.Column `json:"schema,omitempty"`
	Description string         `json:"description,omitempty"`
	CreatedBy   string         `json:"-"`
	// orFrom is where a Continue starts when no version was read from a
	// queue yet (a follow's first version); empty: that is an error.
	orFrom string
}

// QueueRecord is what a version read from a queue holds: the source
// without credentials, and per partition the exact range read.
type QueueRecord struct {
	Source      string        `json:"source"`
	Ranges      []queue.Range `json:"ranges"`
	From        string        `json:"from,omitempty"`
	Until       string        `json:"until,omitempty"`
	DeadLetters int64         `json:"dead_letters"`
	// DeadLetterDigest is the blob of the dead-letter JSON lines, one
	// queue.DeadLetter per message that could not be a row.
	DeadLetterDigest string `json:"dead_letter_digest,omitempty"`
}

// IngestResult is a version made from a queue, or none (Created false,
// Version nil) when the range held no message.
type IngestResult struct {
	Version  *Version    `json:"version"`
	Created  bool        `json:"created"`
	Messages int64       `json:"messages"`
	Queue    QueueRecord `json:"queue"`
}

// openQueue connects to the broker an endpoint names.
func (s *Service) openQueue(ctx context.Context, ep queue.Endpoint) (queue.Source, error) {
	ep = s.opts.Queues.WithAuth(ep)
	if ep.Scheme == "kafka" {
		return kafka.Open(ctx, ep)
	}
	return natsjs.Open(ctx, ep)
}

// Ingest reads a range of a topic or stream into the next version of name.
// Flat JSON messages become Parquet row groups in Go as they are read
// (queue.Writer.Columnar); other ranges stream through a JSON-lines file
// on disk to DuckDB. Memory does not grow with the range either way. With Continue the range starts right after
// the latest version's, and the version is recorded only if no other
// version was recorded after that one meanwhile: two ingests of one range
// cannot both land.
func (s *Service) Ingest(ctx context.Context, name string, req IngestRequest) (IngestResult, error) {
	if err := CheckName(name); err != nil {
		return IngestResult{}, err
	}
	var prev *QueueRecord
	if req.Continue {
		if req.From != "" {
			return IngestResult{}, forge.Errorf(forge.Invalid, "--continue starts after the latest version; it takes no --from")
		}
		rec, ok, err := s.LatestQueueRecord(ctx, name)
		if err != nil {
			return IngestResult{}, err
		}
		switch {
		case ok:
			prev = &rec
			if req.Source == "" {
				req.Source = rec.Source
			}
		case req.orFrom != "":
			req.From = req.orFrom
		default:
			return IngestResult{}, forge.Errorf(forge.NotFound, "--continue: dataset %s has no version read from a queue", name)
		}
	}
	ep, err := queue.ParseURL(req.Source)
	if err != nil {
		return IngestResult{}, err
	}
	if prev != nil && ep.String() != prev.Source {
		return IngestResult{}, forge.Errorf(forge.Invalid, "--continue: %s was read from %s, not %s", name, prev.Source, ep)
	}
	from, err := queue.ParsePosition(req.From, "from")
	if err != nil {
		return IngestResult{}, err
	}
	until, err := queue.ParsePosition(req.Until, "until")
	if err != nil {
		return IngestResult{}, err
	}
	if until.Kind == queue.Latest || until.Kind == queue.Earliest {
		return IngestResult{}, forge.Errorf(forge.Invalid, "--until %s: want now, an offset or a time", req.Until)
	}
	qreq := queue.Request{From: from, Until: until}
	if prev != nil {
		qreq.After = queue.Nexts(prev.Ranges)
	}
	src, err := s.openQueue(ctx, ep)
	if err != nil {
		return IngestResult{}, err
	}
	defer src.Close()

	dir, err := os.MkdirTemp(s.opts.TempDir, "forge-ingest-*")
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest %s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	schema := map[string]string{}
	for _, c := range req.Schema {
		schema[c.Name] = c.Type
	}
	w, err := queue.NewWriter(filepath.Join(dir, "rows.jsonl"), filepath.Join(dir, "dead.jsonl"), schema)
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest %s: %w", name, err)
	}
	pq := filepath.Join(dir, "data.parquet")
	w.Columnar(pq, func(parquetPath, jsonlPath string) error {
		s.log.Debug("queue range leaves the columnar path", "dataset", name, "source", ep.String())
		return s.engine.ParquetToJSONLines(ctx, parquetPath, jsonlPath)
	})
	started := time.Now()
	write, wait := w.Pipe()
	ranges, err := src.Read(ctx, qreq, write)
	if werr := wait(); err == nil {
		err = werr
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return IngestResult{}, err
	}
	rec := QueueRecord{Source: ep.String(), Ranges: ranges, DeadLetters: w.DeadLetters}
	if prev == nil {
		rec.From, rec.Until = from.String(), until.String()
	}
	res := IngestResult{Messages: w.Rows + w.DeadLetters, Queue: rec}
	if res.Messages == 0 {
		return res, nil
	}

	read := time.Since(started)
	cols := metaColumns(req.Schema)
	switch {
	case w.Parquet(): // written while reading
	case w.Rows > 0:
		_, err = s.engine.ConvertJSONLines(ctx, filepath.Join(dir, "rows.jsonl"), cols, pq)
	default:
		_, err = s.engine.EmptyParquet(ctx, cols, pq)
	}
	if err != nil {
		return IngestResult{}, fmt.Errorf("convert messages of %s: %w", ep, err)
	}
	os.Remove(filepath.Join(dir, "rows.jsonl"))
	s.log.Debug("queue range converted", "dataset", name, "source", rec.Source, "messages", res.Messages,
		"read", read, "convert", time.Since(started)-read, "columnar", w.Parquet())
	if w.DeadLetters > 0 {
		f, err := os.Open(filepath.Join(dir, "dead.jsonl"))
		if err != nil {
			return IngestResult{}, err
		}
		b, err := s.blobs.Put(ctx, f)
		f.Close()
		if err != nil {
			return IngestResult{}, fmt.Errorf("store dead letters of %s: %w", name, err)
		}
		rec.DeadLetterDigest = string(b.Digest)
	}
	f, digest, size, err := hashFile(pq)
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest %s: %w", name, err)
	}
	defer f.Close()
	info := AddInfo{Source: ep.String(), Description: req.Description, CreatedBy: req.CreatedBy}
	v, created, err := s.addFile(ctx, name, f, digest, size, info, func(tx *sqlstore.Tx, v Version) error {
		if req.Continue {
			if err := checkStillLatest(ctx, tx, name, prev); err != nil {
				return err
			}
		}
		return insertQueueRecord(ctx, tx, name, v.Version, rec)
	})
	if err != nil {
		return IngestResult{}, err
	}
	res.Version, res.Created, res.Queue = &v, created, rec
	if !created {
		// The same range again: the existing version holds it.
		if old, ok, err := s.QueueRecord(ctx, v.Name, v.Version); err == nil && ok {
			res.Queue = old
		}
	}
	return res, nil
}

// metaColumns are the types the meta columns always get, then the user's.
func metaColumns(user []duckq.Column) []duckq.Column {
	var cols []duckq.Column
	for _, m := range queue.MetaTypes {
		cols = append(cols, duckq.Column{Name: m[0], Type: m[1]})
	}
	return append(cols, user...)
}

func hashFile(path string) (*os.File, string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		f.Close()
		return nil, "", 0, err
	}
	return f, hex.EncodeToString(h.Sum(nil)), n, nil
}

// errMoved is the Conflict of a continued ingest that lost a race.
var errMoved = errors.New("moved")

// checkStillLatest fails when a version read from a queue was recorded
// after prev (nil: after none) while this ingest read its range.
func checkStillLatest(ctx context.Context, tx *sqlstore.Tx, name string, prev *QueueRecord) error {
	var ranges string
	err := tx.QueryRow(ctx, "SELECT ranges FROM dataset_queue_versions WHERE name = ? ORDER BY version DESC LIMIT 1", name).Scan(&ranges)
	if errors.Is(err, sql.ErrNoRows) && prev == nil {
		return nil
	}
	if prev == nil && err == nil {
		return forge.WrapError(forge.Conflict, errMoved, "another version of %s read from a queue was recorded meanwhile; nothing recorded, run it again", name)
	}
	if err != nil {
		return fmt.Errorf("check offsets of %s: %w", name, err)
	}
	var now []queue.Range
	if err := json.Unmarshal([]byte(ranges), &now); err != nil {
		return fmt.Errorf("decode offsets of %s: %w", name, err)
	}
	if !maps.Equal(queue.Nexts(now), queue.Nexts(prev.Ranges)) {
		return forge.WrapError(forge.Conflict, errMoved, "another version of %s read from %s was recorded meanwhile; nothing recorded, run it again", name, prev.Source)
	}
	return nil
}

func insertQueueRecord(ctx context.Context, tx *sqlstore.Tx, name string, version int64, rec QueueRecord) error {
	b, err := json.Marshal(rec.Ranges)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO dataset_queue_versions (name, version, source, ranges, from_pos, until_pos, dead_letters, dead_digest)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, name, version, rec.Source, string(b), rec.From, rec.Until, rec.DeadLetters, rec.DeadLetterDigest)
	if err != nil {
		return fmt.Errorf("record offsets of %s@%d: %w", name, version, err)
	}
	return nil
}

const queueCols = "source, ranges, from_pos, until_pos, dead_letters, dead_digest"

func scanQueueRecord(row *sql.Row) (QueueRecord, bool, error) {
	var rec QueueRecord
	var ranges string
	err := row.Scan(&rec.Source, &ranges, &rec.From, &rec.Until, &rec.DeadLetters, &rec.DeadLetterDigest)
	if errors.Is(err, sql.ErrNoRows) {
		return QueueRecord{}, false, nil
	}
	if err == nil {
		err = json.Unmarshal([]byte(ranges), &rec.Ranges)
	}
	if err != nil {
		return QueueRecord{}, false, fmt.Errorf("read queue offsets: %w", err)
	}
	return rec, true, nil
}

// LatestQueueRecord returns the queue record of name's latest version read
// from a queue.
func (s *Service) LatestQueueRecord(ctx context.Context, name string) (QueueRecord, bool, error) {
	return scanQueueRecord(s.db.QueryRow(ctx, "SELECT "+queueCols+" FROM dataset_queue_versions WHERE name = ? ORDER BY version DESC LIMIT 1", name))
}

// QueueRecord returns what version of name holds of a queue, if it was
// read from one.
func (s *Service) QueueRecord(ctx context.Context, name string, version int64) (QueueRecord, bool, error) {
	return scanQueueRecord(s.db.QueryRow(ctx, "SELECT "+queueCols+" FROM dataset_queue_versions WHERE name = ? AND version = ?", name, version))
}

// DeadLetters returns the dead-letter file of a version as JSON lines.
func (s *Service) DeadLetters(ctx context.Context, ref string) (Version, io.ReadCloser, error) {
	v, err := s.Get(ctx, ref)
	if err != nil {
		return Version{}, nil, err
	}
	rec, ok, err := s.QueueRecord(ctx, v.Name, v.Version)
	if err != nil {
		return Version{}, nil, err
	}
	if !ok {
		return Version{}, nil, forge.Errorf(forge.NotFound, "%s was not read from a queue: it has no dead letters", v.Ref())
	}
	if rec.DeadLetterDigest == "" {
		return v, io.NopCloser(strings.NewReader("")), nil
	}
	p, err := s.blobs.Path(forge.Digest(rec.DeadLetterDigest))
	if err != nil {
		return Version{}, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return Version{}, nil, fmt.Errorf("dead letters of %s: %w", v.Ref(), err)
	}
	return v, f, nil
}
