package serve

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/forge-mlops/forge"
)

// elemSize is the size in bytes of one element in the binary tensor
// extension; BYTES elements have a 4-byte length prefix each instead.
var elemSize = map[string]int{
	"FP32": 4, "FP64": 8, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8,
	"UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "BOOL": 1,
}

// knownDatatype reports whether Forge can carry the datatype.
func knownDatatype(dt string) bool {
	_, ok := elemSize[dt]
	return ok || dt == "BYTES"
}

// elements is the element count of shape, and false when a dimension is
// negative or the count overflows.
func elements(shape []int64) (int, bool) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<40 {
			return 0, false
		}
		n = lo
	}
	return int(n), true
}

// makeData allocates a slice of n elements of datatype dt.
func makeData(dt string, n int) any {
	switch dt {
	case "FP32":
		return make([]float32, n)
	case "FP64":
		return make([]float64, n)
	case "INT8":
		return make([]int8, n)
	case "INT16":
		return make([]int16, n)
	case "INT32":
		return make([]int32, n)
	case "INT64":
		return make([]int64, n)
	case "UINT8":
		return make([]uint8, n)
	case "UINT16":
		return make([]uint16, n)
	case "UINT32":
		return make([]uint32, n)
	case "UINT64":
		return make([]uint64, n)
	case "BOOL":
		return make([]bool, n)
	case "BYTES":
		return make([]string, n)
	}
	return nil
}

// dataLen is forge.DataLen: the elements of a tensor's data slice.
var dataLen = forge.DataLen

// hasNaN reports whether floating-point data holds a NaN.
func hasNaN(data any) bool {
	switch d := data.(type) {
	case []float32:
		for _, v := range d {
			if v != v {
				return true
			}
		}
	case []float64:
		for _, v := range d {
			if v != v {
				return true
			}
		}
	}
	return false
}

// rawBytes views numeric data as its little-endian bytes without copying
// (Forge runs on little-endian machines only: amd64, arm64).
func rawBytes(data any) ([]byte, bool) {
	view := func(p unsafe.Pointer, n int) []byte {
		if n == 0 {
			return []byte{}
		}
		return unsafe.Slice((*byte)(p), n)
	}
	switch d := data.(type) {
	case []float32:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 4*len(d)), true
	case []float64:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 8*len(d)), true
	case []int8:
		return view(unsafe.Pointer(unsafe.SliceData(d)), len(d)), true
	case []int16:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 2*len(d)), true
	case []int32:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 4*len(d)), true
	case []int64:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 8*len(d)), true
	case []uint8:
		return d, true
	case []uint16:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 2*len(d)), true
	case []uint32:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 4*len(d)), true
	case []uint64:
		return view(unsafe.Pointer(unsafe.SliceData(d)), 8*len(d)), true
	case []bool:
		return view(unsafe.Pointer(unsafe.SliceData(d)), len(d)), true
	}
	return nil, false
}

// appendBinary appends a tensor's data in the binary extension's layout.
func appendBinary(b []byte, data any) []byte {
	if raw, ok := rawBytes(data); ok {
		return append(b, raw...)
	}
	for _, s := range data.([]string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// binarySize is the byte length of data in the binary layout.
func binarySize(data any) int {
	if raw, ok := rawBytes(data); ok {
		return len(raw)
	}
	n := 0
	for _, s := range data.([]string) {
		n += 4 + len(s)
	}
	return n
}

// decodeBinary reads n elements of datatype dt from raw.
func decodeBinary(name, dt string, n int, raw []byte) (any, error) {
	if dt == "BYTES" {
		out := make([]string, 0, n)
		for len(raw) > 0 {
			if len(raw) < 4 {
				return nil, forge.Errorf(forge.Invalid, "input %q: binary BYTES data ends inside a length prefix", name)
			}
			l := binary.LittleEndian.Uint32(raw)
			if uint64(l) > uint64(len(raw)-4) {
				return nil, forge.Errorf(forge.Invalid, "input %q: binary BYTES element of %d bytes overruns the data", name, l)
			}
			out = append(out, string(raw[4:4+l]))
			raw = raw[4+l:]
		}
		if len(out) != n {
			return nil, forge.Errorf(forge.Invalid, "input %q: binary data holds %d BYTES elements, shape needs %d", name, len(out), n)
		}
		return out, nil
	}
	size := elemSize[dt]
	if len(raw) != n*size {
		return nil, forge.Errorf(forge.Invalid, "input %q: binary_data_size is %d bytes, shape and datatype %s need %d", name, len(raw), dt, n*size)
	}
	data := makeData(dt, n)
	dst, _ := rawBytes(data)
	copy(dst, raw)
	if b, ok := data.([]bool); ok {
		// Any byte but 0 or 1 would be an invalid Go bool.
		for i, c := range raw {
			b[i] = c != 0
		}
	}
	return data, nil
}

// parseJSONData reads the "data" array of a JSON input, nested or flat, as n
// elements of datatype dt. null stands for NaN in floating-point tensors
// (JSON has no NaN), so XGBoost's missing values can be sent.
func parseJSONData(name, dt string, n int, b []byte) (any, error) {
	data := makeData(dt, n)
	i, k := 0, 0
	bad := func(what string) error {
		return forge.Errorf(forge.Invalid, "input %q: %s at byte %d of its data", name, what, i)
	}
	for i < len(b) {
		c := b[i]
		switch c {
		case ' ', '\t', '\n', '\r', '[', ']', ',':
			i++
			continue
		}
		// A value: find its end.
		j := i
		if c == '"' {
			j++
			esc := false
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					esc = true
					j++
				}
				j++
			}
			if j >= len(b) {
				return nil, bad("unterminated string")
			}
			j++
			if k >= n {
				return nil, tooMany(name, n)
			}
			s, ok := data.([]string)
			if !ok {
				return nil, bad(fmt.Sprintf("a string where datatype %s needs a number", dt))
			}
			tok := b[i+1 : j-1]
			if esc {
				u, err := strconv.Unquote(string(b[i:j]))
				if err != nil {
					return nil, bad("a malformed string")
				}
				s[k] = u
			} else {
				if !utf8.Valid(tok) {
					return nil, bad("invalid UTF-8")
				}
				s[k] = string(tok)
			}
			k++
			i = j
			continue
		}
		for j < len(b) {
			c := b[j]
			if c == ',' || c == ']' || c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				break
			}
			j++
		}
		if k >= n {
			return nil, tooMany(name, n)
		}
		tok := unsafe.String(&b[i], j-i)
		if err := setElem(data, k, tok); err != nil {
			return nil, bad(fmt.Sprintf("%q is not a valid %s value", tok, dt))
		}
		k++
		i = j
	}
	if k != n {
		return nil, forge.Errorf(forge.Invalid, "input %q has %d data elements, its shape needs %d", name, k, n)
	}
	return data, nil
}

func tooMany(name string, n int) error {
	return forge.Errorf(forge.Invalid, "input %q has more data elements than the %d its shape needs", name, n)
}

func setElem(data any, k int, tok string) error {
	switch d := data.(type) {
	case []float32:
		if tok == "null" {
			d[k] = float32(math.NaN())
			return nil
		}
		v, err := strconv.ParseFloat(tok, 32)
		d[k] = float32(v)
		return numErr(err, tok)
	case []float64:
		if tok == "null" {
			d[k] = math.NaN()
			return nil
		}
		v, err := strconv.ParseFloat(tok, 64)
		d[k] = v
		return numErr(err, tok)
	case []bool:
		switch tok {
		case "true", "1":
			d[k] = true
		case "false", "0":
			d[k] = false
		default:
			return strconv.ErrSyntax
		}
		return nil
	case []string:
		return strconv.ErrSyntax
	}
	if tok == "true" || tok == "false" || tok == "null" {
		return strconv.ErrSyntax
	}
	switch d := data.(type) {
	case []int8:
		v, err := strconv.ParseInt(tok, 10, 8)
		d[k] = int8(v)
		return err
	case []int16:
		v, err := strconv.ParseInt(tok, 10, 16)
		d[k] = int16(v)
		return err
	case []int32:
		v, err := strconv.ParseInt(tok, 10, 32)
		d[k] = int32(v)
		return err
	case []int64:
		v, err := strconv.ParseInt(tok, 10, 64)
		d[k] = v
		return err
	case []uint8:
		v, err := strconv.ParseUint(tok, 10, 8)
		d[k] = uint8(v)
		return err
	case []uint16:
		v, err := strconv.ParseUint(tok, 10, 16)
		d[k] = uint16(v)
		return err
	case []uint32:
		v, err := strconv.ParseUint(tok, 10, 32)
		d[k] = uint32(v)
		return err
	case []uint64:
		v, err := strconv.ParseUint(tok, 10, 64)
		d[k] = v
		return err
	}
	return strconv.ErrSyntax
}

// numErr rejects what ParseFloat takes but JSON does not ("NaN", "Inf",
// hex floats) along with real syntax errors; out-of-range values are errors.
func numErr(err error, tok string) error {
	if err != nil {
		return err
	}
	c := tok[0]
	if c != '-' && (c < '0' || c > '9') {
		return strconv.ErrSyntax
	}
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case 'x', 'X', 'p', 'P', 'n', 'N', 'i', 'I', '_':
			return strconv.ErrSyntax
		}
	}
	return nil
}

// appendJSONData appends data as a flat JSON array. NaN and infinities,
// which JSON cannot hold, are written as null.
func appendJSONData(b []byte, data any) []byte {
	b = append(b, '[')
	switch d := data.(type) {
	case []float32:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, f, 'g', -1, 32)
			}
		}
	case []float64:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
		}
	case []int8:
		b = appendInts(b, d)
	case []int16:
		b = appendInts(b, d)
	case []int32:
		b = appendInts(b, d)
	case []int64:
		b = appendInts(b, d)
	case []uint8:
		b = appendUints(b, d)
	case []uint16:
		b = appendUints(b, d)
	case []uint32:
		b = appendUints(b, d)
	case []uint64:
		b = appendUints(b, d)
	case []bool:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendBool(b, v)
		}
	case []string:
		for i, v := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v)
		}
	}
	return append(b, ']')
}

func appendInts[T int8 | int16 | int32 | int64](b []byte, d []T) []byte {
	for i, v := range d {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return b
}

func appendUints[T uint8 | uint16 | uint32 | uint64](b []byte, d []T) []byte {
	for i, v := range d {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return b
}

// appendJSONString quotes s for JSON: strconv's Go quoting differs for
// control and non-ASCII characters, so those are escaped here.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendShape appends a JSON array of dimensions.
func appendShape(b []byte, shape []int64) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}
