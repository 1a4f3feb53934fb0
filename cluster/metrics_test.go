package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

func putEntries(tb testing.TB, n int, value []byte) []*raft.Log {
	tb.Helper()
	logs := make([]*raft.Log, n)
	for i := range logs {
		data, err := fsm.EncodeCommand(&proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{
			Key: fmt.Sprintf("/bench/svc/%05d", i%10000), Value: value, Origin: "bench"}}})
		if err != nil {
			tb.Fatal(err)
		}
		logs[i] = &raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: data}
	}
	return logs
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.Histogram.GetSampleCount()
}

// Rule: the timing wrapper is the store as Raft sees it: same results, one
// observation per batch (Apply is a batch of one).
func TestTimedFSM_ObservesEachBatch(t *testing.T) {
	m := newMetrics()
	f := timedFSM{Store: fsm.New(), batch: m.fsmApply}
	logs := putEntries(t, 5, []byte(`1`))
	out := f.ApplyBatch(logs[:4])
	if len(out) != 4 || out[3].(*proto.Result).Revision != 4 {
		t.Fatalf("ApplyBatch: got %v", out)
	}
	if res := f.Apply(logs[4]).(*proto.Result); res.Revision != 5 || res.Error != nil {
		t.Fatalf("Apply: got %v", res)
	}
	if got := histogramCount(t, m.fsmApply); got != 2 {
		t.Errorf("observations: got %d, want 2 (one per batch)", got)
	}
	if got := f.Store.Stats(); got.Keys != 5 || got.Revision != 5 {
		t.Errorf("store Stats: got %+v, want 5 keys at revision 5", got)
	}
}

func TestTracker_Counts(t *testing.T) {
	tr := newTracker()
	now := time.Now()
	node := func(name string, leaving bool) *memberlist.Node {
		meta := `{"r":"a","g":"b","h":"c"}`
		if leaving {
			meta = `{"r":"a","g":"b","h":"c","x":true}`
		}
		return &memberlist.Node{Name: name, Meta: []byte(meta)}
	}
	tr.observe(node("a", false), StatusAlive, now)
	tr.observe(node("b", false), StatusAlive, now)
	tr.observe(node("c", false), StatusAlive, now)
	tr.observe(node("d", false), StatusFailed, now)
	tr.observe(node("e", true), StatusFailed, now)
	tr.reachable("b", false, now)
	got := tr.counts()
	want := map[Status]int{StatusAlive: 2, StatusSuspect: 1, StatusFailed: 1, StatusLeft: 1}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("%s: got %d, want %d (all: %v)", s, got[s], n, got)
		}
	}
}

// BenchmarkApplyBatch compares the store's ApplyBatch with and without the
// timing wrapper Raft is given, on batches of one put (where a per-batch
// cost weighs most) and of 64.
func BenchmarkApplyBatch(b *testing.B) {
	value := []byte(`"` + strings.Repeat("v", 254) + `"`)
	for _, size := range []int{1, 64} {
		for _, timed := range []bool{false, true} {
			name := fmt.Sprintf("batch=%d/timed=%v", size, timed)
			b.Run(name, func(b *testing.B) {
				logs := putEntries(b, 10000, value)
				var apply func([]*raft.Log) []interface{}
				store := fsm.New()
				apply = store.ApplyBatch
				if timed {
					apply = timedFSM{Store: store, batch: newMetrics().fsmApply}.ApplyBatch
				}
				batch := make([]*raft.Log, size)
				b.ReportAllocs()
				b.SetBytes(int64(size * len(value)))
				var idx uint64
				for i := 0; b.Loop(); i++ {
					for j := range batch {
						idx++
						l := logs[(i*size+j)%len(logs)]
						l.Index = idx
						batch[j] = l
					}
					apply(batch)
				}
			})
		}
	}
}
