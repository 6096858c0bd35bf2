package serve

import (
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// fastHeader decodes the common inference request header: an object with
// "id", "inputs" (each with "name", "shape", "datatype" and "data") and
// "outputs" (each with "name" only), plain strings, no parameters. It is a
// quarter of encoding/json/v2's cost on a single-row request, 4% of the
// request's CPU. Anything else (parameters, escapes, nulls, duplicate
// names, malformed JSON) makes it return false, and the request goes
// through jsonv2.Unmarshal, which gives the errors; the fuzz test checks
// that whatever it accepts, v2 decodes to the same.
func fastHeader(b []byte) (inferRequestJSON, bool) {
	p := fastParser{b: b}
	var rj inferRequestJSON
	ok := p.object(func(key string) bool {
		switch key {
		case "id":
			s, ok := p.str()
			rj.ID = s
			return ok
		case "inputs":
			return p.array(func() bool {
				var in inputJSON
				ok := p.object(func(key string) bool {
					switch key {
					case "name":
						s, ok := p.str()
						in.Name = s
						return ok
					case "datatype":
						s, ok := p.str()
						in.Datatype = s
						return ok
					case "shape":
						in.Shape = make([]int64, 0, 4) // not nil: [] is a scalar
						return p.array(func() bool {
							n, ok := p.int()
							in.Shape = append(in.Shape, n)
							return ok
						})
					case "data":
						start := p.skipSpace()
						if !p.value(0) {
							return false
						}
						in.Data = jsontext.Value(b[start:p.i:p.i])
						return true
					}
					return false
				})
				rj.Inputs = append(rj.Inputs, in)
				return ok
			})
		case "outputs":
			return p.array(func() bool {
				var out outputJSON
				ok := p.object(func(key string) bool {
					if key != "name" {
						return false
					}
					s, ok := p.str()
					out.Name = s
					return ok
				})
				rj.Outputs = append(rj.Outputs, out)
				return ok
			})
		}
		return false
	})
	if !ok || p.skipSpace() != len(b) {
		return inferRequestJSON{}, false
	}
	return rj, true
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) skipSpace() int {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return p.i
		}
	}
	return p.i
}

func (p *fastParser) eat(c byte) bool {
	if p.skipSpace() < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}, calling member after each key, which
// must read the value. A repeated key is refused.
func (p *fastParser) object(member func(key string) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	var seen []string
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return false
		}
		for _, k := range seen {
			if k == key {
				return false
			}
		}
		seen = append(seen, key)
		if !member(key) {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// array reads [elem, ...], calling elem for each element.
func (p *fastParser) array(elem func() bool) bool {
	if !p.eat('[') {
		return false
	}
	if p.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.eat(']') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// str reads a string without escapes or control characters, valid UTF-8.
func (p *fastParser) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return string(s), utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// int reads an integer of up to 18 digits, as JSON writes it.
func (p *fastParser) int() (int64, bool) {
	p.skipSpace()
	neg := p.i < len(p.b) && p.b[p.i] == '-'
	if neg {
		p.i++
	}
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 18 || (digits > 1 && p.b[start] == '0') {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// value checks one JSON value of the kinds tensor data holds (numbers,
// strings without escapes, true, false, null, nested arrays) and moves past it.
func (p *fastParser) value(depth int) bool {
	if depth > 32 || p.skipSpace() >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '[':
		return p.array(func() bool { return p.value(depth + 1) })
	case c == '"':
		_, ok := p.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			return true
		}
	}
	return false
}

// number checks JSON's number grammar.
func (p *fastParser) number() bool {
	digits := func() int {
		start := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i - start
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	start := p.i
	n := digits()
	if n == 0 || (n > 1 && p.b[start] == '0') {
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
