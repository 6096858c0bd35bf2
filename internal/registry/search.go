package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/filter"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Query is a search request in MLflow's terms.
type Query struct {
	Filter     string
	OrderBy    []string
	MaxResults int // 0 for the default
	PageToken  string
}

// Result limits, as MLflow has them.
const (
	defaultModelResults   = 100
	maxModelResults       = 1000
	defaultVersionResults = 10000
	maxVersionResults     = 10000
)

// searchTarget maps a filter schema onto tables.
type searchTarget struct {
	schema   *filter.Schema
	columns  map[string]string // canonical attribute -> column
	tagTable string            // tags of the searched rows
	tagOwner string            // its owner column
	ownerCol string            // the searched row's id column
	order    string            // default ORDER BY
	idCol    string            // last tie-breaker, so pages are stable
}

var modelTarget = searchTarget{
	schema:   filter.RegisteredModels,
	columns:  map[string]string{"name": "m.name", "creation_timestamp": "m.creation_timestamp", "last_updated_timestamp": "m.last_updated_timestamp"},
	tagTable: "registered_model_tags", tagOwner: "model_id", ownerCol: "m.id",
	order: "m.name ASC", idCol: "m.id",
}

var versionTarget = searchTarget{
	schema: filter.ModelVersions,
	columns: map[string]string{
		"name": "m.name", "run_id": "v.run_id", "source_path": "v.source", "version_number": "v.version",
		"creation_timestamp": "v.creation_timestamp", "last_updated_timestamp": "v.last_updated_timestamp",
	},
	tagTable: "model_version_tags", tagOwner: "version_id", ownerCol: "v.id",
	order: "m.name ASC, v.version DESC", idCol: "v.id",
}

// SearchModels returns a page of registered models and the token of the
// next page ("" on the last).
func (r *Registry) SearchModels(ctx context.Context, q Query) ([]Model, string, error) {
	limit, offset, where, args, order, err := r.plan(q, &modelTarget, defaultModelResults, maxModelResults)
	if err != nil {
		return nil, "", err
	}
	ms, err := r.loadModels(ctx, where, args, order, limit+1, offset)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ms) > limit {
		ms, next = ms[:limit], pageToken(offset+limit)
	}
	return ms, next, nil
}

// SearchVersions returns a page of model versions and the next page token.
func (r *Registry) SearchVersions(ctx context.Context, q Query) ([]Version, string, error) {
	limit, offset, where, args, order, err := r.plan(q, &versionTarget, defaultVersionResults, maxVersionResults)
	if err != nil {
		return nil, "", err
	}
	vs, err := r.loadVersions(ctx, where, args, order, limit+1, offset)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(vs) > limit {
		vs, next = vs[:limit], pageToken(offset+limit)
	}
	return vs, next, nil
}

func (r *Registry) plan(q Query, t *searchTarget, def, max int) (limit, offset int, where string, args []any, order string, err error) {
	limit = q.MaxResults
	switch {
	case limit == 0:
		limit = def
	case limit < 0 || limit > max:
		return 0, 0, "", nil, "", forge.Errorf(forge.Invalid, "invalid value %d for parameter 'max_results': it must be between 1 and %d", limit, max)
	}
	if offset, err = parsePageToken(q.PageToken); err != nil {
		return
	}
	clauses, err := filter.Parse(q.Filter, t.schema)
	if err != nil {
		return
	}
	where, args, err = compileWhere(r.db.Dialect(), clauses, t)
	if err != nil {
		return
	}
	obs, err := filter.ParseOrderBy(q.OrderBy, t.schema)
	if err != nil {
		return
	}
	var parts []string
	for _, o := range obs {
		col, ok := t.columns[o.Key]
		if o.Entity != filter.Attribute || !ok {
			return 0, 0, "", nil, "", forge.Errorf(forge.Invalid, "cannot order %s by %s", t.schema.Name, o.Key)
		}
		dir := " ASC"
		if o.Desc {
			dir = " DESC"
		}
		parts = append(parts, col+dir)
	}
	if len(parts) == 0 {
		parts = append(parts, t.order)
	}
	order = strings.Join(append(parts, t.idCol+" ASC"), ", ")
	return
}

// compileWhere turns parsed clauses into SQL with placeholders. LIKE is
// case-sensitive in MLflow (sqlstore.Dialect.Like).
func compileWhere(d sqlstore.Dialect, clauses []filter.Clause, t *searchTarget) (string, []any, error) {
	conds := []string{"1 = 1"}
	var args []any
	for _, c := range clauses {
		var col string
		var pre []any
		switch c.Entity {
		case filter.Attribute:
			var ok bool
			if col, ok = t.columns[c.Key]; !ok {
				return "", nil, forge.Errorf(forge.Invalid, "cannot search %s by %s", t.schema.Name, c.Key)
			}
		case filter.Tag:
			col = "tg.value"
			pre = []any{c.Key}
		default:
			return "", nil, forge.Errorf(forge.Invalid, "cannot search %s by %s", t.schema.Name, c.Entity)
		}
		var cond string
		var vals []any
		switch c.Op {
		case "=", "!=", "<", "<=", ">", ">=":
			cond = col + " " + c.Op + " ?"
			if n, ok := c.Value.Int(); ok {
				vals = []any{n}
			} else {
				vals = []any{c.Value.Arg()}
			}
		case "LIKE":
			cond, vals = d.Like(col, c.Value.Str)
		case "ILIKE":
			cond, vals = d.ILike(col, c.Value.Str)
		case "IN", "NOT IN":
			cond = col + " " + c.Op + " (" + sqlstore.Placeholders(len(c.Value.List)) + ")"
			for _, s := range c.Value.List {
				vals = append(vals, s)
			}
		default:
			return "", nil, forge.Errorf(forge.Invalid, "unsupported operator %s", c.Op)
		}
		if c.Entity == filter.Tag {
			cond = "EXISTS (SELECT 1 FROM " + t.tagTable + " tg WHERE tg." + t.tagOwner + " = " + t.ownerCol + " AND tg.key = ? AND " + cond + ")"
		}
		conds = append(conds, cond)
		args = append(append(args, pre...), vals...)
	}
	return strings.Join(conds, " AND "), args, nil
}

type pageState struct {
	Offset int `json:"offset"`
}

func pageToken(offset int) string {
	b, _ := json.Marshal(pageState{offset})
	return base64.RawURLEncoding.EncodeToString(b)
}

func parsePageToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(tok, "="))
	var st pageState
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil || st.Offset < 0 {
		return 0, forge.Errorf(forge.Invalid, "invalid page_token %q", tok)
	}
	return st.Offset, nil
}
