package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Meta columns every row of a queue dataset has. The leading underscore
// keeps them apart from the message's own fields.
const (
	ColKey       = "_key"
	ColPartition = "_partition"
	ColOffset    = "_offset"
	ColTimestamp = "_timestamp"
)

// MetaTypes are the DuckDB types of the meta columns.
var MetaTypes = [][2]string{{ColKey, "VARCHAR"}, {ColPartition, "INTEGER"}, {ColOffset, "BIGINT"}, {ColTimestamp, "TIMESTAMP"}}

// Writer turns messages into JSON lines, one object per message with the
// meta columns spliced in front of the message's own fields, and keeps the
// messages that are not JSON objects (or do not fit the schema) in a
// dead-letter file, with their offsets. Both files are written through
// buffers: a topic is never held in memory.
type Writer struct {
	rows, dead         *os.File
	rowsBuf, deadBuf   *bufio.Writer
	schema             map[string]string // column -> upper-case DuckDB type
	Rows, DeadLetters  int64
	line               []byte
	rowsPath, deadPath string
	// The columnar path (nil when off or left): see columnar.go.
	cs   *columns
	pq   *parquetOut
	dump func(parquetPath, jsonlPath string) error
}

// Columnar makes the writer build the rows as Parquet at path while it
// reads, when every message is a flat JSON object it can type as
// read_json would (see columnar.go) and there is no schema. When a message
// is not, the writer leaves that path: dump must write the Parquet file
// written so far as JSON lines to jsonlPath (DuckDB does), and the rows
// go on as JSON lines. After Close, Parquet says which path held.
func (w *Writer) Columnar(path string, dump func(parquetPath, jsonlPath string) error) {
	if len(w.schema) > 0 {
		return
	}
	w.cs, w.pq, w.dump = newColumns(), &parquetOut{path: path}, dump
}

// Parquet reports whether, after Close, every row is in the Columnar
// path's Parquet file (and the JSON-lines file is empty).
func (w *Writer) Parquet() bool { return w.pq != nil && w.Rows > 0 }

// leave takes the range off the columnar path: the row groups written so
// far and the group being built become JSON lines.
func (w *Writer) leave() error {
	cs, pq := w.cs, w.pq
	w.cs, w.pq = nil, nil
	if pq.pw != nil {
		if err := pq.close(); err != nil {
			return err
		}
		if err := w.rowsBuf.Flush(); err != nil {
			return err
		}
		if err := w.rows.Close(); err != nil {
			return err
		}
		if err := w.dump(pq.path, w.rowsPath); err != nil {
			return err
		}
		os.Remove(pq.path)
		f, err := os.OpenFile(w.rowsPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		w.rows = f
		w.rowsBuf.Reset(f)
		if st, err := f.Stat(); err == nil && st.Size() > 0 {
			last := make([]byte, 1)
			if r, err := os.Open(w.rowsPath); err == nil {
				r.ReadAt(last, st.Size()-1)
				r.Close()
			}
			if last[0] != '\n' {
				w.rowsBuf.WriteByte('\n')
			}
		}
	}
	at := make([]int, len(cs.cols)+1)
	for r := 0; r < cs.rows; r++ {
		w.line = appendJSON(w.line[:0], cs, r, at)
		if _, err := w.rowsBuf.Write(w.line); err != nil {
			return err
		}
	}
	return nil
}

// NewWriter creates rowsPath and deadPath. schema, when not nil, is the
// DuckDB type of each column it names: a message whose field does not fit
// is a dead letter.
func NewWriter(rowsPath, deadPath string, schema map[string]string) (*Writer, error) {
	rows, err := os.Create(rowsPath)
	if err != nil {
		return nil, err
	}
	dead, err := os.Create(deadPath)
	if err != nil {
		rows.Close()
		return nil, err
	}
	up := map[string]string{}
	for k, v := range schema {
		up[k] = strings.ToUpper(strings.TrimSpace(v))
	}
	return &Writer{rows: rows, dead: dead, rowsBuf: bufio.NewWriterSize(rows, 1<<20), deadBuf: bufio.NewWriterSize(dead, 64<<10),
		schema: up, rowsPath: rowsPath, deadPath: deadPath}, nil
}

// Write adds one message.
func (w *Writer) Write(m Message) error {
	v := bytes.TrimSpace(m.Value)
	if w.cs != nil {
		if len(v) > 0 && v[0] == '{' && w.cs.add(m, v) {
			w.Rows++
			if w.cs.rows < groupRows {
				return nil
			}
			err := w.pq.flush(w.cs)
			if err == errFallback {
				err = w.leave()
			}
			return err
		}
		if reason := w.check(v); reason != "" {
			return w.deadLetter(m, reason)
		}
		if err := w.leave(); err != nil {
			return err
		}
	}
	if reason := w.check(v); reason != "" {
		return w.deadLetter(m, reason)
	}
	b := w.line[:0]
	b = append(b, `{"_key":`...)
	if m.Key == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, m.Key)
	}
	b = append(b, `,"_partition":`...)
	b = strconv.AppendInt(b, int64(m.Partition), 10)
	b = append(b, `,"_offset":`...)
	b = strconv.AppendInt(b, m.Offset, 10)
	b = append(b, `,"_timestamp":"`...)
	b = m.Time.UTC().AppendFormat(b, "2006-01-02 15:04:05.000000")
	b = append(b, '"')
	inner := bytes.TrimSpace(v[1 : len(v)-1])
	if len(inner) > 0 {
		b = append(b, ',')
		b = append(b, inner...)
	}
	b = append(b, '}', '\n')
	w.line = b
	w.Rows++
	_, err := w.rowsBuf.Write(b)
	return err
}

// check says why a message cannot be a row, or "".
func (w *Writer) check(v []byte) string {
	if len(v) == 0 || v[0] != '{' {
		return "not a JSON object"
	}
	if !json.Valid(v) {
		return "not valid JSON"
	}
	if len(w.schema) == 0 && !bytes.Contains(v, []byte(`"_`)) {
		return ""
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(v, &fields); err != nil {
		return "not a JSON object"
	}
	for _, c := range []string{ColKey, ColPartition, ColOffset, ColTimestamp} {
		if _, ok := fields[c]; ok {
			return fmt.Sprintf("field %s is reserved for the message's metadata", c)
		}
	}
	for col, typ := range w.schema {
		raw, ok := fields[col]
		if !ok || string(raw) == "null" {
			continue
		}
		if !fits(raw, typ) {
			return fmt.Sprintf("field %s: %s is not %s", col, clip(raw), typ)
		}
	}
	return ""
}

// fits reports whether a JSON value converts to a DuckDB type as DuckDB's
// CAST would; types it does not know are taken as fitting.
func fits(raw json.RawMessage, typ string) bool {
	base, _, _ := strings.Cut(typ, "(")
	switch strings.TrimSpace(base) {
	case "TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT":
		_, err := strconv.ParseInt(unquote(raw), 10, 64)
		return err == nil
	case "DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC":
		_, err := strconv.ParseFloat(unquote(raw), 64)
		return err == nil
	case "BOOLEAN", "BOOL":
		s := unquote(raw)
		return s == "true" || s == "false"
	case "VARCHAR", "TEXT", "STRING":
		return raw[0] == '"' || raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') || raw[0] == 't' || raw[0] == 'f'
	case "DATE":
		_, err := time.Parse("2006-01-02", unquote(raw))
		return err == nil
	case "TIMESTAMP", "TIMESTAMPTZ", "DATETIME":
		s := unquote(raw)
		for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if _, err := time.Parse(l, s); err == nil {
				return true
			}
		}
		return false
	}
	return true
}

func unquote(raw json.RawMessage) string {
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// DeadLetter is one line of a version's dead-letter file.
type DeadLetter struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Key       string    `json:"key,omitempty"`
	Reason    string    `json:"reason"`
	Value     string    `json:"value"` // as text; invalid UTF-8 shows as U+FFFD
	Base64    []byte    `json:"value_base64,omitempty"`
}

func (w *Writer) deadLetter(m Message, reason string) error {
	d := DeadLetter{Partition: m.Partition, Offset: m.Offset, Timestamp: m.Time.UTC(), Key: string(m.Key), Reason: reason, Value: string(m.Value)}
	if !utf8.Valid(m.Value) {
		d.Base64 = m.Value
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	w.DeadLetters++
	w.deadBuf.Write(b)
	return w.deadBuf.WriteByte('\n')
}

// Close flushes both files (and the Parquet file of the columnar path).
func (w *Writer) Close() error {
	var err error
	if w.cs != nil {
		err = w.pq.flush(w.cs)
		if err == errFallback {
			err = w.leave()
		} else if err == nil {
			err = w.pq.close()
		}
	}
	if e := w.rowsBuf.Flush(); err == nil {
		err = e
	}
	if e := w.deadBuf.Flush(); err == nil {
		err = e
	}
	if e := w.rows.Close(); err == nil {
		err = e
	}
	if e := w.dead.Close(); err == nil {
		err = e
	}
	return err
}

// appendString appends b as a JSON string.
func appendString(dst, b []byte) []byte {
	if utf8.Valid(b) && !needsEscape(b) {
		dst = append(dst, '"')
		dst = append(dst, b...)
		return append(dst, '"')
	}
	s, _ := json.Marshal(string(b))
	return append(dst, s...)
}

func needsEscape(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// Pipe runs the writer in its own goroutine: write hands it messages in
// batches through a short queue (memory stays bounded), so a consumer
// fetches while the last batch is checked and written. wait flushes the
// last batch and returns the writer's first error; call it once, after
// the last write.
func (w *Writer) Pipe() (write func(Message) error, wait func() error) {
	const batch = 1024
	ch := make(chan []Message, 4)
	free := make(chan []Message, 6) // batches back for reuse: less garbage
	done := make(chan error, 1)
	go func() {
		var err error
		for b := range ch {
			for _, m := range b {
				if err == nil {
					err = w.Write(m)
				}
			}
			clear(b) // let the consumer's buffers go
			select {
			case free <- b[:0]:
			default:
			}
		}
		done <- err
	}()
	buf := make([]Message, 0, batch)
	write = func(m Message) error {
		buf = append(buf, m)
		if len(buf) == batch {
			ch <- buf
			select {
			case buf = <-free:
			default:
				buf = make([]Message, 0, batch)
			}
		}
		return nil
	}
	wait = func() error {
		if len(buf) > 0 {
			ch <- buf
		}
		close(ch)
		return <-done
	}
	return write, wait
}
