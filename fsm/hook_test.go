package fsm_test

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

type hookCall struct {
	rev    uint64
	events []fsm.Event
	view   []string // keys the ReadView listed during the call
}

// recordHook installs a hook that records every call.
func recordHook(s *fsm.Store) *[]hookCall {
	var calls []hookCall
	s.SetHook(func(rev uint64, events []fsm.Event, view fsm.ReadView) {
		items, _ := view.List("/", "", 0)
		calls = append(calls, hookCall{rev: rev, events: events, view: listKeys(items)})
	})
	return &calls
}

type wantEvent struct {
	typ    fsm.EventType
	kv     *proto.KeyValue
	prevKV *proto.KeyValue
}

// Rule: the hook is told of every applied entry exactly once, in log order,
// with the events it produced; an entry that changed no key (a rule
// violation, a configuration entry, a barrier) produces no events.
func TestStore_HookSeesEveryEntry(t *testing.T) {
	h := newHarness(t)
	calls := recordHook(h.s)

	kv := func(key, value string, create, mod, version, lease uint64, origin string) *proto.KeyValue {
		return &proto.KeyValue{Key: key, Value: []byte(value), CreateRevision: create, ModRevision: mod, Version: version, Lease: lease, Origin: origin}
	}
	gone := func(key string, rev uint64, origin string) *proto.KeyValue {
		return &proto.KeyValue{Key: key, ModRevision: rev, Origin: origin}
	}
	a1 := kv("/a", `1`, 1, 1, 1, 0, "o1")
	a2 := kv("/a", `2`, 1, 2, 2, 0, "o2")
	b6 := kv("/b", `1`, 6, 6, 1, 5, "")
	c6 := kv("/c", `1`, 6, 6, 1, 5, "")
	d9 := kv("/d/1", `1`, 9, 9, 1, 0, "t")
	d9b := kv("/d/2", `2`, 9, 9, 1, 0, "t")

	steps := []struct {
		apply func()
		want  []wantEvent
		view  []string
	}{
		{func() { h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`), Origin: "o1"})) },
			[]wantEvent{{fsm.EventPut, a1, nil}}, []string{"/a"}},
		{func() { h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`2`), Origin: "o2"})) },
			[]wantEvent{{fsm.EventPut, a2, a1}}, []string{"/a"}},
		{func() { h.apply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`3`), CasRevision: u64(1)})) }, // fails
			nil, []string{"/a"}},
		{func() { h.config() }, nil, []string{"/a"}},
		{func() { h.grant(10) }, nil, []string{"/a"}}, // lease 5
		{func() {
			h.mustApply(txnCmd(&proto.TxnRequest{Success: []*proto.Op{
				{Type: proto.Op_PUT, Key: "/b", Value: []byte(`1`), Lease: 5},
				{Type: proto.Op_GET, Key: "/a"},
				{Type: proto.Op_PUT, Key: "/c", Value: []byte(`1`), Lease: 5},
			}}))
		}, []wantEvent{{fsm.EventPut, b6, nil}, {fsm.EventPut, c6, nil}}, []string{"/a", "/b", "/c"}},
		{func() { h.mustApply(delCmd(&proto.DeleteRequest{Key: "/a", Origin: "cli"})) },
			[]wantEvent{{fsm.EventDelete, gone("/a", 7, "cli"), a2}}, []string{"/b", "/c"}},
		{func() { h.mustApply(revokeCmd(5, true)) },
			[]wantEvent{{fsm.EventExpire, gone("/b", 8, "lease"), b6}, {fsm.EventExpire, gone("/c", 8, "lease"), c6}}, nil},
		{func() {
			h.mustApply(txnCmd(&proto.TxnRequest{Origin: "t", Success: []*proto.Op{
				{Type: proto.Op_PUT, Key: "/d/1", Value: []byte(`1`)},
				{Type: proto.Op_PUT, Key: "/d/2", Value: []byte(`2`)},
			}}))
		}, []wantEvent{{fsm.EventPut, d9, nil}, {fsm.EventPut, d9b, nil}}, []string{"/d/1", "/d/2"}},
		{func() { h.mustApply(delCmd(&proto.DeleteRequest{Key: "/d/", Prefix: true, Origin: "gc"})) },
			[]wantEvent{{fsm.EventDelete, gone("/d/1", 10, "gc"), d9}, {fsm.EventDelete, gone("/d/2", 10, "gc"), d9b}}, nil},
		{func() { h.mustApply(delCmd(&proto.DeleteRequest{Key: "/nothing"})) }, nil, nil},
		{func() { h.mustApply(barrierCmd()) }, nil, nil},
		{func() { h.apply(revokeCmd(99, false)) }, nil, nil}, // fails
	}
	for i, st := range steps {
		st.apply()
		if len(*calls) != i+1 {
			t.Fatalf("step %d: %d hook calls, want %d", i, len(*calls), i+1)
		}
		c := (*calls)[i]
		if c.rev != uint64(i+1) {
			t.Errorf("step %d: hook rev = %d, want %d", i, c.rev, i+1)
		}
		if !equalStrings(c.view, st.view) {
			t.Errorf("step %d: view listed %q, want %q", i, c.view, st.view)
		}
		if len(c.events) != len(st.want) {
			t.Errorf("step %d: %d events, want %d: %v", i, len(c.events), len(st.want), c.events)
			continue
		}
		for j, w := range st.want {
			ev := c.events[j]
			if ev.Type != w.typ || !kvEqual(ev.KV, w.kv) || !kvEqual(ev.PrevKV, w.prevKV) {
				t.Errorf("step %d event %d = {%v %v prev %v}, want {%v %v prev %v}",
					i, j, ev.Type, ev.KV, ev.PrevKV, w.typ, w.kv, w.prevKV)
			}
		}
	}
}

func TestStore_HookInBatchIsPerEntry(t *testing.T) {
	h := newHarness(t)
	calls := recordHook(h.s)
	logs := []*raft.Log{
		h.entry(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`)})),
		h.entry(putCmd(&proto.PutRequest{Key: "/b", Value: []byte(`1`)})),
		h.entry(putCmd(&proto.PutRequest{Key: "/c", Value: []byte(`1`)})),
	}
	h.s.ApplyBatch(logs)
	if len(*calls) != 3 {
		t.Fatalf("%d hook calls, want 3", len(*calls))
	}
	// Each call sees the state as of its own entry, not the end of the batch.
	for i, want := range [][]string{{"/a"}, {"/a", "/b"}, {"/a", "/b", "/c"}} {
		if c := (*calls)[i]; c.rev != uint64(i+1) || !equalStrings(c.view, want) {
			t.Errorf("call %d: rev %d view %q, want rev %d view %q", i, c.rev, c.view, i+1, want)
		}
	}
}

func TestStore_SetHookNilStops(t *testing.T) {
	h := newHarness(t)
	calls := recordHook(h.s)
	h.put("/a", `1`)
	h.s.SetHook(nil)
	h.put("/b", `1`)
	if len(*calls) != 1 {
		t.Errorf("%d hook calls, want 1", len(*calls))
	}
}

func TestEventType_String(t *testing.T) {
	for typ, want := range map[fsm.EventType]string{
		fsm.EventPut: "put", fsm.EventDelete: "delete", fsm.EventExpire: "expire", fsm.EventType(42): "unknown",
	} {
		if got := typ.String(); got != want {
			t.Errorf("EventType(%d).String() = %q, want %q", int(typ), got, want)
		}
	}
}
