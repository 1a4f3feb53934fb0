package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// memState is the StateStore without Raft: a real fsm.Store and a real
// Dispatcher hub, with transactions applied at the next index at once.
type memState struct {
	t     testing.TB
	store *fsm.Store
	hub   *dispatch.Hub
	mu    sync.Mutex
	idx   uint64
	ready error
	txns  int
}

func newMemState(t testing.TB) *memState {
	st := fsm.New()
	hub, err := dispatch.New(dispatch.DefaultConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	st.SetHook(hub.Applied)
	st.SetRestoreHook(hub.Restored)
	t.Cleanup(hub.Close)
	return &memState{t: t, store: st, hub: hub}
}

func (m *memState) Store() *fsm.Store { return m.store }

func (m *memState) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

func (m *memState) setReady(err error) {
	m.mu.Lock()
	m.ready = err
	m.mu.Unlock()
}

func (m *memState) Txn(_ context.Context, req *proto.TxnRequest) (*proto.TxnResponse, error) {
	// The checks cluster.Node makes before it proposes a write.
	for _, op := range append(slices.Clone(req.Success), req.Failure...) {
		if op.Type == proto.Op_PUT {
			if err := fsm.ValidateValue(op.Value, 1<<20); err != nil {
				return nil, err
			}
			if err := CheckValue(op.Key, op.Value); err != nil {
				return nil, err
			}
		}
	}
	res, err := m.apply(&proto.Command{Cmd: &proto.Command_Txn{Txn: req}})
	if err != nil {
		return nil, err
	}
	return res.GetTxn(), nil
}

func (m *memState) apply(c *proto.Command) (*proto.Result, error) {
	data, err := fsm.EncodeCommand(c)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.idx++
	m.txns++
	l := &raft.Log{Type: raft.LogCommand, Index: m.idx, Data: data}
	m.mu.Unlock()
	res := m.store.Apply(l).(*proto.Result)
	if err := fsm.FromProto(res.Error); err != nil {
		return nil, err
	}
	return res, nil
}

func (m *memState) put(key string, value any) {
	m.t.Helper()
	v, ok := value.([]byte)
	if !ok {
		var err error
		if v, err = json.Marshal(value); err != nil {
			m.t.Fatal(err)
		}
	}
	if _, err := m.apply(&proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{Key: key, Value: v}}}); err != nil {
		m.t.Fatalf("put %s: %v", key, err)
	}
}

func (m *memState) del(key string) {
	m.t.Helper()
	if _, err := m.apply(&proto.Command{Cmd: &proto.Command_Delete{Delete: &proto.DeleteRequest{Key: key}}}); err != nil {
		m.t.Fatalf("delete %s: %v", key, err)
	}
}

func (m *memState) host(name, status string, changed time.Time) {
	m.put(cluster.HostsPrefix+name, cluster.Host{Name: name, Status: cluster.Status(status), Docker: true,
		Resources: cluster.Resources{CPU: 4, Memory: 8 << 30}, ChangedAt: changed})
}

func (m *memState) allocs() []AllocationRecord {
	v, _ := m.store.View()
	var out []AllocationRecord
	for _, kv := range listAll(v, AllocationsPrefix) {
		var r AllocationRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func (m *memState) status(id string) (AllocStatus, bool) {
	kv, _, err := m.store.Get(AllocStatusPrefix + id)
	if err != nil {
		return AllocStatus{}, false
	}
	var s AllocStatus
	json.Unmarshal(kv.Value, &s)
	return s, true
}

func (m *memState) componentStatus(name string) ComponentStatus {
	var s ComponentStatus
	if kv, _, err := m.store.Get(ComponentStatusPrefix + name); err == nil {
		json.Unmarshal(kv.Value, &s)
	}
	return s
}

// fakeRuntime is an in-memory container engine shared by every host, as
// one Docker engine is in the integration tests: containers are told apart
// by their dux.host label.
type fakeRuntime struct {
	mu         sync.Mutex
	next       int
	containers map[string]*Container
	images     map[string]bool
	pulls      map[string]int // image -> EnsureImage calls
	removed    []string
	// onRemove, if set, is called (under the lock) after each removal.
	onRemove func(f *fakeRuntime)
	// onStart, if set, is called (under the lock) on each container
	// started, to make it run otherwise (crash-loop, say).
	onStart func(c *Container)
	// down, if set, is the error of every call: the engine does not answer.
	down error
	// gates hold calls until closed, or until the call's ctx ends:
	// "pull <image>" holds EnsureImage of the image, "remove <id>" Remove
	// of the container. reached counts the calls that came to a gate.
	gates   map[string]chan struct{}
	reached map[string]int
	// removing is how many Remove calls are under way; mostRemoving the
	// most there ever were at once.
	removing, mostRemoving int
}

func newFakeRuntime(images ...string) *fakeRuntime {
	f := &fakeRuntime{containers: map[string]*Container{}, images: map[string]bool{}, pulls: map[string]int{}}
	for _, i := range images {
		f.images[i] = true
	}
	return f
}

func (f *fakeRuntime) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// setDown makes the engine stop answering (err) or answer again (nil).
func (f *fakeRuntime) setDown(err error) {
	f.mu.Lock()
	f.down = err
	f.mu.Unlock()
}

func (f *fakeRuntime) List(_ context.Context, host string) ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return nil, f.down
	}
	var out []Container
	for _, c := range f.containers {
		if c.Labels[LabelManaged] == "true" && c.Labels[LabelHost] == host {
			out = append(out, *c)
		}
	}
	return out, nil
}

// gate returns a gate that holds the calls named by key until closed.
func (f *fakeRuntime) gate(key string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gates == nil {
		f.gates, f.reached = map[string]chan struct{}{}, map[string]int{}
	}
	g := make(chan struct{})
	f.gates[key] = g
	return g
}

// wait holds a call at its gate, if it has one.
func (f *fakeRuntime) wait(ctx context.Context, key string) error {
	f.mu.Lock()
	g := f.gates[key]
	if g != nil {
		f.reached[key]++
	}
	f.mu.Unlock()
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// arrived counts the calls that came to the gates whose key begins with
// prefix.
func (f *fakeRuntime) arrived(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.reached {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func (f *fakeRuntime) EnsureImage(ctx context.Context, image string) error {
	if err := f.wait(ctx, "pull "+image); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return f.down
	}
	f.pulls[image]++
	if !f.images[image] {
		return fmt.Errorf("%w: pull %s: repository does not exist", ErrImage, image)
	}
	return nil
}

func (f *fakeRuntime) Create(_ context.Context, s ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Name == s.Name {
			return "", fmt.Errorf("name %s in use", s.Name)
		}
	}
	f.next++
	id := fmt.Sprintf("c%04d", f.next)
	f.containers[id] = &Container{ID: id, Name: s.Name, Labels: s.Labels, State: "created"}
	return id, nil
}

func (f *fakeRuntime) Start(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return fmt.Errorf("no container %s", id)
	}
	c.State = "running"
	if f.onStart != nil {
		f.onStart(c)
	}
	return nil
}

// set changes a container as the engine would.
func (f *fakeRuntime) set(id string, change func(c *Container)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.containers[id])
}

func (f *fakeRuntime) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	f.removing++
	f.mostRemoving = max(f.mostRemoving, f.removing)
	f.mu.Unlock()
	err := f.wait(ctx, "remove "+id)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removing--
	if err != nil {
		return err
	}
	if f.containers[id] != nil && f.containers[id].Labels[LabelManaged] != "true" {
		panic("removed a container Dux did not make: " + id)
	}
	delete(f.containers, id)
	f.removed = append(f.removed, id)
	if f.onRemove != nil {
		f.onRemove(f)
	}
	return nil
}

// add puts a container in as if made outside the executor.
func (f *fakeRuntime) add(c Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[c.ID] = &c
}

// running counts running containers of a component, per host and spec.
func (f *fakeRuntime) running(component string) (perHost map[string]int, perSpec map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runningLocked(component)
}

func (f *fakeRuntime) runningLocked(component string) (perHost map[string]int, perSpec map[string]int) {
	perHost, perSpec = map[string]int{}, map[string]int{}
	for _, c := range f.containers {
		if c.State == "running" && c.Labels[LabelComponent] == component {
			perHost[c.Labels[LabelHost]]++
			perSpec[c.Labels[LabelSpec]]++
		}
	}
	return perHost, perSpec
}

// waitFor polls cond until it holds; the loops run on their own clocks, so
// a test waits for an outcome, never for a time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func hostsOf(m map[string]int) string {
	var parts []string
	for _, h := range []string{"h1", "h2", "h3", "h4"} {
		if m[h] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", h, m[h]))
		}
	}
	return strings.Join(parts, " ")
}
