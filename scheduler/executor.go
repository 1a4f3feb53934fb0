package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dux-io/dux/proto"
)

// ExecutorConfig configures a host's executor.
type ExecutorConfig struct {
	// Host is this member's name: the executor runs the allocations
	// placed on it.
	Host string
	// Interval is how often the executor compares its containers with its
	// allocations without being told of a change (a container removed by
	// hand, say). Default 3s.
	Interval time.Duration
	// Parallelism is how many containers the executor removes at once, and
	// how many it creates or starts at once, beside each other (default
	// 4): a slow stop holds up neither creations nor other removals.
	// Pulls do not count against it.
	Parallelism int
	// PullBackoff is the first wait before pulling an image that failed to
	// pull again; it doubles up to MaxPullBackoff. Defaults 5s and 5m.
	PullBackoff, MaxPullBackoff time.Duration
	// PullTimeout bounds one pull (default 5m). An image is pulled once at
	// a time, beside the other work: only the allocations waiting for it
	// wait.
	PullTimeout time.Duration
	// PingTimeout bounds the check, at the start of every pass, that the
	// engine answers (default 5s).
	PingTimeout time.Duration
	// MinUptime is how long a container the engine has restarted (under
	// its restart policy) must stay up before it counts as running again
	// (default 10s, after which Docker too deems a restart a success):
	// one that crash-loops is reported pending, "restarting", with its
	// last exit code, not running, so rollouts count it as down.
	MinUptime time.Duration
	// EngineChanged, if set, is called with whether the engine answers, on
	// the first pass and whenever that changes. The agent gossips it
	// (cluster.Node.SetDocker): the leader places replicas only on hosts
	// whose engine answers. It is called from the executor's pass.
	EngineChanged func(up bool)
	Logger        *slog.Logger
	Now           func() time.Time
}

// Executor converges one host's containers with the allocations placed on
// it, and reports what it observes under /status/allocations/<id>: it is
// the scheduler's sensor. It only ever touches containers labelled
// dux.managed=true and dux.host=<its host>.
//
// It acts only while the member's state is current (Ready): a member cut
// off from the leader keeps what runs, and one that restarts does not start
// what its stale state says before it has caught up.
//
// A pass (Converge) decides and reports; the work on the engine (pulls,
// creations and starts, removals) runs in the background, bounded by
// Parallelism, and what it finds is seen by a later pass. Statuses are
// written by passes only, one pass at a time.
type Executor struct {
	cfg ExecutorConfig
	st  StateAPI
	ev  Events
	rt  Runtime
	log *slog.Logger

	passMu sync.Mutex // one pass at a time; guards engineKnown, engineUp and exits

	engineKnown, engineUp bool           // what EngineChanged was last told
	exits                 map[string]int // container -> last exit code seen while it was down

	// mu guards the work in flight and what it leaves for later passes.
	mu       sync.Mutex
	images   map[string]*imageState // image -> pull in flight, present, or failed
	creating map[string]bool        // allocation -> its container is being created or started
	removing map[string]bool        // container -> being removed
	failures map[string]string      // allocation -> why its last create or start failed

	createSlots, removeSlots chan struct{} // Parallelism tokens each
	wake                     chan struct{} // work finished that a pass should see at once
	ops                      sync.WaitGroup
}

// imageState is what the executor knows of one image.
type imageState struct {
	pulling bool // EnsureImage in flight
	present bool // EnsureImage succeeded, and no creation failed since
	// After a failed pull: its error, and when (and after what wait) the
	// image may be pulled again.
	err   error
	until time.Time
	wait  time.Duration
}

// NewExecutor returns the executor of cfg.Host.
func NewExecutor(st StateAPI, ev Events, rt Runtime, cfg ExecutorConfig) *Executor {
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 4
	}
	if cfg.PullBackoff <= 0 {
		cfg.PullBackoff = 5 * time.Second
	}
	if cfg.MaxPullBackoff <= 0 {
		cfg.MaxPullBackoff = 5 * time.Minute
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = 5 * time.Minute
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 5 * time.Second
	}
	if cfg.MinUptime <= 0 {
		cfg.MinUptime = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Executor{cfg: cfg, st: st, ev: ev, rt: rt, log: cfg.Logger.With("subsystem", "executor"),
		exits: map[string]int{}, images: map[string]*imageState{}, creating: map[string]bool{}, removing: map[string]bool{},
		failures:    map[string]string{},
		createSlots: make(chan struct{}, cfg.Parallelism), removeSlots: make(chan struct{}, cfg.Parallelism),
		wake: make(chan struct{}, 1)}
}

// Run converges until ctx ends, and returns once the work it started has
// ended too.
func (e *Executor) Run(ctx context.Context) {
	defer e.ops.Wait()
	changes := watch(ctx, e.ev, e.log, AllocationsPrefix)
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	for {
		if err := e.Converge(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("converging containers failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changes:
		case <-e.wake:
		}
	}
}

// unreachablePrefix begins the reason of every allocation whose host's
// engine does not answer.
const unreachablePrefix = "container runtime unreachable: "

// Converge makes one pass: it asks whether the engine answers, starts
// removing the host's containers that no allocation of the host owns, and
// creating and starting those missing, and reports every allocation's
// state. It does not wait for that work: a later pass sees what it did.
// While the engine does not answer, every allocation of the host is
// reported failed (its containers may or may not still run, but nobody can
// tell or manage them). Passes run one at a time.
func (e *Executor) Converge(ctx context.Context) error {
	e.passMu.Lock()
	defer e.passMu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, e.cfg.PingTimeout)
	down := e.rt.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return ctx.Err() // stopping: the ping's failure says nothing of the engine
	}
	e.engine(down)
	if err := e.st.Ready(); err != nil {
		return nil // not current: act on nothing (see Executor)
	}
	view, _ := e.st.Store().View()
	mine := map[string]*AllocationRecord{}
	revs := map[string]uint64{}
	for _, kv := range listAll(view, AllocationsPrefix) {
		var r AllocationRecord
		if json.Unmarshal(kv.Value, &r) != nil || r.Host != e.cfg.Host || r.Run == nil || kv.Key != r.Key() {
			continue
		}
		mine[r.ID] = &r
		revs[r.ID] = kv.CreateRevision
	}
	statuses := map[string]AllocStatus{}
	for _, kv := range listAll(view, AllocStatusPrefix) {
		var s AllocStatus
		if json.Unmarshal(kv.Value, &s) == nil && s.Host == e.cfg.Host {
			statuses[strings.TrimPrefix(kv.Key, AllocStatusPrefix)] = s
		}
	}
	if down != nil {
		return e.unreachable(ctx, mine, revs, statuses, down)
	}
	// What is in flight is read before the containers are listed: work
	// that ended before shows in the list, and work still in flight is
	// not started twice.
	w := e.inFlight(mine)
	containers, err := e.rt.List(ctx, e.cfg.Host)
	if err != nil {
		return err
	}
	byAlloc := map[string]Container{}
	held := map[string]bool{} // allocations with a container still to remove
	exits := make(map[string]int, len(e.exits))
	for _, c := range containers {
		if c.State != "running" && c.State != "created" {
			exits[c.ID] = c.ExitCode
		} else if code, ok := e.exits[c.ID]; ok {
			exits[c.ID] = code
		}
		id := c.Labels[LabelAlloc]
		r := mine[id]
		_, dup := byAlloc[id]
		if r == nil || dup || c.Labels[LabelSpec] != r.Spec || c.State == "dead" {
			// An orphan: its allocation was stopped or moved while this
			// host was away, or a stray duplicate.
			held[id] = true
			if !w.removing[c.ID] {
				e.remove(ctx, c)
				w.removals++
			}
			continue
		}
		byAlloc[id] = c
	}
	e.exits = exits
	var errs []error
	for id, r := range mine {
		st := e.converge(ctx, r, byAlloc[id], w, held[id])
		if old, ok := statuses[id]; ok && old.same(st) {
			continue
		}
		errs = append(errs, e.report(ctx, r, revs[id], st))
	}
	// Statuses of this host whose allocation is gone, once its container
	// is gone too.
	for id, s := range statuses {
		if mine[id] == nil && !held[id] {
			errs = append(errs, e.dropStatus(ctx, s.Component, id, statuses))
		}
	}
	return errors.Join(errs...)
}

// engine tells EngineChanged whether the engine answers, when that
// changed.
func (e *Executor) engine(down error) {
	up := down == nil
	if e.engineKnown && e.engineUp == up {
		return
	}
	back := e.engineKnown && up
	e.engineKnown, e.engineUp = true, up
	if back {
		// What failed while the engine was away says nothing of it now:
		// pull and create again at once; and the images it had may be gone.
		e.mu.Lock()
		for _, s := range e.images {
			if !s.pulling {
				*s = imageState{}
			}
		}
		clear(e.failures)
		e.mu.Unlock()
	}
	if up {
		e.log.Info("container runtime answers")
	} else {
		e.log.Warn("container runtime unreachable: this host takes no new replicas, and reports its own failed", "error", down)
	}
	if e.cfg.EngineChanged != nil {
		e.cfg.EngineChanged(up)
	}
}

// unreachable reports every allocation of the host failed because the
// engine does not answer, unless it says so already (whatever the
// engine's error was then).
func (e *Executor) unreachable(ctx context.Context, mine map[string]*AllocationRecord, revs map[string]uint64, statuses map[string]AllocStatus, down error) error {
	var errs []error
	for id, r := range mine {
		old, ok := statuses[id]
		if ok && old.State == StateFailed && strings.HasPrefix(old.Reason, unreachablePrefix) {
			continue
		}
		st := AllocStatus{ID: r.ID, Component: r.Component, Host: r.Host, Spec: r.Spec, Since: e.cfg.Now().UTC(),
			State: StateFailed, Reason: unreachablePrefix + down.Error(), ContainerID: old.ContainerID}
		errs = append(errs, e.report(ctx, r, revs[id], st))
	}
	return errors.Join(errs...)
}

// converge decides what one allocation's container needs (a pull, a
// creation, a start), starts that work, and returns what it observes.
// held says a container of the allocation is still to be removed. A
// failure of the last creation or start is reported until one succeeds.
func (e *Executor) converge(ctx context.Context, r *AllocationRecord, c Container, w *work, held bool) AllocStatus {
	st := AllocStatus{ID: r.ID, Component: r.Component, Host: r.Host, Spec: r.Spec, ContainerID: c.ID,
		State: StatePending, Since: e.cfg.Now().UTC()}
	failed := func() AllocStatus {
		if why := w.failures[r.ID]; why != "" {
			st.State, st.Reason = StateFailed, why
		}
		return st
	}
	run := r.Run
	switch {
	case w.creating[r.ID]:
		return failed()
	case c.ID == "" && held:
		return st // its old container goes first: they share a name
	case c.ID == "" && w.removals > 0 && publishes(run):
		st.Reason = "waiting for a container being removed to free host ports"
		return st
	case c.ID == "":
		if ready, why := e.image(ctx, run.Image); !ready {
			if why != nil {
				st.State, st.Reason = StateFailed, why.Error()
			} else if w.failures[r.ID] == "" {
				st.Reason = "pulling " + run.Image
			} else {
				return failed()
			}
			return st
		}
		e.create(ctx, r)
		return failed()
	}
	switch c.State {
	case "running":
		st.State = StateRunning
		if c.Restarts > 0 && e.cfg.Now().Sub(c.StartedAt) < e.cfg.MinUptime {
			// Restarted by the engine a moment ago: it may be
			// crash-looping, and is down until it stays up.
			st.State, st.Reason, st.ExitCode = StatePending, ReasonRestarting, e.exits[c.ID]
		}
	case "restarting": // between two runs of a container that exits
		st.State, st.Reason, st.ExitCode = StatePending, ReasonRestarting, c.ExitCode
	case "created":
		e.start(ctx, r, c.ID)
		return failed()
	default: // exited, paused, removing
		st.State, st.ExitCode, st.Reason = StateExited, c.ExitCode, c.Error
		if run.Restart == "always" || (run.Restart == "on-failure" && c.ExitCode != 0) {
			// Docker restarts it itself unless it was stopped from outside;
			// then it is started again here.
			if c.State == "exited" {
				e.start(ctx, r, c.ID)
				return failed()
			}
		}
	}
	return st
}

// publishes reports whether a spec binds host ports, which a container
// being removed may still hold.
func publishes(c *Component) bool {
	for _, p := range c.Ports {
		if p.Host != 0 {
			return true
		}
	}
	return false
}

func (e *Executor) labels(r *AllocationRecord) map[string]string {
	l := map[string]string{}
	for k, v := range r.Run.Labels {
		l[k] = v
	}
	l[LabelManaged] = "true"
	l[LabelHost] = e.cfg.Host
	l[LabelComponent] = r.Component
	l[LabelAlloc] = r.ID
	l[LabelSpec] = r.Spec
	return l
}

// report writes the allocation's status, only while the allocation exists
// (created at the revision read), so a status never outlives it.
func (e *Executor) report(ctx context.Context, r *AllocationRecord, created uint64, st AllocStatus) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = e.st.Txn(ctx, &proto.TxnRequest{
		Compares: []*proto.Compare{{Key: r.Key(), Target: proto.Compare_CREATE_REVISION, Op: proto.Compare_EQUAL, Number: created}},
		Success:  []*proto.Op{{Type: proto.Op_PUT, Key: AllocStatusPrefix + r.ID, Value: v}},
		Origin:   ExecutorOrigin,
	})
	if err != nil {
		return fmt.Errorf("report %s: %w", r.ID, err)
	}
	return nil
}

// dropStatus deletes the status of an allocation that no longer exists.
func (e *Executor) dropStatus(ctx context.Context, component, id string, statuses map[string]AllocStatus) error {
	if _, ok := statuses[id]; !ok || component == "" {
		return nil
	}
	_, err := e.st.Txn(ctx, &proto.TxnRequest{
		Compares: []*proto.Compare{{Key: AllocationKey(component, id), Target: proto.Compare_CREATE_REVISION, Op: proto.Compare_EQUAL, Number: 0}},
		Success:  []*proto.Op{{Type: proto.Op_DELETE, Key: AllocStatusPrefix + id}},
		Origin:   ExecutorOrigin,
	})
	if err != nil {
		return fmt.Errorf("drop status %s: %w", id, err)
	}
	return nil
}

// containerName is unique in the cluster: allocation IDs are.
func containerName(r *AllocationRecord) string { return "dux-" + r.Component + "-" + r.ID }

func short(id string) string { return id[:min(12, len(id))] }
