package cluster

import (
	"context"
	"sync"
)

// coalescer shares one read-index round among every read that arrives while
// the previous round is in flight, as etcd batches its ReadIndex requests.
// A read joins the next round, which starts only after it joined, so the
// index the round returns was read after the read began: that is what makes
// the read linearizable.
type coalescer struct {
	fetch func() (uint64, error)

	mu      sync.Mutex
	next    *round
	running bool
}

type round struct {
	done  chan struct{}
	index uint64
	err   error
}

func (c *coalescer) get(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	r := c.next
	if r == nil {
		r = &round{done: make(chan struct{})}
		c.next = r
	}
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *coalescer) loop() {
	for {
		c.mu.Lock()
		r := c.next
		c.next = nil
		if r == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		r.index, r.err = c.fetch()
		close(r.done)
	}
}
