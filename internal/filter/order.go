package filter

import (
	"sort"
	"strconv"
	"strings"
)

// OrderBy is one parsed order_by clause. The zero Desc is ascending, the
// default when the clause names no direction.
type OrderBy struct {
	Entity Entity
	Key    string // attribute keys are canonical
	Desc   bool
}

// ParseOrderBy parses order_by clauses such as "metrics.acc DESC",
// "params.lr" or "attributes.start_time ASC" for the search described by
// schema.
func ParseOrderBy(clauses []string, schema *Schema) ([]OrderBy, error) {
	out := make([]OrderBy, 0, len(clauses))
	for _, s := range clauses {
		o, err := parseOrderBy(s, schema)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func parseOrderBy(s string, schema *Schema) (OrderBy, error) {
	p := &parser{src: s, toks: lex(s), schema: schema, what: "order_by clause"}
	id, err := p.ident(schema.OrderEntities)
	if err != nil {
		return OrderBy{}, err
	}
	o := OrderBy{Entity: id.entity, Key: id.key}
	if id.entity == Attribute {
		key, ok := schema.OrderAttrs[id.key]
		if !ok {
			return o, p.errorf(id.keyAt, "cannot order %s by attribute %q (expected one of %s)", schema.Name, id.key, sortedKeys(schema.OrderAttrs))
		}
		o.Key = key
	}
	t := p.next()
	switch {
	case p.keyword(t, "DESC"):
		o.Desc = true
	case p.keyword(t, "ASC"), t.kind == tokEOF:
	default:
		return o, p.errorf(t, "expected ASC, DESC or the end of the clause")
	}
	if t.kind != tokEOF {
		if end := p.next(); end.kind != tokEOF {
			return o, p.errorf(end, "expected the end of the clause")
		}
	}
	return o, nil
}

// String renders the clause in the filter grammar, with the key backquoted
// and the canonical attribute name, so Parse reads it back unchanged.
func (c Clause) String() string {
	var b strings.Builder
	b.WriteString(prefixOf(c.Entity))
	b.WriteString(quote(c.Key, '`'))
	b.WriteByte(' ')
	b.WriteString(c.Op)
	b.WriteByte(' ')
	switch c.Value.Kind {
	case NumberValue:
		b.WriteString(strconv.FormatFloat(c.Value.Num, 'g', -1, 64))
	case StringValue:
		b.WriteString(quote(c.Value.Str, '\''))
	case ListValue:
		b.WriteByte('(')
		for i, s := range c.Value.List {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(s, '\''))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// String renders the order_by clause in the grammar ParseOrderBy reads.
func (o OrderBy) String() string {
	dir := " ASC"
	if o.Desc {
		dir = " DESC"
	}
	return prefixOf(o.Entity) + quote(o.Key, '`') + dir
}

// Format joins clauses into one filter string.
func Format(clauses []Clause) string {
	parts := make([]string, len(clauses))
	for i, c := range clauses {
		parts[i] = c.String()
	}
	return strings.Join(parts, " AND ")
}

func prefixOf(e Entity) string {
	switch e {
	case Metric:
		return "metrics."
	case Param:
		return "params."
	case Tag:
		return "tags."
	case Dataset:
		return "datasets."
	}
	return "attributes."
}

func quote(s string, q byte) string {
	qs := string(q)
	return qs + strings.ReplaceAll(s, qs, qs+qs) + qs
}

func attrNames(s *Schema) string {
	m := make(map[string]string, len(s.Attrs))
	for k := range s.Attrs {
		m[k] = k
	}
	return sortedKeys(m)
}

func sortedKeys(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
