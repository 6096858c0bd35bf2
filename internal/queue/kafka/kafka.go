// Package kafka reads Kafka topics for queue.Source with franz-go. It is
// written for Apache Kafka and Redpanda (anything that speaks the Kafka
// protocol from 2.x on); the tests run it against franz-go's kfake.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/queue"
)

// Source is one topic.
type Source struct {
	ep    queue.Endpoint
	opts  []kgo.Opt
	admin *kgo.Client
	adm   *kadm.Client
}

var _ queue.Source = (*Source)(nil)

// Open connects to the brokers of ep and checks that the topic exists.
func Open(ctx context.Context, ep queue.Endpoint) (*Source, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(ep.Hosts...), kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(10 * time.Second), kgo.RequestRetries(2),
		kgo.FetchMaxBytes(8 << 20), kgo.FetchMaxPartitionBytes(2 << 20), kgo.MaxConcurrentFetches(2)}
	auth, err := Options(ep)
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, forge.Errorf(forge.Invalid, "%s: %v", ep, err)
	}
	s := &Source{ep: ep, opts: opts, admin: cl, adm: kadm.NewClient(cl)}
	if _, err := s.Ends(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) user() string { u, _, _, _ := s.ep.Credentials(); return u }

// Options are the client options ep's credentials and TLS settings give:
// SASL with the URL's user or the config's, TLS from the config or ?tls=true.
func Options(ep queue.Endpoint) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	user, pass, mech, _ := ep.Credentials()
	if user != "" {
		switch mech {
		case "", "plain":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "scram-sha-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case "scram-sha-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, forge.Errorf(forge.Invalid, "%s: sasl=%q: want plain, scram-sha-256 or scram-sha-512", ep, mech)
		}
	}
	tc, err := ep.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

// Close closes the connections.
func (s *Source) Close() error { s.admin.Close(); return nil }

// explain names the source in an error and gives it its kind.
func (s *Source) explain(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return forge.Errorf(forge.NotFound, "%s: no topic %q on the brokers", s.ep, s.ep.Name)
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.UnsupportedSaslMechanism),
		errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return forge.WrapError(forge.Unauthorized, err, "%s: the brokers refused the credentials: %v", s.ep, err)
	case s.user() == "" && strings.Contains(err.Error(), "SASL is required"):
		// The broker dropped a client that did not authenticate.
		return forge.WrapError(forge.Unauthorized, err, "%s: the brokers require SASL: give a user for %s in the config's queues: section", s.ep, strings.Join(s.ep.Hosts, ","))
	case s.user() != "" && errors.Is(err, io.EOF):
		// Brokers may drop the connection on failed SASL instead of answering.
		return forge.WrapError(forge.Unauthorized, err, "%s: the brokers closed the connection while authenticating user %s: check the credentials and the sasl mechanism", s.ep, s.user())
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "connect"), strings.Contains(err.Error(), "dial"):
		return forge.WrapError(forge.Unavailable, err, "%s: cannot reach the brokers %s: %v", s.ep, strings.Join(s.ep.Hosts, ","), err)
	}
	return fmt.Errorf("%s: %w", s.ep, err)
}

// Ends returns the high watermark of each partition.
func (s *Source) Ends(ctx context.Context) (map[int32]int64, error) {
	return s.list(ctx, func(ctx context.Context) (kadm.ListedOffsets, error) { return s.adm.ListEndOffsets(ctx, s.ep.Name) })
}

func (s *Source) list(ctx context.Context, f func(context.Context) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	lo, err := f(ctx)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, s.explain(err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, s.explain(kerr.UnknownTopicOrPartition)
	}
	return out, nil
}

// bounds resolves the range to [start, end) per partition.
func (s *Source) bounds(ctx context.Context, req queue.Request) (start, end map[int32]int64, err error) {
	ends, err := s.Ends(ctx)
	if err != nil {
		return nil, nil, err
	}
	firsts, err := s.list(ctx, func(ctx context.Context) (kadm.ListedOffsets, error) { return s.adm.ListStartOffsets(ctx, s.ep.Name) })
	if err != nil {
		return nil, nil, err
	}
	atTime := func(t time.Time) (map[int32]int64, error) {
		m, err := s.list(ctx, func(ctx context.Context) (kadm.ListedOffsets, error) {
			return s.adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), s.ep.Name)
		})
		for p, o := range m {
			if o < 0 { // no message at or after t
				m[p] = ends[p]
			}
		}
		return m, err
	}
	start, end = map[int32]int64{}, map[int32]int64{}
	var fromTime, untilTime map[int32]int64
	if req.From.Kind == queue.Time {
		if fromTime, err = atTime(req.From.Time); err != nil {
			return nil, nil, err
		}
	}
	if req.Until.Kind == queue.Time {
		// The first offset after the until time ends the range.
		if untilTime, err = atTime(req.Until.Time.Add(time.Millisecond)); err != nil {
			return nil, nil, err
		}
	}
	for p, hi := range ends {
		lo := firsts[p]
		st := lo
		if req.After != nil {
			if o, ok := req.After[p]; ok {
				st = o
			}
		} else {
			switch req.From.Kind {
			case queue.Latest:
				st = hi
			case queue.Offset:
				if o, ok := req.From.OffsetFor(p); ok {
					st = o
				} else {
					st = hi
				}
			case queue.Time:
				st = fromTime[p]
			}
		}
		en := hi
		switch req.Until.Kind {
		case queue.Offset:
			if o, ok := req.Until.OffsetFor(p); ok && o+1 < hi {
				en = o + 1
			}
		case queue.Time:
			en = min(untilTime[p], hi)
		}
		if st < lo {
			return nil, nil, forge.Errorf(forge.Conflict, "%s: partition %d starts at offset %d now; offsets from %d were deleted by the broker's retention", s.ep, p, lo, st)
		}
		st = min(st, hi)
		start[p], end[p] = st, max(en, st)
	}
	return start, end, nil
}

// Read reads [start, end) of every partition with a direct (group-less)
// consumer, so nothing is committed to the brokers: the version records the
// offsets.
func (s *Source) Read(ctx context.Context, req queue.Request, fn func(queue.Message) error) ([]queue.Range, error) {
	start, end, err := s.bounds(ctx, req)
	if err != nil {
		return nil, err
	}
	ranges := map[int32]*queue.Range{}
	want := map[int32]kgo.Offset{}
	for p, st := range start {
		ranges[p] = &queue.Range{Partition: p, Start: st, Next: end[p], First: -1, Last: -1}
		if st < end[p] {
			want[p] = kgo.NewOffset().At(st)
		}
	}
	if len(want) > 0 {
		if err := s.consume(ctx, want, end, ranges, fn); err != nil {
			return nil, err
		}
	}
	out := make([]queue.Range, 0, len(ranges))
	for p := int32(0); len(out) < len(ranges); p++ {
		if r, ok := ranges[p]; ok {
			out = append(out, *r)
		}
	}
	return out, nil
}

func (s *Source) consume(ctx context.Context, want map[int32]kgo.Offset, end map[int32]int64, ranges map[int32]*queue.Range, fn func(queue.Message) error) error {
	opts := append(s.opts[:len(s.opts):len(s.opts)], kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.ep.Name: want}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return s.explain(err)
	}
	defer cl.Close()
	open := len(want)
	for open > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return s.explain(ferr)
		}
		var done []int32
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			r := ranges[fp.Partition]
			hi := end[fp.Partition]
			for _, rec := range fp.Records {
				if err != nil || rec.Offset >= hi || rec.Offset < r.Start {
					continue
				}
				if r.First < 0 {
					r.First = rec.Offset
				}
				r.Last = rec.Offset
				r.Messages++
				err = fn(queue.Message{Key: rec.Key, Value: rec.Value, Partition: rec.Partition, Offset: rec.Offset, Time: rec.Timestamp})
			}
			if r.Last >= hi-1 {
				done = append(done, fp.Partition)
			}
		})
		if err != nil {
			return err
		}
		for _, p := range done {
			if _, ok := want[p]; ok {
				delete(want, p)
				open--
				cl.PauseFetchPartitions(map[string][]int32{s.ep.Name: {p}})
			}
		}
	}
	return nil
}
