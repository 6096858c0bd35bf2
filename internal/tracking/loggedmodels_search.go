package tracking

import (
	"context"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/filter"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// noModelMetrics is why metric filters, metric ordering and datasets are
// refused: logged models carry no metrics on this server yet.
const noModelMetrics = "this server stores no logged-model metrics yet"

// SearchLoggedModels lists the models of experiments with MLflow's filter
// grammar (attributes, params.K, tags.K) and order_by (attributes), newest
// first by default, a page at a time.
func (s *Store) SearchLoggedModels(ctx context.Context, q Query) ([]LoggedModel, string, error) {
	if len(q.ExperimentIDs) == 0 {
		return nil, "", forge.Errorf(forge.Invalid, "experiment_ids must name at least one experiment")
	}
	clauses, err := filter.Parse(q.Filter, filter.LoggedModels)
	if err != nil {
		return nil, "", err
	}
	orders, err := filter.ParseOrderBy(q.OrderBy, filter.LoggedModels)
	if err != nil {
		return nil, "", err
	}
	limit, offset, err := q.page()
	if err != nil {
		return nil, "", err
	}
	ids := make([]any, len(q.ExperimentIDs))
	for i, id := range q.ExperimentIDs {
		n, err := parseExperimentID(id)
		if err != nil {
			n = -1 // matches nothing, as for runs
		}
		ids[i] = n
	}
	var sb sqlBuilder
	sb.where("m.experiment_id IN ("+sqlstore.Placeholders(len(ids))+")", ids...)
	for _, c := range clauses {
		switch c.Entity {
		case filter.Metric:
			return nil, "", forge.Errorf(forge.Invalid, "invalid filter %q: logged models cannot be filtered on metrics (metrics.%s): %s", q.Filter, c.Key, noModelMetrics)
		case filter.Tag, filter.Param:
			table := "logged_model_tags"
			if c.Entity == filter.Param {
				table = "logged_model_params"
			}
			cond, a := compare("kv.value", c)
			sb.where("EXISTS (SELECT 1 FROM "+table+" kv WHERE kv.model_id = m.model_id AND kv.key = ? AND "+cond+")", append([]any{c.Key}, a...)...)
		default:
			cond, a := compare("m."+c.Key, c)
			sb.where(cond, a...)
		}
	}
	order := []string{}
	for _, o := range orders {
		order = append(order, "m."+o.Key+dir(o.Desc))
	}
	if len(orders) == 0 {
		order = append(order, "m.creation_time DESC")
	}
	order = append(order, "m.model_id ASC")
	rows, err := s.db.Query(ctx, "SELECT "+prefixCols("m.", loggedModelCols)+" FROM logged_models m WHERE "+sb.cond()+
		" ORDER BY "+strings.Join(order, ", ")+" LIMIT ? OFFSET ?", append(sb.args, limit+1, offset)...)
	if err != nil {
		return nil, "", fmt.Errorf("search logged models: %w", err)
	}
	var out []LoggedModel
	for rows.Next() {
		m, err := scanLoggedModel(rows)
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out, next = out[:limit], pageToken(offset+limit)
	}
	for i := range out {
		if err := s.loadModelKVs(ctx, &out[i]); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// loggedModelOrder is one entry of MLflow 3's order_by list.
type loggedModelOrder struct {
	FieldName     string `json:"field_name"`
	Ascending     *bool  `json:"ascending"`
	DatasetName   string `json:"dataset_name"`
	DatasetDigest string `json:"dataset_digest"`
}

// orderClauses turns MLflow 3's order_by objects into order_by clauses of
// the filter grammar. Ascending is MLflow's default.
func orderClauses(orders []loggedModelOrder) ([]string, error) {
	out := make([]string, 0, len(orders))
	for _, o := range orders {
		f := strings.TrimSpace(o.FieldName)
		if f == "" {
			return nil, forge.Errorf(forge.Invalid, "invalid order_by: every entry needs a field_name")
		}
		if strings.HasPrefix(f, "metrics.") || strings.HasPrefix(f, "metric.") || o.DatasetName != "" || o.DatasetDigest != "" {
			return nil, forge.Errorf(forge.Invalid, "invalid order_by field %q: logged models cannot be ordered by metrics: %s", f, noModelMetrics)
		}
		if strings.ContainsAny(f, "`\"'") {
			return nil, forge.Errorf(forge.Invalid, "invalid order_by field %q", f)
		}
		d := " ASC"
		if o.Ascending != nil && !*o.Ascending {
			d = " DESC"
		}
		out = append(out, f+d)
	}
	return out, nil
}
