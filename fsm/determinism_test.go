package fsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// randomEntries returns n entries of every kind, many of them rule
// violations, from a fixed seed. Lease IDs are the indexes of the grants.
func randomEntries(n int, seed uint64) []*raft.Log {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var grants []uint64
	key := func() string { return fmt.Sprintf("/g/%d/%d", rng.IntN(20), rng.IntN(20)) }
	lease := func() uint64 {
		switch r := rng.IntN(10); {
		case r < 5 || len(grants) == 0:
			return 0
		case r < 6:
			return uint64(n + 1 + rng.IntN(n)) // never granted
		default:
			return grants[max(0, len(grants)-1-rng.IntN(4))] // a recent grant
		}
	}
	value := func() []byte { return []byte(fmt.Sprintf(`{"v":%d}`, rng.IntN(1000))) }
	origin := func() string { return []string{"", "cli", "scheduler", "lease"}[rng.IntN(4)] }
	op := func() *proto.Op {
		switch rng.IntN(5) {
		case 0:
			return &proto.Op{Type: proto.Op_GET, Key: key()}
		case 1:
			return &proto.Op{Type: proto.Op_GET, Key: fmt.Sprintf("/g/%d/", rng.IntN(20)), Prefix: true}
		case 2:
			return &proto.Op{Type: proto.Op_DELETE, Key: key()}
		default:
			return &proto.Op{Type: proto.Op_PUT, Key: key(), Value: value(), Lease: lease()}
		}
	}

	logs := make([]*raft.Log, 0, n)
	for i := 1; i <= n; i++ {
		idx := uint64(i)
		var c *proto.Command
		switch r := rng.IntN(100); {
		case r < 2:
			logs = append(logs, &raft.Log{Type: raft.LogConfiguration, Index: idx})
			continue
		case r < 40:
			req := &proto.PutRequest{Key: key(), Value: value(), Lease: lease(), Origin: origin(), PrevKv: rng.IntN(2) == 0}
			if rng.IntN(4) == 0 {
				req.CasRevision = u64(uint64(rng.IntN(i + 1)))
			}
			c = putCmd(req)
		case r < 52:
			req := &proto.DeleteRequest{Key: key(), Origin: origin()}
			if rng.IntN(4) == 0 {
				req.CasRevision = u64(uint64(rng.IntN(i + 1)))
			}
			c = delCmd(req)
		case r < 56:
			c = delCmd(&proto.DeleteRequest{Key: fmt.Sprintf("/g/%d/", rng.IntN(20)), Prefix: true})
		case r < 78:
			txn := &proto.TxnRequest{Origin: origin()}
			for j := rng.IntN(3); j > 0; j-- {
				txn.Compares = append(txn.Compares, &proto.Compare{
					Key:    key(),
					Target: proto.Compare_Target(rng.IntN(5)),
					Op:     proto.Compare_Operator(rng.IntN(4)),
					Number: uint64(rng.IntN(i + 1)),
					Value:  value(),
				})
			}
			for j := rng.IntN(4); j > 0; j-- {
				txn.Success = append(txn.Success, op())
			}
			for j := rng.IntN(3); j > 0; j-- {
				txn.Failure = append(txn.Failure, op())
			}
			c = txnCmd(txn)
		case r < 88:
			ttl := int64(rng.IntN(60)) - 5
			c = grantCmd(ttl)
			if ttl > 0 {
				grants = append(grants, idx)
			}
		case r < 94:
			var id uint64
			if len(grants) > 0 {
				id = grants[rng.IntN(len(grants))] // maybe revoked already
			}
			c = revokeCmd(id, rng.IntN(2) == 0)
		case r < 97:
			c = putCmd(&proto.PutRequest{Key: strings.Repeat("x", rng.IntN(3)), Value: value()}) // invalid key
		default:
			c = barrierCmd()
		}
		data, err := fsm.EncodeCommand(c)
		if err != nil {
			panic(err)
		}
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: idx, Data: data})
	}
	return logs
}

// eventLog flattens hook calls to comparable text.
func eventLog(s *fsm.Store) *[]string {
	var out []string
	s.SetHook(func(rev uint64, events []fsm.Event, _ fsm.ReadView) {
		line := fmt.Sprint(rev)
		for _, ev := range events {
			line += fmt.Sprintf(" %v:%s:%d:%d", ev.Type, ev.KV.GetKey(), ev.KV.GetModRevision(), ev.PrevKV.GetModRevision())
		}
		out = append(out, line)
	})
	return &out
}

// Rule: Apply is deterministic: replicas fed the same entries, one at a time
// or in batches of any size, or from a snapshot taken half way, end with the
// same results, events and state, byte for byte.
func TestStore_Deterministic(t *testing.T) {
	const n = 3000
	logs := randomEntries(n, 7)

	a, b := fsm.New(), fsm.New()
	evA, evB := eventLog(a), eventLog(b)
	var resA []interface{}
	for _, l := range logs {
		resA = append(resA, a.Apply(l))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var resB []interface{}
	for i := 0; i < len(logs); {
		j := min(len(logs), i+1+rng.IntN(17))
		resB = append(resB, b.ApplyBatch(logs[i:j])...)
		i = j
	}

	var failures, events int
	for i := range resA {
		ra, _ := resA[i].(*proto.Result)
		rb, _ := resB[i].(*proto.Result)
		if !gproto.Equal(ra, rb) {
			t.Fatalf("entry %d: results differ: %v vs %v", i+1, ra, rb)
		}
		if ra.GetError() != nil {
			failures++
		}
	}
	for i := range *evA {
		if (*evA)[i] != (*evB)[i] {
			t.Fatalf("hook call %d differs: %q vs %q", i, (*evA)[i], (*evB)[i])
		}
		events += strings.Count((*evA)[i], ":") / 3
	}
	snapA, snapB := dump(t, a), dump(t, b)
	if !bytes.Equal(snapA, snapB) {
		t.Fatalf("snapshots differ after the same entries")
	}

	// A member that restores a snapshot taken half way and applies the rest
	// ends in the same state.
	half := fsm.New()
	for _, l := range logs[:n/2] {
		half.Apply(l)
	}
	c := restore(t, dump(t, half))
	for _, l := range logs[n/2:] {
		c.Apply(l)
	}
	if !bytes.Equal(dump(t, c), snapA) {
		t.Errorf("restore at %d then apply differs from applying everything", n/2)
	}

	// The sequence exercises what it should: violations, events and live state.
	if failures < n/20 || events < n/4 || a.Len() == 0 || len(a.Leases()) == 0 {
		t.Errorf("weak workload: %d failures, %d events, %d keys, %d leases", failures, events, a.Len(), len(a.Leases()))
	}
	t.Logf("%d entries: %d failures, %d events, %d keys, %d leases", n, failures, events, a.Len(), len(a.Leases()))
}

// Rule: an entry this member cannot decode panics; replicas must never
// diverge by skipping it.
func TestStore_UndecodableEntryPanics(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff}, "undecodable"},
		{"truncated", func() []byte {
			b, _ := fsm.EncodeCommand(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`)}))
			return b[:len(b)-3]
		}(), "undecodable"},
		{"no command", nil, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.put("/a", `1`)
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				h.s.Apply(&raft.Log{Type: raft.LogCommand, Index: 2, Data: tt.data})
			}()
			if recovered == nil {
				t.Fatalf("Apply of %x did not panic", tt.data)
			}
			if msg := fmt.Sprint(recovered); !strings.Contains(msg, tt.want) {
				t.Errorf("panic %q does not mention %q", msg, tt.want)
			}
			// The lock was released: the store still answers.
			if got := h.s.Revision(); got != 1 {
				t.Errorf("Revision after the panic = %d, want 1", got)
			}
		})
	}
}
