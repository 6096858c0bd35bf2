package natsjs_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/natsjs"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

func values(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	return out
}

func open(t *testing.T, url string) *natsjs.Source {
	t.Helper()
	ep, err := queue.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsjs.Open(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func read(t *testing.T, s *natsjs.Source, req queue.Request) ([]string, []queue.Range) {
	t.Helper()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rs, err := s.Read(ctx, req, func(m queue.Message) error {
		got = append(got, fmt.Sprintf("%d=%s", m.Offset, m.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, rs
}

func TestRanges(t *testing.T) {
	addr := queuetest.NATS(t)
	js, _ := queuetest.Stream(t, addr, "EV")
	queuetest.PublishNATS(t, js, "EV.a", values(0, 5)...)
	s := open(t, "nats://"+addr+"/EV")
	var mid time.Time
	{
		_, rs := read(t, s, queue.Request{})
		if rs[0].Last != 5 {
			t.Fatalf("ranges %+v", rs)
		}
	}
	// A time between the two batches: the server's clock stamps messages.
	for mid = time.Now(); !time.Now().After(mid); {
	}
	queuetest.PublishNATS(t, js, "EV.b", values(5, 3)...)

	all, rs := read(t, s, queue.Request{})
	if len(all) != 8 || all[0] != `1={"n":0}` || all[7] != `8={"n":7}` {
		t.Fatalf("earliest..now read %v", all)
	}
	if d := cmp.Diff([]queue.Range{{Partition: 0, Start: 1, Next: 9, First: 1, Last: 8, Messages: 8}}, rs); d != "" {
		t.Errorf("ranges (-want +got):\n%s", d)
	}
	got, _ := read(t, s, queue.Request{From: queue.Position{Kind: queue.Offset, Offset: 3}, Until: queue.Position{Kind: queue.Offset, Offset: 4}})
	if d := cmp.Diff([]string{`3={"n":2}`, `4={"n":3}`}, got); d != "" {
		t.Errorf("sequences 3..4 (-want +got):\n%s", d)
	}
	got, _ = read(t, s, queue.Request{From: queue.Position{Kind: queue.Time, Time: mid}})
	if d := cmp.Diff([]string{`6={"n":5}`, `7={"n":6}`, `8={"n":7}`}, got); d != "" {
		t.Errorf("from a time (-want +got):\n%s", d)
	}
	got, _ = read(t, s, queue.Request{Until: queue.Position{Kind: queue.Time, Time: mid}})
	if len(got) != 5 {
		t.Errorf("until a time read %v, want the first 5", got)
	}
	got, _ = read(t, s, queue.Request{From: queue.Position{Kind: queue.Time, Time: time.Now().Add(time.Hour)}})
	if len(got) != 0 {
		t.Errorf("from the future read %v", got)
	}

	got, _ = read(t, s, queue.Request{After: queue.Nexts(rs)})
	if len(got) != 0 {
		t.Errorf("continue with nothing new read %v", got)
	}
	queuetest.PublishNATS(t, js, "EV.c", values(8, 2)...)
	got, rs = read(t, s, queue.Request{After: queue.Nexts(rs)})
	if d := cmp.Diff([]string{`9={"n":8}`, `10={"n":9}`}, got); d != "" || rs[0].Next != 11 {
		t.Errorf("continue (-want +got):\n%s\nranges %+v", d, rs)
	}
}

func TestBadSources(t *testing.T) {
	addr := queuetest.NATS(t)
	queuetest.Stream(t, addr, "EV")
	secure := queuetest.NATS(t, "--user", "forge", "--pass", "s3cret")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		url  string
		kind forge.Kind
	}{
		{"nats://" + addr + "/NOSUCH", forge.NotFound},
		{"nats://" + closed + "/EV", forge.Unavailable},
		{"nats://forge:wrong@" + secure + "/EV", forge.Unauthorized},
	} {
		ep, err := queue.ParseURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = natsjs.Open(context.Background(), ep)
		if forge.KindOf(err) != tc.kind || !strings.Contains(err.Error(), ep.String()) || strings.Contains(err.Error(), "wrong") {
			t.Errorf("open %s: %v (kind %v), want a %v error naming the source without its password", tc.url, err, forge.KindOf(err), tc.kind)
		}
	}
	queuetest.Stream(t, secure, "EV", nats.UserInfo("forge", "s3cret"))
	open(t, "nats://forge:s3cret@"+secure+"/EV")
}
