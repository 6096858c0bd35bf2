package kafka_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/kafka"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

func values(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	return out
}

func open(t *testing.T, url string) *kafka.Source {
	t.Helper()
	ep, err := queue.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := kafka.Open(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// read returns "p/offset=value" of every message of the range.
func read(t *testing.T, s *kafka.Source, req queue.Request) ([]string, []queue.Range) {
	t.Helper()
	var got []string
	rs, err := s.Read(context.Background(), req, func(m queue.Message) error {
		got = append(got, fmt.Sprintf("%d/%d=%s", m.Partition, m.Offset, m.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, rs
}

func TestRanges(t *testing.T) {
	addr := queuetest.Kafka(t, 2, "ev")
	p := queuetest.Producer(t, addr)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	queuetest.Produce(t, p, "ev", []int32{0, 1}, t0, values(0, 6)...)
	queuetest.Produce(t, p, "ev", []int32{0, 1}, t0.Add(time.Hour), values(6, 4)...)
	s := open(t, "kafka://"+addr+"/ev")

	all, rs := read(t, s, queue.Request{})
	if len(all) != 10 {
		t.Fatalf("earliest..now read %d messages, want 10: %v", len(all), all)
	}
	want := []queue.Range{{Partition: 0, Start: 0, Next: 5, First: 0, Last: 4, Messages: 5}, {Partition: 1, Start: 0, Next: 5, First: 0, Last: 4, Messages: 5}}
	if d := cmp.Diff(want, rs); d != "" {
		t.Errorf("ranges (-want +got):\n%s", d)
	}

	got, _ := read(t, s, queue.Request{From: queue.Position{Kind: queue.Offset, Offset: 2}, Until: queue.Position{Kind: queue.Offset, Offset: 3}})
	if d := cmp.Diff([]string{`0/2={"n":4}`, `0/3={"n":6}`, `1/2={"n":5}`, `1/3={"n":7}`}, sorted(got)); d != "" {
		t.Errorf("offsets 2..3 (-want +got):\n%s", d)
	}

	got, _ = read(t, s, queue.Request{From: queue.Position{Kind: queue.Offset, Offsets: map[int32]int64{1: 4}}})
	if d := cmp.Diff([]string{`1/4={"n":9}`}, got); d != "" {
		t.Errorf("from 1:4 (-want +got):\n%s", d)
	}

	got, _ = read(t, s, queue.Request{From: queue.Position{Kind: queue.Time, Time: t0.Add(30 * time.Minute)}})
	if d := cmp.Diff([]string{`0/3={"n":6}`, `0/4={"n":8}`, `1/3={"n":7}`, `1/4={"n":9}`}, sorted(got)); d != "" {
		t.Errorf("from a time (-want +got):\n%s", d)
	}
	got, _ = read(t, s, queue.Request{Until: queue.Position{Kind: queue.Time, Time: t0}})
	if len(got) != 6 {
		t.Errorf("until the first batch's time read %v, want its 6 messages", got)
	}

	// Continuing after a range reads only what came later.
	got, _ = read(t, s, queue.Request{After: queue.Nexts(rs)})
	if len(got) != 0 {
		t.Errorf("continue with nothing new read %v", got)
	}
	queuetest.Produce(t, p, "ev", []int32{1}, time.Time{}, values(10, 2)...)
	got, rs2 := read(t, s, queue.Request{After: queue.Nexts(rs)})
	if d := cmp.Diff([]string{`1/5={"n":10}`, `1/6={"n":11}`}, got); d != "" {
		t.Errorf("continue (-want +got):\n%s", d)
	}
	if rs2[0].Messages != 0 || rs2[0].First != -1 || rs2[0].Next != 5 || rs2[1].First != 5 || rs2[1].Last != 6 || rs2[1].Next != 7 {
		t.Errorf("continued ranges %+v", rs2)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestBadSources(t *testing.T) {
	addr := queuetest.Kafka(t, 1, "ev")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	secure := queuetest.KafkaWith(t, kfake.SeedTopics(1, "ev"), kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "s3cret"))
	for _, tc := range []struct {
		url  string
		kind forge.Kind
	}{
		{"kafka://" + addr + "/nosuch", forge.NotFound},
		{"kafka://" + closed + "/ev", forge.Unavailable},
		{"kafka://admin:wrong@" + secure + "/ev", forge.Unauthorized},
	} {
		ep, err := queue.ParseURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err = kafka.Open(ctx, ep)
		cancel()
		if forge.KindOf(err) != tc.kind || !strings.Contains(err.Error(), ep.String()) || strings.Contains(err.Error(), "wrong") {
			t.Errorf("open %s: %v (kind %v), want a %v error naming the source without its password", tc.url, err, forge.KindOf(err), tc.kind)
		}
	}
	// The right password works.
	s := open(t, "kafka://admin:s3cret@"+secure+"/ev")
	if _, err := s.Ends(context.Background()); err != nil {
		t.Fatal(err)
	}
}
