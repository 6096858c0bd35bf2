package datasets_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
	"github.com/forge-mlops/forge/internal/sqlstore"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// broker is a topic (Kafka, two partitions) or a stream (NATS) to publish to.
type broker struct {
	url     string
	publish func(t *testing.T, at time.Time, values ...string)
}

func kafkaBroker(t *testing.T) broker {
	addr := queuetest.Kafka(t, 2, "ev")
	p := queuetest.Producer(t, addr)
	return broker{"kafka://" + addr + "/ev", func(t *testing.T, at time.Time, values ...string) {
		var bs [][]byte
		for _, v := range values {
			bs = append(bs, []byte(v))
		}
		queuetest.Produce(t, p, "ev", []int32{0, 1}, at, bs...)
	}}
}

func natsBroker(t *testing.T) broker {
	addr := queuetest.NATS(t)
	js, _ := queuetest.Stream(t, addr, "EV")
	return broker{"nats://" + addr + "/EV", func(t *testing.T, _ time.Time, values ...string) {
		var bs [][]byte
		for _, v := range values {
			bs = append(bs, []byte(v))
		}
		queuetest.PublishNATS(t, js, "EV.x", bs...)
	}}
}

func msgs(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf(`{"n":%d,"s":"v%d"}`, i, i))
	}
	return out
}

func ingest(t *testing.T, svc *datasets.Service, name string, req datasets.IngestRequest) datasets.IngestResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := svc.Ingest(ctx, name, req)
	if err != nil {
		t.Fatalf("ingest %s from %s: %v", name, req.Source, err)
	}
	return res
}

func one(t *testing.T, svc *datasets.Service, q string) string {
	t.Helper()
	rows, _ := queryAll(t, svc, q, 100)
	if len(rows) != 1 {
		t.Fatalf("%s: %v", q, rows)
	}
	return strings.TrimSpace(fmt.Sprintln(rows[0]...))
}

func TestIngest(t *testing.T) {
	for _, b := range []struct {
		name string
		new  func(*testing.T) broker
		db   func(testing.TB) *sqlstore.DB
	}{
		{"kafka", kafkaBroker, sqlstoretest.OpenSQLite},
		{"nats", natsBroker, sqlstoretest.OpenSQLite},
		{"kafka-postgres", kafkaBroker, sqlstoretest.OpenPostgres},
	} {
		t.Run(b.name, func(t *testing.T) {
			testIngest(t, b.new(t), newEnv(t, b.db(t)))
		})
	}
}

func testIngest(t *testing.T, br broker, e *env) {
	br.publish(t, time.Time{}, msgs(0, 4)...)
	br.publish(t, time.Time{}, "not json", `{"n":"four"}`, `{"n":5,"s":"v5","extra":true}`)

	// A snapshot of everything: the bad messages are dead letters.
	res := ingest(t, e.svc, "ev", datasets.IngestRequest{Source: br.url, Schema: []duckq.Column{{Name: "n", Type: "BIGINT"}}})
	if !res.Created || res.Version.Version != 1 || res.Version.Rows != 5 || res.Queue.DeadLetters != 2 || res.Messages != 7 {
		t.Fatalf("first ingest: %+v (version %+v)", res, res.Version)
	}
	if got := one(t, e.svc, `SELECT count(*), sum(n), count(DISTINCT _offset::VARCHAR || '/' || _partition::VARCHAR), count(extra), typeof(any_value(_timestamp)) FROM ev`); got != "5 11 5 1 TIMESTAMP" {
		t.Errorf("rows of ev@1: %s", got)
	}
	_, dl, err := e.svc.DeadLetters(context.Background(), "ev@1")
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := io.ReadAll(dl)
	dl.Close()
	if n := strings.Count(string(dead), "\n"); n != 2 || !strings.Contains(string(dead), `"value":"not json"`) || !strings.Contains(string(dead), "is not BIGINT") || !strings.Contains(string(dead), `"offset":`) {
		t.Errorf("dead letters:\n%s", dead)
	}
	var total int64
	for _, r := range res.Queue.Ranges {
		total += r.Messages
		if r.Messages > 0 && (r.First != r.Start || r.Last != r.Next-1) {
			t.Errorf("range %+v: want first = start and last = next-1 on a fresh topic", r)
		}
	}
	if total != 7 || strings.Contains(res.Queue.Source, "@") {
		t.Errorf("ranges %+v hold %d messages, want 7; source %s", res.Queue.Ranges, total, res.Queue.Source)
	}

	// --continue with nothing new makes no version.
	if r := ingest(t, e.svc, "ev", datasets.IngestRequest{Continue: true}); r.Created || r.Version != nil || r.Messages != 0 {
		t.Errorf("continue with nothing new: %+v", r)
	}
	// --continue reads exactly what came after.
	br.publish(t, time.Time{}, msgs(10, 3)...)
	res2 := ingest(t, e.svc, "ev", datasets.IngestRequest{Continue: true})
	if !res2.Created || res2.Version.Version != 2 || res2.Version.Rows != 3 {
		t.Fatalf("continue: %+v", res2)
	}
	if got := one(t, e.svc, `SELECT count(*), min(n), max(n) FROM "ev@2"`); got != "3 10 12" {
		t.Errorf("ev@2: %s", got)
	}
	if got := one(t, e.svc, `SELECT count(*) FROM "ev@1" a JOIN "ev@2" b USING (_partition, _offset)`); got != "0" {
		t.Errorf("ev@1 and ev@2 overlap in %s messages", got)
	}
	for i, r := range res2.Queue.Ranges {
		if r.Start != res.Queue.Ranges[i].Next {
			t.Errorf("continued range %+v does not start where %+v ended", r, res.Queue.Ranges[i])
		}
	}

	// A snapshot by offset: offsets 1..2 of every partition.
	snap := ingest(t, e.svc, "snap", datasets.IngestRequest{Source: br.url, From: "1", Until: "2"})
	parts := len(snap.Queue.Ranges)
	if snap.Version.Rows+snap.Queue.DeadLetters != int64(2*parts) {
		t.Errorf("offsets 1..2 of %d partitions: %d rows, %d dead letters", parts, snap.Version.Rows, snap.Queue.DeadLetters)
	}
	if got := one(t, e.svc, `SELECT min(_offset), max(_offset) FROM snap`); got != "1 2" {
		t.Errorf("snap offsets %s", got)
	}
	// The same range again is the same version.
	if again := ingest(t, e.svc, "snap", datasets.IngestRequest{Source: br.url, From: "1", Until: "2"}); again.Created || again.Version.Version != 1 {
		t.Errorf("same range again: %+v", again)
	}
	// By time: nothing after an hour from now.
	if r := ingest(t, e.svc, "later", datasets.IngestRequest{Source: br.url, From: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); r.Created || r.Messages != 0 {
		t.Errorf("from the future: %+v", r)
	}

	// Bad sources: a clear error naming the source, and no version.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	scheme := strings.SplitN(br.url, "://", 2)[0]
	for _, bad := range []struct {
		src  string
		kind forge.Kind
	}{
		{strings.TrimSuffix(strings.TrimSuffix(br.url, "/ev"), "/EV") + "/nosuch", forge.NotFound},
		{scheme + "://" + closed + "/ev", forge.Unavailable},
		{"kafka://nohost", forge.Invalid},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := e.svc.Ingest(ctx, "bad", datasets.IngestRequest{Source: bad.src})
		cancel()
		if forge.KindOf(err) != bad.kind || !strings.Contains(err.Error(), strings.SplitN(bad.src, "/", 4)[2]) {
			t.Errorf("ingest %s: %v (kind %v), want a %v error naming it", bad.src, err, forge.KindOf(err), bad.kind)
		}
	}
	if _, err := e.svc.Versions(context.Background(), "bad"); forge.KindOf(err) != forge.NotFound {
		t.Errorf("a failed ingest left a dataset: %v", err)
	}
}

func TestIngestByTime(t *testing.T) {
	e := newEnv(t, sqlstoretest.OpenSQLite(t))
	br := kafkaBroker(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	br.publish(t, t0, msgs(0, 4)...)
	br.publish(t, t0.Add(time.Hour), msgs(4, 4)...)
	br.publish(t, t0.Add(2*time.Hour), msgs(8, 4)...)
	res := ingest(t, e.svc, "mid", datasets.IngestRequest{Source: br.url, From: "2026-03-01T12:30:00Z", Until: "2026-03-01T13:00:00Z"})
	if !res.Created {
		t.Fatalf("%+v", res)
	}
	if got := one(t, e.svc, `SELECT count(*), min(n), max(n), min(_timestamp)::VARCHAR FROM mid`); got != "4 4 7 2026-03-01 13:00:00" {
		t.Errorf("the hour's snapshot: %s", got)
	}
}
