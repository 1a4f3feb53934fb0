package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// lessor is the leader's lease clock. Leases live in the replicated state
// with their TTL only; when each one expires is decided here, on the leader,
// and an expiry is committed through Raft as a LeaseRevoke, so Apply never
// reads a clock. A new leader grants every lease a full TTL afresh (as etcd
// does on promotion): a lease may outlive its TTL across a leader change,
// but it never expires early.
type lessor struct {
	n *Node

	mu        sync.Mutex
	active    bool
	deadlines map[uint64]time.Time
}

func newLessor(n *Node) *lessor { return &lessor{n: n} }

const lessorTick = 200 * time.Millisecond

func (l *lessor) run(ctx context.Context) {
	l.mu.Lock()
	l.active = true
	l.deadlines = make(map[uint64]time.Time)
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.active = false
		l.deadlines = nil
		l.mu.Unlock()
	}()
	tick := time.NewTicker(lessorTick)
	defer tick.Stop()
	for {
		for _, id := range l.expired(time.Now()) {
			_, err := l.n.applyLocal(&proto.Command{Cmd: &proto.Command_LeaseRevoke{
				LeaseRevoke: &proto.LeaseRevoke{Id: id, Expired: true},
			}})
			if err != nil && !errors.Is(err, fsm.ErrNotFound) {
				l.n.log.Warn("lease expiry not committed; will retry", "lease", id, "error", err)
				continue
			}
			l.n.log.Debug("lease expired", "lease", id)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expired syncs the deadlines with the leases in the state and returns, in
// order, the IDs whose deadline has passed.
func (l *lessor) expired(now time.Time) []uint64 {
	leases := l.n.store.Leases()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []uint64
	for id, ttl := range leases {
		d, ok := l.deadlines[id]
		if !ok {
			l.deadlines[id] = now.Add(time.Duration(ttl) * time.Second)
			continue
		}
		if !now.Before(d) {
			out = append(out, id)
		}
	}
	for id := range l.deadlines {
		if _, ok := leases[id]; !ok {
			delete(l.deadlines, id)
		}
	}
	slices.Sort(out)
	return out
}

// keepAlive restarts a lease's TTL on the leader.
func (l *lessor) keepAlive(id uint64) (int64, error) {
	ttl, err := l.n.store.Lease(id)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return 0, ErrNotLeader
	}
	if d, ok := l.deadlines[id]; ok && !now.Before(d) {
		return 0, &fsm.Error{Code: fsm.CodeNotFound, Field: "lease", Message: "lease has expired"}
	}
	l.deadlines[id] = now.Add(time.Duration(ttl) * time.Second)
	return ttl, nil
}
