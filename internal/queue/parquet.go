package queue

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// groupRows is the rows of a row group (DuckDB's own row group size; a
// variable for the tests).
var groupRows = 32_768

// errFallback: the range leaves the columnar path.
var errFallback = errors.New("not columnar")

// parquetOut writes the columnar path's row groups to one Parquet file.
type parquetOut struct {
	path   string
	f      *os.File
	pw     *file.Writer
	bytes  []parquet.ByteArray
	bits   []byte
	bools  []bool
	ints   []int64
	floats []float64
}

// schemaOf is the Parquet schema of the group's columns, with the types
// DuckDB reads back as the meta columns' (VARCHAR, INTEGER, BIGINT,
// TIMESTAMP) and as read_json's (VARCHAR, BIGINT, DOUBLE, BOOLEAN).
func schemaOf(cs *columns) (*schema.GroupNode, error) {
	opt, req := parquet.Repetitions.Optional, parquet.Repetitions.Required
	str := func(name string) schema.Node {
		return schema.MustPrimitive(schema.NewPrimitiveNodeLogical(name, opt, schema.StringLogicalType{}, parquet.Types.ByteArray, -1, -1))
	}
	fields := schema.FieldList{
		str(ColKey),
		schema.MustPrimitive(schema.NewPrimitiveNodeLogical(ColPartition, req, schema.NewIntLogicalType(32, true), parquet.Types.Int32, -1, -1)),
		schema.MustPrimitive(schema.NewPrimitiveNodeLogical(ColOffset, req, schema.NewIntLogicalType(64, true), parquet.Types.Int64, -1, -1)),
		schema.MustPrimitive(schema.NewPrimitiveNodeLogical(ColTimestamp, req, schema.NewTimestampLogicalTypeForce(false, schema.TimeUnitMicros), parquet.Types.Int64, -1, -1)),
	}
	for _, c := range cs.cols {
		switch c.kind {
		case kBool:
			fields = append(fields, schema.NewBooleanNode(c.name, opt, -1))
		case kInt:
			fields = append(fields, schema.MustPrimitive(schema.NewPrimitiveNodeLogical(c.name, opt, schema.NewIntLogicalType(64, true), parquet.Types.Int64, -1, -1)))
		case kFloat:
			fields = append(fields, schema.NewFloat64Node(c.name, opt, -1))
		case kString:
			fields = append(fields, str(c.name))
		default: // only nulls: read_json makes it JSON
			return nil, errFallback
		}
	}
	return schema.NewGroupNode("duckdb_schema", parquet.Repetitions.Required, fields, -1)
}

// flush writes the group as a row group, the first one creating the file
// with the group's schema (errFallback when it has none).
func (p *parquetOut) flush(cs *columns) error {
	if cs.rows == 0 {
		return nil
	}
	if p.pw == nil {
		sc, err := schemaOf(cs)
		if err != nil {
			return err
		}
		if p.f, err = os.Create(p.path); err != nil {
			return err
		}
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithCreatedBy("forge"),
			parquet.WithMaxRowGroupLength(int64(groupRows)+1), parquet.WithDictionaryDefault(false), parquet.WithBatchSize(8192))
		p.pw = file.NewParquetWriter(p.f, sc, file.WithWriterProps(props))
		cs.fixed = true
	}
	rg := p.pw.AppendRowGroup()
	defer rg.Close()
	n := cs.rows
	valid := p.validity(cs.keyDef)
	cw, err := rg.NextColumn()
	if err == nil {
		p.spacedBytes(cs.keyDef, cs.keyArena, cs.keyEnds)
		cw.(*file.ByteArrayColumnChunkWriter).WriteBatchSpaced(p.bytes, cs.keyDef, nil, valid, 0)
	}
	// The meta columns are never null: required columns, no levels.
	if err == nil {
		if cw, err = rg.NextColumn(); err == nil {
			_, err = cw.(*file.Int32ColumnChunkWriter).WriteBatch(cs.parts[:n], nil, nil)
		}
	}
	if err == nil {
		if cw, err = rg.NextColumn(); err == nil {
			_, err = cw.(*file.Int64ColumnChunkWriter).WriteBatch(cs.offsets[:n], nil, nil)
		}
	}
	if err == nil {
		if cw, err = rg.NextColumn(); err == nil {
			_, err = cw.(*file.Int64ColumnChunkWriter).WriteBatch(cs.times[:n], nil, nil)
		}
	}
	// The message's columns are written spaced (a slot per row and a
	// validity bitmap): arrow-go's WriteBatch builds a string for every
	// definition level it checks.
	for _, c := range cs.cols {
		if err != nil {
			break
		}
		if cw, err = rg.NextColumn(); err != nil {
			break
		}
		valid := p.validity(c.def)
		switch w := cw.(type) {
		case *file.BooleanColumnChunkWriter:
			w.WriteBatchSpaced(spaced(&p.bools, c.def, c.bools), c.def, nil, valid, 0)
		case *file.Int64ColumnChunkWriter:
			w.WriteBatchSpaced(spaced(&p.ints, c.def, c.ints), c.def, nil, valid, 0)
		case *file.Float64ColumnChunkWriter:
			w.WriteBatchSpaced(spaced(&p.floats, c.def, c.floats), c.def, nil, valid, 0)
		case *file.ByteArrayColumnChunkWriter:
			p.spacedBytes(c.def, c.arena, c.ends)
			w.WriteBatchSpaced(p.bytes, c.def, nil, valid, 0)
		default:
			err = fmt.Errorf("column %s: unexpected writer %T", c.name, cw)
		}
	}
	if err != nil {
		return err
	}
	cs.reset()
	return nil
}

// validity is the bitmap of def (LSB first, 1: a value).
func (p *parquetOut) validity(def []int16) []byte {
	n := (len(def) + 7) / 8
	if cap(p.bits) < n {
		p.bits = make([]byte, n)
	}
	b := p.bits[:n]
	clear(b)
	for i, d := range def {
		if d != 0 {
			b[i>>3] |= 1 << (i & 7)
		}
	}
	return b
}

// spaced spreads the dense values over a slot per row.
func spaced[T any](buf *[]T, def []int16, dense []T) []T {
	out := (*buf)[:0]
	var zero T
	k := 0
	for _, d := range def {
		if d != 0 {
			out = append(out, dense[k])
			k++
		} else {
			out = append(out, zero)
		}
	}
	*buf = out
	return out
}

func (p *parquetOut) spacedBytes(def []int16, arena []byte, ends []int) {
	p.bytes = p.bytes[:0]
	start, k := 0, 0
	for _, d := range def {
		if d == 0 {
			p.bytes = append(p.bytes, nil)
			continue
		}
		e := ends[k]
		k++
		p.bytes = append(p.bytes, arena[start:e:e])
		start = e
	}
}

// close writes the footer; the file is complete.
func (p *parquetOut) close() error {
	if p.pw == nil {
		return nil
	}
	err := p.pw.Close() // closes p.f too
	p.pw = nil
	return err
}

// appendJSON appends the group's rows as JSON lines, in the shape Write
// gives them (meta columns first), for the JSON-lines path.
func appendJSON(dst []byte, cs *columns, r int, at []int) []byte {
	dst = append(dst, `{"_key":`...)
	if cs.keyDef[r] == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, cs.keyArena[at[0]:cs.keyEnds[at[0]]])
		at[0]++
	}
	dst = append(dst, `,"_partition":`...)
	dst = strconv.AppendInt(dst, int64(cs.parts[r]), 10)
	dst = append(dst, `,"_offset":`...)
	dst = strconv.AppendInt(dst, cs.offsets[r], 10)
	dst = append(dst, `,"_timestamp":"`...)
	dst = time.UnixMicro(cs.times[r]).UTC().AppendFormat(dst, "2006-01-02 15:04:05.000000")
	dst = append(dst, '"')
	for i, c := range cs.cols {
		dst = append(dst, ',')
		dst = appendString(dst, []byte(c.name))
		dst = append(dst, ':')
		if c.def[r] == 0 {
			dst = append(dst, "null"...)
			continue
		}
		k := at[i+1]
		at[i+1]++
		switch c.kind {
		case kBool:
			dst = strconv.AppendBool(dst, c.bools[k])
		case kInt:
			dst = strconv.AppendInt(dst, c.ints[k], 10)
		case kFloat:
			dst = appendFloat(dst, c.floats[k])
		case kString:
			s := 0
			if k > 0 {
				s = c.ends[k-1]
			}
			dst = appendString(dst, c.arena[s:c.ends[k]])
		}
	}
	return append(dst, '}', '\n')
}

// appendFloat writes a double so that read_json reads a DOUBLE again
// (1.0, not 1).
func appendFloat(dst []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(dst, "null"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
	for _, b := range dst[start:] {
		if b == '.' || b == 'e' {
			return dst
		}
	}
	return append(dst, ".0"...)
}
