// Package deploy makes model versions answer under a serving name: a
// deployment routes /v2/models/NAME/infer to a version of a registered
// model, pinned by number or following an alias, with an optional canary.
//
// Deployments are stored in the metadata database. A Controller turns them
// into the inference server's state: it resolves each ref, loads and warms
// the versions no route uses yet, swaps the routes in one step each, and
// then unloads (after draining) the versions nothing routes to any more, so
// a rollout never fails a request. It follows the registry's event log, so
// a deployment on an alias moves when the alias does.
//
// The same Controller runs inside `forge server`, over the database, the
// registry and the blob store, and in `forge serve --server URL`, over the
// server's HTTP API (Source is the seam between the two).
package deploy

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/longpoll"
	"github.com/forge-mlops/forge/internal/names"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Deployment is a serving name and what it serves.
type Deployment struct {
	Name          string
	Model, Ref    string // Ref: a version number, an alias or "latest"
	CanaryModel   string // "" for no canary
	CanaryRef     string
	CanaryPercent int // share of the requests the canary takes, 1..99
	MaxBatchSize  int
	MaxQueueDelay time.Duration
	// PayloadRate is the share of requests (0 to 1) logged, with their
	// responses, to the dataset payloads.NAME; 0: the server's default.
	PayloadRate float64
	// Reference is the dataset version (DATASET@VERSION) the deployment's
	// traffic is compared with; "": the one lineage gives.
	Reference string
	// PayloadColumns name the logged input columns, in the order of the
	// model's flattened inputs: the reference's columns, checked against
	// the model's inputs when the deployment was stored.
	PayloadColumns []string
	// PayloadTo is a topic (kafka://BROKER/TOPIC) or NATS subject or
	// stream (nats://HOST:PORT/NAME) the logged rows are also published to,
	// as JSON objects; "": none.
	PayloadTo string
	CreatedAt int64 // ms since the epoch
	UpdatedAt int64
}

// PayloadDataset is the dataset a deployment logs its payloads to.
func PayloadDataset(name string) string { return "payloads." + name }

// equal reports whether two deployments are the same.
func (d Deployment) equal(o Deployment) bool {
	return slices.Equal(d.PayloadColumns, o.PayloadColumns) && d.withoutColumns() == o.withoutColumns()
}

// deploymentKey is a Deployment without its slice, so == compares it.
type deploymentKey struct {
	Name, Model, Ref, CanaryModel, CanaryRef string
	CanaryPercent, MaxBatchSize              int
	MaxQueueDelay                            time.Duration
	PayloadRate                              float64
	Reference, PayloadTo                     string
	CreatedAt, UpdatedAt                     int64
}

func (d Deployment) withoutColumns() deploymentKey {
	return deploymentKey{d.Name, d.Model, d.Ref, d.CanaryModel, d.CanaryRef, d.CanaryPercent, d.MaxBatchSize,
		d.MaxQueueDelay, d.PayloadRate, d.Reference, d.PayloadTo, d.CreatedAt, d.UpdatedAt}
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks a deployment's fields, not whether its models exist.
func (d *Deployment) Validate() error {
	if !nameRe.MatchString(d.Name) {
		return forge.Errorf(forge.Invalid, "invalid deployment name %q: use up to 128 letters, digits, '.', '_' and '-', starting with a letter or digit", d.Name)
	}
	if d.Model == "" {
		return forge.Errorf(forge.Invalid, "invalid model name %q", d.Model)
	}
	if err := names.CheckModel("model name", d.Model); err != nil {
		return err
	}
	if d.Ref == "" {
		d.Ref = "latest"
	}
	if d.CanaryModel == "" {
		if d.CanaryRef != "" || d.CanaryPercent != 0 {
			return forge.Errorf(forge.Invalid, "canary_ref and canary_percent need a canary_model")
		}
	} else {
		if err := names.CheckModel("canary model name", d.CanaryModel); err != nil {
			return err
		}
		if d.CanaryRef == "" {
			d.CanaryRef = "latest"
		}
		if d.CanaryPercent < 1 || d.CanaryPercent > 99 {
			return forge.Errorf(forge.Invalid, "canary percent %d is out of range: want 1 to 99", d.CanaryPercent)
		}
	}
	if d.MaxBatchSize < 0 {
		return forge.Errorf(forge.Invalid, "max batch size %d is negative", d.MaxBatchSize)
	}
	if !(d.PayloadRate >= 0 && d.PayloadRate <= 1) {
		return forge.Errorf(forge.Invalid, "payload log rate %v is out of range: want 0 to 1", d.PayloadRate)
	}
	if d.Reference != "" && !strings.Contains(d.Reference, "@") {
		return forge.Errorf(forge.Invalid, "invalid reference %q: want DATASET@VERSION", d.Reference)
	}
	if d.PayloadTo != "" {
		ep, err := queue.ParseURL(d.PayloadTo)
		if err != nil {
			return err
		}
		if ep.HasSecret() {
			return forge.Errorf(forge.Invalid, "%s: --log-payloads-to cannot keep a password or token (it would be stored with the deployment); give the broker's credentials in the server's config (queues:)", ep)
		}
		if d.PayloadRate <= 0 {
			return forge.Errorf(forge.Invalid, "--log-payloads-to %s needs --log-payloads, the share of requests logged (0 to 1)", ep)
		}
	}
	if d.MaxQueueDelay < 0 || d.MaxQueueDelay > time.Minute {
		return forge.Errorf(forge.Invalid, "max queue delay %s is out of range: want 0 to 1m", d.MaxQueueDelay)
	}
	return nil
}

// refs returns what the deployment routes to, with weights in percent.
func (d Deployment) refs() []ref {
	if d.CanaryModel == "" {
		return []ref{{d.Model, d.Ref, 100}}
	}
	return []ref{{d.Model, d.Ref, 100 - d.CanaryPercent}, {d.CanaryModel, d.CanaryRef, d.CanaryPercent}}
}

type ref struct {
	model, ref string
	weight     int
}

// Store keeps deployments in the metadata database.
type Store struct {
	db     *sqlstore.DB
	notify *longpoll.Notifier
}

// NewStore returns a store over db (migrated to include the deployments table).
func NewStore(db *sqlstore.DB) *Store { return &Store{db: db, notify: longpoll.New()} }

func notFound(name string) error {
	return forge.Errorf(forge.NotFound, "deployment %q not found", name)
}

// Put creates or replaces a deployment; CreatedAt is kept on a replace.
func (s *Store) Put(ctx context.Context, d Deployment) (Deployment, error) {
	if err := d.Validate(); err != nil {
		return Deployment{}, err
	}
	now := sqlstore.Now()
	d.UpdatedAt = now
	err := s.db.Tx(ctx, func(tx *sqlstore.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO deployments (name, model, ref, canary_model, canary_ref, canary_percent,
		max_batch_size, max_queue_delay_us, payload_rate, reference, payload_columns, payload_to, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET model = excluded.model, ref = excluded.ref, canary_model = excluded.canary_model,
		canary_ref = excluded.canary_ref, canary_percent = excluded.canary_percent, max_batch_size = excluded.max_batch_size,
		max_queue_delay_us = excluded.max_queue_delay_us, payload_rate = excluded.payload_rate,
		reference = excluded.reference, payload_columns = excluded.payload_columns, payload_to = excluded.payload_to, updated_at = excluded.updated_at
		RETURNING created_at`,
			d.Name, d.Model, d.Ref, d.CanaryModel, d.CanaryRef, d.CanaryPercent, d.MaxBatchSize,
			d.MaxQueueDelay.Microseconds(), d.PayloadRate, d.Reference, encodeColumns(d.PayloadColumns), d.PayloadTo, now, now).Scan(&d.CreatedAt)
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("store deployment %q: %w", d.Name, err)
	}
	s.notify.Broadcast()
	return d, nil
}

// Delete removes a deployment.
func (s *Store) Delete(ctx context.Context, name string) error {
	res, err := s.db.Exec(ctx, "DELETE FROM deployments WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("delete deployment %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(name)
	}
	s.notify.Broadcast()
	return nil
}

const columns = `name, model, ref, canary_model, canary_ref, canary_percent, max_batch_size, max_queue_delay_us,
	payload_rate, reference, payload_columns, payload_to, created_at, updated_at`

func encodeColumns(cols []string) string {
	if len(cols) == 0 {
		return ""
	}
	b, _ := json.Marshal(cols)
	return string(b)
}

// Get returns one deployment.
func (s *Store) Get(ctx context.Context, name string) (Deployment, error) {
	ds, err := s.query(ctx, "SELECT "+columns+" FROM deployments WHERE name = ?", name)
	if err != nil {
		return Deployment{}, err
	}
	if len(ds) == 0 {
		return Deployment{}, notFound(name)
	}
	return ds[0], nil
}

// List returns every deployment by name.
func (s *Store) List(ctx context.Context) ([]Deployment, error) {
	return s.query(ctx, "SELECT "+columns+" FROM deployments ORDER BY name")
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]Deployment, error) {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		var d Deployment
		var delay int64
		var cols string
		if err := rows.Scan(&d.Name, &d.Model, &d.Ref, &d.CanaryModel, &d.CanaryRef, &d.CanaryPercent,
			&d.MaxBatchSize, &delay, &d.PayloadRate, &d.Reference, &cols, &d.PayloadTo, &d.CreatedAt, &d.UpdatedAt); err != nil {
			return nil, fmt.Errorf("read deployments: %w", err)
		}
		if cols != "" {
			if err := json.Unmarshal([]byte(cols), &d.PayloadColumns); err != nil {
				return nil, fmt.Errorf("read deployment %q: payload columns: %w", d.Name, err)
			}
		}
		d.MaxQueueDelay = time.Duration(delay) * time.Microsecond
		out = append(out, d)
	}
	if err := rows.Err(); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	return out, nil
}

// Revision names the current list of deployments: it changes whenever one
// is created, changed or deleted, on this replica or another.
func Revision(ds []Deployment) string {
	b, _ := json.Marshal(ds)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// WaitChange returns the deployments once their revision differs from rev,
// or when timeout passes. Changes on this replica wake it at once; changes
// made through another replica are seen by polling.
func (s *Store) WaitChange(ctx context.Context, rev string, timeout time.Duration) ([]Deployment, error) {
	return longpoll.Wait(ctx, s.notify, time.Second, timeout, func() ([]Deployment, bool, error) {
		ds, err := s.List(ctx)
		return ds, Revision(ds) != rev, err
	})
}
