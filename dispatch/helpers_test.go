package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// deadline bounds every wait in these tests; none should come close.
const deadline = 5 * time.Second

// harness wires a Store to a Hub as production does and feeds encoded
// entries straight into the Store, no Raft, one increasing index each.
type harness struct {
	t     testing.TB
	store *fsm.Store
	hub   *dispatch.Hub

	mu  sync.Mutex // guards idx, so that a writer goroutine may apply
	idx uint64
}

func newHarness(t testing.TB, cfg dispatch.Config) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, nil)
}

// newHarnessWith builds the hub over src instead of the store when src is
// not nil.
func newHarnessWith(t testing.TB, cfg dispatch.Config, src func(*fsm.Store) dispatch.StateSource) *harness {
	t.Helper()
	store := fsm.New()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	var state dispatch.StateSource = store
	if src != nil {
		state = src(store)
	}
	hub, err := dispatch.New(cfg, state)
	if err != nil {
		t.Fatalf("dispatch.New: %v", err)
	}
	t.Cleanup(hub.Close)
	store.SetHook(hub.Applied)
	store.SetRestoreHook(hub.Restored)
	return &harness{t: t, store: store, hub: hub}
}

// logWriter sends the hub's log lines to t.Log until the test ends.
type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() { // registered first, so it runs last
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, nil))
}

// entry encodes c as the next command entry without applying it.
func (h *harness) entry(c *proto.Command) *raft.Log {
	data, err := fsm.EncodeCommand(c)
	if err != nil {
		h.t.Errorf("EncodeCommand(%v): %v", c, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.idx++
	return &raft.Log{Type: raft.LogCommand, Index: h.idx, Data: data}
}

// apply applies c as the next entry and returns its revision. It reports a
// rule violation with Errorf, so a writer goroutine may call it.
func (h *harness) apply(c *proto.Command) uint64 {
	l := h.entry(c)
	res, ok := h.store.Apply(l).(*proto.Result)
	if !ok || res.Error != nil {
		h.t.Errorf("apply %v at index %d: %v", c, l.Index, res)
	}
	return l.Index
}

// config applies a configuration entry, which produces no events.
func (h *harness) config() uint64 {
	h.mu.Lock()
	h.idx++
	l := &raft.Log{Type: raft.LogConfiguration, Index: h.idx, Data: []byte("cfg")}
	h.mu.Unlock()
	h.store.Apply(l)
	return l.Index
}

func (h *harness) put(key, value string) uint64 {
	return h.apply(putCmd(&proto.PutRequest{Key: key, Value: []byte(value)}))
}

func (h *harness) putLease(key, value string, lease uint64) uint64 {
	return h.apply(putCmd(&proto.PutRequest{Key: key, Value: []byte(value), Lease: lease}))
}

func (h *harness) del(key string) uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_Delete{Delete: &proto.DeleteRequest{Key: key}}})
}

func (h *harness) delPrefix(prefix string) uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_Delete{Delete: &proto.DeleteRequest{Key: prefix, Prefix: true}}})
}

func (h *harness) txn(ops ...*proto.Op) uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_Txn{Txn: &proto.TxnRequest{Success: ops}}})
}

func (h *harness) grant(ttl int64) uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_LeaseGrant{LeaseGrant: &proto.LeaseGrantRequest{TtlSeconds: ttl}}})
}

func (h *harness) expire(id uint64) uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_LeaseRevoke{LeaseRevoke: &proto.LeaseRevoke{Id: id, Expired: true}}})
}

func (h *harness) publish(channel, payload string) uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_Publish{Publish: &proto.PublishRequest{Channel: channel, Payload: []byte(payload)}}})
}

func (h *harness) barrier() uint64 {
	return h.apply(&proto.Command{Cmd: &proto.Command_Barrier{Barrier: &proto.Barrier{Leader: "m1"}}})
}

func putCmd(r *proto.PutRequest) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_Put{Put: r}}
}

func opPut(key, value string) *proto.Op {
	return &proto.Op{Type: proto.Op_PUT, Key: key, Value: []byte(value)}
}

func opDel(key string) *proto.Op { return &proto.Op{Type: proto.Op_DELETE, Key: key} }

// head is the store's (and so the hub's) current revision.
func (h *harness) head() uint64 { return h.store.Revision() }

// listAll returns every key under prefix as "key=value" strings, in key order.
func (h *harness) listAll(prefix string) []string {
	h.t.Helper()
	var out []string
	after := ""
	for {
		items, next, _, err := h.store.List(prefix, after, 0)
		if err != nil {
			h.t.Fatalf("List(%q): %v", prefix, err)
		}
		for _, kv := range items {
			out = append(out, kv.Key+"="+string(kv.Value))
		}
		if next == "" {
			return out
		}
		after = next
	}
}

// snapshotOf returns the WriteSnapshot bytes of s.
func snapshotOf(t testing.TB, s *fsm.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

// sub is one running Subscribe call whose send records every event.
type sub struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed

	mu      sync.Mutex
	events  []*proto.Event
	changed chan struct{} // closed and replaced on every event
}

// subscribe starts Subscribe(req) in a goroutine; the test's cleanup ends it.
func (h *harness) subscribe(req *proto.SubscribeRequest) *sub {
	return h.subscribeSend(req, nil)
}

// subscribeSend is subscribe with gate called before each event is
// recorded: a gate that blocks blocks the send.
func (h *harness) subscribeSend(req *proto.SubscribeRequest, gate func(*proto.Event) error) *sub {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sub{t: h.t, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	send := func(ev *proto.Event) error {
		if gate != nil {
			if err := gate(ev); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.events = append(s.events, ev)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		return nil
	}
	go func() {
		s.err = h.hub.Subscribe(ctx, req, send)
		close(s.done)
	}()
	h.t.Cleanup(func() { s.stop() })
	return s
}

// all returns a copy of the events received so far.
func (s *sub) all() []*proto.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*proto.Event(nil), s.events...)
}

// waitFor waits until cond holds for the events received so far, or fails
// the test at the deadline, and returns those events. cond runs with the
// recorder locked and must not keep the slice.
func (s *sub) waitFor(what string, cond func([]*proto.Event) bool) []*proto.Event {
	s.t.Helper()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		if cond(s.events) {
			evs := append([]*proto.Event(nil), s.events...)
			s.mu.Unlock()
			return evs
		}
		evs, changed := s.events, s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-s.done:
			s.t.Fatalf("waiting for %s: Subscribe returned %v; got events %v", what, s.err, strs(evs))
		case <-timeout.C:
			s.t.Fatalf("waiting for %s: no luck after %v; got events %v", what, deadline, strs(evs))
		}
	}
}

// caughtUp waits for a PROGRESS event at revision rev or later, which the
// hub sends only once the subscriber has read every event up to it, and
// returns the events before it without any PROGRESS events.
func (s *sub) caughtUp(rev uint64) []*proto.Event {
	s.t.Helper()
	checked := 0 // events only ever get appended: look at each once
	evs := s.waitFor(fmt.Sprintf("PROGRESS at %d", rev), func(evs []*proto.Event) bool {
		for ; checked < len(evs); checked++ {
			if ev := evs[checked]; ev.Type == proto.Event_PROGRESS && ev.Revision >= rev {
				return true
			}
		}
		return false
	})
	var out []*proto.Event
	for _, ev := range evs {
		if ev.Type == proto.Event_PROGRESS {
			if ev.Revision >= rev {
				break
			}
			continue
		}
		out = append(out, ev)
	}
	return out
}

// wait waits for Subscribe to return and returns its error.
func (s *sub) wait() error {
	s.t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(deadline):
		s.t.Fatalf("Subscribe did not return within %v", deadline)
		return nil
	}
}

// returned reports whether Subscribe has returned, without waiting.
func (s *sub) returned() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop cancels the subscription and waits for Subscribe to return.
func (s *sub) stop() error {
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(deadline):
		s.t.Errorf("Subscribe did not return within %v of its context ending", deadline)
		return nil
	}
}

// waitUntil polls cond until it holds or fails the test at the deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waiting for %s: no luck after %v", what, deadline)
		}
		time.Sleep(time.Millisecond)
	}
}

// str renders an event compactly: "PUT 5.0 /a=1".
func str(ev *proto.Event) string {
	s := fmt.Sprintf("%s %d.%d", ev.Type, ev.Revision, ev.Index)
	if ev.Kv != nil {
		s += " " + ev.Kv.Key
		if len(ev.Kv.Value) > 0 {
			s += "=" + string(ev.Kv.Value)
		}
	}
	return s
}

func strs(evs []*proto.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, str(ev))
	}
	return out
}

// ev renders an expected event the way str renders a received one.
func ev(typ proto.Event_Type, rev uint64, index int, kv string) string {
	s := fmt.Sprintf("%s %d.%d", typ, rev, index)
	if kv != "" {
		s += " " + kv
	}
	return s
}

// checkEvents compares received events with the wanted renderings.
func checkEvents(t testing.TB, name string, got []*proto.Event, want []string) {
	t.Helper()
	g := strs(got)
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got events\n\t%s\nwant\n\t%s", name, strings.Join(g, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// only returns the events of the given types.
func only(evs []*proto.Event, types ...proto.Event_Type) []*proto.Event {
	var out []*proto.Event
	for _, ev := range evs {
		for _, typ := range types {
			if ev.Type == typ {
				out = append(out, ev)
				break
			}
		}
	}
	return out
}

// asCompacted asserts err is a *dispatch.CompactedError matching ErrCompacted.
func asCompacted(t testing.TB, err error) *dispatch.CompactedError {
	t.Helper()
	if !errors.Is(err, dispatch.ErrCompacted) {
		t.Fatalf("error %v: errors.Is(err, ErrCompacted) = false, want true", err)
	}
	var ce *dispatch.CompactedError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *dispatch.CompactedError", err, err)
	}
	return ce
}

// asSlow asserts err is a *dispatch.SlowError matching ErrSlow.
func asSlow(t testing.TB, err error) *dispatch.SlowError {
	t.Helper()
	if !errors.Is(err, dispatch.ErrSlow) {
		t.Fatalf("error %v: errors.Is(err, ErrSlow) = false, want true", err)
	}
	var se *dispatch.SlowError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *dispatch.SlowError", err, err)
	}
	return se
}
