// Package filter parses MLflow's search filter grammar and order_by clauses
// into a small AST that a SQL compiler turns into a WHERE clause with
// placeholders. The grammar is MLflow 2.x's (mlflow/utils/search_utils.py):
// comparisons joined by AND, each `<entity>.<key> <op> <value>`, checked per
// entity and per search (runs, experiments, registered models, model
// versions) the way MLflow checks them. Every error is a forge.Invalid whose
// message gives the character position of the offending token.
package filter

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/forge-mlops/forge"
)

// Clause is one comparison. Op is upper case and one of
// = != > >= < <= LIKE ILIKE IN NOT IN.
type Clause struct {
	Entity Entity
	Key    string // attribute keys are canonical (created -> start_time)
	Op     string
	Value  Value
}

// ValueKind says which field of a Value is set.
type ValueKind int

const (
	NumberValue ValueKind = iota + 1
	StringValue
	ListValue
)

// Value is the right side of a clause.
type Value struct {
	Kind ValueKind
	Num  float64  // NumberValue
	Str  string   // StringValue, unquoted
	List []string // ListValue, for IN and NOT IN; never empty
}

// Arg returns the value as a SQL placeholder argument: a float64, a string
// or a []string.
func (v Value) Arg() any {
	switch v.Kind {
	case NumberValue:
		return v.Num
	case ListValue:
		return v.List
	}
	return v.Str
}

// Int reports the number as an int64 when it is integral and fits, so that
// integer columns (timestamps, versions) can bind an integer.
func (v Value) Int() (int64, bool) {
	if v.Kind != NumberValue || v.Num != math.Trunc(v.Num) || math.Abs(v.Num) > 1<<62 {
		return 0, false
	}
	return int64(v.Num), true
}

// Parse parses a filter for the search described by schema. An empty or
// blank filter gives no clauses.
func Parse(filter string, schema *Schema) ([]Clause, error) {
	p := &parser{src: filter, toks: lex(filter), schema: schema, what: "filter"}
	var out []Clause
	if p.peek().kind == tokEOF {
		return nil, nil
	}
	for {
		c, err := p.clause()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		t := p.next()
		switch {
		case t.kind == tokEOF:
			return out, nil
		case p.keyword(t, "AND"):
			continue
		case p.keyword(t, "OR"):
			return nil, p.errorf(t, "OR is not supported, only AND")
		}
		return nil, p.errorf(t, "expected AND or the end of the filter")
	}
}

type parser struct {
	src    string
	toks   []token
	i      int
	schema *Schema
	what   string // "filter" or "order_by clause", for messages
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) keyword(t token, kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

// errorf builds the error for a problem at token t. The position counts
// characters, not bytes, from 0.
func (p *parser) errorf(t token, format string, args ...any) error {
	pos := utf8.RuneCountInString(p.src[:t.pos])
	msg := fmt.Sprintf(format, args...)
	found := ""
	if t.kind != tokEOF {
		found = ", found " + t.describe()
	}
	return forge.Errorf(forge.Invalid, "invalid %s %s: %s at position %d%s", p.what, quoteShort(p.src), msg, pos, found)
}

// ident is a parsed left-hand side.
type ident struct {
	entity Entity
	key    string // as written, unquoted
	at     token  // first token, for errors
	keyAt  token  // token holding the key, for errors
}

// ident reads `prefix.key`, `key`, with either part backquoted or
// double-quoted. Bare keys may contain dots: tags.mlflow.runName.
func (p *parser) ident(allowed []Entity) (ident, error) {
	t := p.next()
	id := ident{entity: Attribute, at: t, keyAt: t}
	var prefix string
	hasPrefix := false
	switch {
	case t.kind == tokWord && !p.isReserved(t):
		name, rest, dot := strings.Cut(t.text, ".")
		if !dot {
			id.key = t.text
			break
		}
		prefix, hasPrefix = name, true
		if rest != "" {
			id.key = rest
			break
		}
		// "metrics." followed directly by a quoted key.
		k := p.peek()
		if (k.kind == tokBackq || k.kind == tokString && k.quote == '"') && k.pos == t.end {
			p.next()
			id.key, id.keyAt = k.val, k
			break
		}
		return id, p.errorf(k, "expected a key after %q", t.text)
	case t.kind == tokBackq || t.kind == tokString && t.quote == '"':
		d := p.peek()
		if d.kind != tokWord || d.pos != t.end || d.text != "." {
			id.key = t.val
			break
		}
		// The lexer makes a lone "." of a dot that follows a quote.
		p.next()
		prefix, hasPrefix = t.val, true
		k := p.peek()
		if (k.kind == tokBackq || k.kind == tokString && k.quote == '"' || k.kind == tokWord) && k.pos == d.end {
			p.next()
			id.key, id.keyAt = k.val, k
			if k.kind == tokWord {
				id.key = k.text
			}
			break
		}
		return id, p.errorf(k, "expected a key after %q", p.src[t.pos:d.end])
	default:
		return id, p.errorf(t, "expected an identifier such as metrics.<key>, params.<key>, tags.<key> or an attribute")
	}
	if hasPrefix {
		e, ok := prefixes[prefix]
		if !ok {
			return id, p.errorf(t, "unknown entity type %q (expected one of attributes, metrics, params, tags, datasets)", prefix)
		}
		if !p.schema.allows(e, allowed) {
			return id, p.errorf(t, "%s cannot be searched by %s", p.schema.Name, e)
		}
		id.entity = e
	}
	if id.key == "" {
		return id, p.errorf(id.keyAt, "empty key")
	}
	return id, nil
}

// isReserved reports whether a bare word is a keyword that cannot start an
// identifier, so "AND AND" or "x = 1 AND" reads as a missing identifier.
func (p *parser) isReserved(t token) bool {
	switch strings.ToUpper(t.text) {
	case "AND", "OR", "NOT", "IN", "LIKE", "ILIKE":
		return true
	}
	return false
}

func (p *parser) clause() (Clause, error) {
	id, err := p.ident(p.schema.Entities)
	if err != nil {
		return Clause{}, err
	}
	opTok := p.next()
	op, err := p.op(opTok)
	if err != nil {
		return Clause{}, err
	}
	c := Clause{Entity: id.entity, Key: id.key, Op: op}

	// Decide what the key takes before reading the value, so errors say what
	// was expected.
	var ops []string
	wantNum := false
	listOK := false
	switch id.entity {
	case Metric:
		ops, wantNum = numericOps, true
	case Param, Tag:
		ops = textOps
	case Dataset:
		if !datasetKeys[id.key] {
			return c, p.errorf(id.keyAt, "unknown dataset key %q (expected name, digest or context)", id.key)
		}
		ops, listOK = p.schema.stringOps(), true
	case Attribute:
		a, ok := p.schema.Attrs[id.key]
		if !ok {
			return c, p.errorf(id.keyAt, "unknown attribute %q for %s (expected one of %s)", id.key, p.schema.Name, attrNames(p.schema))
		}
		c.Key = a.Key
		if a.Type == Numeric {
			ops, wantNum = numericOps, true
		} else {
			ops, listOK = p.schema.stringOps(), a.List
		}
	}
	if !contains(ops, op) {
		return c, p.errorf(opTok, "operator %s is not valid for %s %q (expected one of %s)", op, id.entity, id.key, strings.Join(ops, " "))
	}
	isList := op == "IN" || op == "NOT IN"
	if isList && !listOK {
		return c, p.errorf(opTok, "%s is only valid for run_id and datasets", op)
	}

	switch {
	case isList:
		c.Value, err = p.list()
	case wantNum:
		c.Value, err = p.number(id)
	default:
		c.Value, err = p.str(id)
	}
	return c, err
}

func (p *parser) op(t token) (string, error) {
	switch {
	case t.kind == tokOp:
		return t.text, nil
	case p.keyword(t, "LIKE"):
		return "LIKE", nil
	case p.keyword(t, "ILIKE"):
		return "ILIKE", nil
	case p.keyword(t, "IN"):
		return "IN", nil
	case p.keyword(t, "NOT"):
		in := p.next()
		if !p.keyword(in, "IN") {
			return "", p.errorf(in, "expected IN after NOT")
		}
		return "NOT IN", nil
	case t.kind == tokIllegal && (t.text == "==" || t.text == "<>"):
		return "", p.errorf(t, "unknown operator (use = or !=)")
	}
	return "", p.errorf(t, "expected an operator (= != > >= < <= LIKE ILIKE IN NOT IN)")
}

func (p *parser) number(id ident) (Value, error) {
	t := p.next()
	if t.kind != tokNumber {
		if t.kind == tokEOF {
			return Value{}, p.errorf(t, "expected a value")
		}
		return Value{}, p.errorf(t, "expected a number for %s %q", id.entity, id.key)
	}
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return Value{}, p.errorf(t, "number out of range")
		}
		return Value{}, p.errorf(t, "malformed number")
	}
	return Value{Kind: NumberValue, Num: f}, nil
}

func (p *parser) str(id ident) (Value, error) {
	t := p.next()
	if t.kind != tokString {
		if t.kind == tokEOF {
			return Value{}, p.errorf(t, "expected a value")
		}
		return Value{}, p.errorf(t, "expected a quoted string for %s %q (e.g. 'value')", id.entity, id.key)
	}
	return Value{Kind: StringValue, Str: t.val}, nil
}

// list reads ('a', "b", ...): at least one string, as MLflow requires.
func (p *parser) list() (Value, error) {
	t := p.next()
	if t.kind != tokLParen {
		if t.kind == tokEOF {
			return Value{}, p.errorf(t, "expected a value")
		}
		return Value{}, p.errorf(t, "expected a list of quoted strings such as ('a', 'b')")
	}
	var items []string
	for {
		s := p.next()
		if s.kind != tokString {
			if s.kind == tokRParen && len(items) == 0 {
				return Value{}, p.errorf(s, "expected a non-empty list")
			}
			return Value{}, p.errorf(s, "expected a quoted string in the list")
		}
		items = append(items, s.val)
		sep := p.next()
		if sep.kind == tokRParen {
			return Value{Kind: ListValue, List: items}, nil
		}
		if sep.kind != tokComma {
			return Value{}, p.errorf(sep, "expected , or ) in the list")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
