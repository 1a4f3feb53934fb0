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
	// PullBackoff is the first wait before pulling an image that failed to
	// pull again; it doubles up to MaxPullBackoff. Defaults 5s and 5m.
	PullBackoff, MaxPullBackoff time.Duration
	// PullTimeout bounds one pull (default 5m): a host pulls one image at a
	// time, and converges nothing else meanwhile.
	PullTimeout time.Duration
	// PingTimeout bounds the check, at the start of every pass, that the
	// engine answers (default 5s).
	PingTimeout time.Duration
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
type Executor struct {
	cfg ExecutorConfig
	st  StateAPI
	ev  Events
	rt  Runtime
	log *slog.Logger

	mu    sync.Mutex
	pulls map[string]*pullFailure // image -> last failure

	engineKnown, engineUp bool // what EngineChanged was last told
}

type pullFailure struct {
	err   error
	until time.Time
	wait  time.Duration
}

// NewExecutor returns the executor of cfg.Host.
func NewExecutor(st StateAPI, ev Events, rt Runtime, cfg ExecutorConfig) *Executor {
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Executor{cfg: cfg, st: st, ev: ev, rt: rt, pulls: map[string]*pullFailure{},
		log: cfg.Logger.With("subsystem", "executor")}
}

// Run converges until ctx ends.
func (e *Executor) Run(ctx context.Context) {
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
		}
	}
}

// unreachablePrefix begins the reason of every allocation whose host's
// engine does not answer.
const unreachablePrefix = "container runtime unreachable: "

// Converge makes one pass: it asks whether the engine answers, removes
// the host's containers that no allocation of the host owns, creates and
// starts those missing, and reports every allocation's state. While the
// engine does not answer, every allocation of the host is reported failed
// (its containers may or may not still run, but nobody can tell or
// manage them).
func (e *Executor) Converge(ctx context.Context) error {
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
	containers, err := e.rt.List(ctx, e.cfg.Host)
	if err != nil {
		return err
	}
	var errs []error
	byAlloc := map[string]Container{}
	stuck := map[string]bool{} // allocations whose orphan could not be removed
	for _, c := range containers {
		id := c.Labels[LabelAlloc]
		r := mine[id]
		_, dup := byAlloc[id]
		if r == nil || dup || c.Labels[LabelSpec] != r.Spec || c.State == "dead" {
			// An orphan: its allocation was stopped or moved while this
			// host was away, or a stray duplicate.
			e.log.Info("removing container", "container", short(c.ID), "alloc", id, "component", c.Labels[LabelComponent])
			if err := e.rt.Remove(ctx, c.ID); err != nil {
				errs = append(errs, err)
				stuck[id] = true
			}
			continue
		}
		byAlloc[id] = c
	}
	for id, r := range mine {
		st := e.converge(ctx, r, byAlloc[id])
		if old, ok := statuses[id]; ok && old.same(st) {
			continue
		}
		errs = append(errs, e.report(ctx, r, revs[id], st))
	}
	// Statuses of this host whose allocation is gone, once its container
	// is gone too.
	for id, s := range statuses {
		if mine[id] == nil && !stuck[id] {
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
	e.engineKnown, e.engineUp = true, up
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

// converge brings one allocation's container to running (or leaves it
// exited, as its restart policy says) and returns what it observes.
func (e *Executor) converge(ctx context.Context, r *AllocationRecord, c Container) AllocStatus {
	st := AllocStatus{ID: r.ID, Component: r.Component, Host: r.Host, Spec: r.Spec, Since: e.cfg.Now().UTC()}
	run := r.Run
	if c.ID == "" {
		if err := e.ensureImage(ctx, run.Image); err != nil {
			st.State, st.Reason = StateFailed, err.Error()
			return st
		}
		id, err := e.rt.Create(ctx, ContainerSpec{
			Name: containerName(r), Image: run.Image, Command: run.Command, Args: run.Args, Env: run.Env,
			Ports: run.Ports, Resources: run.Resources, Restart: run.Restart,
			Labels: e.labels(r),
		})
		if err != nil {
			st.State, st.Reason = StateFailed, err.Error()
			return st
		}
		e.log.Info("created container", "container", short(id), "alloc", r.ID, "component", r.Component)
		c = Container{ID: id, State: "created"}
	}
	st.ContainerID = c.ID
	switch c.State {
	case "running":
		st.State = StateRunning
	case "restarting":
		st.State, st.ExitCode = StatePending, c.ExitCode
	case "created":
		if err := e.rt.Start(ctx, c.ID); err != nil {
			st.State, st.Reason = StateFailed, err.Error()
			return st
		}
		st.State = StatePending
	default: // exited, paused, removing
		st.State, st.ExitCode, st.Reason = StateExited, c.ExitCode, c.Error
		if run.Restart == "always" || (run.Restart == "on-failure" && c.ExitCode != 0) {
			// Docker restarts it itself unless it was stopped from outside;
			// then it is started again here.
			if c.State == "exited" {
				if err := e.rt.Start(ctx, c.ID); err != nil {
					st.State, st.Reason = StateFailed, err.Error()
				}
			}
		}
	}
	return st
}

// ensureImage pulls a missing image, but after a failed pull waits, with
// a growing delay, before it tries that image again.
func (e *Executor) ensureImage(ctx context.Context, image string) error {
	e.mu.Lock()
	f := e.pulls[image]
	e.mu.Unlock()
	now := e.cfg.Now()
	if f != nil && now.Before(f.until) {
		return f.err
	}
	pctx, cancel := context.WithTimeout(ctx, e.cfg.PullTimeout)
	err := e.rt.EnsureImage(pctx, image)
	cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.pulls, image)
		return nil
	}
	wait := e.cfg.PullBackoff
	if f != nil {
		wait = min(2*f.wait, e.cfg.MaxPullBackoff)
	}
	e.pulls[image] = &pullFailure{err: err, until: now.Add(wait), wait: wait}
	e.log.Warn("image pull failed", "image", image, "error", err, "retry_in", wait)
	return err
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
