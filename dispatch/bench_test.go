package dispatch_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/proto"
)

// BenchmarkHub_Fanout applies b.N put entries to a store whose hub has
// 1,000 subscribers on "/" and waits until every subscriber has received
// every event: ns/op is the cost of one applied entry, fan-out included.
func BenchmarkHub_Fanout(b *testing.B) {
	const subscribers = 1000
	// The window holds the whole run, and MaxLag allows a subscriber to
	// fall that far behind: this measures throughput, not cut-offs.
	h := newHarness(b, dispatch.Config{WindowEvents: b.N + 1, MaxLag: b.N + 1})
	start := h.barrier()

	var received atomic.Int64
	send := func(ev *proto.Event) error {
		if ev.Type == proto.Event_PUT {
			received.Add(1)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failed atomic.Value // the first error other than the end of ctx
	req := &proto.SubscribeRequest{Channels: []string{"/"}, FromRevision: start, ProgressIntervalMs: -1}
	for range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.hub.Subscribe(ctx, req, send); ctx.Err() == nil {
				failed.CompareAndSwap(nil, fmt.Sprint(err))
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	waitUntil(b, "every subscriber to join", func() bool { return h.hub.Stats().Subscribers == subscribers })

	logs := make([]*raft.Log, b.N)
	for i := range logs {
		logs[i] = h.entry(putCmd(&proto.PutRequest{Key: fmt.Sprintf("/bench/%d", i%1024), Value: []byte(`{"n":1}`)}))
	}
	want := int64(b.N) * subscribers

	b.ReportAllocs()
	b.ResetTimer()
	for _, l := range logs {
		h.store.Apply(l)
	}
	end := time.Now().Add(time.Minute)
	for received.Load() < want {
		if time.Now().After(end) {
			b.Fatalf("subscribers received %d of %d events after a minute", received.Load(), want)
		}
		runtime.Gosched()
	}
	b.StopTimer()

	if got := received.Load(); got != want {
		b.Fatalf("subscribers received %d events, want %d", got, want)
	}
	if err := failed.Load(); err != nil {
		b.Fatalf("a subscription ended early: %v", err)
	}
	if st := h.hub.Stats(); st.Cutoffs != 0 {
		b.Fatalf("Stats().Cutoffs = %d, want 0", st.Cutoffs)
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkHub_Applied applies put entries that name their writer, over
// 16 origins and 64 top-level prefixes, to a store whose hub has no
// subscriber: ns/op and allocs/op are the apply path's own cost, the
// window and what the hub records of writers included.
func BenchmarkHub_Applied(b *testing.B) {
	h := newHarness(b, dispatch.Config{})
	const entries = 4096
	logs := make([]*raft.Log, entries)
	for i := range logs {
		logs[i] = h.entry(putCmd(&proto.PutRequest{
			Key:    fmt.Sprintf("/bench/p%02d/k%04d", i%64, i),
			Value:  []byte(`{"n":1}`),
			Origin: fmt.Sprintf("writer-%02d", i%16),
		}))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l := logs[i%entries]
		l.Index = uint64(i + 1)
		h.store.Apply(l)
	}
}
