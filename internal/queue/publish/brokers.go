package publish

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/kafka"
	"github.com/forge-mlops/forge/internal/queue/natsjs"
)

// kafkaSender produces to one topic; the client buffers at most the
// queue's size of records, so a slow broker fills the queue, not memory.
type kafkaSender struct{ cl *kgo.Client }

func openKafka(ep queue.Endpoint, buffered int) (sender, error) {
	auth, err := kafka.Options(ep)
	if err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(ep.Hosts...), kgo.DefaultProduceTopic(ep.Name),
		kgo.DialTimeout(5 * time.Second), kgo.MaxBufferedRecords(buffered),
		kgo.RecordDeliveryTimeout(30 * time.Second), kgo.ProducerLinger(5 * time.Millisecond)}, auth...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, forge.Errorf(forge.Invalid, "%s: %v", ep, err)
	}
	return &kafkaSender{cl}, nil
}

func (k *kafkaSender) send(ctx context.Context, m message, done func(error)) {
	k.cl.Produce(ctx, &kgo.Record{Key: m.key, Value: m.value}, func(_ *kgo.Record, err error) { done(err) })
}

func (k *kafkaSender) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	k.cl.Flush(ctx)
	k.cl.Close()
}

// natsSender publishes to a subject: the URL's name, or, when that names a
// JetStream stream, NAME.DEPLOYMENT if the stream takes it (else its one
// literal subject), so the stream keeps the rows.
type natsSender struct {
	nc         *nats.Conn
	ep         queue.Endpoint
	deployment string
	subject    string // "" until the server has been asked
	log        *slog.Logger
}

func openNATS(ep queue.Endpoint, deployment string, log *slog.Logger) (sender, error) {
	auth, err := natsjs.Options(ep)
	if err != nil {
		return nil, err
	}
	urls := make([]string, len(ep.Hosts))
	for i, h := range ep.Hosts {
		urls[i] = "nats://" + h
	}
	opts := append([]nats.Option{nats.Name("forge payload log"), nats.Timeout(5 * time.Second),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}, auth...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, forge.WrapError(forge.Unavailable, err, "%s: %v", ep, err)
	}
	return &natsSender{nc: nc, ep: ep, deployment: deployment, log: log}, nil
}

func (n *natsSender) send(ctx context.Context, m message, done func(error)) {
	if n.subject == "" {
		if !n.nc.IsConnected() {
			done(nats.ErrConnectionClosed)
			return
		}
		n.subject = n.resolve(ctx)
	}
	msg := &nats.Msg{Subject: n.subject, Data: m.value, Header: nats.Header{"Forge-Request-Id": []string{string(m.key)}}}
	done(n.nc.PublishMsg(msg))
}

func (n *natsSender) resolve(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	js, err := jetstream.New(n.nc)
	if err != nil {
		return n.ep.Name
	}
	st, err := js.Stream(ctx, n.ep.Name)
	if err != nil {
		return n.ep.Name // a plain subject
	}
	subjects := st.CachedInfo().Config.Subjects
	want := n.ep.Name + "." + n.deployment
	var literal []string
	for _, s := range subjects {
		if SubjectMatches(s, want) {
			return want
		}
		if !strings.ContainsAny(s, "*>") {
			literal = append(literal, s)
		}
	}
	if len(literal) == 1 {
		return literal[0]
	}
	n.log.Warn("payload publish: the stream takes none of the subjects Forge would publish to; publishing to "+want, "stream", n.ep.Name, "subjects", subjects)
	return want
}

func (n *natsSender) close() {
	n.nc.FlushTimeout(3 * time.Second)
	n.nc.Close()
}

// SubjectMatches reports whether the NATS subject filter (with * for one
// token and > for the rest) takes subject.
func SubjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, t := range f {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}
