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
var groupRows = 122_880

// errFallback: the range leaves the columnar path.
var errFallback = errors.New("not columnar")

// parquetOut writes the columnar path's row groups to one Parquet file.
type parquetOut struct {
	path  string
	f     *os.File
	pw    *file.Writer
	bytes []parquet.ByteArray
	defs  []int16
}

// schemaOf is the Parquet schema of the group's columns, with the types
// DuckDB reads back as the meta columns' (VARCHAR, INTEGER, BIGINT,
// TIMESTAMP) and as read_json's (VARCHAR, BIGINT, DOUBLE, BOOLEAN).
func schemaOf(cs *columns) (*schema.GroupNode, error) {
	opt := parquet.Repetitions.Optional
	str := func(name string) schema.Node {
		return schema.MustPrimitive(schema.NewPrimitiveNodeLogical(name, opt, schema.StringLogicalType{}, parquet.Types.ByteArray, -1, -1))
	}
	fields := schema.FieldList{
		str(ColKey),
		schema.MustPrimitive(schema.NewPrimitiveNodeLogical(ColPartition, opt, schema.NewIntLogicalType(32, true), parquet.Types.Int32, -1, -1)),
		schema.MustPrimitive(schema.NewPrimitiveNodeLogical(ColOffset, opt, schema.NewIntLogicalType(64, true), parquet.Types.Int64, -1, -1)),
		schema.MustPrimitive(schema.NewPrimitiveNodeLogical(ColTimestamp, opt, schema.NewTimestampLogicalTypeForce(false, schema.TimeUnitMicros), parquet.Types.Int64, -1, -1)),
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
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1), parquet.WithCreatedBy("forge"),
			parquet.WithMaxRowGroupLength(int64(groupRows)+1), parquet.WithDictionaryPageSizeLimit(256<<10))
		p.pw = file.NewParquetWriter(p.f, sc, file.WithWriterProps(props))
		cs.fixed = true
	}
	rg := p.pw.AppendRowGroup()
	defer rg.Close()
	next := func() (file.ColumnChunkWriter, error) { return rg.NextColumn() }
	cw, err := next()
	if err != nil {
		return err
	}
	if err := p.writeBytes(cw, cs.keyDef, cs.keyArena, cs.keyEnds); err != nil {
		return err
	}
	ones := p.ones(cs.rows)
	if cw, err = next(); err == nil {
		_, err = cw.(*file.Int32ColumnChunkWriter).WriteBatch(cs.parts, ones, nil)
	}
	if err == nil {
		if cw, err = next(); err == nil {
			_, err = cw.(*file.Int64ColumnChunkWriter).WriteBatch(cs.offsets, ones, nil)
		}
	}
	if err == nil {
		if cw, err = next(); err == nil {
			_, err = cw.(*file.Int64ColumnChunkWriter).WriteBatch(cs.times, ones, nil)
		}
	}
	for _, c := range cs.cols {
		if err != nil {
			break
		}
		if cw, err = next(); err != nil {
			break
		}
		switch w := cw.(type) {
		case *file.BooleanColumnChunkWriter:
			_, err = w.WriteBatch(c.bools, c.def, nil)
		case *file.Int64ColumnChunkWriter:
			_, err = w.WriteBatch(c.ints, c.def, nil)
		case *file.Float64ColumnChunkWriter:
			_, err = w.WriteBatch(c.floats, c.def, nil)
		case *file.ByteArrayColumnChunkWriter:
			err = p.writeBytes(w, c.def, c.arena, c.ends)
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

func (p *parquetOut) ones(n int) []int16 {
	for len(p.defs) < n {
		p.defs = append(p.defs, 1)
	}
	return p.defs[:n]
}

func (p *parquetOut) writeBytes(cw file.ColumnChunkWriter, def []int16, arena []byte, ends []int) error {
	p.bytes = p.bytes[:0]
	start := 0
	for _, e := range ends {
		p.bytes = append(p.bytes, arena[start:e:e])
		start = e
	}
	_, err := cw.(*file.ByteArrayColumnChunkWriter).WriteBatch(p.bytes, def, nil)
	return err
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
