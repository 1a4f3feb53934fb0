package client

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Publish sends a JSON message on a channel to every subscriber of it, on
// every member, in the same order as state events. It returns the
// message's revision. A failed publish may or may not have been sent.
func (c *Client) Publish(ctx context.Context, channel string, payload []byte, opts ...PublishOption) (uint64, error) {
	req := &proto.PublishRequest{Channel: channel, Payload: payload}
	for _, o := range opts {
		o.applyPublish(req)
	}
	resp, err := c.dispatcher.Publish(ctx, req)
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.Revision, nil
}

// PublishOption configures a Publish. WithOrigin is one.
type PublishOption interface {
	applyPublish(*proto.PublishRequest)
}

func (o originOption) applyPublish(r *proto.PublishRequest) { r.Origin = string(o) }

// SubscribeOption configures a Subscribe.
type SubscribeOption func(*proto.SubscribeRequest)

// FromRevision resumes after revision rev: every matching event with a
// higher revision, none twice.
func FromRevision(rev uint64) SubscribeOption {
	return func(r *proto.SubscribeRequest) { r.FromRevision = rev }
}

// WithState starts with the matching keys of the current state (STATE
// events, then SYNCED), then every event after it.
func WithState() SubscribeOption {
	return func(r *proto.SubscribeRequest) { r.WithState = true }
}

// Latest asks for level-triggered delivery: while the subscriber is behind,
// only the newest event per key (or channel) is delivered.
func Latest() SubscribeOption {
	return func(r *proto.SubscribeRequest) { r.Delivery = proto.Delivery_LATEST }
}

// WithPrevKVEvents adds the previous key-value to PUT, DELETE and EXPIRE events.
func WithPrevKVEvents() SubscribeOption {
	return func(r *proto.SubscribeRequest) { r.PrevKv = true }
}

// WithName names the subscriber in the graph of who reads and writes
// what: while it is subscribed, its channels count as what it reads. A
// program that also writes with WithOrigin(name) is one actor there.
func WithName(name string) SubscribeOption {
	return func(r *proto.SubscribeRequest) { r.Name = name }
}

// WithProgress sets how long the stream may be idle before a PROGRESS event
// tells the subscriber the member's revision; negative turns them off.
func WithProgress(d time.Duration) SubscribeOption {
	return func(r *proto.SubscribeRequest) {
		r.ProgressIntervalMs = int32(d / time.Millisecond)
		if d < 0 {
			r.ProgressIntervalMs = -1
		}
	}
}

// Subscription is a stream of events that survives disconnects: when its
// member fails, it cuts the subscriber off for being slow, or the history
// asked for is gone, it reconnects (to any member) and resumes exactly
// after the last event it delivered. A subscriber that missed history
// receives a RESYNC event and the current state, never a silent gap.
type Subscription struct {
	c   *Client
	ctx context.Context
	req *proto.SubscribeRequest

	stream  proto.Dispatcher_SubscribeClient
	cancel  context.CancelFunc // ends the current stream
	stall   *time.Timer        // ends the current stream when it goes silent
	stalled atomic.Bool
	pending []*proto.Event // events of the last response not yet returned
	backoff time.Duration

	// Where to resume: after revision from, skipping the first skip events
	// of revision from+1 (those already delivered).
	from    uint64
	skip    uint32
	inState bool // between the start of a state listing and its SYNCED
	// OnReconnect, if set, is told of each reconnect and why.
	OnReconnect func(err error)
}

// Subscribe opens a subscription to channels: each a channel name
// ("/hosts/web-1") or a prefix ending in "/" ("/hosts/"). Events come from
// Recv. The subscription ends when ctx ends.
func (c *Client) Subscribe(ctx context.Context, channels []string, opts ...SubscribeOption) *Subscription {
	req := &proto.SubscribeRequest{Channels: channels, ResyncOnCompacted: true}
	for _, o := range opts {
		o(req)
	}
	s := &Subscription{c: c, ctx: ctx, req: req, from: req.FromRevision, inState: req.WithState}
	return s
}

// Revision returns the revision the subscription has fully delivered.
func (s *Subscription) Revision() uint64 { return s.from }

// Recv returns the next event. It fails only when the context ends or the
// request is invalid (an *fsm.Error); every other failure is a reconnect.
func (s *Subscription) Recv() (*proto.Event, error) {
	for {
		if len(s.pending) > 0 {
			ev := s.pending[0]
			s.pending = s.pending[1:]
			s.track(ev)
			return ev, nil
		}
		if s.stream == nil {
			if err := s.open(); err != nil {
				if permanent(err) {
					return nil, err
				}
				if err := s.wait(err); err != nil {
					return nil, err
				}
				continue
			}
		}
		resp, err := s.stream.Recv()
		if err != nil {
			s.closeStream()
			switch {
			case s.stalled.Load() && s.ctx.Err() == nil:
				err = status.Error(codes.Unavailable, "stream went silent")
			case err == io.EOF:
				err = status.Error(codes.Unavailable, "stream ended")
			}
			err = fromStatus(err)
			if permanent(err) {
				return nil, err
			}
			if err := s.wait(err); err != nil {
				return nil, err
			}
			continue
		}
		s.backoff = 0
		s.pending = resp.Events
		if s.stall != nil {
			s.stall.Reset(s.stallTimeout())
		}
	}
}

// open starts a stream at the resume point.
func (s *Subscription) open() error {
	req := &proto.SubscribeRequest{
		Channels: s.req.Channels, Delivery: s.req.Delivery, PrevKv: s.req.PrevKv,
		ProgressIntervalMs: s.req.ProgressIntervalMs, ResyncOnCompacted: true, Name: s.req.Name,
	}
	if s.inState {
		// A state listing that was cut short is listed again, whole.
		req.WithState = true
	} else {
		req.FromRevision, req.Skip = s.from, s.skip
	}
	ctx, cancel := context.WithCancel(s.ctx)
	stream, err := s.c.dispatcher.Subscribe(ctx, req)
	if err != nil {
		cancel()
		return fromStatus(err)
	}
	s.stream, s.cancel = stream, cancel
	// The member sends a progress notice whenever the stream is idle, so
	// a stream that stays silent much longer is dead (a member paused, or
	// cut off without the connection breaking): end it and resume
	// elsewhere.
	if d := s.stallTimeout(); d > 0 {
		s.stalled.Store(false)
		s.stall = time.AfterFunc(d, func() {
			s.stalled.Store(true)
			cancel()
		})
	}
	return nil
}

// stallTimeout is how long a stream may stay silent: five progress
// intervals, at least five seconds; 0 when progress notices are off.
func (s *Subscription) stallTimeout() time.Duration {
	ms := s.req.ProgressIntervalMs
	switch {
	case ms < 0:
		return 0
	case ms == 0:
		ms = 1000
	}
	return max(5*time.Duration(ms)*time.Millisecond, 5*time.Second)
}

// closeStream ends the current stream.
func (s *Subscription) closeStream() {
	if s.stall != nil {
		s.stall.Stop()
		s.stall = nil
	}
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	s.stream = nil
}

// track moves the resume point past ev.
func (s *Subscription) track(ev *proto.Event) {
	switch ev.Type {
	case proto.Event_STATE:
	case proto.Event_RESYNC:
		s.inState = true
	case proto.Event_SYNCED:
		s.inState = false
		s.from, s.skip = ev.Revision, 0
	case proto.Event_PROGRESS:
		if ev.Revision > s.from {
			s.from, s.skip = ev.Revision, 0
		}
	default:
		if ev.Last {
			s.from, s.skip = ev.Revision, 0
		} else {
			s.from, s.skip = ev.Revision-1, ev.Index+1
		}
	}
}

func (s *Subscription) wait(cause error) error {
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	if s.OnReconnect != nil {
		s.OnReconnect(cause)
	}
	s.backoff = min(max(2*s.backoff, 50*time.Millisecond), 2*time.Second)
	select {
	case <-s.ctx.Done():
		return s.ctx.Err()
	case <-time.After(s.backoff):
		return nil
	}
}

// permanent reports whether a subscription error cannot be cured by
// reconnecting: an invalid request. (The caller's context ending is seen
// by wait.)
func permanent(err error) bool {
	var fe *fsm.Error
	return errors.As(err, &fe)
}
