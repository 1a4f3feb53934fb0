package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/proto"
)

// blocker is a send gate that lets through pass events (PROGRESS aside),
// then blocks in send until released.
type blocker struct {
	pass    atomic.Int32
	n       atomic.Int32
	entered chan struct{} // closed when send first blocks
	release chan struct{}
	once    sync.Once
	enter   sync.Once
}

func newBlocker(t testing.TB, pass int32) *blocker {
	b := &blocker{entered: make(chan struct{}), release: make(chan struct{})}
	b.pass.Store(pass)
	t.Cleanup(b.open)
	return b
}

func (b *blocker) gate(ev *proto.Event) error {
	if ev.Type == PROGRESS || b.n.Add(1) <= b.pass.Load() {
		return nil
	}
	b.enter.Do(func() { close(b.entered) })
	<-b.release
	return nil
}

// open releases every blocked and future send.
func (b *blocker) open() { b.once.Do(func() { close(b.release) }) }

// waitBlocked waits until a send is blocked.
func (b *blocker) waitBlocked(t testing.TB) {
	t.Helper()
	waitUntil(t, "a send to block", func() bool {
		select {
		case <-b.entered:
			return true
		default:
			return false
		}
	})
}

// blocked is a request whose subscriber never gets PROGRESS events.
func blocked(rev uint64, channels ...string) *proto.SubscribeRequest {
	return &proto.SubscribeRequest{Channels: channels, FromRevision: rev, ProgressIntervalMs: -1}
}

// puts applies n puts of 5-byte keys and values and returns what a "/"
// subscriber should get for them.
func (h *harness) puts(n int) []string {
	var want []string
	for range n {
		k := fmt.Sprintf("/p/%02d", h.head()%100)
		r := h.put(k, `"v"`)
		want = append(want, ev(PUT, r, 0, k+`="v"`))
	}
	return want
}

// Rule (STYLE.md "rpc and dispatch": "a subscriber that cannot keep up is
// cut off with a named reason, counted, logged once"; hub.go, Applied: "It
// never blocks on a subscriber"; Config.MaxLag): an EVERY subscriber stuck
// in send is cut off with a *SlowError whose Resume is the last revision
// it was sent, once more than MaxLag events are pending; Apply goes on
// meanwhile, and another subscriber of the same hub gets every event.
func TestHub_SlowSubscriberIsCutOff(t *testing.T) {
	t.Parallel()
	const maxLag = 3000
	h := newHarness(t, dispatch.Config{WindowEvents: 100_000, MaxLag: maxLag})
	start := h.barrier()
	b := newBlocker(t, 3)
	slow := h.subscribeSend(blocked(start, "/"), b.gate)
	quick := h.subscribe(fast(start, "/"))

	want := h.puts(4) // three sent, the fourth blocks
	b.waitBlocked(t)
	resume := start + 3

	// Thousands of entries while the slow subscriber is stuck: Apply
	// returns every time. The burst stays within MaxLag of both.
	want = append(want, h.puts(2500)...)
	if got := h.hub.Stats().Cutoffs; got != 0 {
		t.Errorf("Stats().Cutoffs after %d pending events = %d, want 0 (MaxLag %d)", 2500, got, maxLag)
	}
	// Then more, in steps the quick subscriber keeps up with, until the
	// slow one is far beyond MaxLag.
	for len(want) < 2*maxLag {
		want = append(want, h.puts(100)...)
		head := h.head()
		quick.waitFor(fmt.Sprintf("revision %d", head), func(evs []*proto.Event) bool {
			return len(evs) > 0 && evs[len(evs)-1].Revision == head
		})
	}

	err := slow.wait() // returns although its send is still blocked
	se := asSlow(t, err)
	if se.Resume != resume || se.Limit != maxLag || se.Lag <= maxLag {
		t.Errorf("SlowError = %+v, want Resume %d, Limit %d, Lag above %d", *se, resume, maxLag, maxLag)
	}
	if got := only(slow.all(), PUT); len(got) != 3 {
		t.Errorf("slow subscriber got %d events, want the 3 sent before it blocked", len(got))
	}
	checkEvents(t, "quick subscriber", quick.caughtUp(h.head()), want)
	if st := h.hub.Stats(); st.Cutoffs != 1 {
		t.Errorf("Stats().Cutoffs = %d, want 1", st.Cutoffs)
	}

	// Once its send returns, the cut-off subscriber is gone for good.
	b.open()
	waitUntil(t, "the cut-off subscriber to leave", func() bool { return h.hub.Stats().Subscribers == 1 })
	if st := h.hub.Stats(); st.Cutoffs != 1 {
		t.Errorf("Stats().Cutoffs after the blocked send returned = %d, want still 1", st.Cutoffs)
	}
}

// Rule (hub.go, Config.MaxLag: "kept below WindowEvents, so a subscriber
// that is cut off can still resume from its last revision"; SlowError.Resume:
// "resume after it"): resuming from a cut-off's Resume delivers every
// event after it, although that starts more than MaxLag events behind; a
// resumed subscriber that stalls is still cut off.
func TestSubscribe_ResumeAfterCutoff(t *testing.T) {
	t.Parallel()
	const maxLag = 100
	h := newHarness(t, dispatch.Config{WindowEvents: 1000, MaxLag: maxLag})
	start := h.barrier()
	b := newBlocker(t, 1)
	slow := h.subscribeSend(blocked(start, "/"), b.gate)
	want := h.puts(2)
	b.waitBlocked(t)
	want = append(want, h.puts(3*maxLag)...)
	se := asSlow(t, slow.wait())
	if se.Resume != start+1 {
		t.Fatalf("SlowError.Resume = %d, want %d", se.Resume, start+1)
	}

	resumed := h.subscribe(fast(se.Resume, "/"))
	checkEvents(t, "resumed", resumed.caughtUp(h.head()), want[1:])
	if err := resumed.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("resumed subscriber ended with %v, want context.Canceled", err)
	}

	// The resumed one is cut off as soon as it stalls for more than MaxLag
	// new events.
	b2 := newBlocker(t, 0)
	stalled := h.subscribeSend(blocked(se.Resume, "/"), b2.gate)
	b2.waitBlocked(t)
	if got := h.hub.Stats().Cutoffs; got != 1 {
		t.Errorf("Stats().Cutoffs = %d before the resumed subscriber stalled for long, want 1", got)
	}
	h.puts(maxLag + 1)
	se2 := asSlow(t, stalled.wait())
	if se2.Resume != se.Resume {
		t.Errorf("second SlowError.Resume = %d, want %d", se2.Resume, se.Resume)
	}
	if got := h.hub.Stats().Cutoffs; got != 2 {
		t.Errorf("Stats().Cutoffs = %d, want 2", got)
	}
}

// Rule (STYLE.md "rpc and dispatch": cut off "with a named reason, counted,
// logged once"): an EVERY subscriber whose unread events left the window
// before it was ever more than MaxLag behind (the byte bound was reached
// first) ends with a *SlowError counted in Stats().Cutoffs, whose Lag is
// the number of events it had not read.
func TestHub_SubscriberOutOfWindowIsCutOff(t *testing.T) {
	const eventBytes = 5 + 3 + 64
	h := newHarness(t, dispatch.Config{WindowEvents: 1000, MaxLag: 1000, WindowBytes: 10 * eventBytes})
	start := h.barrier()
	b := newBlocker(t, 0)
	s := h.subscribeSend(blocked(start, "/"), b.gate)
	h.puts(1)
	b.waitBlocked(t)
	h.puts(50) // all but the last 10 leave the window
	if got := h.hub.Stats().Cutoffs; got != 0 {
		t.Fatalf("Stats().Cutoffs = %d while 50 events behind with MaxLag 1000, want 0", got)
	}
	b.open()
	se := asSlow(t, s.wait())
	if se.Lag != 50 || se.Resume != start+1 {
		t.Errorf("SlowError = %+v, want Lag 50 (the unread events), Resume %d", *se, start+1)
	}
	if got := h.hub.Stats().Cutoffs; got != 1 {
		t.Errorf("Stats().Cutoffs = %d, want 1", got)
	}
	// Its Resume has left the window too: resuming says so.
	asCompacted(t, h.subscribe(fast(se.Resume, "/")).wait())
}

// Rule (dispatch.proto, Delivery LATEST: "intermediate writes are
// coalesced while the subscriber is behind. Never cut off for lag"): a
// LATEST subscriber that fell behind gets the newest event of each key or
// channel, in the order of those events, and outlives an EVERY subscriber
// the watchdog cut off for the same lag.
func TestSubscribe_LatestCoalescesAndIsNeverCutOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, dispatch.Config{WindowEvents: 1000, MaxLag: 5})
	start := h.barrier()
	lb := newBlocker(t, 0)
	req := fast(start, "/")
	req.Delivery = proto.Delivery_LATEST
	latest := h.subscribeSend(req, lb.gate)
	cb := newBlocker(t, 0)
	canary := h.subscribeSend(blocked(start, "/"), cb.gate)

	marker := h.put("/m", `0`)
	lb.waitBlocked(t)
	cb.waitBlocked(t)
	var lastK, lastJ uint64
	for i := range 10 {
		lastK = h.put("/k", fmt.Sprint(i))
		lastJ = h.put("/j", fmt.Sprint(i))
	}
	h.put("/d", `1`)
	del := h.del("/d")
	h.publish("/c", `"a"`)
	msg := h.publish("/c", `"b"`)

	// The watchdog cuts off the EVERY subscriber in the same pass that
	// looks at the LATEST one, which is as far behind.
	asSlow(t, canary.wait())
	if latest.returned() {
		t.Fatalf("LATEST subscriber ended with %v, want it still running", latest.wait())
	}
	lb.open()
	want := []string{
		ev(PUT, marker, 0, "/m=0"),
		ev(PUT, lastK, 0, "/k=9"),
		ev(PUT, lastJ, 0, "/j=9"),
		ev(DELETE, del, 0, "/d"),
		ev(MESSAGE, msg, 0, `/c="b"`),
	}
	checkEvents(t, "latest, coalesced", latest.caughtUp(h.head()), want)

	// Caught up, it gets every event it reads before the next one.
	for i := range 3 {
		r := h.put("/k", fmt.Sprint(10+i))
		want = append(want, ev(PUT, r, 0, fmt.Sprintf("/k=%d", 10+i)))
		checkEvents(t, "latest, caught up", latest.caughtUp(r), want)
	}
	if got := h.hub.Stats().Cutoffs; got != 1 {
		t.Errorf("Stats().Cutoffs = %d, want 1 (the EVERY subscriber only)", got)
	}
}

// Rule (dispatch.proto, RESYNC; hub.go: a LATEST subscriber is never
// cut off): a LATEST subscriber whose unread events left the window gets
// RESYNC, the matching state and SYNCED, never a silent gap.
func TestSubscribe_LatestResyncsWhenWindowPassesIt(t *testing.T) {
	h := newHarness(t, dispatch.Config{WindowEvents: 16, MaxLag: 16})
	tr := h.recordTruth()
	start := h.barrier()
	b := newBlocker(t, 0)
	req := fast(start, "/w/")
	req.Delivery = proto.Delivery_LATEST
	s := h.subscribeSend(req, b.gate)

	first := h.put("/w/0", `0`)
	b.waitBlocked(t)
	for i := range 40 {
		h.put(fmt.Sprintf("/w/%d", i%5), fmt.Sprint(i))
		h.put("/other", fmt.Sprint(i))
	}
	h.del("/w/3")
	b.open()
	head := h.head()
	got := s.caughtUp(head)
	if len(got) == 0 || str(got[0]) != ev(PUT, first, 0, "/w/0=0") {
		t.Fatalf("first event of %v, want the one sent before the subscriber fell behind", strs(got))
	}
	if got[1].Type != RESYNC {
		t.Fatalf("after falling out of the window, got %v, want RESYNC first", strs(got[1:]))
	}
	r := checkSynced(t, "latest resync", got[1:], tr, under("/w/"), h.listAll("/w/"))
	if r != head {
		t.Errorf("SYNCED at %d, want the head %d", r, head)
	}
	if got := h.hub.Stats().Cutoffs; got != 0 {
		t.Errorf("Stats().Cutoffs = %d, want 0", got)
	}
}

// Rule (SlowError.Resume: "resume after it"; dispatch.proto, from_revision:
// every matching event with a higher revision): a subscriber cut off in
// the middle of a revision loses nothing by resuming after its Resume,
// which is the last revision it was sent whole.
func TestHub_CutOffMidRevisionResumesWholeRevision(t *testing.T) {
	t.Parallel()
	const maxLag = 10
	h := newHarness(t, dispatch.Config{WindowEvents: 1000, MaxLag: maxLag})
	start := h.barrier()
	b := newBlocker(t, 3) // (r1, 0), (r2, 0), (r2, 1) go through; (r2, 2) blocks
	slow := h.subscribeSend(blocked(start, "/"), b.gate)
	r1 := h.put("/x", `0`)
	r2 := h.txn(opPut("/x", `1`), opPut("/y", `2`), opPut("/z", `3`))
	b.waitBlocked(t)
	want := []string{
		ev(PUT, r2, 0, "/x=1"),
		ev(PUT, r2, 1, "/y=2"),
		ev(PUT, r2, 2, "/z=3"),
	}
	want = append(want, h.puts(3*maxLag)...)
	se := asSlow(t, slow.wait())
	if se.Resume != r1 {
		t.Errorf("SlowError.Resume = %d, want %d: revision %d was only partly sent", se.Resume, r1, r2)
	}
	checkEvents(t, "resumed after Resume", h.subscribe(fast(se.Resume, "/")).caughtUp(h.head()), want)
}

// Rule (Subscribe doc: a send that blocks "is abandoned when the
// subscriber is cut off"; a gRPC stream or an http.ResponseWriter must
// not be used once the handler returned): once Subscribe has returned,
// send is not called again; only a send already running may still be.
func TestSubscribe_NoSendAfterReturn(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"context", "cut-off"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, dispatch.Config{WindowEvents: 1000, MaxLag: 25})
			start := h.barrier()
			b := newBlocker(t, 0)
			var returned atomic.Bool
			var late atomic.Int32
			s := h.subscribeSend(blocked(start, "/"), func(ev *proto.Event) error {
				if returned.Load() {
					late.Add(1)
				}
				return b.gate(ev)
			})
			// One entry of many events, so the batch being sent when
			// Subscribe returns holds more.
			var ops []*proto.Op
			for i := range 20 {
				ops = append(ops, opPut(fmt.Sprintf("/k/%d", i), `1`))
			}
			h.txn(ops...)
			b.waitBlocked(t)
			switch how {
			case "context":
				s.cancel()
			default:
				h.puts(30) // beyond MaxLag: the watchdog cuts it off
			}
			s.wait()
			returned.Store(true)
			b.open()
			// The serve goroutine leaves the hub once the blocked send returns.
			waitUntil(t, "the subscriber to leave", func() bool { return h.hub.Stats().Subscribers == 0 })
			if n := late.Load(); n != 0 {
				t.Errorf("send called %d times after Subscribe returned, want 0", n)
			}
		})
	}
}

// Rule (SlowError.Resume: "the last revision delivered: resume after it";
// subscriber.sent: a state counts "once SYNCED is" sent): a subscriber cut
// off in the middle of a state listing has not received the state whole,
// so its Resume is not the state's revision. After a restore that means the
// revision it had before, which resuming from reports as compacted;
// before any state, it is 0: there is nothing to resume after.
func TestHub_CutOffMidStateDoesNotResumeAfterIt(t *testing.T) {
	t.Parallel()
	const maxLag = 5
	for _, how := range []string{"with_state", "restore"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, dispatch.Config{WindowEvents: 1000, MaxLag: maxLag})
			for i := range 10 {
				h.put(fmt.Sprintf("/s/%d", i), `1`)
			}
			before := h.head()
			b := newBlocker(t, 3) // three STATE events, then it blocks
			req := blocked(before, "/s/")
			wantResume := uint64(0)
			switch how {
			case "with_state":
				req.WithState = true
			case "restore":
				b.pass.Store(1000) // the restore's state is where it blocks
				s := h.subscribeSend(req, b.gate)
				h.put("/s/x", `2`)
				s.waitFor("the put", func(evs []*proto.Event) bool { return len(evs) == 1 })
				wantResume = h.head()
				b.n.Store(0)
				b.pass.Store(3)
				other := newHarness(t, dispatch.Config{})
				for i := range 20 {
					other.put(fmt.Sprintf("/s/%d", i), `3`)
				}
				if err := h.store.Restore(io.NopCloser(bytes.NewReader(snapshotOf(t, other.store)))); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				h.mu.Lock()
				h.idx = other.head()
				h.mu.Unlock()
				b.waitBlocked(t)
				h.puts(maxLag + 1)
				se := asSlow(t, s.wait())
				if se.Resume != wantResume {
					t.Errorf("cut off in the middle of the restored state: Resume %d, want %d, the revision it had whole", se.Resume, wantResume)
				}
				asCompacted(t, h.subscribe(fast(se.Resume, "/s/")).wait())
				return
			}
			s := h.subscribeSend(req, b.gate)
			b.waitBlocked(t)
			h.puts(maxLag + 1)
			se := asSlow(t, s.wait())
			if se.Resume != wantResume {
				t.Errorf("cut off in the middle of the state at %d: Resume %d, want %d", before, se.Resume, wantResume)
			}
		})
	}
}
