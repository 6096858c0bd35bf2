// Package natsjs reads NATS JetStream streams for queue.Source with
// nats.go. A stream is one partition (0) whose offsets are the stream
// sequence numbers; the key of a message is its subject.
package natsjs

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/queue"
)

// Source is one stream.
type Source struct {
	ep queue.Endpoint
	nc *nats.Conn
	st jetstream.Stream
}

var _ queue.Source = (*Source)(nil)

// Open connects and checks that the stream exists.
func Open(ctx context.Context, ep queue.Endpoint) (*Source, error) {
	opts := []nats.Option{nats.Timeout(5 * time.Second), nats.MaxReconnects(2), nats.Name("forge")}
	more, err := Options(ep)
	if err != nil {
		return nil, err
	}
	opts = append(opts, more...)
	urls := make([]string, len(ep.Hosts))
	for i, h := range ep.Hosts {
		urls[i] = "nats://" + h
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			return nil, forge.WrapError(forge.Unauthorized, err, "%s: the server refused the credentials: %v", ep, err)
		}
		return nil, forge.WrapError(forge.Unavailable, err, "%s: cannot reach the NATS server %s: %v", ep, strings.Join(ep.Hosts, ","), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, forge.WrapError(forge.Unavailable, err, "%s: %v", ep, err)
	}
	st, err := js.Stream(ctx, ep.Name)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, forge.Errorf(forge.NotFound, "%s: no JetStream stream %q on the server", ep, ep.Name)
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrJetStreamNotEnabled) {
			return nil, forge.WrapError(forge.Unavailable, err, "%s: JetStream is not enabled on the server", ep)
		}
		return nil, forge.WrapError(forge.Unavailable, err, "%s: look up stream: %v", ep, err)
	}
	return &Source{ep: ep, nc: nc, st: st}, nil
}

// Close closes the connection.
func (s *Source) Close() error { s.nc.Close(); return nil }

func (s *Source) state(ctx context.Context) (jetstream.StreamState, error) {
	info, err := s.st.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, forge.WrapError(forge.Unavailable, err, "%s: stream info: %v", s.ep, err)
	}
	return info.State, nil
}

// Ends returns the sequence the next message of the stream will have.
func (s *Source) Ends(ctx context.Context) (map[int32]int64, error) {
	st, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	return map[int32]int64{0: int64(st.LastSeq) + 1}, nil
}

// Read reads the stream from its start sequence up to the last message when
// Read began (or the until position), with an ordered consumer: ephemeral,
// no acks, nothing left on the server.
func (s *Source) Read(ctx context.Context, req queue.Request, fn func(queue.Message) error) ([]queue.Range, error) {
	st, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	first, hi := int64(st.FirstSeq), int64(st.LastSeq)+1
	if st.Msgs == 0 {
		first = hi
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy}
	start, byTime := first, false
	switch {
	case req.After != nil:
		if o, ok := req.After[0]; ok {
			start = o
		}
		if start < first && st.Msgs > 0 {
			return nil, forge.Errorf(forge.Conflict, "%s: the stream starts at sequence %d now; sequences from %d were removed by its limits", s.ep, first, start)
		}
	case req.From.Kind == queue.Latest:
		start = hi
	case req.From.Kind == queue.Offset:
		if o, ok := req.From.OffsetFor(0); ok {
			start = o
		} else {
			start = hi
		}
	case req.From.Kind == queue.Time:
		if st.Msgs == 0 || req.From.Time.After(st.LastTime) {
			start = hi
		} else {
			byTime = true
			t := req.From.Time
			cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t}
		}
	}
	start = min(max(start, first), hi)
	end := hi
	if req.Until.Kind == queue.Offset {
		if o, ok := req.Until.OffsetFor(0); ok && o+1 < hi {
			end = max(o+1, start)
		}
	}
	r := queue.Range{Partition: 0, Start: start, Next: end, First: -1, Last: -1}
	if !byTime && start >= end {
		return []queue.Range{r}, nil
	}
	if !byTime {
		cfg.OptStartSeq = uint64(start)
	}
	cons, err := s.st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, forge.WrapError(forge.Unavailable, err, "%s: create consumer: %v", s.ep, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2000))
	if err != nil {
		return nil, forge.WrapError(forge.Unavailable, err, "%s: consume: %v", s.ep, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, forge.WrapError(forge.Unavailable, err, "%s: read: %v", s.ep, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, forge.WrapError(forge.Internal, err, "%s: message metadata: %v", s.ep, err)
		}
		seq := int64(md.Sequence.Stream)
		if byTime && r.First < 0 {
			r.Start = seq
		}
		if seq >= end || (req.Until.Kind == queue.Time && md.Timestamp.After(req.Until.Time)) {
			r.Next = seq
			break
		}
		if r.First < 0 {
			r.First = seq
		}
		r.Last, r.Messages = seq, r.Messages+1
		if err := fn(queue.Message{Key: []byte(m.Subject()), Value: m.Data(), Partition: 0, Offset: seq, Time: md.Timestamp}); err != nil {
			return nil, err
		}
		if seq >= end-1 || md.NumPending == 0 {
			r.Next = seq + 1
			break
		}
	}
	return []queue.Range{r}, nil
}

// Options are the connection options ep's credentials and TLS settings
// give: the URL's user and password or token, else the config's (user and
// password, token, creds file, TLS).
func Options(ep queue.Endpoint) ([]nats.Option, error) {
	var opts []nats.Option
	user, pass, _, token := ep.Credentials()
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	if ep.Auth != nil && ep.Auth.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(ep.Auth.CredsFile))
	}
	tc, err := ep.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}
