// Package queuetest gives tests real brokers: a NATS server with JetStream
// (Debian's nats-server, started on a random port with its store in a temp
// dir) and a Kafka-protocol broker (franz-go's kfake, in the test process),
// and publishers for both.
package queuetest

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var listening = regexp.MustCompile(`Listening for client connections on [^\s]*:(\d+)`)

// NATS starts `nats-server -js` and returns its host:port. Extra arguments
// are passed on (for instance --user and --pass). The server is killed when
// the test ends.
func NATS(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("nats-server", append([]string{"-js", "-a", "127.0.0.1", "-p", "-1", "-sd", t.TempDir()}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server (Debian package nats-server, see scripts/setup.sh): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case port <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p := <-port:
		return "127.0.0.1:" + p
	case <-time.After(30 * time.Second):
		t.Fatal("nats-server did not say which port it listens on")
	}
	return ""
}

// Stream creates a JetStream stream named name on subjects name.>, and
// returns a connection to publish with.
func Stream(t testing.TB, addr, name string, opts ...nats.Option) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, err := nats.Connect("nats://"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	return js, st
}

// PublishNATS publishes each value to subject, waiting for the acks.
func PublishNATS(t testing.TB, js jetstream.JetStream, subject string, values ...[]byte) {
	t.Helper()
	for _, v := range values {
		if _, err := js.Publish(context.Background(), subject, v); err != nil {
			t.Fatal(err)
		}
	}
}

// Kafka starts a kfake cluster of one broker with the topics given, each of
// partitions partitions, and returns its address.
func Kafka(t testing.TB, partitions int32, topics ...string) string {
	t.Helper()
	return KafkaWith(t, kfake.SeedTopics(partitions, topics...))
}

// KafkaWith starts a kfake cluster with options.
func KafkaWith(t testing.TB, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// Producer returns a client that produces to addr.
func Producer(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Produce writes records synchronously to topic, value i to partition
// parts[i % len(parts)], with key "k<i>" and the timestamps given (zero: now).
func Produce(t testing.TB, cl *kgo.Client, topic string, parts []int32, at time.Time, values ...[]byte) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: parts[i%len(parts)], Key: []byte("k" + strconv.Itoa(i)), Value: v, Timestamp: at}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
