//go:build integration

package integration

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

// Rule: 1,000 concurrent subscribers spread over three members all receive
// every event of a run of 10,000 writes, in order and none twice.
func TestDispatch_ThousandSubscribersReceiveEveryWrite(t *testing.T) {
	const (
		subscribers = 1000
		writes      = 10000
		clientsPer  = 4 // gRPC connections per member
	)
	// A load test: members without the race detector.
	agents := startClusterOf(t, duxdFast, 3)
	waitLeader(t, agents)
	ctx := ctxT(t, 5*time.Minute)
	w := newClient(t, agents...)
	start, err := w.Put(ctx, "/fan/start", []byte(`0`))
	if err != nil {
		t.Fatal(err)
	}
	var conns []*client.Client
	for _, a := range agents {
		for range clientsPer {
			conns = append(conns, newClient(t, a))
		}
	}
	var (
		wg       sync.WaitGroup
		received atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
	)
	for i := range subscribers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sub := conns[i%len(conns)].Subscribe(ctx, []string{"/fan/data/"}, client.FromRevision(start), client.WithProgress(-1))
			var n int
			var last uint64
			for n < writes {
				ev, err := sub.Recv()
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("subscriber %d after %d events: %v", i, n, err))
					return
				}
				if ev.Type != proto.Event_PUT {
					continue
				}
				if ev.Revision <= last {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("subscriber %d: revision %d after %d", i, ev.Revision, last))
					return
				}
				last = ev.Revision
				n++
				received.Add(1)
			}
		}(i)
	}
	// The writers start right away: the subscriptions resume from start.
	began := time.Now()
	var wwg sync.WaitGroup
	var next atomic.Int64
	for range 32 {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for {
				i := next.Add(1) - 1
				if i >= writes {
					return
				}
				if _, err := w.Put(ctx, fmt.Sprintf("/fan/data/%05d", i), []byte(`{"v":1}`)); err != nil {
					t.Errorf("put %d: %v", i, err)
					return
				}
			}
		}()
	}
	wwg.Wait()
	wrote := time.Since(began)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("timed out: %d of %d deliveries", received.Load(), subscribers*writes)
	}
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d subscribers failed; first: %v", f, firstErr.Load())
	}
	if got, want := received.Load(), int64(subscribers*writes); got != want {
		t.Fatalf("delivered %d events, want %d", got, want)
	}
	t.Logf("%d writes in %v; %d deliveries to %d subscribers done %v after the first write",
		writes, wrote.Round(time.Millisecond), received.Load(), subscribers, time.Since(began).Round(time.Millisecond))
}
