package scheduler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// StateAPI is what the scheduler needs of the StateStore: this member's
// local state, and transactions through Raft. *cluster.Node provides it.
type StateAPI interface {
	Store() *fsm.Store
	Txn(ctx context.Context, req *proto.TxnRequest) (*proto.TxnResponse, error)
	// Ready reports whether the local state is current: a leader is known
	// and everything it committed has been applied here.
	Ready() error
}

// Events is the Dispatcher as the scheduler subscribes to it.
// *dispatch.Hub provides it.
type Events interface {
	Subscribe(ctx context.Context, req *proto.SubscribeRequest, send func(*proto.Event) error) error
}

// LeaderConfig configures the leader loop.
type LeaderConfig struct {
	// Name is this member's name, recorded in the guard key.
	Name string
	// Interval is how often the leader plans without being told of a
	// change (hosts that stay failed, say). Default 5s.
	Interval time.Duration
	Logger   *slog.Logger
	// Now and NewID are the clock and the allocation namer; tests set them.
	Now   func() time.Time
	NewID func() string
}

// Leader is the scheduler's leader loop: on the Raft leader only, it plans
// on every change to components, hosts, allocations and their status, and
// on an interval, and commits each plan in transactions guarded by what it
// read.
//
// Fencing: when a term begins, the loop writes the term into GuardKey,
// only if the key holds an earlier term. Every plan then compares the key
// with what it wrote, so once a later leader has claimed it the old
// leader's plans fail, even when they reach the new leader forwarded. Each
// plan also compares the mod revision of every allocation it stops and of
// every component it places, so a plan made from a state that has changed
// since does not land: the next pass plans again.
type Leader struct {
	cfg LeaderConfig
	st  StateAPI
	ev  Events
	log *slog.Logger
}

// NewLeader returns the leader loop; cluster.Node.RunWhileLeader runs it.
func NewLeader(st StateAPI, ev Events, cfg LeaderConfig) *Leader {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = NewAllocID
	}
	return &Leader{cfg: cfg, st: st, ev: ev, log: cfg.Logger.With("subsystem", "scheduler")}
}

// NewAllocID returns a random allocation ID: 12 hex digits.
func NewAllocID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errDeposed: a later leader holds the guard key.
var errDeposed = errors.New("scheduler: a later leader holds the guard key")

// errGuardLost: the guard key no longer holds this leader's value: a later
// leader took it, or a restore or a hand put it back; claim it again.
var errGuardLost = errors.New("scheduler: the guard key changed")

// errConflict: the state changed between the read and the commit.
var errConflict = errors.New("scheduler: the state changed under the plan")

// Run is the loop for one term; it returns when ctx ends or a later leader
// has taken over.
func (l *Leader) Run(ctx context.Context, term uint64) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch too
	guard, err := l.claim(ctx, term)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("scheduler not started", "term", term, "error", err)
		}
		return
	}
	l.log.Info("scheduling", "term", term)
	changes := watch(ctx, l.ev, l.log, ComponentsPrefix, cluster.HostsPrefix, AllocationsPrefix, "/status/", GuardKey)
	tick := time.NewTicker(l.cfg.Interval)
	defer tick.Stop()
	backoff := time.Duration(0)
	for {
		err := l.pass(ctx, guard)
		if errors.Is(err, errGuardLost) {
			if guard, err = l.claim(ctx, term); err != nil {
				if ctx.Err() == nil {
					l.log.Info("scheduler stopped: a later leader took over", "term", term)
				}
				return
			}
			err = errConflict // plan again at once
		}
		switch {
		case errors.Is(err, errConflict):
			backoff = 50 * time.Millisecond // plan again at once, from the new state
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 200*time.Millisecond), 5*time.Second)
			l.log.Warn("scheduling pass failed", "error", err, "retry_in", backoff)
		default:
			backoff = 0
		}
		var retry <-chan time.Time
		if backoff > 0 {
			retry = time.After(backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
		case <-tick.C:
		case <-changes:
			// Let a burst of changes settle into one pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// guardValue is what a leader writes into the guard key: a JSON string of
// its term, zero-padded, and its name.
func guardValue(term uint64, name string) []byte {
	v, _ := json.Marshal(fmt.Sprintf("%020d %s", term, name))
	return v
}

// guardTerm reads the term out of a guard value; a value that is not one
// (written by hand, say) counts as term 0, so any leader may take it.
func guardTerm(v []byte) uint64 {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return 0
	}
	num, _, _ := strings.Cut(s, " ")
	term, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0
	}
	return term
}

// claim writes this term into the guard key unless it holds the same or a
// later term, and returns the value written. It is a compare-and-set on
// the key's mod revision, so of two leaders claiming at once one wins and
// the other looks again.
func (l *Leader) claim(ctx context.Context, term uint64) ([]byte, error) {
	mine := guardValue(term, l.cfg.Name)
	for {
		var modRev uint64
		kv, _, err := l.st.Store().Get(GuardKey)
		switch {
		case errors.Is(err, fsm.ErrNotFound):
		case err != nil:
			return nil, err
		case bytes.Equal(kv.Value, mine):
			return mine, nil
		case guardTerm(kv.Value) >= term:
			return nil, errDeposed
		default:
			modRev = kv.ModRevision
		}
		resp, err := l.st.Txn(ctx, &proto.TxnRequest{
			Compares: []*proto.Compare{{Key: GuardKey, Target: proto.Compare_MOD_REVISION, Op: proto.Compare_EQUAL, Number: modRev}},
			Success:  []*proto.Op{{Type: proto.Op_PUT, Key: GuardKey, Value: mine}},
			Origin:   LeaderOrigin,
		})
		if err == nil && resp.Succeeded {
			return mine, nil
		}
		if err != nil {
			l.log.Warn("claiming the scheduler guard failed", "error", err)
		}
		select { // the key changed meanwhile, or the write failed: look again
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pass reads the state, plans, and commits the plan and the components'
// status.
func (l *Leader) pass(ctx context.Context, guard []byte) error {
	view, rev := l.st.Store().View()
	snap := readSnapshot(view, rev, l.cfg.Now())
	if snap.guard == nil || !bytes.Equal(snap.guard.Value, guard) {
		return errGuardLost
	}
	plan := Compute(snap.components, snap.hosts, snap.allocs, l.cfg.NewID)
	var b batcher
	now := l.cfg.Now().UTC()
	for _, a := range plan.Stop {
		kv := snap.records[a.ID]
		b.add([]*proto.Compare{{Key: kv.Key, Target: proto.Compare_MOD_REVISION, Op: proto.Compare_EQUAL, Number: kv.ModRevision}},
			&proto.Op{Type: proto.Op_DELETE, Key: kv.Key},
			&proto.Op{Type: proto.Op_DELETE, Key: AllocStatusPrefix + a.ID})
	}
	byName := map[string]*Component{}
	for _, c := range snap.components {
		byName[c.Name] = c
	}
	for _, a := range plan.Add {
		rec := AllocationRecord{ID: a.ID, Component: a.Component, Host: a.Host, Spec: a.Spec, Run: byName[a.Component], CreatedAt: now}
		v, err := json.Marshal(&rec)
		if err != nil {
			return err
		}
		ck := ComponentsPrefix + a.Component
		b.add([]*proto.Compare{{Key: ck, Target: proto.Compare_MOD_REVISION, Op: proto.Compare_EQUAL, Number: snap.compRev[a.Component]}},
			&proto.Op{Type: proto.Op_PUT, Key: rec.Key(), Value: v})
	}
	for _, op := range statusOps(snap, plan) {
		b.add(nil, op)
	}
	if len(plan.Add)+len(plan.Stop) > 0 {
		l.log.Info("plan", "revision", rev, "add", len(plan.Add), "stop", len(plan.Stop), "transactions", len(b.txns))
	}
	for _, t := range b.txns {
		t.Compares = append(t.Compares, &proto.Compare{Key: GuardKey, Target: proto.Compare_VALUE, Op: proto.Compare_EQUAL, Value: guard})
		t.Origin = LeaderOrigin
		resp, err := l.st.Txn(ctx, t)
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			if kv, _, err := l.st.Store().Get(GuardKey); err != nil || !bytes.Equal(kv.Value, guard) {
				return errGuardLost
			}
			return errConflict
		}
	}
	return nil
}

// statusOps writes /status/components/<name> where it changed, and
// deletes the status of components that are gone.
func statusOps(snap *snapshot, plan Plan) []*proto.Op {
	stopped := map[string]bool{}
	for _, a := range plan.Stop {
		stopped[a.ID] = true
	}
	want := map[string]*ComponentStatus{}
	for _, c := range snap.components {
		want[c.Name] = &ComponentStatus{Name: c.Name, Spec: c.Hash(), Desired: c.Replicas, Paused: c.Paused, Unplaced: plan.Unplaced[c.Name]}
	}
	for name, why := range snap.invalid {
		want[name] = &ComponentStatus{Name: name, Error: why}
	}
	for _, a := range append(snap.allocs, plan.Add...) {
		s := want[a.Component]
		if s == nil || stopped[a.ID] {
			continue
		}
		s.Placed++
		switch {
		case a.Spec != s.Spec:
			s.Outdated++
		case a.Running:
			s.Running++
		case snap.statuses[a.ID].State == StateFailed:
			s.Failed++
		}
	}
	var ops []*proto.Op
	for name, s := range want {
		v, _ := json.Marshal(s)
		if !bytes.Equal(snap.compStatus[name], v) {
			ops = append(ops, &proto.Op{Type: proto.Op_PUT, Key: ComponentStatusPrefix + name, Value: v})
		}
	}
	for name := range snap.compStatus {
		if want[name] == nil {
			ops = append(ops, &proto.Op{Type: proto.Op_DELETE, Key: ComponentStatusPrefix + name})
		}
	}
	return ops
}

// Transaction limits the scheduler keeps under (cluster.MaxTxnOps is 128;
// one compare is the guard's).
const (
	txnOps      = 100
	txnCompares = 100
	txnBytes    = 256 << 10
)

// batcher packs a plan's changes into transactions within the limits,
// keeping each change's compares with its ops.
type batcher struct {
	txns  []*proto.TxnRequest
	bytes int
	seen  map[string]bool // compares already in the last transaction
}

func (b *batcher) add(cmps []*proto.Compare, ops ...*proto.Op) {
	size := 0
	for _, op := range ops {
		size += len(op.Key) + len(op.Value)
	}
	var t *proto.TxnRequest
	if n := len(b.txns); n > 0 {
		t = b.txns[n-1]
		if len(t.Success)+len(ops) > txnOps || len(t.Compares)+len(cmps) > txnCompares || b.bytes+size > txnBytes {
			t = nil
		}
	}
	if t == nil {
		t = &proto.TxnRequest{}
		b.txns = append(b.txns, t)
		b.bytes, b.seen = 0, map[string]bool{}
	}
	for _, c := range cmps {
		if !b.seen[c.Key] {
			b.seen[c.Key] = true
			t.Compares = append(t.Compares, c)
		}
	}
	t.Success = append(t.Success, ops...)
	b.bytes += size
}

// watch subscribes through the Dispatcher to the prefixes and signals on
// every change, until ctx ends; it subscribes again after an error.
func watch(ctx context.Context, ev Events, log *slog.Logger, prefixes ...string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		req := &proto.SubscribeRequest{Channels: prefixes, Delivery: proto.Delivery_LATEST, ProgressIntervalMs: -1}
		for ctx.Err() == nil {
			err := ev.Subscribe(ctx, req, func(e *proto.Event) error {
				switch e.Type {
				case proto.Event_PUT, proto.Event_DELETE, proto.Event_EXPIRE, proto.Event_RESYNC:
					select {
					case ch <- struct{}{}:
					default:
					}
				}
				return nil
			})
			if ctx.Err() != nil {
				return
			}
			log.Warn("subscription ended; subscribing again", "error", err)
			select {
			case ch <- struct{}{}: // what was missed is planned for now
			default:
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return ch
}
