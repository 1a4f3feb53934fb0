package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Rule (hub.go, Restored: "the whole state was replaced, so the window is
// emptied and every subscriber will resync"; dispatch.proto, RESYNC): when
// the store is restored from a snapshot, every live subscriber, EVERY or
// LATEST, gets RESYNC, the new matching state and SYNCED at the
// snapshot's revision, then the events after it; history before the
// snapshot can no longer be resumed from.
func TestSubscribe_RestoreResyncs(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	h.put("/r/a", `1`)
	h.put("/r/b", `2`)
	h.put("/z", `9`)
	head := h.head()

	latestReq := fast(head, "/r/")
	latestReq.Delivery = proto.Delivery_LATEST
	stateReq := fast(0, "/r/")
	stateReq.WithState = true
	subs := map[string]*sub{
		"every":      h.subscribe(fast(head, "/r/")),
		"latest":     h.subscribe(latestReq),
		"with_state": h.subscribe(stateReq),
	}
	before := map[string][]string{
		"with_state": {ev(STATE, head, 0, "/r/a=1"), ev(STATE, head, 0, "/r/b=2"), ev(SYNCED, head, 0, "")},
	}
	for name, s := range subs {
		checkEvents(t, name+" before the restore", s.caughtUp(head), before[name])
	}

	// Another member's store, further on, with other contents.
	other := newHarness(t, dispatch.Config{})
	other.put("/r/b", `20`)
	other.put("/q", `1`)
	other.put("/r/c", `30`)
	other.put("/r/d", `40`)
	other.del("/r/d")
	for other.head() < head+10 {
		other.barrier()
	}
	snap := snapshotOf(t, other.store)
	srev := other.head()
	if err := h.store.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	h.mu.Lock()
	h.idx = srev
	h.mu.Unlock()

	if st := h.hub.Stats(); st.Oldest != srev || st.Revision != srev || st.WindowEvents != 0 || st.WindowBytes != 0 {
		t.Errorf("Stats() after the restore = %+v, want Oldest and Revision %d and an empty window", st, srev)
	}
	resync := []string{
		ev(RESYNC, srev, 0, ""),
		ev(STATE, srev, 0, "/r/b=20"),
		ev(STATE, srev, 0, "/r/c=30"),
		ev(SYNCED, srev, 0, ""),
	}
	for name, s := range subs {
		checkEvents(t, name+" after the restore", s.caughtUp(srev), append(before[name], resync...))
	}

	r := h.put("/r/a", `5`)
	h.put("/z", `6`)
	for name, s := range subs {
		want := append(append(before[name], resync...), ev(PUT, r, 0, "/r/a=5"))
		checkEvents(t, name+" after the restore and a put", s.caughtUp(r), want)
	}

	// History before the snapshot is gone; the snapshot's revision is
	// the new floor.
	ce := asCompacted(t, h.subscribe(fast(head, "/r/")).wait())
	if ce.Requested != head || ce.Oldest != srev {
		t.Errorf("resume from %d after the restore: %+v, want Oldest %d", head, *ce, srev)
	}
	checkEvents(t, "resume from the snapshot", h.subscribe(fast(srev, "/r/")).caughtUp(r),
		[]string{ev(PUT, r, 0, "/r/a=5")})
}

// racyState is the store as a StateSource, except that right after the
// armed View it applies writes enough to move the window's floor past the
// revision that View returned, as concurrent Applies may.
type racyState struct {
	store  *fsm.Store
	h      atomic.Pointer[harness]
	armed  atomic.Bool
	writes int
}

func (r *racyState) View() (*fsm.View, uint64) {
	v, rev := r.store.View()
	if r.armed.CompareAndSwap(true, false) {
		h := r.h.Load()
		for i := range r.writes {
			h.put(fmt.Sprintf("/s/race-%02d", i), fmt.Sprint(i))
		}
	}
	return v, rev
}

// Rule (dispatch.proto, with_state and resync_on_compacted: the current
// state "at a revision R", then every event after R): the window may
// move past the revision of the state a subscriber is about to send (the
// writes go on meanwhile); the subscriber then sends a newer state, not an
// error.
func TestSubscribe_StateWhileWindowMoves(t *testing.T) {
	for _, mode := range []string{"with_state", "resync_on_compacted"} {
		t.Run(mode, func(t *testing.T) {
			rs := &racyState{writes: 20}
			h := newHarnessWith(t, dispatch.Config{WindowEvents: 8, MaxLag: 8}, func(s *fsm.Store) dispatch.StateSource {
				rs.store = s
				return rs
			})
			rs.h.Store(h)
			tr := h.recordTruth()
			for i := range 10 {
				h.put(fmt.Sprintf("/s/%d", i), fmt.Sprint(i))
			}
			req := fast(1, "/s/") // 1 has left the window
			switch mode {
			case "with_state":
				req.WithState = true
			default:
				req.ResyncOnCompacted = true
			}
			rs.armed.Store(true)
			s := h.subscribe(req)
			waitUntil(t, "the racing writes", func() bool { return !rs.armed.Load() && h.head() == 30 })
			got := s.caughtUp(h.head())
			if mode == "resync_on_compacted" && (len(got) == 0 || got[0].Type != RESYNC) {
				t.Fatalf("got %v, want RESYNC first", strs(got))
			}
			if r := checkSynced(t, mode, got, tr, under("/s/"), h.listAll("/s/")); r != 30 {
				t.Errorf("SYNCED at %d, want 30, the revision after the racing writes", r)
			}
		})
	}
}

// Rule (Subscribe doc: it returns "the context's cause"; a subscriber
// leaves the hub when it ends): ending the context ends the subscription
// with its cause, and Stats().Subscribers counts it no more.
func TestSubscribe_EndsWithContextCause(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	ctx, cancel := context.WithCancelCause(t.Context())
	errc := make(chan error, 1)
	go func() {
		errc <- h.hub.Subscribe(ctx, fast(0, "/"), func(*proto.Event) error { return nil })
	}()
	waitUntil(t, "the subscriber to join", func() bool { return h.hub.Stats().Subscribers == 1 })
	cause := errors.New("client went away")
	cancel(cause)
	select {
	case err := <-errc:
		if !errors.Is(err, cause) {
			t.Errorf("Subscribe returned %v, want the cause %v", err, cause)
		}
	case <-time.After(deadline):
		t.Fatalf("Subscribe did not return within %v of its context ending", deadline)
	}
	waitUntil(t, "the subscriber to leave", func() bool { return h.hub.Stats().Subscribers == 0 })
}

// Rule (Subscribe doc: it streams "until ctx ends, send fails, or the
// subscriber is cut off"): a send error ends the subscription with that
// error, which is not a cut-off.
func TestSubscribe_EndsWhenSendFails(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	start := h.barrier()
	errBroken := errors.New("stream broken")
	var calls atomic.Int32
	s := h.subscribeSend(blocked(start, "/"), func(*proto.Event) error {
		calls.Add(1)
		return errBroken
	})
	h.put("/a", `1`)
	h.put("/a", `2`)
	if err := s.wait(); !errors.Is(err, errBroken) {
		t.Errorf("Subscribe returned %v, want %v", err, errBroken)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("send called %d times, want 1: nothing after it failed", got)
	}
	st := h.hub.Stats()
	if st.Cutoffs != 0 || st.Sent != 0 {
		t.Errorf("Stats() = %+v, want no cut-off and nothing sent", st)
	}
	waitUntil(t, "the subscriber to leave", func() bool { return h.hub.Stats().Subscribers == 0 })
}

// Rule (dispatch.proto, PROGRESS and progress_interval_ms: "0 means the
// default, negative never"): an idle subscriber gets PROGRESS at the
// member's revision, even when events that do not match go by; the
// Config's ProgressInterval is the default; a negative interval sends none.
func TestSubscribe_Progress(t *testing.T) {
	h := newHarness(t, dispatch.Config{ProgressInterval: 5 * time.Millisecond})
	start := h.barrier()
	never := h.subscribe(blocked(start, "/a/"))
	byDefault := h.subscribe(&proto.SubscribeRequest{Channels: []string{"/a/"}, FromRevision: start})
	for range 5 {
		h.put("/b", `1`)
	}
	head := h.head()
	got := byDefault.waitFor("three PROGRESS events at the head", func(evs []*proto.Event) bool {
		n := 0
		for _, ev := range evs {
			if ev.Type == PROGRESS && ev.Revision == head {
				n++
			}
		}
		return n >= 3
	})
	for _, ev := range got {
		if ev.Type != PROGRESS || ev.Revision > head {
			t.Errorf("got %s, want only PROGRESS up to the head %d", str(ev), head)
		}
	}
	if got := never.all(); len(got) != 0 {
		t.Errorf("subscriber with a negative interval got %v, want nothing", strs(got))
	}
}

// Rule (hub.go, Stats.Sent): Sent counts the events delivered to every
// subscriber.
func TestHub_StatsCountsSent(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	start := h.barrier()
	a := h.subscribe(blocked(start, "/"))
	b := h.subscribe(blocked(start, "/x/"))
	h.put("/x/1", `1`)
	h.put("/y", `1`)
	h.put("/x/2", `1`)
	a.waitFor("3 events", func(evs []*proto.Event) bool { return len(evs) == 3 })
	b.waitFor("2 events", func(evs []*proto.Event) bool { return len(evs) == 2 })
	waitUntil(t, "Stats().Sent to reach 5", func() bool { return h.hub.Stats().Sent == 5 })
	if got := h.hub.Stats().Subscribers; got != 2 {
		t.Errorf("Stats().Subscribers = %d, want 2", got)
	}
}

// Rule (hub.go, Config.Validate: "fills zero fields with defaults and
// checks the bounds"; MaxLag is at most the window).
func TestConfig_Validate(t *testing.T) {
	d := dispatch.DefaultConfig()
	tests := []struct {
		name    string
		cfg     dispatch.Config
		want    dispatch.Config // checked when no error is wanted
		wantErr bool
	}{
		{"zero is the default", dispatch.Config{}, d, false},
		{"max lag defaults to half a small window", dispatch.Config{WindowEvents: 10},
			dispatch.Config{WindowEvents: 10, WindowBytes: d.WindowBytes, MaxLag: 5, ProgressInterval: d.ProgressInterval,
				ObservedWindow: d.ObservedWindow, MaxObservedWrites: d.MaxObservedWrites}, false},
		{"a one-event window", dispatch.Config{WindowEvents: 1},
			dispatch.Config{WindowEvents: 1, WindowBytes: d.WindowBytes, MaxLag: 1, ProgressInterval: d.ProgressInterval,
				ObservedWindow: d.ObservedWindow, MaxObservedWrites: d.MaxObservedWrites}, false},
		{"max lag equal to the window", dispatch.Config{WindowEvents: 10, MaxLag: 10},
			dispatch.Config{WindowEvents: 10, WindowBytes: d.WindowBytes, MaxLag: 10, ProgressInterval: d.ProgressInterval,
				ObservedWindow: d.ObservedWindow, MaxObservedWrites: d.MaxObservedWrites}, false},
		{"max lag above the window", dispatch.Config{WindowEvents: 10, MaxLag: 11}, dispatch.Config{}, true},
		{"negative max lag", dispatch.Config{MaxLag: -1}, dispatch.Config{}, true},
		{"negative window events", dispatch.Config{WindowEvents: -1}, dispatch.Config{}, true},
		{"negative window bytes", dispatch.Config{WindowBytes: -1}, dispatch.Config{}, true},
		{"an observed window under a second", dispatch.Config{ObservedWindow: time.Millisecond}, dispatch.Config{}, true},
		{"no room for observed writes", dispatch.Config{MaxObservedWrites: -1}, dispatch.Config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate(%+v) = %v, want error %v", tt.cfg, err, tt.wantErr)
			}
			hub, nerr := dispatch.New(tt.cfg, fsm.New())
			if (nerr != nil) != tt.wantErr {
				t.Errorf("New(%+v) error = %v, want error %v", tt.cfg, nerr, tt.wantErr)
			}
			if hub != nil {
				hub.Close()
			}
			if tt.wantErr {
				return
			}
			if cfg.Logger == nil {
				t.Errorf("Validate left Logger nil")
			}
			cfg.Logger = nil
			if cfg != tt.want {
				t.Errorf("Validate(%+v) = %+v, want %+v", tt.cfg, cfg, tt.want)
			}
		})
	}
}
