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

// pass makes one executor pass and waits for the work it started.
func pass(t *testing.T, e *Executor, ctx context.Context) {
	t.Helper()
	if err := e.Converge(ctx); err != nil {
		t.Fatalf("converge: %v", err)
	}
	e.ops.Wait()
}

// allRunning makes passes until every allocation reports running (a
// fresh executor pulls, then creates, then sees the containers run).
func allRunning(t *testing.T, e *Executor, w *world, allocs []AllocationRecord) {
	t.Helper()
	waitFor(t, "allocations running", func() bool {
		pass(t, e, w.ctx)
		for _, r := range allocs {
			if s, _ := w.st.status(r.ID); s.State != StateRunning {
				return false
			}
		}
		return true
	})
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
	allRunning(t, e, w, allocs)
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

// Rule: a pull in progress holds up only the allocations waiting for its
// image: they report pending, "pulling <image>", while the others are
// created and run.
func TestLoop_SlowPullDoesNotBlockOthers(t *testing.T) {
	w := newWorld(t, "h1")
	w.rt.images["big:1"] = true
	release := w.rt.gate("pull big:1")
	w.leader(1, w.ctx)
	w.executors("h1")
	w.component(`{"name":"big","image":"big:1","replicas":1}`)
	waitFor(t, "the pull of big:1 under way", func() bool { return w.rt.arrived("pull big:1") == 1 })
	w.component(`{"name":"web","image":"app:1","replicas":2}`)
	w.waitRunning("web", 2, "h1=2")
	for _, r := range w.st.allocs() {
		if s, _ := w.st.status(r.ID); r.Component == "big" && (s.State != StatePending || s.Reason != "pulling big:1") {
			t.Errorf("status of big's replica while its image is pulled: %+v, want pending, pulling big:1", s)
		}
	}
	close(release)
	w.waitRunning("big", 1, "h1=1")
	if n := w.rt.arrived("pull big:1"); n != 1 {
		t.Errorf("big:1 pulled %d times, want once", n)
	}
}

func orphan(id, host string) Container {
	return Container{ID: id, Name: "dux-old-" + id, State: "running",
		Labels: map[string]string{LabelManaged: "true", LabelHost: host, LabelAlloc: "gone-" + id, LabelComponent: "old"}}
}

// Rule: removals run beside creations and beside each other, at most
// Parallelism at a time: containers slow to stop hold up neither the
// allocations to create nor the other removals within the bound.
func TestLoop_SlowRemovalsDoNotBlockOthers(t *testing.T) {
	w := newWorld(t, "h1")
	var gates []chan struct{}
	for _, id := range []string{"old1", "old2", "old3"} {
		w.rt.add(orphan(id, "h1"))
		gates = append(gates, w.rt.gate("remove "+id))
	}
	w.leader(1, w.ctx)
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Parallelism: 2, Interval: 20 * time.Millisecond, Now: w.now.Now})
	w.wg.Add(1)
	go func() { defer w.wg.Done(); e.Run(w.ctx) }()
	waitFor(t, "two removals under way", func() bool { return w.rt.arrived("remove ") == 2 })
	w.component(`{"name":"web","image":"app:1","replicas":2}`)
	w.waitRunning("web", 2, "h1=2")
	w.rt.mu.Lock()
	most := w.rt.mostRemoving
	w.rt.mu.Unlock()
	if most != 2 {
		t.Errorf("%d removals at once while two stalled, want Parallelism (2)", most)
	}
	for _, g := range gates {
		close(g)
	}
	waitFor(t, "the old containers removed", func() bool {
		w.rt.mu.Lock()
		defer w.rt.mu.Unlock()
		return len(w.rt.removed) == 3
	})
	if most := w.rt.mostRemoving; most > 2 {
		t.Errorf("%d removals at once, want at most 2", most)
	}
}

// Rule: an allocation whose container is of another spec (changed by
// hand) gets a new one only once the old one is gone, since they share a
// name; and one that binds host ports is created only once no removal on
// the host is under way, since the container going may hold them.
func TestExecutor_CreatesOnlyOnceWhatItReplacesIsGone(t *testing.T) {
	w := newWorld(t, "h1")
	rs := w.placed(`{"name":"web","image":"app:1","replicas":1}`, 1)
	rp := w.placed(`{"name":"port","image":"app:1","replicas":1,"ports":[{"container":80,"host":8080}]}`, 2)
	var web, port AllocationRecord
	for _, r := range rp {
		if r.Component == "port" {
			port = r
		}
	}
	web = rs[0]
	stale := Container{ID: "stale", Name: containerName(&web), State: "running", Labels: map[string]string{
		LabelManaged: "true", LabelHost: "h1", LabelAlloc: web.ID, LabelComponent: "web", LabelSpec: "other"}}
	w.rt.add(stale)
	release := w.rt.gate("remove stale")
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now})
	if err := e.Converge(w.ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stale container's removal under way", func() bool { return w.rt.arrived("remove stale") == 1 })
	if err := e.Converge(w.ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := w.st.status(web.ID)
	if s.State != StatePending || s.ContainerID != "" {
		t.Errorf("web while its old container goes: %+v, want pending", s)
	}
	if s, _ := w.st.status(port.ID); s.State != StatePending || !strings.Contains(s.Reason, "host ports") {
		t.Errorf("port while a container goes: %+v, want pending, waiting for host ports", s)
	}
	w.rt.mu.Lock()
	made := len(w.rt.containers)
	w.rt.mu.Unlock()
	if made != 1 {
		t.Errorf("%d containers while the stale one goes, want it alone", made)
	}
	close(release)
	e.ops.Wait()
	allRunning(t, e, w, []AllocationRecord{web, port})
}

// Rule: a container that crash-loops under Docker's restart policy is not
// running: while Docker restarts it, and while it has run for less than
// MinUptime since Docker last restarted it, it is reported pending,
// "restarting", with its last exit code; once it stays up, running.
func TestExecutor_CrashLoopIsNotRunning(t *testing.T) {
	w := newWorld(t, "h1")
	r := w.placed(`{"name":"web","image":"app:1","replicas":1}`, 1)[0]
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now, MinUptime: 10 * time.Second})
	allRunning(t, e, w, []AllocationRecord{r})
	s, _ := w.st.status(r.ID)
	id := s.ContainerID
	steps := []struct {
		what   string
		change func(c *Container)
		state  string
		reason string
		exit   int
	}{
		{"exits, Docker about to restart it", func(c *Container) { c.State, c.ExitCode = "restarting", 3 },
			StatePending, ReasonRestarting, 3},
		{"restarted a moment ago", func(c *Container) {
			c.State, c.ExitCode, c.Restarts, c.StartedAt = "running", 0, 1, w.now.Now().Add(-time.Second)
		}, StatePending, ReasonRestarting, 3},
		{"restarted again, a moment ago", func(c *Container) { c.Restarts, c.StartedAt = 2, w.now.Now() },
			StatePending, ReasonRestarting, 3},
		{"up for MinUptime", func(c *Container) { c.StartedAt = w.now.Now().Add(-10 * time.Second) },
			StateRunning, "", 0},
	}
	for _, step := range steps {
		w.rt.set(id, step.change)
		pass(t, e, w.ctx)
		s, _ := w.st.status(r.ID)
		if s.State != step.state || s.Reason != step.reason || s.ExitCode != step.exit || s.ContainerID != id {
			t.Errorf("%s: status %+v, want %s %q exit code %d", step.what, s, step.state, step.reason, step.exit)
		}
	}
	w.rt.mu.Lock()
	n := len(w.rt.containers)
	w.rt.mu.Unlock()
	if n != 1 {
		t.Errorf("%d containers, want the one Docker restarts", n)
	}
}

// Rule: a rollout whose new replicas crash-loop stops after
// max_unavailable: the leader counts them as down.
func TestLoop_RolloutStopsOnCrashLoop(t *testing.T) {
	w := newWorld(t, "h1")
	l := NewLeader(w.st, w.st.hub, LeaderConfig{Name: "m", Now: w.now.Now})
	guard, err := l.claim(w.ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now})
	step := func() {
		t.Helper()
		if err := l.pass(w.ctx, guard); err != nil && !errors.Is(err, errConflict) {
			t.Fatal(err)
		}
		pass(t, e, w.ctx)
	}
	w.component(`{"name":"web","image":"app:1","replicas":3,"update":{"max_unavailable":1}}`)
	waitFor(t, "3 running", func() bool { step(); return w.st.componentStatus("web").Running == 3 })

	bad, _ := ParseComponent("web", []byte(`{"image":"app:1","replicas":3,"env":{"V":"2"}}`))
	w.rt.mu.Lock()
	w.rt.onStart = func(c *Container) { // the new spec's process exits at once; Docker restarts it
		if c.Labels[LabelSpec] == bad.Hash() {
			c.Restarts, c.StartedAt = 1, w.now.Now()
		}
	}
	w.rt.mu.Unlock()
	w.component(`{"name":"web","image":"app:1","replicas":3,"env":{"V":"2"},"update":{"max_unavailable":1}}`)
	for range 10 {
		step()
	}
	old, fresh := 0, 0
	for _, r := range w.st.allocs() {
		if r.Spec == bad.Hash() {
			fresh++
			if s, _ := w.st.status(r.ID); s.State != StatePending || s.Reason != ReasonRestarting {
				t.Errorf("new replica %s: %+v, want pending, restarting", r.ID, s)
			}
		} else {
			old++
		}
	}
	if old != 2 || fresh != 1 {
		t.Errorf("%d old and %d new replicas after the rollout ran on, want 2 and 1 (max_unavailable 1)", old, fresh)
	}
}

// Rule: what failed while the engine was away (a pull in its backoff, a
// creation) does not hold the host back once the engine answers again.
func TestExecutor_ForgetsFailuresOfAnEngineThatWasAway(t *testing.T) {
	w := newWorld(t, "h1")
	r := w.placed(`{"name":"web","image":"app:1","replicas":1}`, 1)[0]
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now, PullBackoff: time.Hour})
	release := w.rt.gate("pull app:1")
	if err := e.Converge(w.ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pull under way", func() bool { return w.rt.arrived("pull app:1") == 1 })
	w.rt.setDown(errNoSocket) // the engine goes in the middle of the pull
	close(release)
	e.ops.Wait()
	pass(t, e, w.ctx)
	if s, _ := w.st.status(r.ID); s.State != StateFailed {
		t.Fatalf("status while the engine is away: %+v, want failed", s)
	}
	w.rt.setDown(nil)
	allRunning(t, e, w, []AllocationRecord{r}) // the clock stands still: no backoff runs out
}
