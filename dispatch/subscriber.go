package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Batch sizes: how many events a subscriber copies out of the window at a
// time. A LATEST subscriber coalesces within a batch, so its batches are big.
const (
	batchEvery  = 256
	batchLatest = 4096
)

type subscriber struct {
	h   *Hub
	req *proto.SubscribeRequest
	m   *matcher
	// Exactly one of these sends; ended is set once the Subscribe call has
	// returned, after which neither is called again.
	sendBatch func(*Batch) error
	sendEvent func(*proto.Event) error
	ended     atomic.Bool
	latest    bool
	cancel    context.CancelCauseFunc

	// seq is the sequence number of the next event to read; the watchdog
	// reads it to measure lag.
	seq atomic.Uint64
	// delivered is the last revision the subscriber has received whole.
	delivered atomic.Uint64
	// cut is set once the subscriber has been cut off; guarded by h.mu.
	cut bool
	// base is h.end() when the subscriber was last positioned; guarded by
	// h.mu. The backlog before it was asked for (a resume), so it is not
	// lag: see lagLocked.
	base uint64

	// The loop's own state.
	epoch   uint64
	after   uint64 // events at or below this revision are skipped
	skipRev uint64 // events of this revision with an index below skipIdx are skipped
	skipIdx uint32
	batch   []*item
	out     Batch
}

// Subscribe is SubscribeBatches one event at a time.
func (h *Hub) Subscribe(ctx context.Context, req *proto.SubscribeRequest, send func(*proto.Event) error) error {
	return h.subscribe(ctx, req, nil, send)
}

// errEnded stops a serve goroutine that outlived its Subscribe call.
var errEnded = errors.New("dispatch: subscription ended")

// SubscribeBatches streams the events matching req through send until ctx ends,
// send fails, or the subscriber is cut off. It returns an *fsm.Error for a
// malformed request, a *CompactedError when from_revision has left the
// window (unless resync_on_compacted), a *SlowError when an EVERY
// subscriber fell too far behind, or the context's cause.
//
// A send that blocks (a client that stopped reading) is abandoned when the
// subscriber is cut off: Subscribe returns, and the caller must then end
// the stream so that the blocked send returns too.
func (h *Hub) SubscribeBatches(ctx context.Context, req *proto.SubscribeRequest, send func(*Batch) error) error {
	return h.subscribe(ctx, req, send, nil)
}

// subscribe serves one subscription through exactly one of sendBatch and
// sendEvent.
func (h *Hub) subscribe(ctx context.Context, req *proto.SubscribeRequest,
	sendBatch func(*Batch) error, sendEvent func(*proto.Event) error) error {
	m, err := newMatcher(req.Channels)
	if err != nil {
		return err
	}
	if err := ValidateName(req.Name); err != nil {
		return err
	}
	progress := h.cfg.ProgressInterval
	switch {
	case req.ProgressIntervalMs > 0:
		progress = time.Duration(req.ProgressIntervalMs) * time.Millisecond
	case req.ProgressIntervalMs < 0:
		progress = 0
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Once this call returns, send is not called again (only a send that
	// is already running may still finish): the stream it writes to is
	// the caller's, and done with.
	s := &subscriber{h: h, req: req, m: m, sendBatch: sendBatch, sendEvent: sendEvent, latest: req.Delivery == proto.Delivery_LATEST, cancel: cancel}
	defer s.ended.Store(true)
	h.mu.Lock()
	s.seq.Store(h.end())
	h.subs[s] = struct{}{}
	h.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		defer func() {
			h.mu.Lock()
			delete(h.subs, s)
			h.mu.Unlock()
		}()
		done <- s.serve(ctx, progress)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *subscriber) serve(ctx context.Context, progress time.Duration) error {
	if s.req.WithState {
		if err := s.sendState(ctx, false); err != nil {
			return err
		}
	} else if err := s.position(s.req.FromRevision, s.req.Skip); err != nil {
		if _, compacted := err.(*CompactedError); !compacted || !s.req.ResyncOnCompacted {
			return err
		}
		if err := s.sendState(ctx, true); err != nil {
			return err
		}
	}
	return s.run(ctx, progress)
}

// position starts the subscriber after revision from.
func (s *subscriber) position(from uint64, skip uint32) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s.epoch = h.epoch
	if from == 0 {
		from, skip = h.head, 0
	}
	if from < h.floor {
		return &CompactedError{Requested: from, Oldest: h.floor}
	}
	s.seq.Store(h.seqAfter(from))
	s.base = h.end()
	s.after, s.skipRev, s.skipIdx = from, from+1, skip
	s.delivered.Store(from)
	return nil
}

// lagLocked is how many of the events appended since the subscriber was
// positioned it has not read yet; h.mu must be held. Counting from seq
// alone would cut off at once every subscriber that resumes more than
// MaxLag events back, a cut-off one resuming from its Resume included.
func (s *subscriber) lagLocked(end uint64) int {
	return int(end - min(end, max(s.seq.Load(), s.base)))
}

// sendState sends the matching keys of the current state at a revision R,
// then SYNCED, and positions the subscriber after R. A resync says so first.
func (s *subscriber) sendState(ctx context.Context, resync bool) error {
	// position marks rev delivered, but the state at rev is received
	// whole only once SYNCED is sent (see sent): until then a cut-off
	// subscriber resumes from where it was before.
	prev := s.delivered.Load()
	view, rev := s.h.state.View()
	for s.position(rev, 0) != nil {
		// Applies went on after View and the window moved past rev
		// already: take a newer view.
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		view, rev = s.h.state.View()
	}
	s.delivered.Store(prev)
	s.out.reset()
	if resync {
		s.out.add(&proto.Event{Type: proto.Event_RESYNC, Revision: rev}, nil)
	}
	for _, spec := range s.m.specs() {
		after := ""
		for {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			items, next := view.List(spec.key, after, 1000)
			for _, kv := range items {
				if !spec.prefix && kv.Key != spec.key {
					break
				}
				if err := s.push(&proto.Event{Type: proto.Event_STATE, Revision: rev, Kv: kv}, nil); err != nil {
					return err
				}
			}
			if next == "" || !spec.prefix {
				break
			}
			after = next
		}
	}
	s.out.add(&proto.Event{Type: proto.Event_SYNCED, Revision: rev}, nil)
	return s.flush()
}

// push adds an event to the outgoing batch, sending the batch first when
// it is full.
func (s *subscriber) push(ev *proto.Event, elem []byte) error {
	if s.out.size >= maxBatchBytes || len(s.out.Events) >= 1024 {
		if err := s.flush(); err != nil {
			return err
		}
	}
	s.out.add(ev, elem)
	return nil
}

// flush sends the outgoing batch, if it holds anything.
func (s *subscriber) flush() error {
	defer s.out.reset()
	if len(s.out.Events) == 0 {
		return nil
	}
	if s.sendBatch != nil {
		if s.ended.Load() {
			return errEnded
		}
		if err := s.sendBatch(&s.out); err != nil {
			return err
		}
		for _, ev := range s.out.Events {
			s.sent(ev)
		}
		return nil
	}
	for _, ev := range s.out.Events {
		if s.ended.Load() {
			return errEnded
		}
		if err := s.sendEvent(ev); err != nil {
			return err
		}
		s.sent(ev)
	}
	return nil
}

// sent records what a subscriber has whole: a revision once its last
// event is sent, a state once SYNCED is.
func (s *subscriber) sent(ev *proto.Event) {
	switch ev.Type {
	case proto.Event_SYNCED, proto.Event_PROGRESS:
		s.delivered.Store(ev.Revision)
	case proto.Event_STATE, proto.Event_RESYNC:
	default:
		if ev.Last {
			s.delivered.Store(ev.Revision)
		}
	}
}

// run streams events from the window until an error ends it.
func (s *subscriber) run(ctx context.Context, progress time.Duration) error {
	h := s.h
	var idle <-chan time.Time
	var timer *time.Timer
	if progress > 0 {
		timer = time.NewTimer(progress)
		defer timer.Stop()
		idle = timer.C
	}
	for {
		h.mu.Lock()
		if s.epoch != h.epoch {
			// The state was restored from a snapshot: history is gone.
			h.mu.Unlock()
			if err := s.sendState(ctx, true); err != nil {
				return err
			}
			continue
		}
		seq, end := s.seq.Load(), h.end()
		if seq < h.first {
			if !s.latest {
				// Its unread events left the window (the byte bound can
				// be reached before MaxLag): cut off like any other.
				h.cutoffLocked(s, int(end-seq))
				h.mu.Unlock()
				return context.Cause(ctx)
			}
			h.mu.Unlock()
			if err := s.sendState(ctx, true); err != nil {
				return err
			}
			continue
		}
		lag := int(end - seq)
		if behind := s.lagLocked(end); !s.latest && behind > h.cfg.MaxLag {
			h.cutoffLocked(s, behind)
			h.mu.Unlock()
			return context.Cause(ctx)
		}
		n := min(lag, batchEvery)
		if s.latest {
			n = min(lag, batchLatest)
		}
		// Never split a revision between batches.
		for n > 0 && seq+uint64(n) < end && h.at(seq+uint64(n)).ev.Revision == h.at(seq+uint64(n)-1).ev.Revision {
			n++
		}
		s.batch = s.batch[:0]
		for i := range n {
			s.batch = append(s.batch, h.at(seq+uint64(i)))
		}
		notify, head := h.notify, h.head
		h.mu.Unlock()
		s.seq.Store(seq + uint64(n))

		if n == 0 {
			select {
			case <-notify:
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-idle:
				// A subscriber that resumed past this member's head is
				// told its own resume point, never a revision it has passed.
				s.out.add(&proto.Event{Type: proto.Event_PROGRESS, Revision: max(head, s.after)}, nil)
				if err := s.flush(); err != nil {
					return err
				}
				timer.Reset(progress)
			}
			continue
		}
		sent, err := s.deliver(s.batch)
		if err != nil {
			return err
		}
		if sent && timer != nil {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(progress)
		}
	}
}

// deliver sends the matching events of a batch, coalesced per key for a
// LATEST subscriber.
func (s *subscriber) deliver(batch []*item) (sent bool, err error) {
	items := batch[:0:0]
	for _, it := range batch {
		ev := it.ev
		if ev.Revision <= s.after || (ev.Revision == s.skipRev && ev.Index < s.skipIdx) || !s.m.match(ev.Kv.Key) {
			continue
		}
		items = append(items, it)
	}
	if s.latest {
		items = coalesce(items)
	}
	s.out.reset()
	for i, it := range items {
		// Batches never split a revision, so the next item tells whether
		// this is the revision's last event for this subscriber.
		last := i == len(items)-1 || items[i+1].ev.Revision != it.ev.Revision
		ev, elem := it.ev, []byte(nil)
		if last == ev.Last {
			elem = it.wire.get(ev, s.req.PrevKv)
			if !s.req.PrevKv && ev.PrevKv != nil {
				ev = &proto.Event{Type: ev.Type, Revision: ev.Revision, Kv: ev.Kv, Index: ev.Index, Last: ev.Last}
			}
		} else {
			ev = &proto.Event{Type: ev.Type, Revision: ev.Revision, Kv: ev.Kv, Index: ev.Index, Last: last}
			if s.req.PrevKv {
				ev.PrevKv = it.ev.PrevKv
			}
		}
		if err := s.push(ev, elem); err != nil {
			return sent, err
		}
		sent = true
	}
	if err := s.flush(); err != nil {
		return sent, err
	}
	s.h.sent.Add(uint64(len(items)))
	return sent, nil
}

// coalesce keeps the last event of each key (or channel), in the order of
// those last events.
func coalesce(items []*item) []*item {
	if len(items) < 2 {
		return items
	}
	seen := make(map[string]struct{}, len(items))
	out := make([]*item, 0, len(items))
	for i := len(items) - 1; i >= 0; i-- {
		k := items[i].ev.Kv.Key
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, items[i])
	}
	slices.Reverse(out)
	return out
}

// matcher matches channels exactly or by prefix.
type matcher struct {
	all      bool
	exact    map[string]struct{}
	prefixes []string
}

type spec struct {
	key    string
	prefix bool
}

// ValidateChannels checks the channels of a subscription: each a key, or a
// prefix ending in "/".
func ValidateChannels(channels []string) error {
	_, err := newMatcher(channels)
	return err
}

// newMatcher validates the channels and drops those another one covers,
// so that the specs are disjoint.
func newMatcher(channels []string) (*matcher, error) {
	if len(channels) == 0 {
		return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: "channels", Message: "name at least one channel"}
	}
	m := &matcher{exact: make(map[string]struct{})}
	for i, c := range channels {
		field := fmt.Sprintf("channels[%d]", i)
		if strings.HasSuffix(c, "/") {
			if err := fsm.ValidatePrefix(c); err != nil {
				return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: field, Message: err.Error()}
			}
			m.prefixes = append(m.prefixes, c)
			continue
		}
		if err := fsm.ValidateKey(c); err != nil {
			return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: field, Message: err.Error()}
		}
		m.exact[c] = struct{}{}
	}
	slices.Sort(m.prefixes)
	var kept []string
	for _, p := range m.prefixes {
		if len(kept) > 0 && strings.HasPrefix(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	m.prefixes = kept
	m.all = len(kept) > 0 && kept[0] == "/"
	for k := range m.exact {
		if m.byPrefix(k) {
			delete(m.exact, k)
		}
	}
	return m, nil
}

func (m *matcher) byPrefix(key string) bool {
	if m.all {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (m *matcher) match(key string) bool {
	if _, ok := m.exact[key]; ok {
		return true
	}
	return m.byPrefix(key)
}

// specs returns the disjoint channel specs in key order.
func (m *matcher) specs() []spec {
	out := make([]spec, 0, len(m.exact)+len(m.prefixes))
	for k := range m.exact {
		out = append(out, spec{key: k})
	}
	for _, p := range m.prefixes {
		out = append(out, spec{key: p, prefix: true})
	}
	slices.SortFunc(out, func(a, b spec) int { return strings.Compare(a.key, b.key) })
	return out
}
