package dispatch_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/proto"
)

// batchSub is a running SubscribeBatches call that decodes every batch's
// wire form as the client would.
type batchSub struct {
	mu      sync.Mutex
	events  []*proto.Event // from Batch.Events
	decoded []*proto.Event // from Batch.Wire, decoded
	batches int
	revs    map[uint64]int // how many batches hold events of each revision
	bad     []string       // batches whose wire form does not decode to Events
}

func (h *harness) subscribeBatches(t *testing.T, req *proto.SubscribeRequest) *batchSub {
	bs := &batchSub{revs: map[uint64]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.hub.SubscribeBatches(ctx, req, func(b *dispatch.Batch) error {
			var resp proto.SubscribeResponse
			err := gproto.Unmarshal(b.Wire(), &resp)
			bs.mu.Lock()
			defer bs.mu.Unlock()
			bs.batches++
			seen := map[uint64]bool{}
			for _, ev := range b.Events {
				if !seen[ev.Revision] {
					seen[ev.Revision] = true
					bs.revs[ev.Revision]++
				}
			}
			if err != nil || !gproto.Equal(&resp, &proto.SubscribeResponse{Events: b.Events}) {
				bs.bad = append(bs.bad, fmt.Sprintf("batch %d: Wire decodes to %v (error %v), Events are %v",
					bs.batches, strs(resp.Events), err, strs(b.Events)))
			}
			// The Batch is the hub's to reuse once send returns: keep copies.
			for _, ev := range b.Events {
				bs.events = append(bs.events, gproto.Clone(ev).(*proto.Event))
			}
			bs.decoded = append(bs.decoded, resp.Events...)
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return bs
}

// upTo waits until the batches hold a PROGRESS at rev or later and
// returns, without PROGRESS, the events before it, as sent and as decoded.
func (bs *batchSub) upTo(t *testing.T, rev uint64) (sent, decoded []*proto.Event) {
	t.Helper()
	cut := func(evs []*proto.Event) ([]*proto.Event, bool) {
		var out []*proto.Event
		for _, ev := range evs {
			if ev.Type == PROGRESS {
				if ev.Revision >= rev {
					return out, true
				}
				continue
			}
			out = append(out, ev)
		}
		return nil, false
	}
	waitUntil(t, fmt.Sprintf("PROGRESS at %d in the batches", rev), func() bool {
		bs.mu.Lock()
		defer bs.mu.Unlock()
		var ok bool
		if sent, ok = cut(bs.events); ok {
			decoded, _ = cut(bs.decoded)
		}
		return ok
	})
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, b := range bs.bad {
		t.Error(b)
	}
	return sent, decoded
}

// full renders everything a client sees of an event.
func full(evs []*proto.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s %d.%d %s len=%d last=%v prev=%v\n", ev.Type, ev.Revision, ev.Index,
			ev.Kv.GetKey(), len(ev.Kv.GetValue()), ev.Last, ev.PrevKv.GetModRevision())
	}
	return b.String()
}

// Rule (dispatch.proto, SubscribeResponse: "one or more events, in
// order. A revision's events may span several responses"; batch.go: the wire form is assembled from encodings the window
// shares between subscribers): SubscribeBatches gives the events that
// Subscribe gives, and each Batch's wire form decodes to exactly its
// Events, with prev_kv and last as this subscriber should see them, also
// when one revision spans several batches.
func TestSubscribeBatches_WireMatchesEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, dispatch.Config{})
	start := h.barrier()
	reqs := map[string]*proto.SubscribeRequest{
		"all prev_kv":   fast(start, "/"),
		"narrow":        fast(start, "/b/"),
		"skip, prev_kv": fast(start+1, "/"),
	}
	reqs["all prev_kv"].PrevKv = true
	reqs["skip, prev_kv"].PrevKv = true
	reqs["skip, prev_kv"].Skip = 1

	type pair struct {
		events *sub
		wire   *batchSub
	}
	subs := map[string]pair{}
	for name, req := range reqs {
		subs[name] = pair{h.subscribe(req), h.subscribeBatches(t, req)}
	}

	h.put("/a/1", `1`)
	h.txn(opPut("/a/1", `2`), opPut("/b/1", `3`), opPut("/a/2", `4`))
	h.publish("/b/chan", `"m"`)
	// One revision of more events than a batch holds, and one of more
	// bytes.
	var ops []*proto.Op
	for i := range 1100 {
		ops = append(ops, opPut(fmt.Sprintf("/b/many/%04d", i), `1`))
	}
	manyRev := h.txn(ops...)
	huge := `"` + strings.Repeat("x", 400<<10) + `"`
	hugeRev := h.txn(opPut("/b/huge/1", huge), opPut("/b/huge/2", huge), opPut("/b/huge/3", huge), opPut("/b/huge/4", huge))
	h.put("/b/1", `5`)
	h.delPrefix("/")
	head := h.head()

	for name, p := range subs {
		want := p.events.caughtUp(head)
		sent, decoded := p.wire.upTo(t, head)
		if got, w := full(sent), full(want); got != w {
			t.Errorf("%s: SubscribeBatches sent %d events, Subscribe %d; first difference:\n%s",
				name, len(sent), len(want), firstDiff(got, w))
		}
		if got, w := full(decoded), full(sent); got != w {
			t.Errorf("%s: decoded wire form differs from Batch.Events:\n%s", name, firstDiff(got, w))
		}
		p.wire.mu.Lock()
		if n := p.wire.revs[manyRev]; n < 2 {
			t.Errorf("%s: revision %d of 1,100 events came in %d batch(es), want it split", name, manyRev, n)
		}
		if n := p.wire.revs[hugeRev]; n < 2 {
			t.Errorf("%s: revision %d of 1.6 MB came in %d batch(es), want it split", name, hugeRev, n)
		}
		p.wire.mu.Unlock()
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q, want %q", i, gl, wl)
		}
	}
	return "(none)"
}
