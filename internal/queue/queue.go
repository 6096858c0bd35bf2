// Package queue is what Forge reads from a message queue to make a dataset
// version: the Source contract that each broker's package implements
// (queue/kafka, queue/natsjs), the positions a range is given by, the
// record of the exact offsets read, and the writer that turns messages into
// JSON lines for DuckDB without holding them in memory.
package queue

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
)

// Message is one message as read from a partition (Kafka) or a stream
// (NATS JetStream, partition 0, offset the stream sequence).
type Message struct {
	Key       []byte
	Value     []byte
	Partition int32
	Offset    int64
	Time      time.Time
}

// Source reads ranges of one topic or stream.
type Source interface {
	// Read calls fn with every message of the range in offset order within
	// a partition and returns what the range held, per partition. The
	// range's end is fixed when Read starts: messages published later are
	// the next range's.
	Read(ctx context.Context, req Request, fn func(Message) error) ([]Range, error)
	// Ends returns, per partition, the offset the next message will have.
	Ends(ctx context.Context) (map[int32]int64, error)
	Close() error
}

// Request is the range to read.
type Request struct {
	From  Position // default earliest
	Until Position // default now
	// After, when set, continues a previous range: each partition it names
	// starts at its offset (a Range's Next), others at the earliest.
	After map[int32]int64
}

// Kind is what a Position is relative to.
type Kind int

const (
	Earliest Kind = iota // the first message kept
	Latest               // after the last message: nothing before now
	Now                  // until: the last message when the read starts
	Offset               // an offset, inclusive; per partition if Offsets is set
	Time                 // the first message at or after Time (from) / at or before it (until)
)

// Position is one end of a range.
type Position struct {
	Kind    Kind
	Offset  int64
	Offsets map[int32]int64 // "P:O,P:O": per partition; partitions not named use Offset's kind default
	Time    time.Time
}

// String is how the position was written.
func (p Position) String() string {
	switch p.Kind {
	case Earliest:
		return "earliest"
	case Latest:
		return "latest"
	case Now:
		return "now"
	case Time:
		return p.Time.UTC().Format(time.RFC3339Nano)
	}
	if p.Offsets != nil {
		parts := make([]int32, 0, len(p.Offsets))
		for k := range p.Offsets {
			parts = append(parts, k)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		var s []string
		for _, k := range parts {
			s = append(s, fmt.Sprintf("%d:%d", k, p.Offsets[k]))
		}
		return strings.Join(s, ",")
	}
	return strconv.FormatInt(p.Offset, 10)
}

// OffsetFor returns the offset a partition starts or ends at, and false when
// an Offsets position does not name the partition.
func (p Position) OffsetFor(part int32) (int64, bool) {
	if p.Offsets == nil {
		return p.Offset, true
	}
	o, ok := p.Offsets[part]
	return o, ok
}

// ParsePosition reads "earliest", "latest", "now", an offset, per-partition
// offsets "0:120,1:98", or a time (RFC 3339, or a date). which is "from" or
// "until", for the message.
func ParsePosition(s, which string) (Position, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		if which == "until" {
			return Position{Kind: Now}, nil
		}
		return Position{Kind: Earliest}, nil
	case "earliest":
		return Position{Kind: Earliest}, nil
	case "latest":
		if which == "until" {
			return Position{Kind: Now}, nil
		}
		return Position{Kind: Latest}, nil
	case "now":
		if which == "from" {
			return Position{Kind: Latest}, nil
		}
		return Position{Kind: Now}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return Position{Kind: Offset, Offset: n}, nil
	}
	if strings.Contains(s, ":") && !strings.Contains(s, "-") {
		offs := map[int32]int64{}
		for _, part := range strings.Split(s, ",") {
			ps, os, ok := strings.Cut(strings.TrimSpace(part), ":")
			p, err1 := strconv.ParseInt(ps, 10, 32)
			o, err2 := strconv.ParseInt(os, 10, 64)
			if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
				return Position{}, badPosition(s, which)
			}
			offs[int32(p)] = o
		}
		return Position{Kind: Offset, Offsets: offs}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return Position{Kind: Time, Time: t}, nil
		}
	}
	return Position{}, badPosition(s, which)
}

func badPosition(s, which string) error {
	return forge.Errorf(forge.Invalid, "--%s %q: want earliest, latest, now, an offset, PARTITION:OFFSET,... or a time (2026-12-03T14:00:00Z)", which, s)
}

// Range is what a read held of one partition: every message with an offset
// in [Start, Next) is in the version (as a row or a dead letter). First and
// Last are the offsets of the first and last message read, -1 when none.
type Range struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	Next      int64 `json:"next"`
	First     int64 `json:"first"`
	Last      int64 `json:"last"`
	Messages  int64 `json:"messages"`
}

// Nexts returns where each partition continues.
func Nexts(rs []Range) map[int32]int64 {
	m := make(map[int32]int64, len(rs))
	for _, r := range rs {
		m[r.Partition] = r.Next
	}
	return m
}

// Endpoint is a parsed queue URL: kafka://[user:pass@]host:port[,host:port]/topic
// or nats://[user:pass@]host:port/stream. Query options: sasl=plain|scram-sha-256|
// scram-sha-512 and tls=true for Kafka, token=... for NATS.
type Endpoint struct {
	Scheme   string // kafka or nats
	Hosts    []string
	Name     string // topic or stream
	User     string
	Password string
	Options  url.Values
	// Auth is the config's entry for the endpoint's hosts (see Auths),
	// never part of String.
	Auth *Auth
}

// IsURL reports whether s names a queue rather than a file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "kafka://") || strings.HasPrefix(s, "nats://")
}

// ParseURL reads a queue URL.
func ParseURL(s string) (Endpoint, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "kafka" && scheme != "nats") {
		return Endpoint{}, forge.Errorf(forge.Invalid, "queue source %q: want kafka://BROKER[,BROKER]/TOPIC or nats://HOST:PORT/STREAM", Redact(s))
	}
	rest, query, _ := strings.Cut(rest, "?")
	hostPart, name, _ := strings.Cut(rest, "/")
	e := Endpoint{Scheme: scheme, Name: name}
	if at := strings.LastIndex(hostPart, "@"); at >= 0 {
		ui := hostPart[:at]
		hostPart = hostPart[at+1:]
		u, p, _ := strings.Cut(ui, ":")
		var err error
		if e.User, err = url.PathUnescape(u); err == nil {
			e.Password, err = url.PathUnescape(p)
		}
		if err != nil {
			return Endpoint{}, forge.Errorf(forge.Invalid, "queue source %q: bad user info", Redact(s))
		}
	}
	for _, h := range strings.Split(hostPart, ",") {
		if h = strings.TrimSpace(h); h != "" {
			e.Hosts = append(e.Hosts, h)
		}
	}
	var err error
	if e.Options, err = url.ParseQuery(query); err != nil {
		return Endpoint{}, forge.Errorf(forge.Invalid, "queue source %q: bad options: %v", Redact(s), err)
	}
	if len(e.Hosts) == 0 || e.Name == "" || strings.Contains(e.Name, "/") {
		what := map[string]string{"kafka": "kafka://BROKER[,BROKER]/TOPIC", "nats": "nats://HOST:PORT/STREAM"}[scheme]
		return Endpoint{}, forge.Errorf(forge.Invalid, "queue source %q: want %s", Redact(s), what)
	}
	return e, nil
}

// String is the endpoint as recorded with a version: no password, no token.
func (e Endpoint) String() string {
	var b strings.Builder
	b.WriteString(e.Scheme + "://")
	if e.User != "" {
		b.WriteString(url.PathEscape(e.User) + "@")
	}
	b.WriteString(strings.Join(e.Hosts, ",") + "/" + e.Name)
	q := url.Values{}
	for k, v := range e.Options {
		if k != "token" && k != "password" {
			q[k] = v
		}
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

// HasSecret reports whether the URL carries a password or token.
func (e Endpoint) HasSecret() bool { return e.Password != "" || e.Options.Get("token") != "" }

// Redact returns a queue URL without its password, for messages, even when
// it does not parse.
func Redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	hostEnd := strings.IndexAny(rest, "/?")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	if at := strings.LastIndex(rest[:hostEnd], "@"); at >= 0 {
		u, _, _ := strings.Cut(rest[:at], ":")
		rest = u + "@" + rest[at+1:]
	}
	if i := strings.Index(rest, "token="); i >= 0 {
		j := strings.IndexByte(rest[i:], '&')
		if j < 0 {
			j = len(rest) - i
		}
		rest = rest[:i] + "token=REDACTED" + rest[i+j:]
	}
	return scheme + "://" + rest
}
