package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

// Deployments publish their logged rows to a Kafka topic (SASL, with the
// config's credentials) and a NATS JetStream stream, each row the JSON
// object its dataset row is made of, keyed by request id; the dataset log
// is kept. A deployment whose broker is down serves and logs as before. A
// URL with a secret, or without --log-payloads, is refused and nothing is
// stored.
func TestDeploymentPayloadPublish(t *testing.T) {
	const pass = "pub-s3cret-5150"
	kafka := queuetest.KafkaWith(t, kfake.SeedTopics(2, "payloads"), kfake.EnableSASL(), kfake.Superuser("PLAIN", "forge", pass))
	nats := queuetest.NATS(t)
	_, stream := queuetest.Stream(t, nats, "PAYLOADS")
	down := freeAddr(t)
	m := startMonitored(t, 0, func(c *config.Server) {
		c.Queues = queue.Auths{kafka: {User: "forge", Password: pass}}
	})
	ctx := context.Background()

	for _, tc := range []struct {
		spec api.DeploymentSpec
		want string
	}{
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 1, LogPayloadsTo: "kafka://forge:" + pass + "@" + kafka + "/payloads"}, "cannot keep a password"},
		{api.DeploymentSpec{Model: "cancer", LogPayloadsTo: "kafka://" + kafka + "/payloads"}, "needs --log-payloads"},
		{api.DeploymentSpec{Model: "cancer", LogPayloads: 1, LogPayloadsTo: "http://" + kafka + "/payloads"}, "want kafka://"},
	} {
		_, err := m.c.PutDeployment(ctx, "bad", tc.spec)
		if httpStatus(err) != 400 || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), pass) {
			t.Errorf("deploy %s: %v, want 400 saying %q without the password", tc.spec.LogPayloadsTo, err, tc.want)
		}
		if _, err := m.c.GetDeployment(ctx, "bad"); httpStatus(err) != 404 {
			t.Fatalf("after a refused deploy: %v, want no deployment stored", err)
		}
	}

	to := map[string]string{"to-kafka": "kafka://" + kafka + "/payloads", "to-nats": "nats://" + nats + "/PAYLOADS",
		"to-down": "kafka://" + down + "/payloads"}
	for name, url := range to {
		d, err := m.c.PutDeployment(ctx, name, api.DeploymentSpec{Model: "cancer", Ref: "1", LogPayloads: 1, LogPayloadsTo: url})
		if err != nil || d.LogPayloadsTo != url || d.Status == nil || !d.Status.Ready {
			t.Fatalf("deploy %s to %s: %+v %v", name, url, d, err)
		}
	}
	for name := range to {
		m.infer(t, name, name+"-a", 3, nil)
		m.infer(t, name, name+"-b", 2, nil)
	}
	m.s.FlushPayloads()

	// The rows of the topic and of the stream, as their JSON text.
	published := map[string][]string{"to-kafka": consumeKafka(t, kafka, pass, 5), "to-nats": consumeStream(t, stream, 5)}
	for name, got := range published {
		want := loggedRows(t, m, name)
		if !slices.Equal(got, want) {
			t.Errorf("%s published\n%s\nwant the logged rows\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// The broker that is down loses the publishing, not the dataset.
	if rows := loggedRows(t, m, "to-down"); len(rows) != 5 {
		t.Errorf("to-down logged %d rows, want 5", len(rows))
	}
	_, metrics := call(t, "GET", m.base+"/metrics", nil)
	for _, want := range []string{`forge_payload_published_total{deployment="to-kafka"} 5`, `forge_payload_published_total{deployment="to-nats"} 5`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, b := call(t, "GET", m.base+"/api/forge/v1/deployments", nil)
	if bytes.Contains(b, []byte(pass)) {
		t.Errorf("the deployments answer holds the password")
	}
}

// loggedRows are deployment name's logged rows as JSON objects with the
// dataset's columns in order, sorted.
func loggedRows(t *testing.T, m *monitored, name string) []string {
	t.Helper()
	ctx := context.Background()
	pq := filepath.Join(m.dir, name+".parquet")
	f, err := os.Create(pq)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.c.GetDataset(ctx, "payloads."+name, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := m.eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT to_json(p)::VARCHAR FROM read_parquet('`+pq+`') p`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, canonical(t, []byte(s)))
	}
	sort.Strings(out)
	return out
}

// canonical rewrites a row object with its keys in order and its numbers
// as float32 text (the model's inputs and outputs are FP32), so a
// published row and a row read back from Parquet compare.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var parts []string
	for dec.More() {
		k, _ := dec.Token()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		switch x := v.(type) {
		case json.Number:
			f, _ := x.Float64()
			v = fmt.Sprint(float32(f))
		case string:
			if ts, err := time.Parse(time.RFC3339Nano, x); err == nil && k == "timestamp" {
				v = ts.UTC().Format(time.RFC3339Nano)
			}
		}
		parts = append(parts, fmt.Sprintf("%v=%v", k, v))
	}
	return strings.Join(parts, ",")
}

func consumeKafka(t *testing.T, addr, pass string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("payloads"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SASL(plain.Auth{User: "forge", Pass: pass}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume payloads: %v (have %d of %d)", err, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !strings.Contains(string(r.Value), `"request_id":"`+string(r.Key)+`"`) {
				t.Errorf("record keyed %s holds %s", r.Key, r.Value)
			}
			out = append(out, canonical(t, r.Value))
		})
	}
	sort.Strings(out)
	return out
}

func consumeStream(t *testing.T, st jetstream.Stream, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	for seq := uint64(1); len(out) < n; {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("stream: %d of %d rows: %v", len(out), n, err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if msg.Subject != "PAYLOADS.to-nats" {
			t.Errorf("published to %s, want PAYLOADS.to-nats", msg.Subject)
		}
		out = append(out, canonical(t, msg.Data))
		seq++
	}
	sort.Strings(out)
	return out
}
