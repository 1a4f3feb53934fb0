package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

func writerStrings(o dispatch.Observed) []string {
	var out []string
	for _, w := range o.Writers {
		out = append(out, w.Origin+" "+w.Prefix)
	}
	return out
}

// Rule (observe.go): a subscriber that names itself reads its channels
// while it is subscribed; the channels of every live subscription with one
// name are merged, anonymous subscribers are left out, and a name is
// checked as an origin is.
func TestHub_ObservedReaders(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	a := h.subscribe(&proto.SubscribeRequest{Channels: []string{"/status/", "/config/web/"}, Name: "component/web"})
	b := h.subscribe(&proto.SubscribeRequest{Channels: []string{"/config/web/", "/deploy/web"}, Name: "component/web"})
	h.subscribe(&proto.SubscribeRequest{Channels: []string{"/"}})
	h.subscribe(&proto.SubscribeRequest{Channels: []string{"/hosts/"}, Name: "dashboard"})
	waitUntil(t, "four subscribers", func() bool { return h.hub.Stats().Subscribers == 4 })

	got := h.hub.Observed(time.Now()).Readers
	want := []dispatch.Reader{
		{Name: "component/web", Channels: []string{"/config/web/", "/deploy/web", "/status/"}},
		{Name: "dashboard", Channels: []string{"/hosts/"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readers = %v, want %v", got, want)
	}
	a.stop()
	b.stop()
	waitUntil(t, "two subscribers", func() bool { return h.hub.Stats().Subscribers == 2 })
	if got := h.hub.Observed(time.Now()).Readers; len(got) != 1 || got[0].Name != "dashboard" {
		t.Errorf("after the web subscriptions ended: readers = %v", got)
	}

	for _, name := range []string{"bad\nname", strings.Repeat("x", dispatch.MaxNameBytes+1), "\xff"} {
		err := h.hub.Subscribe(context.Background(), &proto.SubscribeRequest{Channels: []string{"/"}, Name: name},
			func(*proto.Event) error { return nil })
		var fe *fsm.Error
		if !errors.As(err, &fe) || fe.Code != fsm.CodeInvalid || fe.Field != "name" {
			t.Errorf("name %q: err %v, want invalid name", name, err)
		}
	}
}

// Rule (observe.go): every write and message that names its origin is
// recorded as the origin writing the key's first two segments (one for a
// key of two segments); writes without an origin and lease expiries are
// not; a pair is forgotten a window after its last write.
func TestHub_ObservedWrites(t *testing.T) {
	h := newHarness(t, dispatch.Config{ObservedWindow: 10 * time.Minute})
	h.apply(putCmd(&proto.PutRequest{Key: "/hosts/web-1", Value: []byte(`1`), Origin: "sensor/membership"}))
	h.apply(putCmd(&proto.PutRequest{Key: "/hosts/web-2", Value: []byte(`1`), Origin: "sensor/membership"}))
	h.apply(putCmd(&proto.PutRequest{Key: "/status/allocations/a1", Value: []byte(`1`), Origin: "sensor/executor"}))
	h.apply(putCmd(&proto.PutRequest{Key: "/status/allocations/a2/deep/key", Value: []byte(`1`), Origin: "sensor/executor"}))
	h.apply(putCmd(&proto.PutRequest{Key: "/top", Value: []byte(`1`), Origin: "cli"}))
	h.apply(putCmd(&proto.PutRequest{Key: "/anonymous/key", Value: []byte(`1`)}))
	h.apply(&proto.Command{Cmd: &proto.Command_Txn{Txn: &proto.TxnRequest{Origin: "scheduler",
		Success: []*proto.Op{opPut("/allocations/web/x", `1`), opPut("/status/components/web", `1`)}}}})
	h.apply(&proto.Command{Cmd: &proto.Command_Publish{Publish: &proto.PublishRequest{Channel: "/chat/room", Payload: []byte(`1`), Origin: "bot"}}})
	h.apply(&proto.Command{Cmd: &proto.Command_Delete{Delete: &proto.DeleteRequest{Key: "/hosts/", Prefix: true, Origin: "cleanup"}}})
	lease := h.grant(10)
	h.putLease("/leased/k", `1`, lease)
	h.expire(lease)

	now := time.Now()
	o := h.hub.Observed(now)
	want := []string{
		"bot /chat/",
		"cleanup /hosts/",
		"cli /top",
		"scheduler /allocations/web/",
		"scheduler /status/components/",
		"sensor/executor /status/allocations/",
		"sensor/membership /hosts/",
	}
	if got := writerStrings(o); !slices.Equal(got, want) {
		t.Errorf("writers:\ngot  %v\nwant %v", got, want)
	}
	for _, w := range o.Writers {
		if d := now.Sub(w.Seen); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("%s %s seen at %v, %v from now", w.Origin, w.Prefix, w.Seen, d)
		}
	}
	if o.Window != 10*time.Minute {
		t.Errorf("window = %v", o.Window)
	}
	if got := h.hub.Observed(now.Add(9 * time.Minute)).Writers; len(got) != len(want) {
		t.Errorf("9 minutes on: %d writers, want all %d", len(got), len(want))
	}
	if got := h.hub.Observed(now.Add(11 * time.Minute)).Writers; len(got) != 0 {
		t.Errorf("11 minutes on: writers %v, want none", got)
	}
	// A write after the window is recorded again.
	h.apply(putCmd(&proto.PutRequest{Key: "/hosts/web-3", Value: []byte(`1`), Origin: "sensor/membership"}))
	if got := writerStrings(h.hub.Observed(time.Now())); !slices.Equal(got, []string{"sensor/membership /hosts/"}) {
		t.Errorf("after a new write: %v", got)
	}
}

// Rule (observe.go): the hub remembers at most MaxObservedWrites pairs;
// more are left out rather than growing without bound.
func TestHub_ObservedWritesBounded(t *testing.T) {
	h := newHarness(t, dispatch.Config{MaxObservedWrites: 4})
	for i := range 10 {
		h.apply(putCmd(&proto.PutRequest{Key: fmt.Sprintf("/p%d/k", i), Value: []byte(`1`), Origin: "w"}))
	}
	h.apply(putCmd(&proto.PutRequest{Key: "/p0/again", Value: []byte(`1`), Origin: "w"}))
	if got := writerStrings(h.hub.Observed(time.Now())); !slices.Equal(got, []string{"w /p0/", "w /p1/", "w /p2/", "w /p3/"}) {
		t.Errorf("writers = %v", got)
	}
}

// Rule (observe.go: "only a new pair allocates"): recording a write whose
// origin and prefix are already known costs the apply path no allocation.
func TestHub_ObservedWritesDoNotAllocate(t *testing.T) {
	h := newHarness(t, dispatch.Config{WindowEvents: 16})
	events := func(origin string) []fsm.Event {
		var evs []fsm.Event
		for i := range 4 {
			evs = append(evs, fsm.Event{Type: fsm.EventPut, KV: &proto.KeyValue{
				Key: fmt.Sprintf("/status/allocations/a%d", i%2), Value: []byte(`1`), Origin: origin}})
		}
		evs = append(evs, fsm.Event{Type: fsm.EventPut, KV: &proto.KeyValue{Key: "/hosts/web-1", Value: []byte(`1`), Origin: "other"}})
		return evs
	}
	rev := uint64(0)
	allocs := func(evs []fsm.Event) float64 {
		return testing.AllocsPerRun(200, func() {
			rev++
			h.hub.Applied(rev, evs, nil)
		})
	}
	anonymous := allocs(events(""))
	named := allocs(events("sensor/executor"))
	if named != anonymous {
		t.Errorf("applying 5 events: %v allocations with known origins, %v without", named, anonymous)
	}
}
