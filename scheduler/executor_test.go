package scheduler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dux-io/dux/cluster"
)

// engineLog records what an executor tells EngineChanged.
type engineLog struct {
	mu   sync.Mutex
	told []bool
	then func(up bool) // called after recording, if set
}

func (l *engineLog) changed(up bool) {
	l.mu.Lock()
	l.told = append(l.told, up)
	l.mu.Unlock()
	if l.then != nil {
		l.then(up)
	}
}

func (l *engineLog) get() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.told)
}

// pass makes one executor pass and waits for what it started.
func pass(t *testing.T, e *Executor, ctx context.Context) {
	t.Helper()
	if err := e.Converge(ctx); err != nil {
		t.Fatalf("converge: %v", err)
	}
}

// placed starts a leader until the component has n allocations, then
// stops it, so a test can drive an executor pass by pass.
func (w *world) placed(spec string, n int) []AllocationRecord {
	w.t.Helper()
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	w.leader(1, ctx)
	w.component(spec)
	waitFor(w.t, "allocations", func() bool { return len(w.st.allocs()) == n })
	return w.st.allocs()
}

func statusRev(t *testing.T, st *memState, id string) uint64 {
	t.Helper()
	kv, _, err := st.store.Get(AllocStatusPrefix + id)
	if err != nil {
		t.Fatalf("status of %s: %v", id, err)
	}
	return kv.ModRevision
}

var errNoSocket = errors.New("dial unix /run/docker.sock: connect: no such file or directory")

// Rule: while the engine does not answer, every allocation of the host is
// reported failed, "container runtime unreachable: ...", written once
// (not on every pass, whatever the engine's error says); EngineChanged
// hears of each change only; when the engine answers again the executor
// converges as usual, finding the containers that kept running.
func TestExecutor_UnreachableEngine(t *testing.T) {
	w := newWorld(t, "h1")
	allocs := w.placed(`{"name":"web","image":"app:1","replicas":2}`, 2)
	var el engineLog
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now, EngineChanged: el.changed})
	pass(t, e, w.ctx)
	pass(t, e, w.ctx)
	ids := map[string]string{}
	for _, r := range allocs {
		s, _ := w.st.status(r.ID)
		if s.State != StateRunning {
			t.Fatalf("status of %s: %+v, want running", r.ID, s)
		}
		ids[r.ID] = s.ContainerID
	}

	w.rt.setDown(errNoSocket)
	pass(t, e, w.ctx)
	revs := map[string]uint64{}
	for _, r := range allocs {
		s, _ := w.st.status(r.ID)
		if s.State != StateFailed || s.Reason != unreachablePrefix+errNoSocket.Error() || s.ContainerID != ids[r.ID] {
			t.Errorf("status of %s: %+v, want failed, runtime unreachable, container %s", r.ID, s, ids[r.ID])
		}
		revs[r.ID] = statusRev(t, w.st, r.ID)
	}
	pass(t, e, w.ctx)
	w.rt.setDown(errors.New("Cannot connect to the Docker daemon. Is the docker daemon running?"))
	pass(t, e, w.ctx)
	for _, r := range allocs {
		if rev := statusRev(t, w.st, r.ID); rev != revs[r.ID] {
			t.Errorf("status of %s rewritten while the engine stayed unreachable (revision %d, then %d)", r.ID, revs[r.ID], rev)
		}
	}

	w.rt.setDown(nil)
	pass(t, e, w.ctx)
	for _, r := range allocs {
		s, _ := w.st.status(r.ID)
		if s.State != StateRunning || s.ContainerID != ids[r.ID] {
			t.Errorf("status of %s after the engine returned: %+v, want running in %s", r.ID, s, ids[r.ID])
		}
	}
	if got := el.get(); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("EngineChanged told %v, want [true false true]", got)
	}
}

// Rule: a host whose engine stops answering takes no new replicas (its
// flag, carried to /hosts/<name> by gossip, makes it ineligible), keeps
// those it has, and is not counted as running them; when the engine
// answers again, the host converges and takes replicas again.
func TestLoop_EngineLostAndBack(t *testing.T) {
	w := newWorld(t, "h1")
	// What gossip and the leader's membership sensor do with the flag.
	el := engineLog{then: func(up bool) {
		w.st.put(cluster.HostsPrefix+"h1", cluster.Host{Name: "h1", Status: cluster.StatusAlive, Docker: up,
			Resources: cluster.Resources{CPU: 4, Memory: 8 << 30}, ChangedAt: w.now.Now()})
	}}
	w.leader(1, w.ctx)
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Interval: 20 * time.Millisecond, Now: w.now.Now, EngineChanged: el.changed})
	w.wg.Add(1)
	go func() { defer w.wg.Done(); e.Run(w.ctx) }()
	w.component(`{"name":"web","image":"app:1","replicas":2}`)
	w.waitRunning("web", 2, "h1=2")

	w.rt.setDown(errNoSocket)
	waitFor(t, "replicas reported failed", func() bool {
		s := w.st.componentStatus("web")
		return s.Running == 0 && s.Failed == 2 && s.Placed == 2
	})
	for _, r := range w.st.allocs() {
		if s, _ := w.st.status(r.ID); s.State != StateFailed || !strings.HasPrefix(s.Reason, unreachablePrefix) {
			t.Errorf("status of %s: %+v, want failed, runtime unreachable", r.ID, s)
		}
	}
	w.component(`{"name":"web","image":"app:1","replicas":3}`)
	waitFor(t, "the third replica unplaced", func() bool {
		s := w.st.componentStatus("web")
		return s.Desired == 3 && len(s.Unplaced) == 1 && strings.Contains(s.Unplaced[0], "no Docker engine (h1)")
	})
	if n := len(w.st.allocs()); n != 2 {
		t.Fatalf("%d allocations on a host without an engine, want the 2 it had", n)
	}

	w.rt.setDown(nil)
	w.waitRunning("web", 3, "h1=3")
	if got := el.get(); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("EngineChanged told %v, want [true false true]", got)
	}
}
