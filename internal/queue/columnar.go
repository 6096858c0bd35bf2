package queue

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// The columnar path: messages that are flat JSON objects of strings,
// numbers, booleans and nulls are parsed once, in Go, into typed columns
// that are written as Parquet row groups while the topic is read, with the
// types DuckDB's read_json would infer (BIGINT, DOUBLE when a column mixes
// integers and decimals, BOOLEAN, VARCHAR, the columns in order of first
// appearance). Anything it cannot type exactly as read_json would (nested
// values, strings read_json would take for a DATE, TIME, TIMESTAMP or
// UUID, mixed types, a column that is only nulls, keys that differ only by
// case) sends the range back to the JSON-lines path: what was taken so far
// is written out as JSON lines and DuckDB converts the whole range.

type kind uint8

const (
	kNone kind = iota // only nulls so far
	kBool
	kInt
	kFloat
	kString
)

// column is one message field of the current row group.
type column struct {
	name   string
	kind   kind
	def    []int16 // 1: a value, 0: null
	ints   []int64
	floats []float64
	bools  []bool
	arena  []byte // string values, back to back
	ends   []int  // end of each string value in arena
	stamp  int64  // the message that last set it
}

func (c *column) reset() {
	c.def, c.ints, c.floats, c.bools, c.arena, c.ends = c.def[:0], c.ints[:0], c.floats[:0], c.bools[:0], c.arena[:0], c.ends[:0]
}

// field is one parsed field of a message, before it is committed. It
// holds no pointers (offsets into the message, or into columns.unescape
// when esc), so that appending it costs no write barrier.
type field struct {
	ks, ke int32 // key
	ss, se int32 // string value
	col    int32 // -1: a new column
	kind   kind
	null   bool
	b      bool
	esc    bool
	i      int64
	f      float64
}

// columns is the row group being built.
type columns struct {
	cols  []*column
	index map[string]int
	fixed bool // the Parquet schema is written: no new column, no widening
	rows  int
	msg   int64
	// meta columns
	keyDef   []int16
	keyArena []byte
	keyEnds  []int
	parts    []int32
	offsets  []int64
	times    []int64 // microseconds, UTC
	scratch  []field
	unescape []byte
}

func newColumns() *columns { return &columns{index: map[string]int{}} }

// add parses v (trimmed, starting with '{') into the group and reports
// whether it could; when not, nothing of v was taken.
func (cs *columns) add(m Message, v []byte) bool {
	fs, ok := cs.parse(v)
	if !ok {
		return false
	}
	cs.msg++
	for i := range fs {
		f := &fs[i]
		key := v[f.ks:f.ke]
		if f.col < 0 {
			if idx, ok := cs.index[string(key)]; ok {
				f.col = int32(idx)
			}
		}
		if f.col >= 0 {
			c := cs.cols[f.col]
			if c.stamp == cs.msg { // a key twice
				return false
			}
			c.stamp = cs.msg
			if !f.null && !takes(c.kind, f.kind, cs.fixed) {
				return false
			}
			continue
		}
		if cs.fixed || len(key) == 0 {
			return false
		}
		for _, c := range cs.cols {
			if strings.EqualFold(c.name, string(key)) {
				return false
			}
		}
		for j := 0; j < i; j++ {
			if fs[j].col < 0 && strings.EqualFold(string(v[fs[j].ks:fs[j].ke]), string(key)) {
				return false
			}
		}
	}
	// Commit: nothing below can fail.
	for i := range fs {
		f := &fs[i]
		if f.col < 0 {
			c := &column{name: string(v[f.ks:f.ke]), def: make([]int16, cs.rows, cs.rows+1024), stamp: cs.msg}
			f.col = int32(len(cs.cols))
			cs.index[c.name] = len(cs.cols)
			cs.cols = append(cs.cols, c)
		}
		cs.put(cs.cols[f.col], f, v)
	}
	for _, c := range cs.cols {
		if c.stamp != cs.msg {
			c.def = append(c.def, 0)
		}
	}
	if m.Key == nil {
		cs.keyDef = append(cs.keyDef, 0)
	} else {
		cs.keyDef = append(cs.keyDef, 1)
		if utf8.Valid(m.Key) {
			cs.keyArena = append(cs.keyArena, m.Key...)
		} else {
			cs.keyArena = append(cs.keyArena, strings.ToValidUTF8(string(m.Key), "\uFFFD")...)
		}
		cs.keyEnds = append(cs.keyEnds, len(cs.keyArena))
	}
	cs.parts = append(cs.parts, m.Partition)
	cs.offsets = append(cs.offsets, m.Offset)
	cs.times = append(cs.times, m.Time.UnixMicro())
	cs.rows++
	return true
}

// takes reports whether a value of kind v can go in a column of kind c.
func takes(c, v kind, fixed bool) bool {
	switch {
	case c == v || c == kNone:
		return true
	case c == kFloat && v == kInt:
		return true
	case c == kInt && v == kFloat:
		return !fixed // widened while the group is the first one
	}
	return false
}

func (cs *columns) put(c *column, f *field, v []byte) {
	c.stamp = cs.msg
	if f.null {
		c.def = append(c.def, 0)
		return
	}
	c.def = append(c.def, 1)
	if c.kind == kNone {
		c.kind = f.kind
	}
	if c.kind == kInt && f.kind == kFloat {
		c.kind = kFloat
		for _, x := range c.ints {
			c.floats = append(c.floats, float64(x))
		}
		c.ints = c.ints[:0]
	}
	switch c.kind {
	case kBool:
		c.bools = append(c.bools, f.b)
	case kInt:
		c.ints = append(c.ints, f.i)
	case kFloat:
		if f.kind == kInt {
			c.floats = append(c.floats, float64(f.i))
		} else {
			c.floats = append(c.floats, f.f)
		}
	case kString:
		if f.esc {
			c.arena = append(c.arena, cs.unescape[f.ss:f.se]...)
		} else {
			c.arena = append(c.arena, v[f.ss:f.se]...)
		}
		c.ends = append(c.ends, len(c.arena))
	}
}

func (cs *columns) reset() {
	for _, c := range cs.cols {
		c.reset()
	}
	cs.rows = 0
	cs.keyDef, cs.keyArena, cs.keyEnds = cs.keyDef[:0], cs.keyArena[:0], cs.keyEnds[:0]
	cs.parts, cs.offsets, cs.times = cs.parts[:0], cs.offsets[:0], cs.times[:0]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parse reads a flat JSON object. It accepts only valid JSON; false means
// invalid or outside the columnar path (the caller tells which).
func (cs *columns) parse(v []byte) ([]field, bool) {
	fs := cs.scratch[:0]
	cs.unescape = cs.unescape[:0]
	i, n := 1, len(v)
	skip := func() {
		for i < n && isSpace(v[i]) {
			i++
		}
	}
	skip()
	if i < n && v[i] == '}' {
		i++
		return fs, i == n
	}
	for pos := 0; ; pos++ {
		if i >= n || v[i] != '"' {
			return nil, false
		}
		i++
		ks := i
		for i < n && v[i] != '"' {
			if v[i] == '\\' || v[i] < 0x20 || v[i] >= 0x80 {
				return nil, false
			}
			i++
		}
		if i >= n {
			return nil, false
		}
		f := field{ks: int32(ks), ke: int32(i), col: -1}
		key := v[ks:i]
		if len(key) > 1 && key[0] == '_' {
			switch string(key) {
			case ColKey, ColPartition, ColOffset, ColTimestamp: // reserved: a dead letter
				return nil, false
			}
		}
		if pos < len(cs.cols) && cs.cols[pos].name == string(key) {
			f.col = int32(pos)
		}
		i++
		skip()
		if i >= n || v[i] != ':' {
			return nil, false
		}
		i++
		skip()
		if i >= n {
			return nil, false
		}
		switch c := v[i]; {
		case c == '"':
			i++
			ss := i
			esc, high := false, false
			for i < n && v[i] != '"' {
				switch b := v[i]; {
				case b == '\\':
					esc = true
					i++
				case b < 0x20:
					return nil, false
				case b >= 0x80:
					high = true
				}
				i++
			}
			if i >= n {
				return nil, false
			}
			s := v[ss:i]
			f.kind, f.ss, f.se = kString, int32(ss), int32(i)
			i++
			if esc {
				var str string
				if json.Unmarshal(v[ss-1:i], &str) != nil {
					return nil, false
				}
				f.esc, f.ss = true, int32(len(cs.unescape))
				cs.unescape = append(cs.unescape, str...)
				f.se = int32(len(cs.unescape))
				s = cs.unescape[f.ss:f.se]
			}
			if (high || esc) && !utf8.Valid(s) {
				return nil, false
			}
			if risky(s) {
				return nil, false
			}
		case c == 't' && bytes.HasPrefix(v[i:], []byte("true")):
			f.kind, f.b = kBool, true
			i += 4
		case c == 'f' && bytes.HasPrefix(v[i:], []byte("false")):
			f.kind = kBool
			i += 5
		case c == 'n' && bytes.HasPrefix(v[i:], []byte("null")):
			f.null = true
			i += 4
		case c == '-' || (c >= '0' && c <= '9'):
			ns := i
			isFloat := false
			if v[i] == '-' {
				i++
			}
			if i >= n || v[i] < '0' || v[i] > '9' {
				return nil, false
			}
			if v[i] == '0' {
				i++
			} else {
				for i < n && v[i] >= '0' && v[i] <= '9' {
					i++
				}
			}
			if i < n && v[i] == '.' {
				isFloat = true
				i++
				ds := i
				for i < n && v[i] >= '0' && v[i] <= '9' {
					i++
				}
				if i == ds {
					return nil, false
				}
			}
			if i < n && (v[i] == 'e' || v[i] == 'E') {
				isFloat = true
				i++
				if i < n && (v[i] == '+' || v[i] == '-') {
					i++
				}
				ds := i
				for i < n && v[i] >= '0' && v[i] <= '9' {
					i++
				}
				if i == ds {
					return nil, false
				}
			}
			num := v[ns:i]
			// unsafe.String: the error, which would keep the string, is dropped.
			str := unsafe.String(&num[0], len(num))
			var err error
			if isFloat {
				f.kind = kFloat
				f.f, err = strconv.ParseFloat(str, 64)
			} else {
				f.kind = kInt
				f.i, err = strconv.ParseInt(str, 10, 64)
			}
			if err != nil { // out of range: read_json makes it HUGEINT or DOUBLE
				return nil, false
			}
			if !isFloat && f.i == 0 && num[0] == '-' { // read_json may read -0 as a DOUBLE
				return nil, false
			}
		default: // objects, arrays: not flat
			return nil, false
		}
		fs = append(fs, f)
		cs.scratch = fs
		skip()
		if i >= n {
			return nil, false
		}
		if v[i] == '}' {
			i++
			return fs, i == n
		}
		if v[i] != ',' {
			return nil, false
		}
		i++
		skip()
	}
}

// risky reports whether read_json might read a string as something other
// than VARCHAR (a DATE, TIME, TIMESTAMP or UUID): it errs on the safe
// side, since a string it passes must stay VARCHAR.
func risky(s []byte) bool {
	t := s
	for len(t) > 0 && (t[0] == ' ' || t[0] == '\t' || t[0] == '\n' || t[0] == '\r' || t[0] == '\v' || t[0] == '\f') {
		t = t[1:]
	}
	if len(t) == 0 {
		return false
	}
	if t[0] >= '0' && t[0] <= '9' {
		for _, b := range t {
			if b == '-' || b == ':' || b == '/' || b == '.' {
				return true
			}
		}
	}
	if len(t) >= 32 && len(t) <= 40 {
		for _, b := range t {
			if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' || b == '-' || b == '{' || b == '}') {
				return false
			}
		}
		return true
	}
	return false
}
