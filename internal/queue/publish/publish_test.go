package publish_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/publish"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

// A broker that is down never makes Publish wait: what does not fit the
// queue is dropped and counted.
func TestPublishToDownBrokerDrops(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, url := range []string{"kafka://" + addr + "/t", "nats://" + addr + "/s"} {
		reg := prometheus.NewRegistry()
		m := publish.NewMetrics(reg)
		p, err := publish.Open(url, "d", nil, m, publish.Options{QueueSize: 10})
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		const n = 5000
		for range n {
			p.Publish("k", []byte(`{"a":1}`))
		}
		sent, full := m.Counts("d", "queue_full")
		_, failed := m.Counts("d", "error")
		// At most the queue's 10, the client's 10 buffered and one in hand
		// are not counted yet.
		if full+failed < n-25 {
			t.Errorf("%s: %v of %d messages dropped as queue_full and %v as error, want nearly all (the queue holds 10)", url, full, n, failed)
		}
		if sent != 0 {
			t.Errorf("%s: %v sent to a broker that is down", url, sent)
		}
		p.Close()
	}
}

// Messages reach a Kafka topic keyed as given, and a NATS JetStream stream
// under STREAM.DEPLOYMENT.
func TestPublish(t *testing.T) {
	kafka := queuetest.Kafka(t, 1, "t")
	nats := queuetest.NATS(t)
	_, st := queuetest.Stream(t, nats, "S")
	m := publish.NewMetrics(nil)
	for _, url := range []string{"kafka://" + kafka + "/t", "nats://" + nats + "/S"} {
		p, err := publish.Open(url, "dep", nil, m, publish.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); sent(m) == 0; time.Sleep(20 * time.Millisecond) {
			// NATS: the connection comes up in the background; until then rows are dropped.
			p.Publish("r1", []byte(`{"n":1}`))
			if time.Now().After(deadline) {
				t.Fatalf("%s: nothing sent", url)
			}
		}
		p.Close()
		m = publish.NewMetrics(nil)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) == 0 || string(recs[0].Key) != "r1" || string(recs[0].Value) != `{"n":1}` {
		t.Errorf("kafka records %v", recs)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "S.dep" || string(msg.Data) != `{"n":1}` || msg.Header.Get("Forge-Request-Id") != "r1" {
		t.Errorf("nats message %s %s %v", msg.Subject, msg.Data, msg.Header)
	}
}

func sent(m *publish.Metrics) float64 { s, _ := m.Counts("dep", "error"); return s }

// The config's credentials are used: a NATS server that wants a token
// takes the rows with it, and none without.
func TestPublishWithConfigCredentials(t *testing.T) {
	addr := queuetest.NATS(t, "--auth", "pub-token-77")
	for _, tc := range []struct {
		auths queue.Auths
		want  bool
	}{{queue.Auths{addr: {Token: "pub-token-77"}}, true}, {nil, false}} {
		m := publish.NewMetrics(nil)
		p, err := publish.Open("nats://"+addr+"/subj", "dep", tc.auths, m, publish.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Until the connection is up rows are dropped; give it a few hundred tries.
		for i := 0; i < 500 && sent(m) == 0; i++ {
			p.Publish("r", []byte(`{}`))
			time.Sleep(5 * time.Millisecond)
		}
		if got := sent(m) > 0; got != tc.want {
			t.Errorf("with the token in the config %v: sent %v rows, want some: %v", tc.auths != nil, sent(m), tc.want)
		}
		p.Close()
	}
}
