package fsm_test

import (
	"errors"
	"testing"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Rule: a lease's ID is the index of the entry that granted it, the same on
// every member.
func TestStore_LeaseGrant(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	res := h.mustApply(grantCmd(30)).GetLeaseGrant()
	if res.Id != 2 || res.TtlSeconds != 30 || res.Revision != 2 {
		t.Errorf("LeaseGrantResponse = %v, want id 2, ttl 30, revision 2", res)
	}
	h.config()
	if id := h.grant(5); id != 4 {
		t.Errorf("second lease ID = %d, want 4", id)
	}
	if ttl, err := h.s.Lease(2); err != nil || ttl != 30 {
		t.Errorf("Lease(2) = %d, %v; want 30, nil", ttl, err)
	}
	got := h.s.Leases()
	if len(got) != 2 || got[2] != 30 || got[4] != 5 {
		t.Errorf("Leases() = %v, want map[2:30 4:5]", got)
	}
	if _, err := h.s.Lease(3); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("Lease(3) err = %v, want ErrNotFound", err)
	}
}

func TestStore_LeaseGrantNeedsPositiveTTL(t *testing.T) {
	for _, ttl := range []int64{0, -1, -3600} {
		h := newHarness(t)
		checkErr(t, h.apply(grantCmd(ttl)), fsm.ErrInvalid, "ttl_seconds")
		if got := h.s.Leases(); len(got) != 0 {
			t.Errorf("ttl %d: Leases() = %v, want none", ttl, got)
		}
	}
}

func TestStore_PutUnknownLease(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	before := h.get("/a")
	for _, key := range []string{"/a", "/b"} {
		res := h.apply(putCmd(&proto.PutRequest{Key: key, Value: []byte(`2`), Lease: 42}))
		checkErr(t, res, fsm.ErrNotFound, "lease")
	}
	if got := h.get("/a"); !kvEqual(got, before) {
		t.Errorf("/a changed to %v", got)
	}
	if got := h.get("/b"); got != nil {
		t.Errorf("/b written: %v", got)
	}
}

func TestStore_LeaseAttachAndDetach(t *testing.T) {
	h := newHarness(t)
	id := h.grant(10)
	h.putLease("/a", `1`, id)
	if got := h.get("/a").Lease; got != id {
		t.Fatalf("/a lease = %d, want %d", got, id)
	}

	// Re-put with no lease detaches: the revoke leaves the key.
	h.put("/a", `2`)
	if got := h.get("/a").Lease; got != 0 {
		t.Errorf("/a lease after re-put = %d, want 0", got)
	}
	res := h.mustApply(revokeCmd(id, false)).GetLeaseRevoke()
	if res.Deleted != 0 {
		t.Errorf("revoke deleted %d keys, want 0", res.Deleted)
	}
	if h.get("/a") == nil {
		t.Errorf("/a deleted by a lease it left")
	}
}

func TestStore_LeaseMoveBetweenLeases(t *testing.T) {
	h := newHarness(t)
	l1, l2 := h.grant(10), h.grant(10)
	h.putLease("/a", `1`, l1)
	h.putLease("/a", `2`, l2)
	if got := h.mustApply(revokeCmd(l1, false)).GetLeaseRevoke().Deleted; got != 0 {
		t.Errorf("revoking the old lease deleted %d keys, want 0", got)
	}
	if got := h.get("/a").GetLease(); got != l2 {
		t.Fatalf("/a lease = %d, want %d", got, l2)
	}
	if got := h.mustApply(revokeCmd(l2, false)).GetLeaseRevoke().Deleted; got != 1 {
		t.Errorf("revoking the new lease deleted %d keys, want 1", got)
	}
	if got := h.get("/a"); got != nil {
		t.Errorf("/a survived its lease: %v", got)
	}
}

func TestStore_LeaseKeyDeletedThenRecreated(t *testing.T) {
	h := newHarness(t)
	id := h.grant(10)
	h.putLease("/a/1", `1`, id)
	h.putLease("/a/2", `1`, id)
	h.mustApply(delCmd(&proto.DeleteRequest{Key: "/a/", Prefix: true}))
	h.put("/a/1", `2`) // no lease now
	if got := h.mustApply(revokeCmd(id, false)).GetLeaseRevoke().Deleted; got != 0 {
		t.Errorf("revoke deleted %d keys, want 0", got)
	}
	if got := h.keys(); !equalStrings(got, []string{"/a/1"}) {
		t.Errorf("keys = %q, want [/a/1]", got)
	}
}

// Rule: revoking a lease deletes its keys in key order (deterministic, not
// map order), as deletes, or as expiries when the leader says it expired;
// either way with the origin "lease" (docs/API.md, Leases).
func TestStore_LeaseRevokeDeletesKeys(t *testing.T) {
	for _, expired := range []bool{false, true} {
		h := newHarness(t)
		id := h.grant(10)
		other := h.grant(10)
		for _, k := range []string{"/c", "/a", "/e", "/b", "/d"} {
			h.putLease(k, `1`, id)
		}
		h.put("/free", `1`)
		h.putLease("/other", `1`, other)

		var events []fsm.Event
		var hookRev uint64
		h.s.SetHook(func(rev uint64, ev []fsm.Event, _ fsm.ReadView) {
			hookRev, events = rev, ev
		})
		prev := map[string]*proto.KeyValue{}
		for _, k := range []string{"/a", "/b", "/c", "/d", "/e"} {
			prev[k] = h.get(k)
		}
		res := h.mustApply(revokeCmd(id, expired)).GetLeaseRevoke()
		if res.Deleted != 5 || res.Revision != h.idx {
			t.Errorf("expired=%v: LeaseRevokeResponse = %v, want 5 deleted at %d", expired, res, h.idx)
		}
		if got := h.keys(); !equalStrings(got, []string{"/free", "/other"}) {
			t.Errorf("expired=%v: keys = %q, want [/free /other]", expired, got)
		}
		if _, err := h.s.Lease(id); !errors.Is(err, fsm.ErrNotFound) {
			t.Errorf("expired=%v: Lease(%d) after revoke err = %v, want ErrNotFound", expired, id, err)
		}
		if _, err := h.s.Lease(other); err != nil {
			t.Errorf("expired=%v: other lease gone: %v", expired, err)
		}

		wantType := fsm.EventDelete
		if expired {
			wantType = fsm.EventExpire
		}
		if hookRev != h.idx || len(events) != 5 {
			t.Fatalf("expired=%v: hook rev %d with %d events, want %d with 5", expired, hookRev, len(events), h.idx)
		}
		for i, k := range []string{"/a", "/b", "/c", "/d", "/e"} {
			ev := events[i]
			wantKV := &proto.KeyValue{Key: k, ModRevision: h.idx, Origin: "lease"}
			if ev.Type != wantType || !kvEqual(ev.KV, wantKV) || !kvEqual(ev.PrevKV, prev[k]) {
				t.Errorf("expired=%v: event %d = %v %v prev %v; want %v %v prev %v",
					expired, i, ev.Type, ev.KV, ev.PrevKV, wantType, wantKV, prev[k])
			}
		}
	}
}

func TestStore_LeaseRevokeUnknown(t *testing.T) {
	h := newHarness(t)
	id := h.grant(10)
	checkErr(t, h.apply(revokeCmd(id+100, false)), fsm.ErrNotFound, "lease")
	h.mustApply(revokeCmd(id, true))
	checkErr(t, h.apply(revokeCmd(id, true)), fsm.ErrNotFound, "lease") // twice
}
