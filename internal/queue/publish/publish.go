// Package publish sends messages to a Kafka topic or a NATS subject without
// ever making the caller wait: Publish puts a message in a bounded queue
// that one goroutine drains to the broker, and a message that finds the
// queue full (the broker slow or down) is dropped and counted. Serving
// uses it to publish payload logs (forge deploy --log-payloads-to).
package publish

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/forge-mlops/forge/internal/queue"
)

// Metrics count what publishers did, per deployment.
type Metrics struct {
	sent    *prometheus.CounterVec
	dropped *prometheus.CounterVec
}

// NewMetrics registers the counters with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forge_payload_published_total",
			Help: "Payload log rows a deployment published to its topic (--log-payloads-to) and the broker took."}, []string{"deployment"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forge_payload_publish_dropped_total",
			Help: "Payload log rows not published: the queue to the broker was full (queue_full) or the broker failed them (error)."}, []string{"deployment", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.dropped)
	}
	return m
}

// Options tune a publisher.
type Options struct {
	// QueueSize bounds the messages waiting for the broker (default 10,000).
	QueueSize int
	Log       *slog.Logger
}

type message struct {
	key, value []byte
}

// sender is one broker's client: send may block (the queue absorbs it);
// it reports each message's fate through done.
type sender interface {
	send(ctx context.Context, m message, done func(error))
	close()
}

// Publisher is one deployment's topic or subject.
type Publisher struct {
	ep              queue.Endpoint
	ch              chan message
	s               sender
	sent            prometheus.Counter
	full, failed    prometheus.Counter
	log             *slog.Logger
	cancel          context.CancelFunc
	done            chan struct{}
	closeOnce       sync.Once
	lastErrLoggedAt time.Time
}

// Open starts a publisher to url for deployment, with the config's
// credentials for its hosts. It does not wait for the broker: one that is
// down now is retried in the background while messages are counted as
// dropped.
func Open(url, deployment string, auths queue.Auths, m *Metrics, opts Options) (*Publisher, error) {
	ep, err := queue.ParseURL(url)
	if err != nil {
		return nil, err
	}
	ep = auths.WithAuth(ep)
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	var s sender
	if ep.Scheme == "kafka" {
		s, err = openKafka(ep, opts.QueueSize)
	} else {
		s, err = openNATS(ep, deployment, opts.Log)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{ep: ep, ch: make(chan message, opts.QueueSize), s: s,
		sent: m.sent.WithLabelValues(deployment), full: m.dropped.WithLabelValues(deployment, "queue_full"),
		failed: m.dropped.WithLabelValues(deployment, "error"), log: opts.Log.With("deployment", deployment, "to", ep.String()),
		cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

// Publish queues one message, or drops and counts it when the queue is full.
func (p *Publisher) Publish(key string, value []byte) {
	select {
	case p.ch <- message{[]byte(key), append([]byte(nil), value...)}:
	default:
		p.full.Inc()
	}
}

func (p *Publisher) run(ctx context.Context) {
	defer close(p.done)
	var mu sync.Mutex
	done := func(err error) {
		if err == nil {
			p.sent.Inc()
			return
		}
		p.failed.Inc()
		mu.Lock()
		defer mu.Unlock()
		if time.Since(p.lastErrLoggedAt) > time.Minute { // one line a minute, not one per message
			p.lastErrLoggedAt = time.Now()
			p.log.Warn("payload publish failed (rows dropped and counted in forge_payload_publish_dropped_total)", "err", err)
		}
	}
	for {
		select {
		case m := <-p.ch:
			p.s.send(ctx, m, done)
		case <-ctx.Done():
			return
		}
	}
}

// Close stops the publisher: what the broker has not taken within a few
// seconds is dropped.
func (p *Publisher) Close() {
	p.closeOnce.Do(func() {
		// Give queued messages a moment to go out, then stop.
		deadline := time.Now().Add(2 * time.Second)
		for len(p.ch) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		p.cancel()
		<-p.done
		p.s.close()
	})
}

// String names the destination, without credentials.
func (p *Publisher) String() string { return p.ep.String() }

// Counts returns how many rows of deployment m counts as sent and as
// dropped for reason, for tests and logs.
func (m *Metrics) Counts(deployment, reason string) (sent, dropped float64) {
	return value(m.sent.WithLabelValues(deployment)), value(m.dropped.WithLabelValues(deployment, reason))
}

func value(c prometheus.Counter) float64 {
	var out float64
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	for mt := range ch {
		var pb dto.Metric
		if mt.Write(&pb) == nil && pb.Counter != nil {
			out = pb.Counter.GetValue()
		}
	}
	return out
}
