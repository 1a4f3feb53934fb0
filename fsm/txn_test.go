package fsm_test

import (
	"fmt"
	"testing"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// branchTxn is a txn whose success branch writes "success" to /branch and
// whose failure branch writes "failure", so the test can see which ran.
func branchTxn(cmps ...*proto.Compare) *proto.Command {
	return txnCmd(&proto.TxnRequest{
		Compares: cmps,
		Success:  []*proto.Op{{Type: proto.Op_PUT, Key: "/branch", Value: []byte(`"success"`)}},
		Failure:  []*proto.Op{{Type: proto.Op_PUT, Key: "/branch", Value: []byte(`"failure"`)}},
	})
}

func num(key string, target proto.Compare_Target, op proto.Compare_Operator, n uint64) *proto.Compare {
	return &proto.Compare{Key: key, Target: target, Op: op, Number: n}
}

func val(key string, op proto.Compare_Operator, v string) *proto.Compare {
	return &proto.Compare{Key: key, Target: proto.Compare_VALUE, Op: op, Value: []byte(v)}
}

// Rule: a compare holds when the key's target (an absent key has revisions,
// version and lease 0, and a value that never equals) stands in the relation
// op to number (or value, compared as bytes).
func TestStore_TxnCompare(t *testing.T) {
	const (
		modRev = proto.Compare_MOD_REVISION
		create = proto.Compare_CREATE_REVISION
		ver    = proto.Compare_VERSION
		lease  = proto.Compare_LEASE
		eq     = proto.Compare_EQUAL
		ne     = proto.Compare_NOT_EQUAL
		lt     = proto.Compare_LESS
		gt     = proto.Compare_GREATER
	)
	// /k: created at 1, lease 2 granted at 2, updated at 3 with the lease:
	// create_revision 1, mod_revision 3, version 2, lease 2, value "b".
	setup := func(h *harness) {
		h.put("/k", `"a"`)
		if id := h.grant(10); id != 2 {
			t.Fatalf("lease ID = %d, want 2", id)
		}
		h.putLease("/k", `"b"`, 2)
	}
	tests := []struct {
		name string
		cmp  *proto.Compare
		want bool
	}{
		{"mod == 3", num("/k", modRev, eq, 3), true},
		{"mod == 1", num("/k", modRev, eq, 1), false},
		{"mod != 1", num("/k", modRev, ne, 1), true},
		{"mod != 3", num("/k", modRev, ne, 3), false},
		{"mod < 4", num("/k", modRev, lt, 4), true},
		{"mod < 3", num("/k", modRev, lt, 3), false},
		{"mod > 2", num("/k", modRev, gt, 2), true},
		{"mod > 3", num("/k", modRev, gt, 3), false},

		{"create == 1", num("/k", create, eq, 1), true},
		{"create == 3", num("/k", create, eq, 3), false},
		{"create != 3", num("/k", create, ne, 3), true},
		{"create != 1", num("/k", create, ne, 1), false},
		{"create < 2", num("/k", create, lt, 2), true},
		{"create < 1", num("/k", create, lt, 1), false},
		{"create > 0", num("/k", create, gt, 0), true},
		{"create > 1", num("/k", create, gt, 1), false},

		{"version == 2", num("/k", ver, eq, 2), true},
		{"version == 1", num("/k", ver, eq, 1), false},
		{"version != 1", num("/k", ver, ne, 1), true},
		{"version != 2", num("/k", ver, ne, 2), false},
		{"version < 3", num("/k", ver, lt, 3), true},
		{"version < 2", num("/k", ver, lt, 2), false},
		{"version > 1", num("/k", ver, gt, 1), true},
		{"version > 2", num("/k", ver, gt, 2), false},

		{"lease == 2", num("/k", lease, eq, 2), true},
		{"lease == 0", num("/k", lease, eq, 0), false},
		{"lease != 0", num("/k", lease, ne, 0), true},
		{"lease != 2", num("/k", lease, ne, 2), false},
		{"lease < 3", num("/k", lease, lt, 3), true},
		{"lease < 2", num("/k", lease, lt, 2), false},
		{"lease > 1", num("/k", lease, gt, 1), true},
		{"lease > 2", num("/k", lease, gt, 2), false},

		{`value == "b"`, val("/k", eq, `"b"`), true},
		{`value == "a"`, val("/k", eq, `"a"`), false},
		{`value == ""`, val("/k", eq, ``), false},
		{`value != "a"`, val("/k", ne, `"a"`), true},
		{`value != "b"`, val("/k", ne, `"b"`), false},
		{`value < "c"`, val("/k", lt, `"c"`), true},
		{`value < "b"`, val("/k", lt, `"b"`), false},
		{`value < "b" (prefix is less)`, val("/k", lt, `"b`), false},
		{`value > "a"`, val("/k", gt, `"a"`), true},
		{`value > "b`, val("/k", gt, `"b`), true},
		{`value > "b"`, val("/k", gt, `"b"`), false},

		// An absent key: numbers are 0, the value never equals.
		{"absent mod == 0", num("/none", modRev, eq, 0), true},
		{"absent mod != 0", num("/none", modRev, ne, 0), false},
		{"absent mod < 1", num("/none", modRev, lt, 1), true},
		{"absent mod > 0", num("/none", modRev, gt, 0), false},
		{"absent create == 0", num("/none", create, eq, 0), true},
		{"absent version == 0", num("/none", ver, eq, 0), true},
		{"absent version > 0", num("/none", ver, gt, 0), false},
		{"absent lease == 0", num("/none", lease, eq, 0), true},
		{"absent lease != 2", num("/none", lease, ne, 2), true},
		{`absent value == ""`, val("/none", eq, ``), false},
		{`absent value == "b"`, val("/none", eq, `"b"`), false},
		{`absent value != "b"`, val("/none", ne, `"b"`), true},
		{`absent value < "b"`, val("/none", lt, `"b"`), false},
		{`absent value > ""`, val("/none", gt, ``), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			setup(h)
			before := h.get("/k")
			resp := h.mustApply(branchTxn(tt.cmp)).GetTxn()
			if resp.Succeeded != tt.want {
				t.Errorf("Succeeded = %v, want %v", resp.Succeeded, tt.want)
			}
			wantBranch := `"failure"`
			if tt.want {
				wantBranch = `"success"`
			}
			if got := string(h.get("/branch").GetValue()); got != wantBranch {
				t.Errorf("/branch = %s, want %s", got, wantBranch)
			}
			if got := h.get("/k"); !kvEqual(got, before) {
				t.Errorf("a compare changed /k to %v", got)
			}
		})
	}
}

// Rule: the success branch runs only when every compare holds.
func TestStore_TxnAllComparesMustHold(t *testing.T) {
	tests := []struct {
		name string
		cmps []*proto.Compare
		want bool
	}{
		{"no compares", nil, true},
		{"all hold", []*proto.Compare{
			num("/a", proto.Compare_VERSION, proto.Compare_EQUAL, 1),
			val("/b", proto.Compare_EQUAL, `2`),
		}, true},
		{"first fails", []*proto.Compare{
			num("/a", proto.Compare_VERSION, proto.Compare_EQUAL, 9),
			val("/b", proto.Compare_EQUAL, `2`),
		}, false},
		{"last fails", []*proto.Compare{
			num("/a", proto.Compare_VERSION, proto.Compare_EQUAL, 1),
			val("/b", proto.Compare_EQUAL, `3`),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.put("/a", `1`)
			h.put("/b", `2`)
			if got := h.mustApply(branchTxn(tt.cmps...)).GetTxn().Succeeded; got != tt.want {
				t.Errorf("Succeeded = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStore_TxnOps(t *testing.T) {
	h := newHarness(t)
	h.put("/k", `"k"`)   // 1
	h.put("/p/1", `1`)   // 2
	h.put("/p/2", `2`)   // 3
	h.put("/p/3", `3`)   // 4
	h.put("/pq", `0`)    // 5
	h.put("/old", `"x"`) // 6
	k, p1, p2, p3 := h.get("/k"), h.get("/p/1"), h.get("/p/2"), h.get("/p/3")

	res := h.mustApply(txnCmd(&proto.TxnRequest{
		Compares: []*proto.Compare{num("/k", proto.Compare_VERSION, proto.Compare_EQUAL, 1)},
		Success: []*proto.Op{
			{Type: proto.Op_GET, Key: "/k"},
			{Type: proto.Op_GET, Key: "/missing"},
			{Type: proto.Op_GET, Key: "/p/", Prefix: true},
			{Type: proto.Op_PUT, Key: "/new", Value: []byte(`"n"`)},
			{Type: proto.Op_PUT, Key: "/k", Value: []byte(`"k2"`)},
			{Type: proto.Op_GET, Key: "/new"}, // sees the earlier op
			{Type: proto.Op_DELETE, Key: "/old"},
			{Type: proto.Op_DELETE, Key: "/missing"},
			{Type: proto.Op_DELETE, Key: "/p/", Prefix: true},
			{Type: proto.Op_GET, Key: "/p/", Prefix: true}, // sees the delete
		},
		Failure: []*proto.Op{{Type: proto.Op_DELETE, Key: "/", Prefix: true}},
		Origin:  "planner",
	}))
	const rev = 7
	resp := res.GetTxn()
	if !resp.Succeeded || resp.Revision != rev {
		t.Fatalf("TxnResponse succeeded %v, revision %d; want true, %d", resp.Succeeded, resp.Revision, rev)
	}
	newKV := &proto.KeyValue{Key: "/new", Value: []byte(`"n"`), CreateRevision: rev, ModRevision: rev, Version: 1, Origin: "planner"}
	want := []*proto.OpResult{
		{Kvs: []*proto.KeyValue{k}},
		{},
		{Kvs: []*proto.KeyValue{p1, p2, p3}},
		{},
		{},
		{Kvs: []*proto.KeyValue{newKV}},
		{Deleted: 1},
		{},
		{Deleted: 3},
		{},
	}
	if len(resp.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.Results), len(want))
	}
	for i := range want {
		got := resp.Results[i]
		if got.Deleted != want[i].Deleted || len(got.Kvs) != len(want[i].Kvs) {
			t.Errorf("result %d = %v, want %v", i, got, want[i])
			continue
		}
		for j := range got.Kvs {
			if !kvEqual(got.Kvs[j], want[i].Kvs[j]) {
				t.Errorf("result %d kv %d = %v, want %v", i, j, got.Kvs[j], want[i].Kvs[j])
			}
		}
	}

	// Every write in the txn carries the txn's revision and origin.
	wantK := &proto.KeyValue{Key: "/k", Value: []byte(`"k2"`), CreateRevision: 1, ModRevision: rev, Version: 2, Origin: "planner"}
	if got := h.get("/k"); !kvEqual(got, wantK) {
		t.Errorf("/k = %v, want %v", got, wantK)
	}
	if got := h.keys(); !equalStrings(got, []string{"/k", "/new", "/pq"}) {
		t.Errorf("keys = %q, want [/k /new /pq]", got)
	}
}

func TestStore_TxnFailureBranch(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	h.put("/b", `1`)
	resp := h.mustApply(txnCmd(&proto.TxnRequest{
		Compares: []*proto.Compare{num("/a", proto.Compare_MOD_REVISION, proto.Compare_EQUAL, 99)},
		Success:  []*proto.Op{{Type: proto.Op_DELETE, Key: "/", Prefix: true}},
		Failure: []*proto.Op{
			{Type: proto.Op_GET, Key: "/a"},
			{Type: proto.Op_DELETE, Key: "/b"},
		},
	})).GetTxn()
	if resp.Succeeded {
		t.Fatalf("Succeeded = true, want false")
	}
	if len(resp.Results) != 2 || len(resp.Results[0].Kvs) != 1 || resp.Results[0].Kvs[0].Key != "/a" || resp.Results[1].Deleted != 1 {
		t.Errorf("failure results = %v", resp.Results)
	}
	if got := h.keys(); !equalStrings(got, []string{"/a"}) {
		t.Errorf("keys = %q, want [/a]", got)
	}
}

// Rule: a txn applies whole or not at all: every op of both branches is
// checked before any runs, and a violation anywhere changes nothing.
func TestStore_TxnIsAtomic(t *testing.T) {
	first := &proto.Op{Type: proto.Op_PUT, Key: "/first", Value: []byte(`1`)}
	del := &proto.Op{Type: proto.Op_DELETE, Key: "/keep/", Prefix: true}
	tests := []struct {
		name   string
		txn    *proto.TxnRequest
		target error
		field  string
	}{
		{"missing lease in second op", &proto.TxnRequest{
			Success: []*proto.Op{first, {Type: proto.Op_PUT, Key: "/second", Value: []byte(`1`), Lease: 999}},
		}, fsm.ErrNotFound, "success[1].lease"},
		{"invalid put key in second op", &proto.TxnRequest{
			Success: []*proto.Op{first, {Type: proto.Op_PUT, Key: "/bad/", Value: []byte(`1`)}},
		}, fsm.ErrInvalid, "success[1].key"},
		{"invalid delete key after a prefix delete", &proto.TxnRequest{
			Success: []*proto.Op{del, first, {Type: proto.Op_DELETE, Key: "no-slash"}},
		}, fsm.ErrInvalid, "success[2].key"},
		{"invalid get prefix", &proto.TxnRequest{
			Success: []*proto.Op{first, {Type: proto.Op_GET, Key: "/a//", Prefix: true}},
		}, fsm.ErrInvalid, "success[1].key"},
		{"invalid op in the branch that does not run", &proto.TxnRequest{
			Success: []*proto.Op{first},
			Failure: []*proto.Op{{Type: proto.Op_PUT, Key: "/x/../y", Value: []byte(`1`)}},
		}, fsm.ErrInvalid, "failure[0].key"},
		{"missing lease in the failure branch", &proto.TxnRequest{
			Compares: []*proto.Compare{num("/none", proto.Compare_VERSION, proto.Compare_GREATER, 0)},
			Failure:  []*proto.Op{first, {Type: proto.Op_PUT, Key: "/x", Value: []byte(`1`), Lease: 3}},
		}, fsm.ErrNotFound, "failure[1].lease"},
		{"invalid compare key", &proto.TxnRequest{
			Compares: []*proto.Compare{num("/ok", proto.Compare_VERSION, proto.Compare_EQUAL, 0), num("bad", proto.Compare_VERSION, proto.Compare_EQUAL, 0)},
			Success:  []*proto.Op{first},
		}, fsm.ErrInvalid, "compares[1].key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.put("/keep/1", `1`)
			h.put("/keep/2", `1`)
			res := h.apply(txnCmd(tt.txn))
			checkErr(t, res, tt.target, tt.field)
			if got := h.get("/first"); got != nil {
				t.Errorf("first op was applied: %v", got)
			}
			if got := h.keys(); !equalStrings(got, []string{"/keep/1", "/keep/2"}) {
				t.Errorf("keys = %q, want [/keep/1 /keep/2]", got)
			}
			// Only the revision moved: the state equals the old one plus a config entry.
			h2 := newHarness(t)
			h2.put("/keep/1", `1`)
			h2.put("/keep/2", `1`)
			h2.config()
			if string(h.dump()) != string(h2.dump()) {
				t.Errorf("a failed txn changed the state")
			}
		})
	}
}

func TestStore_TxnPutLeaseAttaches(t *testing.T) {
	h := newHarness(t)
	id := h.grant(30)
	h.mustApply(txnCmd(&proto.TxnRequest{Success: []*proto.Op{
		{Type: proto.Op_PUT, Key: "/a", Value: []byte(`1`), Lease: id},
		{Type: proto.Op_PUT, Key: "/b", Value: []byte(`1`), Lease: id},
	}}))
	if got := h.get("/a").Lease; got != id {
		t.Errorf("/a lease = %d, want %d", got, id)
	}
	// A txn delete detaches the key from its lease.
	h.mustApply(txnCmd(&proto.TxnRequest{Success: []*proto.Op{{Type: proto.Op_DELETE, Key: "/b"}}}))
	h.put("/b", `2`)
	res := h.mustApply(revokeCmd(id, false))
	if got := res.GetLeaseRevoke().GetDeleted(); got != 1 {
		t.Errorf("revoke deleted %d keys, want 1", got)
	}
	if got := h.keys(); !equalStrings(got, []string{"/b"}) {
		t.Errorf("keys = %q, want [/b]", got)
	}
}

// Rule: a prefix GET in a transaction returns at most limit keys (at most
// MaxTxnGetKeys, which is also the default), in key order, and sets more
// when keys under the prefix were left out. Apply caps rather than refuses
// a larger limit: the cap bounds a read's result, never the state.
func TestStore_TxnGetPrefixLimit(t *testing.T) {
	h := newHarness(t)
	fill := &proto.TxnRequest{}
	for i := 0; i < fsm.MaxTxnGetKeys+1; i++ {
		fill.Success = append(fill.Success, &proto.Op{Type: proto.Op_PUT, Key: fmt.Sprintf("/big/%05d", i), Value: []byte(`1`)})
	}
	for _, k := range []string{"/p/1", "/p/2", "/p/3"} {
		fill.Success = append(fill.Success, &proto.Op{Type: proto.Op_PUT, Key: k, Value: []byte(`1`)})
	}
	h.mustApply(txnCmd(fill))

	tests := []struct {
		prefix   string
		limit    uint32
		wantKeys int
		wantMore bool
	}{
		{"/p/", 0, 3, false},
		{"/p/", 1, 1, true},
		{"/p/", 2, 2, true},
		{"/p/", 3, 3, false},
		{"/p/", 4, 3, false},
		{"/none/", 1, 0, false},
		{"/big/", 0, fsm.MaxTxnGetKeys, true},
		{"/big/", fsm.MaxTxnGetKeys, fsm.MaxTxnGetKeys, true},
		{"/big/", fsm.MaxTxnGetKeys + 5, fsm.MaxTxnGetKeys, true},
		{"/big/", 10, 10, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s limit %d", tt.prefix, tt.limit), func(t *testing.T) {
			resp := h.mustApply(txnCmd(&proto.TxnRequest{Success: []*proto.Op{
				{Type: proto.Op_GET, Key: tt.prefix, Prefix: true, Limit: tt.limit},
			}})).GetTxn()
			got := resp.Results[0]
			if len(got.Kvs) != tt.wantKeys || got.More != tt.wantMore {
				t.Fatalf("%d keys, more %v; want %d, %v", len(got.Kvs), got.More, tt.wantKeys, tt.wantMore)
			}
			for i := 1; i < len(got.Kvs); i++ {
				if got.Kvs[i-1].Key >= got.Kvs[i].Key {
					t.Fatalf("keys out of order at %d: %q, %q", i, got.Kvs[i-1].Key, got.Kvs[i].Key)
				}
			}
			if tt.prefix == "/big/" && got.Kvs[0].Key != "/big/00000" {
				t.Fatalf("first key %q, want /big/00000", got.Kvs[0].Key)
			}
		})
	}
}

// Rule: Apply runs a branch that writes a key twice as it always has (the
// later write wins; each write bumps the version and emits an event at the
// same revision). Such a transaction is refused before it is proposed
// (cluster's checkTxn), but an entry already in the log from an older version
// must apply the same way on every member and on every replay.
func TestStore_TxnDuplicateWritesApplyAsBefore(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `0`)   // 1
	h.put("/p/x", `0`) // 2
	var events []fsm.Event
	h.s.SetHook(func(_ uint64, ev []fsm.Event, _ fsm.ReadView) { events = ev })
	resp := h.mustApply(txnCmd(&proto.TxnRequest{Success: []*proto.Op{
		{Type: proto.Op_PUT, Key: "/a", Value: []byte(`1`)},
		{Type: proto.Op_PUT, Key: "/a", Value: []byte(`2`)},
		{Type: proto.Op_DELETE, Key: "/p/", Prefix: true},
		{Type: proto.Op_PUT, Key: "/p/x", Value: []byte(`3`)},
		{Type: proto.Op_DELETE, Key: "/b"},
		{Type: proto.Op_DELETE, Key: "/b"},
	}})).GetTxn()
	const rev = 3
	if !resp.Succeeded || resp.Revision != rev {
		t.Fatalf("TxnResponse succeeded %v, revision %d; want true, %d", resp.Succeeded, resp.Revision, rev)
	}
	wantA := &proto.KeyValue{Key: "/a", Value: []byte(`2`), CreateRevision: 1, ModRevision: rev, Version: 3}
	if got := h.get("/a"); !kvEqual(got, wantA) {
		t.Errorf("/a = %v, want %v", got, wantA)
	}
	wantX := &proto.KeyValue{Key: "/p/x", Value: []byte(`3`), CreateRevision: rev, ModRevision: rev, Version: 1}
	if got := h.get("/p/x"); !kvEqual(got, wantX) {
		t.Errorf("/p/x = %v, want %v", got, wantX)
	}
	var got []string
	for _, ev := range events {
		got = append(got, ev.Type.String()+" "+ev.KV.Key)
	}
	if want := []string{"put /a", "put /a", "delete /p/x", "put /p/x"}; !equalStrings(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}
