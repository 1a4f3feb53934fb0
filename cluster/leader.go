package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/proto"
)

// monitorLeadership starts leader-only work when this member becomes leader
// and stops it when leadership is lost, driven by raft's NotifyCh.
func (n *Node) monitorLeadership() {
	defer n.wg.Done()
	var lead *leadership
	defer func() { lead.stop() }()
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-n.leaderNotify:
			switch {
			case isLeader && lead == nil:
				lead = n.startLeadership()
			case !isLeader && lead != nil:
				lead.stop()
				lead = nil
			}
		}
	}
}

// leadership is one term of leader-only work.
type leadership struct {
	n      *Node
	cancel context.CancelFunc
	done   chan struct{}
}

func (n *Node) startLeadership() *leadership {
	ctx, cancel := context.WithCancel(n.ctx)
	l := &leadership{n: n, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		n.leaderLoop(ctx)
	}()
	return l
}

func (l *leadership) stop() {
	if l == nil {
		return
	}
	l.n.leaderReady.Store(false)
	l.cancel()
	<-l.done
}

// leaderLoop runs while this member leads. It first applies a barrier
// command: once it is applied every entry of earlier terms is applied too,
// and from then on every committed entry reaches the FSM, so the commit
// index is a valid read index (hashicorp/raft has no ReadIndex; Consul does
// the same barrier before serving consistent reads).
func (n *Node) leaderLoop(ctx context.Context) {
	// The term this leadership began in: read before the barrier, so that
	// leader tasks never see a later term that another member leads.
	term := n.raft.CurrentTerm()
	n.log.Info("became leader; applying barrier", "term", term)
	for {
		_, err := n.applyLocal(&proto.Command{Cmd: &proto.Command_Barrier{Barrier: &proto.Barrier{Leader: n.cfg.Name}}})
		if err == nil {
			break
		}
		n.log.Warn("leadership barrier failed", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.leaderReady.Store(true)
	n.log.Info("leader ready", "revision", n.store.Revision())
	defer n.leaderReady.Store(false)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.lessor.run(ctx)
	}()
	defer wg.Wait()
	n.startTasks(&termWork{ctx: ctx, term: term, wg: &wg})
	defer n.startTasks(nil)

	tick := time.NewTicker(n.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		n.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.gossipCh:
		}
	}
}

// fetchReadIndex returns an index that every write acknowledged before the
// call began is at or below. The leader reads its commit index, then
// confirms with a quorum that it is still leader; a follower asks the leader.
func (n *Node) fetchReadIndex() (uint64, error) {
	if n.raft.State() == raft.Leader {
		if !n.leaderReady.Load() {
			return 0, fmt.Errorf("%w: new leader is not ready for reads yet", ErrNoLeader)
		}
		index := n.raft.CommitIndex()
		if err := n.raft.VerifyLeader().Error(); err != nil {
			return 0, fmt.Errorf("%w: verify leadership: %v", ErrNotLeader, err)
		}
		return index, nil
	}
	var index uint64
	err := n.withLeader(n.ctx, func(ctx context.Context, leader Member) error {
		resp, err := n.peers.internal(leader.GRPC).ReadIndex(ctx, &proto.ReadIndexRequest{})
		if err != nil {
			return err
		}
		index = resp.Index
		return nil
	})
	return index, err
}

// leaderReadIndex serves a follower's ReadIndex request.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	return n.reads.get(ctx)
}

// LeaderTask is work that only the leader does, such as scheduling. It
// runs once per term this member leads, from the moment the leader has
// applied every entry of earlier terms, and its context ends when
// leadership is lost or the member shuts down. term is the Raft term.
type LeaderTask func(ctx context.Context, term uint64)

type leaderTask struct {
	name string
	run  LeaderTask
}

// termWork is one term of leadership that tasks run in.
type termWork struct {
	ctx  context.Context
	term uint64
	wg   *sync.WaitGroup
}

func (w *termWork) start(n *Node, t leaderTask) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		n.log.Info("leader task started", "task", t.name, "term", w.term)
		t.run(w.ctx, w.term)
	}()
}

// RunWhileLeader registers a task to run whenever this member leads; if it
// leads now, the task starts at once.
func (n *Node) RunWhileLeader(name string, task LeaderTask) {
	n.tasksMu.Lock()
	defer n.tasksMu.Unlock()
	t := leaderTask{name: name, run: task}
	n.tasks = append(n.tasks, t)
	if n.leading != nil {
		n.leading.start(n, t)
	}
}

// startTasks starts every registered task in a new term, or, given nil,
// records that the term has ended (its context is cancelled by the caller).
func (n *Node) startTasks(w *termWork) {
	n.tasksMu.Lock()
	defer n.tasksMu.Unlock()
	n.leading = w
	if w == nil {
		return
	}
	for _, t := range n.tasks {
		w.start(n, t)
	}
}
