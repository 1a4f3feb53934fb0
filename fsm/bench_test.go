package fsm_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// BenchmarkStore_Put applies put entries with 256-byte values over 10k keys
// (creates, then updates). Encoding is done before the timer starts.
func BenchmarkStore_Put(b *testing.B) {
	const keys = 10000
	value := []byte(`"` + strings.Repeat("v", 254) + `"`)
	data := make([][]byte, keys)
	for i := range data {
		var err error
		data[i], err = fsm.EncodeCommand(putCmd(&proto.PutRequest{
			Key: fmt.Sprintf("/bench/svc/%05d", i), Value: value, Origin: "bench",
		}))
		if err != nil {
			b.Fatal(err)
		}
	}
	s := fsm.New()
	l := &raft.Log{Type: raft.LogCommand}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for i := 0; b.Loop(); i++ {
		l.Index = uint64(i + 1)
		l.Data = data[i%keys]
		if res := s.Apply(l).(*proto.Result); res.Error != nil {
			b.Fatal(res.Error)
		}
	}
}

// BenchmarkStore_List lists a prefix of 100 keys out of 100k.
func BenchmarkStore_List(b *testing.B) {
	h := newHarness(b)
	logs := make([]*raft.Log, 0, 100000)
	for i := 0; i < 1000; i++ {
		for j := 0; j < 100; j++ {
			logs = append(logs, h.entry(putCmd(&proto.PutRequest{
				Key: fmt.Sprintf("/jobs/%03d/%03d", i, j), Value: []byte(`{"replicas":3}`),
			})))
		}
	}
	h.s.ApplyBatch(logs)
	if h.s.Len() != 100000 {
		b.Fatalf("Len = %d, want 100000", h.s.Len())
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		items, next, _, err := h.s.List(fmt.Sprintf("/jobs/%03d/", i%1000), "", 100)
		if err != nil || len(items) != 100 || next != "" {
			b.Fatalf("List: %d items, next %q, err %v", len(items), next, err)
		}
	}
}
