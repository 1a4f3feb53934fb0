package fsm_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// recount computes what Stats must say by walking the whole state.
func recount(t testing.TB, s *fsm.Store) fsm.Stats {
	t.Helper()
	var st fsm.Stats
	for _, kv := range listAll(t, s, "/") {
		st.Keys++
		st.Bytes += int64(len(kv.Key) + len(kv.Value))
	}
	st.Revision = s.Revision()
	return st
}

func checkStats(t testing.TB, s *fsm.Store, when string) {
	t.Helper()
	if got, want := s.Stats(), recount(t, s); got != want {
		t.Fatalf("%s: Stats() = %+v, want %+v (counted)", when, got, want)
	}
}

// Rule: Stats' running counters match the state after every kind of write:
// create, update to a larger and a smaller value, delete, prefix delete,
// transaction, lease revocation, and entries that change no key.
func TestStore_StatsFollowWrites(t *testing.T) {
	h := newHarness(t)
	if got := h.s.Stats(); got != (fsm.Stats{}) {
		t.Fatalf("new store: Stats() = %+v, want zero", got)
	}
	h.put("/a", `1`)
	checkStats(t, h.s, "create")
	if got := h.s.Stats(); got.Keys != 1 || got.Bytes != 3 || got.Revision != 1 {
		t.Fatalf("after one put of /a = 1: Stats() = %+v, want 1 key, 3 bytes, revision 1", got)
	}
	h.put("/a", `{"long":"value"}`)
	checkStats(t, h.s, "update to a larger value")
	h.put("/a", `2`)
	checkStats(t, h.s, "update to a smaller value")
	for _, k := range []string{"/p/1", "/p/2", "/p/3", "/q"} {
		h.put(k, `"x"`)
	}
	h.mustApply(delCmd(&proto.DeleteRequest{Key: "/q"}))
	checkStats(t, h.s, "delete")
	h.mustApply(delCmd(&proto.DeleteRequest{Key: "/absent"}))
	checkStats(t, h.s, "delete of an absent key")
	h.mustApply(delCmd(&proto.DeleteRequest{Key: "/p/", Prefix: true}))
	checkStats(t, h.s, "prefix delete")
	h.mustApply(txnCmd(&proto.TxnRequest{Success: []*proto.Op{
		{Type: proto.Op_PUT, Key: "/t/1", Value: []byte(`[1,2,3]`)},
		{Type: proto.Op_PUT, Key: "/t/1", Value: []byte(`[1]`)},
		{Type: proto.Op_DELETE, Key: "/a"},
	}}))
	checkStats(t, h.s, "transaction")
	id := h.grant(10)
	h.putLease("/l/1", `true`, id)
	h.putLease("/l/2", `false`, id)
	checkStats(t, h.s, "puts with a lease")
	h.mustApply(revokeCmd(id, true))
	checkStats(t, h.s, "lease expiry")
	h.apply(putCmd(&proto.PutRequest{Key: "/t/1", Value: []byte(`0`), CasRevision: u64(999)}))
	checkStats(t, h.s, "failed compare")
	h.mustApply(barrierCmd())
	h.config()
	checkStats(t, h.s, "barrier and configuration entries")
}

// Rule: the counters stay exact over thousands of random entries applied in
// batches of every size, rule violations included.
func TestStore_StatsRandomEntries(t *testing.T) {
	logs := randomEntries(3000, 11)
	s := fsm.New()
	for i, size := 0, 1; i < len(logs); i, size = i+size, size%37+1 {
		s.ApplyBatch(logs[i:min(i+size, len(logs))])
		checkStats(t, s, "random batch")
	}
	if s.Stats().Keys == 0 {
		t.Fatal("the random entries left no key; the test checks nothing")
	}
}

// Rule: a restore replaces the counters with the snapshot's, whatever the
// store held before.
func TestStore_StatsAfterRestore(t *testing.T) {
	src := fsm.New()
	src.ApplyBatch(randomEntries(1000, 3))
	var snap bytes.Buffer
	if _, err := src.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	dst.put("/unrelated/key", `{"will":"go"}`)
	if err := dst.s.Restore(io.NopCloser(&snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	checkStats(t, dst.s, "after restore")
	if got, want := dst.s.Stats(), src.Stats(); got != want {
		t.Errorf("restored Stats() = %+v, want the source's %+v", got, want)
	}
	// Writes after the restore count from the restored figures.
	dst.s.Apply(&raft.Log{Type: raft.LogCommand, Index: src.Revision() + 1,
		Data: mustEncode(t, putCmd(&proto.PutRequest{Key: "/after", Value: []byte(`1`)}))})
	checkStats(t, dst.s, "write after restore")
}

func mustEncode(t testing.TB, c *proto.Command) []byte {
	t.Helper()
	b, err := fsm.EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
