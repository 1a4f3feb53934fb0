package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// record is one event as the store's hook reported it: the ground truth
// a subscriber's stream is checked against.
type record struct {
	rev   uint64
	index int
	typ   proto.Event_Type
	key   string
	value string
}

func (r record) String() string {
	kv := r.key
	if r.value != "" {
		kv += "=" + r.value
	}
	return ev(r.typ, r.rev, r.index, kv)
}

// truth records every event the store hands the hub.
type truth struct {
	mu   sync.Mutex
	recs []record
}

// recordTruth re-installs the store's hook so that it records every
// event before passing it to the hub.
func (h *harness) recordTruth() *truth {
	tr := &truth{}
	h.store.SetHook(func(rev uint64, events []fsm.Event, view fsm.ReadView) {
		tr.mu.Lock()
		for i, e := range events {
			typ := map[fsm.EventType]proto.Event_Type{
				fsm.EventPut: PUT, fsm.EventDelete: DELETE, fsm.EventExpire: EXPIRE, fsm.EventMessage: MESSAGE,
			}[e.Type]
			tr.recs = append(tr.recs, record{rev: rev, index: i, typ: typ, key: e.KV.Key, value: string(e.KV.Value)})
		}
		tr.mu.Unlock()
		h.hub.Applied(rev, events, view)
	})
	return tr
}

// after returns, rendered, the recorded events above rev that match.
func (tr *truth) after(rev uint64, match func(string) bool) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, r := range tr.recs {
		if r.rev > rev && match(r.key) {
			out = append(out, r.String())
		}
	}
	return out
}

// stateAt replays the recorded events up to rev: the matching keys as
// "key=value", in key order.
func (tr *truth) stateAt(rev uint64, match func(string) bool) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	state := map[string]string{}
	for _, r := range tr.recs {
		if r.rev > rev || !match(r.key) {
			continue
		}
		switch r.typ {
		case PUT:
			state[r.key] = r.value
		case DELETE, EXPIRE:
			delete(state, r.key)
		}
	}
	return sortedState(state)
}

// sortedState renders state as "key=value" in key order, as List and
// STATE events have it.
func sortedState(state map[string]string) []string {
	out := make([]string, 0, len(state))
	for _, k := range slices.Sorted(maps.Keys(state)) {
		out = append(out, k+"="+state[k])
	}
	return out
}

func under(prefixes ...string) func(string) bool {
	return func(key string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) || key == p {
				return true
			}
		}
		return false
	}
}

// history applies n entries of every kind over /a/ and /b/: puts,
// updates, deletes, prefix deletes, transactions of several events,
// messages, and entries with no events.
func (h *harness) history(n int) {
	for i := range n {
		k := fmt.Sprintf("%d", i%5)
		switch i % 9 {
		case 0, 1:
			h.put("/a/"+k, fmt.Sprint(i))
		case 2:
			h.put("/b/"+k, fmt.Sprint(i))
		case 3:
			h.txn(opPut("/a/t"+k, fmt.Sprint(i)), opPut("/b/t"+k, fmt.Sprint(i)), opPut("/a/u"+k, fmt.Sprint(i)))
		case 4:
			h.publish("/a/chan", fmt.Sprint(i))
		case 5:
			h.del("/a/" + k)
		case 6:
			h.config()
		case 7:
			h.delPrefix("/a/t")
		case 8:
			h.put("/ab", fmt.Sprint(i))
		}
	}
}

// Rule (dispatch.proto, from_revision: "every matching event with a
// higher revision, none twice"; hub.go: "every event with a revision above
// floor is in the window"): a subscriber may resume after any revision
// from Stats().Oldest to the head, and gets exactly the matching events
// after it.
func TestSubscribe_ResumeFromEveryRevisionInWindow(t *testing.T) {
	t.Parallel()
	// A window of 64 events over a longer history, so that the floor has
	// moved; MaxLag is left at its default (half the window), so resuming
	// from the floor starts further behind than MaxLag.
	h := newHarness(t, dispatch.Config{WindowEvents: 64})
	tr := h.recordTruth()
	h.history(150)
	st := h.hub.Stats()
	head := h.head()
	if st.Oldest == 0 || st.Oldest >= head {
		t.Fatalf("Stats().Oldest = %d with head %d: the window should have moved", st.Oldest, head)
	}
	if st.Revision != head {
		t.Errorf("Stats().Revision = %d, want the head %d", st.Revision, head)
	}
	if st.WindowEvents > 64 {
		t.Errorf("Stats().WindowEvents = %d, more than the configured 64", st.WindowEvents)
	}
	for _, chans := range [][]string{{"/a/"}, {"/"}, {"/b/", "/ab", "/a/chan"}} {
		subs := map[uint64]*sub{}
		for from := st.Oldest; from <= head; from++ {
			subs[from] = h.subscribe(fast(from, chans...))
		}
		for from := st.Oldest; from <= head; from++ {
			name := fmt.Sprintf("channels %q from %d", chans, from)
			checkEvents(t, name, subs[from].caughtUp(head), tr.after(from, under(chans...)))
		}
		for _, s := range subs {
			if err := s.stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Subscribe(%q) ended with %v, want context.Canceled", chans, err)
			}
		}
	}
}

// Rule (dispatch.proto, from_revision): a from_revision above the head
// waits for it and skips the events up to it; 0 starts at the head.
func TestSubscribe_FromAboveHeadAndFromZero(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	h.history(20)
	head := h.head()

	ahead := h.subscribe(fast(head+3, "/"))
	zero := h.subscribe(fast(0, "/"))
	// Both are positioned once they report progress at the head.
	checkEvents(t, "from head+3, before any write", ahead.caughtUp(head), nil)
	checkEvents(t, "from 0, before any write", zero.caughtUp(head), nil)

	var revs []uint64
	for i := range 6 {
		revs = append(revs, h.put("/n", fmt.Sprint(i)))
	}
	if revs[0] != head+1 {
		t.Fatalf("first new revision %d, want %d", revs[0], head+1)
	}
	checkEvents(t, "from head+3", ahead.caughtUp(h.head()), []string{
		ev(PUT, head+4, 0, "/n=3"),
		ev(PUT, head+5, 0, "/n=4"),
		ev(PUT, head+6, 0, "/n=5"),
	})
	checkEvents(t, "from 0", zero.caughtUp(h.head()), []string{
		ev(PUT, head+1, 0, "/n=0"),
		ev(PUT, head+2, 0, "/n=1"),
		ev(PUT, head+3, 0, "/n=2"),
		ev(PUT, head+4, 0, "/n=3"),
		ev(PUT, head+5, 0, "/n=4"),
		ev(PUT, head+6, 0, "/n=5"),
	})
}

// Rule (dispatch.proto, skip and Event.index: "a subscriber cut off after
// event (R, I) resumes exactly with from_revision R-1 and skip I+1"): skip
// leaves out the events of revision from_revision+1 whose index is below
// it, and nothing else.
func TestSubscribe_SkipWithinRevision(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	h.put("/t/first", `0`) // so that R-2 is not 0, which would mean the head
	before := h.put("/t/0", `0`)
	r := h.txn(opPut("/t/a", `1`), opPut("/t/b", `2`), opPut("/t/c", `3`))
	if r != before+1 {
		t.Fatalf("txn at %d, want %d", r, before+1)
	}
	later := h.put("/t/a", `4`)
	all := []string{
		ev(PUT, r, 0, "/t/a=1"),
		ev(PUT, r, 1, "/t/b=2"),
		ev(PUT, r, 2, "/t/c=3"),
		ev(PUT, later, 0, "/t/a=4"),
	}
	for skip := range 5 {
		t.Run(fmt.Sprintf("skip %d", skip), func(t *testing.T) {
			req := fast(r-1, "/t/")
			req.Skip = uint32(skip)
			s := h.subscribe(req)
			checkEvents(t, "from R-1", s.caughtUp(h.head()), all[min(skip, 3):])
		})
	}
	// skip applies to revision from_revision+1 only: with from_revision
	// R-2 it leaves out the put at R-1, and nothing of R.
	req := fast(r-2, "/t/")
	req.Skip = 2
	checkEvents(t, "from R-2 skip 2", h.subscribe(req).caughtUp(h.head()), all)
}

// Rule (hub.go, Config.WindowEvents and WindowBytes; dispatch.proto,
// resync_on_compacted): the window keeps the newest events within both
// bounds; resuming after a revision below its floor fails with a
// *CompactedError naming the floor, unless resync_on_compacted, which
// sends RESYNC, the matching state at the head R as STATE events, SYNCED
// at R, then every event after R.
func TestSubscribe_Compacted(t *testing.T) {
	// Every event is 5 bytes of key, 5 of value and 64 of overhead.
	const eventBytes = 5 + 5 + 64
	tests := []struct {
		name      string
		cfg       dispatch.Config
		wantFloor uint64
		wantN     int
	}{
		{"WindowEvents", dispatch.Config{WindowEvents: 8, MaxLag: 8}, 12, 8},
		{"WindowBytes", dispatch.Config{WindowBytes: 5 * eventBytes}, 15, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			for i := range 20 {
				dir := []string{"/e/", "/o/"}[i%2]
				h.put(fmt.Sprintf("%s%02d", dir, i), fmt.Sprintf(`"v%02d"`, i)) // revision i+1
			}
			head := h.head()
			st := h.hub.Stats()
			if st.Oldest != tt.wantFloor || st.WindowEvents != tt.wantN || st.Revision != head {
				t.Errorf("Stats() = %+v, want Oldest %d, WindowEvents %d, Revision %d", st, tt.wantFloor, tt.wantN, head)
			}
			if st.WindowBytes != int64(tt.wantN*eventBytes) {
				t.Errorf("Stats().WindowBytes = %d, want %d", st.WindowBytes, tt.wantN*eventBytes)
			}

			for _, from := range []uint64{1, tt.wantFloor - 1} {
				err := h.subscribe(fast(from, "/")).wait()
				ce := asCompacted(t, err)
				if ce.Requested != from || ce.Oldest != tt.wantFloor {
					t.Errorf("from %d: %+v, want Requested %d, Oldest %d", from, *ce, from, tt.wantFloor)
				}
			}

			// The floor itself is still resumable.
			var want []string
			for rev := tt.wantFloor + 1; rev <= head; rev++ {
				dir := []string{"/e/", "/o/"}[(rev-1)%2]
				want = append(want, ev(PUT, rev, 0, fmt.Sprintf(`%s%02d="v%02d"`, dir, rev-1, rev-1)))
			}
			checkEvents(t, "from the floor", h.subscribe(fast(tt.wantFloor, "/")).caughtUp(head), want)

			// resync_on_compacted: the state instead of an error.
			h.del("/e/04")
			head = h.head()
			req := fast(3, "/e/", "/o/03", "/o/05/")
			req.ResyncOnCompacted = true
			s := h.subscribe(req)
			want = []string{ev(RESYNC, head, 0, "")}
			for i := 0; i < 20; i += 2 {
				if i != 4 {
					want = append(want, ev(STATE, head, 0, fmt.Sprintf(`/e/%02d="v%02d"`, i, i)))
				}
			}
			want = append(want, ev(STATE, head, 0, `/o/03="v03"`), ev(SYNCED, head, 0, ""))
			checkEvents(t, "resync", s.caughtUp(head), want)

			r := h.put("/o/03", `"new"`)
			h.put("/o/07", `"other"`)
			want = append(want, ev(PUT, r, 0, `/o/03="new"`))
			checkEvents(t, "resync then events", s.caughtUp(h.head()), want)
		})
	}
}

// Rule (dispatch.proto, with_state): STATE events of the matching keys at
// a revision R in key order, SYNCED at R, then every event after R;
// from_revision is ignored.
func TestSubscribe_WithState(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	h.put("/s/b", `2`)
	h.put("/s/a", `1`)
	h.put("/s/c/d", `3`)
	h.put("/x", `4`)
	h.put("/x/y", `5`)
	h.put("/sx", `6`)
	h.del("/s/b")
	h.publish("/s/m", `"not state"`)
	head := h.head()

	req := fast(1, "/x", "/s/")
	req.WithState = true
	s := h.subscribe(req)
	want := []string{
		ev(STATE, head, 0, "/s/a=1"),
		ev(STATE, head, 0, "/s/c/d=3"),
		ev(STATE, head, 0, "/x=4"),
		ev(SYNCED, head, 0, ""),
	}
	checkEvents(t, "state", s.caughtUp(head), want)

	r1 := h.put("/s/b", `7`)
	h.put("/x/y", `8`)
	r2 := h.del("/x")
	want = append(want, ev(PUT, r1, 0, "/s/b=7"), ev(DELETE, r2, 0, "/x"))
	checkEvents(t, "state then events", s.caughtUp(h.head()), want)

	// Overlapping channels send each key once.
	req = fast(0, "/s/c/", "/x", "/s/", "/s/a", "/s/", "/s/c/d")
	req.WithState = true
	checkEvents(t, "overlapping channels", h.subscribe(req).caughtUp(h.head()), []string{
		ev(STATE, h.head(), 0, "/s/a=1"),
		ev(STATE, h.head(), 0, "/s/b=7"),
		ev(STATE, h.head(), 0, "/s/c/d=3"),
		ev(SYNCED, h.head(), 0, ""),
	})

	// An empty state is STATE-less: SYNCED alone.
	req = fast(0, "/none/")
	req.WithState = true
	checkEvents(t, "empty state", h.subscribe(req).caughtUp(h.head()), []string{ev(SYNCED, h.head(), 0, "")})
}

// checkSynced checks a with_state or resync stream against the truth: the
// STATE events are the matching state at the SYNCED revision R, and what
// follows is exactly the matching events after R, in order, none twice.
// It returns R.
func checkSynced(t *testing.T, name string, got []*proto.Event, tr *truth, match func(string) bool, final []string) uint64 {
	t.Helper()
	i := slices.IndexFunc(got, func(ev *proto.Event) bool { return ev.Type == SYNCED })
	if i < 0 {
		t.Fatalf("%s: no SYNCED in %v", name, strs(got))
	}
	r := got[i].Revision
	var state []string
	for _, ev := range got[:i] {
		switch {
		case ev.Type == RESYNC && len(state) == 0:
		case ev.Type == STATE && ev.Revision == r:
			state = append(state, ev.Kv.Key+"="+string(ev.Kv.Value))
		default:
			t.Errorf("%s: before SYNCED at %d, unexpected %s", name, r, str(ev))
		}
	}
	if want := tr.stateAt(r, match); strings.Join(state, " ") != strings.Join(want, " ") {
		t.Errorf("%s: STATE at %d =\n\t%v\nwant\n\t%v", name, r, state, want)
	}
	rest := got[i+1:]
	checkEvents(t, name+" after SYNCED", rest, tr.after(r, match))

	// Independently of the truth: ordered, no duplicate, above R, and the
	// state rebuilt from STATE and the later events is the final state.
	rebuilt := map[string]string{}
	for _, s := range state {
		k, v, _ := strings.Cut(s, "=")
		rebuilt[k] = v
	}
	last := [2]uint64{r, 0}
	for j, ev := range rest {
		cur := [2]uint64{ev.Revision, uint64(ev.Index)}
		if ev.Revision <= r || (j > 0 && (cur[0] < last[0] || cur[0] == last[0] && cur[1] <= last[1])) {
			t.Errorf("%s: %s after %v: out of order or duplicate", name, str(ev), last)
		}
		last = cur
		switch ev.Type {
		case PUT:
			rebuilt[ev.Kv.Key] = string(ev.Kv.Value)
		case DELETE, EXPIRE:
			delete(rebuilt, ev.Kv.Key)
		}
	}
	if got := sortedState(rebuilt); strings.Join(got, " ") != strings.Join(final, " ") {
		t.Errorf("%s: state rebuilt from the stream =\n\t%v\nwant the store's\n\t%v", name, got, final)
	}
	return r
}

// Rule (dispatch.proto, with_state; hub.go, StateSource: "a consistent
// view ... at the current revision"): while writes go on, the state sent
// at R and the events after R fit together with no gap and no duplicate.
func TestSubscribe_WithStateDuringWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t, dispatch.Config{})
	tr := h.recordTruth()
	const n = 3000
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := range n {
			k := fmt.Sprintf("/s/%02d", i%37)
			switch i % 11 {
			case 3:
				h.del(k)
			case 5:
				h.txn(opPut(k, fmt.Sprint(i)), opPut("/t/x", fmt.Sprint(i)), opDel(fmt.Sprintf("/s/%02d", (i+1)%37)))
			case 7:
				h.delPrefix("/s/1")
			case 9:
				lease := h.grant(10)
				h.putLease(k+"/l", fmt.Sprint(i), lease)
				h.expire(lease)
			default:
				h.put(k, fmt.Sprint(i))
			}
		}
	}()

	var subs []*sub
	for i := range 8 {
		waitUntil(t, "the writer to make progress", func() bool { return h.head() >= uint64(i*n/8) })
		req := fast(0, "/s/")
		req.WithState = true
		subs = append(subs, h.subscribe(req))
	}
	<-written
	final := h.listAll("/s/")
	for i, s := range subs {
		got := s.caughtUp(h.head())
		checkSynced(t, fmt.Sprintf("subscriber %d", i), got, tr, under("/s/"), final)
	}
}
