package main

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// One time format in every table: how long ago ("3m ago", "2d ago"; "in
// 29d" for a time to come). -o wide shows the time itself instead, RFC 3339
// in UTC, and -o json carries the same beside each of the API's
// millisecond times, as KEY_rfc3339. Show pages print both.

// relTime says how long before now ms was (after it, for a time to come),
// in the largest whole unit: s, m, h, d, or y past 365 days.
func relTime(now time.Time, ms int64) string {
	if ms == 0 {
		return "-"
	}
	d := now.Sub(time.UnixMilli(ms))
	future := d < 0
	if future {
		d = -d
	}
	var n int64
	var unit string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		n, unit = int64(d/time.Second), "s"
	case d < time.Hour:
		n, unit = int64(d/time.Minute), "m"
	case d < 24*time.Hour:
		n, unit = int64(d/time.Hour), "h"
	case d < 365*24*time.Hour:
		n, unit = int64(d/(24*time.Hour)), "d"
	default:
		n, unit = int64(d/(365*24*time.Hour)), "y"
	}
	if future {
		return "in " + strconv.FormatInt(n, 10) + unit
	}
	return strconv.FormatInt(n, 10) + unit + " ago"
}

// absTime is ms as RFC 3339 in UTC, to the second; "-" for none.
func absTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// when is a time as a table shows it: relative, or absolute with -o wide.
func (f *clientFlags) when(ms int64) string {
	if f.output == "wide" {
		return absTime(ms)
	}
	return relTime(f.now(), ms)
}

// whenLong is a time as a show page prints it: absolute, then relative.
func (f *clientFlags) whenLong(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return absTime(ms) + " (" + relTime(f.now(), ms) + ")"
}

// isTimeKey reports whether a JSON member of the API names a time in
// milliseconds since the epoch (created_at, start_time,
// last_updated_timestamp, ...).
func isTimeKey(k string) bool {
	return strings.HasSuffix(k, "_at") || strings.HasSuffix(k, "_time") || strings.HasSuffix(k, "timestamp")
}

// addRFC3339 copies the JSON in, adding "KEY_rfc3339": "..." after each
// member KEY that isTimeKey names and whose value is a positive integer.
// Members keep their order.
func addRFC3339(in []byte) ([]byte, error) {
	var out bytes.Buffer
	dec := jsontext.NewDecoder(bytes.NewReader(in))
	enc := jsontext.NewEncoder(&out, jsontext.WithIndent("  "), jsontext.EscapeForHTML(true), jsontext.EscapeForJS(true))
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		// A member's name is a string read at the start of a member, i.e.
		// in an object where the count of names and values so far is even.
		kind, length := dec.StackIndex(dec.StackDepth())
		isName := tok.Kind() == '"' && kind == '{' && length%2 == 1
		if err := enc.WriteToken(tok); err != nil {
			return nil, err
		}
		if !isName {
			continue
		}
		name := tok.String() // tok is void after the next read
		if !isTimeKey(name) {
			continue
		}
		val, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		if err := enc.WriteToken(val); err != nil {
			return nil, err
		}
		if val.Kind() != '0' {
			continue
		}
		// Between 1973 and 5138: a count that happens to sit under such a
		// name is left alone.
		ms, err := strconv.ParseInt(val.String(), 10, 64)
		if err != nil || ms < 1e11 || ms >= 1e14 {
			continue
		}
		if err := enc.WriteToken(jsontext.String(name + "_rfc3339")); err != nil {
			return nil, err
		}
		if err := enc.WriteToken(jsontext.String(time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}
