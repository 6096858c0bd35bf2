package tracking

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/filter"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Query is a search request: MLflow's filter and order_by, paging, and which
// lifecycle stages to see.
type Query struct {
	ExperimentIDs []string
	Filter        string
	OrderBy       []string
	MaxResults    int // 0: the default of 1000
	PageToken     string
	View          ViewType
}

// page decodes the paging of a query. Page tokens are opaque to clients;
// inside they are an offset.
func (q Query) page() (limit, offset int, err error) {
	limit = q.MaxResults
	if limit == 0 {
		limit = DefaultMaxResults
	}
	if limit < 0 || limit > MaxResultsLimit {
		return 0, 0, forge.Errorf(forge.Invalid, "invalid value %d for parameter 'max_results' supplied: it must be at most %d", limit, MaxResultsLimit)
	}
	if q.PageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(q.PageToken, "="))
		var tok struct {
			Offset int `json:"offset"`
		}
		if err != nil || json.Unmarshal(b, &tok) != nil || tok.Offset < 0 {
			return 0, 0, forge.Errorf(forge.Invalid, "invalid page token")
		}
		offset = tok.Offset
	}
	return limit, offset, nil
}

func pageToken(offset int) string {
	b, _ := json.Marshal(struct {
		Offset int `json:"offset"`
	}{offset})
	return base64.RawURLEncoding.EncodeToString(b)
}

// sqlBuilder collects AND-ed conditions and their arguments.
type sqlBuilder struct {
	conds []string
	args  []any
}

func (b *sqlBuilder) where(cond string, args ...any) {
	b.conds = append(b.conds, cond)
	b.args = append(b.args, args...)
}

func (b *sqlBuilder) cond() string {
	if len(b.conds) == 0 {
		return "1 = 1"
	}
	return strings.Join(b.conds, " AND ")
}

// compare turns one clause into SQL on col, with placeholders.
func compare(col string, c filter.Clause) (string, []any) {
	switch c.Op {
	case "LIKE":
		return col + " LIKE ?", []any{c.Value.Str}
	case "ILIKE":
		return "LOWER(" + col + ") LIKE LOWER(?)", []any{c.Value.Str}
	case "IN", "NOT IN":
		args := make([]any, len(c.Value.List))
		for i, v := range c.Value.List {
			args[i] = v
		}
		return col + " " + c.Op + " (" + sqlstore.Placeholders(len(args)) + ")", args
	}
	var arg any = c.Value.Str
	if c.Value.Kind == filter.NumberValue {
		arg = c.Value.Num
		if n, ok := c.Value.Int(); ok {
			arg = n
		}
	}
	return col + " " + c.Op + " ?", []any{arg}
}

func dir(desc bool) string {
	if desc {
		return " DESC"
	}
	return " ASC"
}
