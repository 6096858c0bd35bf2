package tracking

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/filter"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// runAttrCols maps the filter package's canonical run attributes to columns.
var runAttrCols = map[string]string{
	"run_id": "r.run_uuid", "run_name": "r.name", "status": "r.status", "user_id": "r.user_id",
	"artifact_uri": "r.artifact_uri", "lifecycle_stage": "r.lifecycle_stage",
	"start_time": "r.start_time", "end_time": "r.end_time",
}

// SearchRuns finds runs in the given experiments with MLflow's filter and
// order_by, compiled to SQL; only the page's runs are then loaded.
func (s *Store) SearchRuns(ctx context.Context, q Query) ([]Run, string, error) {
	clauses, err := filter.Parse(q.Filter, filter.Runs)
	if err != nil {
		return nil, "", err
	}
	orders, err := filter.ParseOrderBy(q.OrderBy, filter.Runs)
	if err != nil {
		return nil, "", err
	}
	limit, offset, err := q.page()
	if err != nil {
		return nil, "", err
	}
	if len(q.ExperimentIDs) == 0 {
		return nil, "", forge.Errorf(forge.Invalid, "experiment_ids must name at least one experiment")
	}
	var sb sqlBuilder
	ids := make([]any, len(q.ExperimentIDs))
	for i, id := range q.ExperimentIDs {
		n, err := parseExperimentID(id)
		if err != nil {
			n = -1 // MLflow: an id it does not have matches no run
		}
		ids[i] = n
	}
	sb.where("r.experiment_id IN ("+sqlstore.Placeholders(len(ids))+")", ids...)
	w, args := q.View.where("r.lifecycle_stage")
	sb.where(w, args...)
	for _, c := range clauses {
		// Correlated EXISTS, not IN (subquery): the database probes each
		// candidate run by primary key instead of building every match.
		switch c.Entity {
		case filter.Metric:
			cond, a := compare("m.value", c)
			sb.where("EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_uuid = r.run_uuid AND m.key = ? AND m.is_nan = FALSE AND "+cond+")", append([]any{c.Key}, a...)...)
		case filter.Param:
			cond, a := compare("p.value", c)
			sb.where("EXISTS (SELECT 1 FROM params p WHERE p.run_uuid = r.run_uuid AND p.key = ? AND "+cond+")", append([]any{c.Key}, a...)...)
		case filter.Tag:
			cond, a := compare("t.value", c)
			sb.where("EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND "+cond+")", append([]any{c.Key}, a...)...)
		case filter.Dataset:
			col := map[string]string{"name": "d.dataset_name", "digest": "d.dataset_digest", "context": "d.context"}[c.Key]
			cond, a := compare(col, c)
			sb.where("EXISTS (SELECT 1 FROM run_inputs d WHERE d.run_uuid = r.run_uuid AND "+cond+")", a...)
		default:
			col, ok := runAttrCols[c.Key]
			if !ok {
				return nil, "", forge.Errorf(forge.Invalid, "invalid attribute key '%s'", c.Key)
			}
			cond, a := compare(col, c)
			sb.where(cond, a...)
		}
	}

	// Each order_by on a metric, param or tag joins that one key; runs that
	// lack it sort last, as MLflow does.
	var joins []string
	var joinArgs []any
	var order []string
	for i, o := range orders {
		alias := fmt.Sprintf("o%d", i)
		var col string
		if table := keyTable[o.Entity]; table != "" {
			if i > 0 {
				joins = append(joins, fmt.Sprintf("LEFT JOIN %s %s ON %s.run_uuid = r.run_uuid AND %s.key = ?", table, alias, alias, alias))
				joinArgs = append(joinArgs, o.Key)
			}
			col = alias + ".value"
		} else {
			c, ok := runAttrCols[o.Key]
			if !ok {
				return nil, "", forge.Errorf(forge.Invalid, "invalid order_by attribute '%s'", o.Key)
			}
			col = c
		}
		if i > 0 || keyTable[o.Entity] == "" {
			order = append(order, "CASE WHEN "+col+" IS NULL THEN 1 ELSE 0 END")
		}
		order = append(order, col+dir(o.Desc))
	}
	order = append(order, "r.start_time DESC", "r.run_uuid ASC")
	cols := "SELECT " + prefixCols("r.", runCols)
	tail := " ORDER BY " + strings.Join(order, ", ") + " LIMIT ? OFFSET ?"

	var out []Run
	if len(orders) == 0 || keyTable[orders[0].Entity] == "" {
		q := cols + " FROM runs r " + strings.Join(joins, " ") + " WHERE " + sb.cond() + tail
		if out, err = s.queryRuns(ctx, q, append(append(joinArgs, sb.args...), limit+1, offset)...); err != nil {
			return nil, "", err
		}
	} else if out, err = s.searchByKey(ctx, orders[0], cols, joins, joinArgs, &sb, tail, limit, offset); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out, next = out[:limit], pageToken(offset+limit)
	}
	return out, next, s.loadRunData(ctx, out)
}

// keyTable is where each keyed entity lives.
var keyTable = map[filter.Entity]string{filter.Metric: "latest_metrics", filter.Param: "params", filter.Tag: "tags"}

// searchByKey answers a search ordered first by a metric, param or tag in
// two parts: the runs that have the key, read in order from its (key, value)
// index, then the runs that lack it. With a page limit the first part stops
// early instead of sorting every run.
func (s *Store) searchByKey(ctx context.Context, o filter.OrderBy, cols string, joins []string, joinArgs []any, sb *sqlBuilder, tail string, limit, offset int) ([]Run, error) {
	table := keyTable[o.Entity]
	has := "o0.key = ?"
	if o.Entity == filter.Metric {
		has += " AND o0.is_nan = FALSE" // NaN sorts with the runs that lack the metric
	}
	// CROSS JOIN keeps SQLite from reordering the join: the key's index drives.
	from := " FROM " + table + " o0 CROSS JOIN runs r " + strings.Join(joins, " ") +
		" WHERE r.run_uuid = o0.run_uuid AND " + has + " AND " + sb.cond()
	args := append(append(append([]any{}, joinArgs...), o.Key), sb.args...)
	out, err := s.queryRuns(ctx, cols+from+tail, append(args, limit+1, offset)...)
	if err != nil || len(out) > limit {
		return out, err
	}
	// How many runs have the key, to place the page in the second part.
	var withKey int
	switch {
	case len(out) > 0 || offset == 0:
		withKey = offset + len(out)
	default:
		if err := s.db.QueryRow(ctx, "SELECT COUNT(*)"+from, args...).Scan(&withKey); err != nil {
			return nil, fmt.Errorf("search runs: %w", err)
		}
	}
	lacks := fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s x WHERE x.run_uuid = r.run_uuid AND x.key = ?", table)
	if o.Entity == filter.Metric {
		lacks += " AND x.is_nan = FALSE"
	}
	lacks += ")"
	// The second part has no o0: order by the remaining keys only.
	rest := strings.Replace(tail, "o0.value"+dir(o.Desc)+", ", "", 1)
	q := cols + " FROM runs r " + strings.Join(joins, " ") + " WHERE " + lacks + " AND " + sb.cond() + rest
	moreArgs := append(append(append([]any{}, joinArgs...), o.Key), sb.args...)
	more, err := s.queryRuns(ctx, q, append(moreArgs, limit+1-len(out), max(0, offset-withKey))...)
	return append(out, more...), err
}

func (s *Store) queryRuns(ctx context.Context, q string, args ...any) ([]Run, error) {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("search runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// loadRunData fills params, tags, latest metrics and inputs of runs, with
// one query per table per chunk of runs (at once on separate reader
// connections for a large page, see runLoads). Each query joins its table
// to the list of run ids and returns a row's position in that list, so a
// row finds its run by index instead of by comparing ids. Each query fills
// one field of the runs, so they do not race.
func (s *Store) loadRunData(ctx context.Context, runs []Run) error {
	const chunk = 5000 // a page may hold 50,000 runs: load them in parts
	for start := 0; start < len(runs); start += chunk {
		part := runs[start:min(start+chunk, len(runs))]
		ids := make([]string, len(part))
		for i := range part {
			ids[i] = part[i].ID
		}
		list, arg := s.db.StringsTable(ids)
		args := []any{arg}
		query := func(cols, table string) string {
			return "SELECT j.i, " + cols + " FROM " + list + " j JOIN " + table + " t ON t.run_uuid = j.v"
		}
		// kvs loads the params or tags of the runs into field.
		kvs := func(table string, field func(*Run) *[]KV) func(context.Context) error {
			return func(ctx context.Context) error {
				return s.eachRow(ctx, query("t.key, t.value", table), args, func(sc scanner) error {
					var i int
					var kv KV
					if err := sc.Scan(&i, &kv.Key, &kv.Value); err != nil {
						return err
					}
					f := field(&part[i])
					*f = append(*f, kv)
					return nil
				})
			}
		}
		loads := []func(context.Context) error{
			kvs("params", func(r *Run) *[]KV { return &r.Params }),
			kvs("tags", func(r *Run) *[]KV { return &r.Tags }),
			func(ctx context.Context) error {
				return s.eachRow(ctx, query("t.key, t.value, t.is_nan, t.timestamp, t.step", "latest_metrics"), args, func(sc scanner) error {
					var i int
					var m Metric
					var isNaN bool
					if err := sc.Scan(&i, &m.Key, &m.Value, &isNaN, &m.Timestamp, &m.Step); err != nil {
						return err
					}
					m.Value = loadedValue(m.Value, isNaN)
					part[i].Metrics = append(part[i].Metrics, m)
					return nil
				})
			},
			func(ctx context.Context) error {
				return s.eachRow(ctx, query("t.dataset_name, t.dataset_digest, t.source_type, t.source, t.schema, t.profile, t.tags_json", "run_inputs"), args, func(sc scanner) error {
					var i int
					var tags string
					var d DatasetInput
					if err := sc.Scan(&i, &d.Name, &d.Digest, &d.SourceType, &d.Source, &d.Schema, &d.Profile, &tags); err != nil {
						return err
					}
					json.Unmarshal([]byte(tags), &d.Tags)
					part[i].Inputs = append(part[i].Inputs, d)
					return nil
				})
			},
		}
		if err := runLoads(ctx, len(part), loads); err != nil {
			return err
		}
	}
	for i := range runs {
		sortByKey(runs[i].Params, func(kv KV) string { return kv.Key })
		sortByKey(runs[i].Tags, func(kv KV) string { return kv.Key })
		sortByKey(runs[i].Metrics, func(m Metric) string { return m.Key })
		sortByKey(runs[i].Inputs, func(d DatasetInput) string { return d.Name })
	}
	return nil
}

// runLoads runs the loaders of a page of n runs: one after the other for a
// few runs (GetRun, small pages), where goroutines and extra connections
// cost more than they save; at once on separate connections for more.
func runLoads(ctx context.Context, n int, loads []func(context.Context) error) error {
	if n < 50 {
		for _, load := range loads {
			if err := load(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, load := range loads {
		g.Go(func() error { return load(gctx) })
	}
	return g.Wait()
}

// sortByKey puts a run's entries in key order, as MLflow returns them. They
// usually come from the primary key's index in that order already, but SQL
// promises no order without ORDER BY, and a sort in the database costs more
// than this check.
func sortByKey[T any](xs []T, key func(T) string) {
	cmp := func(a, b T) int { return strings.Compare(key(a), key(b)) }
	if !slices.IsSortedFunc(xs, cmp) {
		slices.SortStableFunc(xs, cmp)
	}
}

type scanner interface{ Scan(...any) error }

func (s *Store) eachRow(ctx context.Context, q string, args []any, fn func(scanner) error) error {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("load run data: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
