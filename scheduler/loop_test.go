package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dux-io/dux/fsm"
)

// world is a cluster without Raft or Docker: the leader loop and one
// executor per host over a memState and a fakeRuntime.
type world struct {
	t   *testing.T
	st  *memState
	rt  *fakeRuntime
	now *clock
	ctx context.Context
	wg  sync.WaitGroup
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newWorld(t *testing.T, hosts ...string) *world {
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{t: t, st: newMemState(t), rt: newFakeRuntime("app:1"), now: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, ctx: ctx}
	t.Cleanup(func() { cancel(); w.wg.Wait() })
	for _, h := range hosts {
		w.st.host(h, "alive", w.now.Now())
	}
	return w
}

func (w *world) leader(term uint64, ctx context.Context) {
	l := NewLeader(w.st, w.st.hub, LeaderConfig{Name: "m", Interval: 20 * time.Millisecond, Now: w.now.Now})
	w.wg.Add(1)
	go func() { defer w.wg.Done(); l.Run(ctx, term) }()
}

func (w *world) executors(hosts ...string) {
	for _, h := range hosts {
		e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: h, Interval: 20 * time.Millisecond, Now: w.now.Now})
		w.wg.Add(1)
		go func() { defer w.wg.Done(); e.Run(w.ctx) }()
	}
}

func (w *world) component(json string) {
	w.t.Helper()
	name := strings.Split(strings.Split(json, `"name":"`)[1], `"`)[0]
	if err := CheckValue(ComponentsPrefix+name, []byte(json)); err != nil {
		w.t.Fatalf("spec rejected: %v", err)
	}
	w.st.put(ComponentsPrefix+name, []byte(json))
}

// waitRunning waits until the component runs want replicas of one spec,
// spread as given (per host; "" to not check).
func (w *world) waitRunning(component string, want int, spread string) {
	w.t.Helper()
	waitFor(w.t, "running "+component, func() bool {
		ph, ps := w.rt.running(component)
		s := w.st.componentStatus(component)
		return sum(ph) == want && len(ps) <= 1 && (spread == "" || hostsOf(ph) == spread) && s.Running == want && s.Placed == want
	})
}

func TestLoop_PlaceScaleAndRollOut(t *testing.T) {
	w := newWorld(t, "h1", "h2", "h3")
	w.leader(1, w.ctx)
	w.executors("h1", "h2", "h3")

	w.component(`{"name":"web","image":"app:1","replicas":5}`)
	w.waitRunning("web", 5, "h1=2 h2=2 h3=1")
	for _, r := range w.st.allocs() {
		s, ok := w.st.status(r.ID)
		if !ok || s.State != StateRunning || s.ContainerID == "" || s.Host != r.Host {
			t.Errorf("status of %s: %+v", r.ID, s)
		}
	}

	w.component(`{"name":"web","image":"app:1","replicas":2}`)
	w.waitRunning("web", 2, "")
	w.component(`{"name":"web","image":"app:1","replicas":0}`)
	w.waitRunning("web", 0, "")
	if n := len(w.st.allocs()); n != 0 {
		t.Fatalf("%d allocations left at 0 replicas", n)
	}
	w.component(`{"name":"web","image":"app:1","replicas":4,"update":{"max_unavailable":1}}`)
	w.waitRunning("web", 4, "h1=2 h2=1 h3=1")

	// Roll out an env change: never more than one replica down.
	var mu sync.Mutex
	var violation string
	w.rt.mu.Lock()
	w.rt.onRemove = func(f *fakeRuntime) {
		if ph, _ := f.runningLocked("web"); sum(ph) < 3 {
			mu.Lock()
			violation = "running dropped to " + hostsOf(ph)
			mu.Unlock()
		}
	}
	w.rt.mu.Unlock()
	w.component(`{"name":"web","image":"app:1","replicas":4,"env":{"V":"2"},"update":{"max_unavailable":1}}`)
	c, _ := ParseComponent("web", []byte(`{"image":"app:1","replicas":4,"env":{"V":"2"}}`))
	waitFor(t, "rollout", func() bool {
		_, ps := w.rt.running("web")
		return ps[c.Hash()] == 4 && len(ps) == 1
	})
	w.rt.mu.Lock()
	w.rt.onRemove = nil
	w.rt.mu.Unlock()
	mu.Lock()
	v := violation
	mu.Unlock()
	if v != "" {
		t.Fatalf("rollout broke max_unavailable: %s", v)
	}

	w.st.del(ComponentsPrefix + "web")
	w.waitRunning("web", 0, "")
	waitFor(t, "component status removed", func() bool {
		_, _, err := w.st.store.Get(ComponentStatusPrefix + "web")
		return errors.Is(err, fsm.ErrNotFound)
	})
}

// A host failed longer than reschedule_after loses its replicas; when it
// comes back, its executor removes the containers it still has.
func TestLoop_HostLossMovesReplicasAndOrphansGo(t *testing.T) {
	w := newWorld(t, "h1", "h2", "h3")
	w.leader(1, w.ctx)
	w.executors("h1", "h2") // h3's executor is "down" with its host
	hctx, stopH3 := context.WithCancel(w.ctx)
	e3 := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h3", Interval: 20 * time.Millisecond, Now: w.now.Now})
	w.wg.Add(1)
	go func() { defer w.wg.Done(); e3.Run(hctx) }()

	w.component(`{"name":"web","image":"app:1","replicas":3,"reschedule_after":"30s"}`)
	w.waitRunning("web", 3, "h1=1 h2=1 h3=1")
	stopH3()

	w.st.host("h3", "suspect", w.now.Now())
	w.st.host("h3", "failed", w.now.Now())
	time.Sleep(100 * time.Millisecond) // several passes of the leader
	if ph, _ := w.rt.running("web"); hostsOf(ph) != "h1=1 h2=1 h3=1" {
		t.Fatalf("replicas moved before reschedule_after: %s", hostsOf(ph))
	}
	w.now.add(time.Minute)
	waitFor(t, "replica moved", func() bool {
		n := 0
		for _, r := range w.st.allocs() {
			if r.Host == "h3" {
				return false
			}
			n++
		}
		ph, _ := w.rt.running("web")
		return n == 3 && ph["h1"]+ph["h2"] == 3
	})
	// h3 returns: its container, now an orphan, is removed.
	w.st.host("h3", "alive", w.now.Now())
	w.executors("h3")
	waitFor(t, "orphan removed", func() bool {
		ph, _ := w.rt.running("web")
		return ph["h3"] == 0 && sum(ph) == 3
	})
}

func TestExecutor_NeverTouchesForeignContainers(t *testing.T) {
	w := newWorld(t, "h1")
	w.rt.add(Container{ID: "mine-not", Name: "db", Labels: map[string]string{"app": "db"}, State: "running"})
	w.rt.add(Container{ID: "other-host", Name: "x", State: "running",
		Labels: map[string]string{LabelManaged: "true", LabelHost: "h2", LabelAlloc: "zzz", LabelComponent: "web"}})
	w.rt.add(Container{ID: "orphan", Name: "y", State: "running",
		Labels: map[string]string{LabelManaged: "true", LabelHost: "h1", LabelAlloc: "gone", LabelComponent: "web"}})
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now})
	pass(t, e, w.ctx)
	w.rt.mu.Lock()
	defer w.rt.mu.Unlock()
	if strings.Join(w.rt.removed, ",") != "orphan" {
		t.Fatalf("removed %v, want only the orphan of this host", w.rt.removed)
	}
}

func TestExecutor_ReplacesRemovedContainer(t *testing.T) {
	w := newWorld(t, "h1")
	w.leader(1, w.ctx)
	w.executors("h1")
	w.component(`{"name":"web","image":"app:1","replicas":1}`)
	w.waitRunning("web", 1, "h1=1")
	first := w.st.allocs()[0]
	s1, _ := w.st.status(first.ID)
	w.rt.Remove(w.ctx, s1.ContainerID) // docker rm -f
	waitFor(t, "replacement", func() bool {
		s, _ := w.st.status(first.ID)
		ph, _ := w.rt.running("web")
		return s.State == StateRunning && s.ContainerID != s1.ContainerID && ph["h1"] == 1
	})
}

// Rule: an image that cannot be pulled is reported (failed, with the
// pull's error) and pulled again only after its backoff, never on every
// pass.
func TestExecutor_ImageThatCannotBePulled(t *testing.T) {
	w := newWorld(t, "h1")
	r := w.placed(`{"name":"bad","image":"nowhere/missing:1","replicas":1}`, 1)[0]
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now, PullBackoff: time.Minute})
	pulls := func() int {
		w.rt.mu.Lock()
		defer w.rt.mu.Unlock()
		return w.rt.pulls["nowhere/missing:1"]
	}
	if err := e.Converge(w.ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := w.st.status(r.ID); s.State != StatePending || s.Reason != "pulling nowhere/missing:1" {
		t.Errorf("status while pulling: %+v, want pending, pulling nowhere/missing:1", s)
	}
	e.ops.Wait()
	for range 5 {
		pass(t, e, w.ctx)
	}
	s, _ := w.st.status(r.ID)
	if s.State != StateFailed || !strings.Contains(s.Reason, "nowhere/missing:1") || !strings.Contains(s.Reason, ErrImage.Error()) {
		t.Fatalf("status %+v, want failed with the pull error", s)
	}
	if n := pulls(); n != 1 {
		t.Fatalf("%d pulls in the backoff window, want 1", n)
	}
	w.now.add(2 * time.Minute)
	pass(t, e, w.ctx)
	if n := pulls(); n != 2 {
		t.Fatalf("%d pulls after the backoff, want 2", n)
	}
}

// An executor whose state is not current acts on nothing.
func TestExecutor_WaitsUntilReady(t *testing.T) {
	w := newWorld(t, "h1")
	w.rt.add(Container{ID: "orphan", State: "running",
		Labels: map[string]string{LabelManaged: "true", LabelHost: "h1", LabelAlloc: "gone", LabelComponent: "web"}})
	w.st.setReady(errors.New("no leader"))
	e := NewExecutor(w.st, w.st.hub, w.rt, ExecutorConfig{Host: "h1", Now: w.now.Now})
	e.Converge(w.ctx)
	if len(w.rt.removed) != 0 {
		t.Fatalf("removed %v while not ready", w.rt.removed)
	}
}

// Rule: a deposed leader's plans never land, and an old term cannot take
// the guard back.
func TestLeader_Fencing(t *testing.T) {
	w := newWorld(t, "h1", "h2")
	l1 := NewLeader(w.st, w.st.hub, LeaderConfig{Name: "a", Now: w.now.Now})
	l2 := NewLeader(w.st, w.st.hub, LeaderConfig{Name: "b", Now: w.now.Now})
	g1, err := l1.claim(w.ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.claim(w.ctx, 6); err != nil {
		t.Fatal(err)
	}
	w.component(`{"name":"web","image":"app:1","replicas":2}`)
	if err := l1.pass(w.ctx, g1); !errors.Is(err, errGuardLost) {
		t.Fatalf("deposed pass: %v, want errGuardLost", err)
	}
	if n := len(w.st.allocs()); n != 0 {
		t.Fatalf("a deposed leader placed %d allocations", n)
	}
	before := w.st.txns
	if _, err := l1.claim(w.ctx, 5); !errors.Is(err, errDeposed) {
		t.Fatalf("claim of an older term: %v, want errDeposed", err)
	}
	if _, err := l1.claim(w.ctx, 6); !errors.Is(err, errDeposed) {
		t.Fatalf("claim of the same term by another member: %v, want errDeposed", err)
	}
	if w.st.txns != before {
		t.Fatalf("an older term wrote %d transactions", w.st.txns-before)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	w.leader(7, ctx)
	waitFor(t, "new leader places", func() bool { return len(w.st.allocs()) == 2 })
}

// The guard key put back by a restore, deleted or overwritten by hand does
// not stop the leader: it claims the key again and goes on.
func TestLeader_ReclaimsALostGuard(t *testing.T) {
	w := newWorld(t, "h1", "h2")
	w.leader(3, w.ctx)
	w.executors("h1", "h2")
	w.component(`{"name":"web","image":"app:1","replicas":1}`)
	w.waitRunning("web", 1, "")
	w.st.del(GuardKey)
	w.component(`{"name":"web","image":"app:1","replicas":2}`)
	w.waitRunning("web", 2, "")
	w.st.put(GuardKey, `"garbage"`)
	w.component(`{"name":"web","image":"app:1","replicas":3}`)
	w.waitRunning("web", 3, "")
	w.st.put(GuardKey, guardValue(1, "old"))
	w.component(`{"name":"web","image":"app:1","replicas":1}`)
	w.waitRunning("web", 1, "")
	kv, _, err := w.st.store.Get(GuardKey)
	if err != nil || guardTerm(kv.Value) != 3 {
		t.Fatalf("guard %v %v, want term 3", kv, err)
	}
}

func TestCheckValue(t *testing.T) {
	cases := []struct{ key, value, field string }{
		{"/components/web", `{"image":"x","replicas":1}`, ""},
		{"/components/web", `{"replicas":1}`, "value.image"},
		{"/components/web", `{"image":"x","replicas":-2}`, "value.replicas"},
		{"/components/web", `{"image":"x"`, "value.spec"},
		{"/components/web/extra", `{"image":"x"}`, "key"},
		{"/components/Web", `{"image":"x"}`, "value.name"},
		{"/elsewhere/web", `not json at all`, ""},
	}
	for _, c := range cases {
		err := CheckValue(c.key, []byte(c.value))
		var fe *fsm.Error
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s %s: %v, want accepted", c.key, c.value, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field || fe.Code != fsm.CodeInvalid):
			t.Errorf("%s %s: %v, want an invalid %s", c.key, c.value, err, c.field)
		}
	}
}
