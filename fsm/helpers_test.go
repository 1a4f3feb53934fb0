package fsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// harness feeds encoded entries straight into a Store, no Raft, with one
// increasing log index per entry.
type harness struct {
	t   testing.TB
	s   *fsm.Store
	idx uint64
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return &harness{t: t, s: fsm.New()}
}

// entry encodes c as the next command entry without applying it.
func (h *harness) entry(c *proto.Command) *raft.Log {
	h.t.Helper()
	data, err := fsm.EncodeCommand(c)
	if err != nil {
		h.t.Fatalf("EncodeCommand(%v): %v", c, err)
	}
	h.idx++
	return &raft.Log{Type: raft.LogCommand, Index: h.idx, Data: data}
}

// apply applies c as the next entry and returns its Result, rule violation or not.
func (h *harness) apply(c *proto.Command) *proto.Result {
	h.t.Helper()
	l := h.entry(c)
	out := h.s.Apply(l)
	res, ok := out.(*proto.Result)
	if !ok {
		h.t.Fatalf("Apply(index %d) returned %T, want *proto.Result", l.Index, out)
	}
	if res.Revision != l.Index {
		h.t.Errorf("Result.Revision = %d, want the entry index %d", res.Revision, l.Index)
	}
	return res
}

// mustApply applies c and fails the test on a rule violation.
func (h *harness) mustApply(c *proto.Command) *proto.Result {
	h.t.Helper()
	res := h.apply(c)
	if res.Error != nil {
		h.t.Fatalf("apply %v at index %d: unexpected error %v", c, h.idx, res.Error)
	}
	return res
}

// config applies a LogConfiguration entry and returns what Apply returned.
func (h *harness) config() interface{} {
	h.t.Helper()
	h.idx++
	return h.s.Apply(&raft.Log{Type: raft.LogConfiguration, Index: h.idx, Data: []byte("cfg")})
}

func (h *harness) put(key, value string) *proto.PutResponse {
	h.t.Helper()
	return h.mustApply(putCmd(&proto.PutRequest{Key: key, Value: []byte(value)})).GetPut()
}

func (h *harness) putLease(key, value string, lease uint64) *proto.PutResponse {
	h.t.Helper()
	return h.mustApply(putCmd(&proto.PutRequest{Key: key, Value: []byte(value), Lease: lease})).GetPut()
}

func (h *harness) grant(ttl int64) uint64 {
	h.t.Helper()
	return h.mustApply(grantCmd(ttl)).GetLeaseGrant().GetId()
}

// get returns the key's KeyValue, or nil when it is absent.
func (h *harness) get(key string) *proto.KeyValue {
	h.t.Helper()
	kv, _, err := h.s.Get(key)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatalf("Get(%q): %v", key, err)
	}
	return kv
}

// keys lists every key in the store.
func (h *harness) keys() []string {
	h.t.Helper()
	var out []string
	for _, kv := range listAll(h.t, h.s, "/") {
		out = append(out, kv.Key)
	}
	return out
}

// dump returns the WriteSnapshot bytes of the whole state.
func (h *harness) dump() []byte {
	h.t.Helper()
	return dump(h.t, h.s)
}

func dump(t testing.TB, s *fsm.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

// listAll pages through every key under prefix.
func listAll(t testing.TB, s *fsm.Store, prefix string) []*proto.KeyValue {
	t.Helper()
	var all []*proto.KeyValue
	after := ""
	for {
		items, next, _, err := s.List(prefix, after, 0)
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, after, err)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		after = next
	}
}

func putCmd(r *proto.PutRequest) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_Put{Put: r}}
}

func delCmd(r *proto.DeleteRequest) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_Delete{Delete: r}}
}

func txnCmd(r *proto.TxnRequest) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_Txn{Txn: r}}
}

func grantCmd(ttl int64) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_LeaseGrant{LeaseGrant: &proto.LeaseGrantRequest{TtlSeconds: ttl}}}
}

func revokeCmd(id uint64, expired bool) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_LeaseRevoke{LeaseRevoke: &proto.LeaseRevoke{Id: id, Expired: expired}}}
}

func barrierCmd() *proto.Command {
	return &proto.Command{Cmd: &proto.Command_Barrier{Barrier: &proto.Barrier{Leader: "m1"}}}
}

func u64(v uint64) *uint64 { return &v }

// checkErr asserts that res carries a rule violation matching target with the
// given field, and returns it as a typed error.
func checkErr(t testing.TB, res *proto.Result, target error, field string) *fsm.Error {
	t.Helper()
	err := fsm.FromProto(res.GetError())
	if err == nil {
		t.Fatalf("result %v: got no error, want %v", res, target)
	}
	if !errors.Is(err, target) {
		t.Errorf("error %v: errors.Is(err, %v) = false, want true", err, target)
	}
	var fe *fsm.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not an *fsm.Error", err, err)
	}
	if fe.Field != field {
		t.Errorf("error %v: Field = %q, want %q", err, fe.Field, field)
	}
	if res.Result != nil {
		t.Errorf("failed result carries a response: %v", res.Result)
	}
	return fe
}

func kvEqual(a, b *proto.KeyValue) bool { return gproto.Equal(a, b) }
