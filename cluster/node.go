package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/dux-io/dux/fsm"
)

// Errors of the cluster layer. The rpc package maps them to Unavailable.
var (
	// ErrNoLeader is returned when no leader is known in time.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrNotLeader is returned by leader-only operations on a follower.
	ErrNotLeader = errors.New("cluster: not leader")
	// ErrIndeterminate is returned when leadership was lost while a write
	// was in flight: it may or may not have been committed.
	ErrIndeterminate = errors.New("cluster: leadership lost while the write was in flight; it may or may not have applied")
	// ErrShutdown is returned once the member is shutting down.
	ErrShutdown = errors.New("cluster: shutting down")
	// ErrNameTaken: another member already goes by this member's name.
	ErrNameTaken = errors.New("cluster: name taken")
)

// Node is one member: its Raft, its gossip and its StateStore.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *fsm.Store

	raft      *raft.Raft
	trans     *raft.NetworkTransport
	boltStore *raftboltdb.BoltStore
	snaps     *raft.FileSnapshotStore

	ml *memberlist.Memberlist
	// updateMu serialises changes of meta with their broadcast
	// (memberlist's UpdateNode), so the last change made is the last one
	// gossiped. Taken before metaMu.
	updateMu   sync.Mutex
	metaMu     sync.Mutex // guards meta, which memberlist reads at any time
	meta       memberMeta
	gossipCh   chan struct{}
	tracker    *tracker
	started    time.Time
	joinedAt   atomic.Int64 // unix nanoseconds of the last join of others
	selfGossip atomic.Value // this member's gossip address, a string
	fatal      chan error
	left       chan struct{}
	leftOnce   sync.Once

	leaderNotify chan bool
	leaderObs    chan raft.Observation

	metrics *metrics

	peers  *peerPool
	fwd    *forwarder
	reads  *coalescer
	lessor *lessor

	// leaderReady is true while this member is leader and has applied its
	// leadership barrier, so its commit index covers every earlier write.
	leaderReady atomic.Bool

	// tasksMu guards tasks, the leader-only work registered with
	// RunWhileLeader, and leading, the running term's (nil unless leader).
	tasksMu sync.Mutex
	tasks   []leaderTask
	leading *termWork

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
}

// New starts a member: it opens the Raft log and snapshots in the data dir,
// starts the Raft transport and gossip, and begins to bootstrap or join.
// The caller must serve the Internal gRPC service (RegisterInternal) on
// cfg.GRPCAddr for the member to take part in forwarding and bootstrap.
func New(cfg Config, store *fsm.Store) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger.With("subsystem", "cluster"),
		store:    store,
		gossipCh: make(chan struct{}, 1),
		tracker:  newTracker(),
		fatal:    make(chan error, 1),
		left:     make(chan struct{}),
		peers:    newPeerPool(),
		metrics:  newMetrics(),
		ctx:      ctx,
		cancel:   cancel,
	}
	n.reads = &coalescer{fetch: n.fetchReadIndex}
	n.fwd = newForwarder(grpcForwardSender{client: n.peers.internal})
	n.lessor = newLessor(n)
	ok := false
	defer func() {
		if !ok {
			n.closeAll()
		}
	}()
	if err := n.setupRaft(); err != nil {
		return nil, err
	}
	if err := n.setupGossip(); err != nil {
		return nil, err
	}
	ok = true

	n.wg.Add(5)
	go n.monitorLeadership()
	go n.watchLeaders(n.leaderObs)
	go n.bootstrapLoop()
	go n.joinLoop()
	go n.probeLoop()
	return n, nil
}

func (n *Node) setupRaft() error {
	c := n.cfg
	dir := filepath.Join(c.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	dbPath := filepath.Join(dir, "raft.db")
	bs, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("open raft log %s: data dir is in use by another agent", dbPath)
		}
		return fmt.Errorf("open raft log %s: %w", dbPath, err)
	}
	n.boltStore = bs
	logs, err := raft.NewLogCache(1024, bs)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	hl := newHCLog(n.cfg.Logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return fmt.Errorf("open snapshots in %s: %w", dir, err)
	}
	n.snaps = snaps

	advertise, err := net.ResolveTCPAddr("tcp", c.advertised(c.RaftAddr))
	if err != nil {
		return fmt.Errorf("raft-addr %s: %w", c.RaftAddr, err)
	}
	if advertise.IP.IsUnspecified() {
		return fmt.Errorf("%w: raft-addr %s binds every interface; set --advertise", ErrConfig, c.RaftAddr)
	}
	trans, err := raft.NewTCPTransportWithLogger(c.RaftAddr, advertise, 3, 10*time.Second, hl)
	if err != nil {
		return fmt.Errorf("listen raft-addr %s: %w", c.RaftAddr, err)
	}
	n.trans = trans

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.Name)
	rc.Logger = hl
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.HeartbeatTimeout / 2
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	// Throughput comes from batching, never from weaker durability: many
	// client writes share one AppendEntries and one fsync.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	n.leaderNotify = notify

	r, err := raft.NewRaft(rc, timedFSM{Store: n.store, batch: n.metrics.fsmApply}, logs, bs, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	// Registered at once, so that no election is missed: raft has only
	// just started, and elects no leader before a heartbeat timeout.
	obs, ch := leaderObserver()
	r.RegisterObserver(obs)
	n.leaderObs = ch
	return nil
}

// Fatal delivers an error that should stop the agent, such as finding its
// name taken by another member.
func (n *Node) Fatal() <-chan error { return n.fatal }

func (n *Node) fail(err error) {
	n.log.Error("fatal", "error", err)
	select {
	case n.fatal <- err:
	default:
	}
}

// hasState reports whether this member already holds Raft state, so it must
// never bootstrap again.
func (n *Node) hasState() bool {
	ok, err := raft.HasExistingState(n.boltStore, n.boltStore, n.snaps)
	return err == nil && ok
}

// Shutdown stops the member. A leader first hands leadership to another
// voter so that the cluster does not wait out an election timeout.
func (n *Node) Shutdown() error {
	var err error
	n.shutOnce.Do(func() {
		if n.raft != nil && n.raft.State() == raft.Leader && n.voterCount() > 1 {
			if terr := n.raft.LeadershipTransfer().Error(); terr != nil {
				n.log.Warn("leadership transfer before shutdown failed", "error", terr)
			}
		}
		n.cancel()
		err = n.closeAll()
		n.wg.Wait()
	})
	return err
}

func (n *Node) closeAll() error {
	var errs []error
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
	}
	if n.ml != nil {
		if err := n.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
		}
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.boltStore != nil {
		if err := n.boltStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
	}
	n.peers.close()
	return errors.Join(errs...)
}

func (n *Node) voterCount() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	v := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}

// Store returns the member's StateStore, for local (stale) reads.
func (n *Node) Store() *fsm.Store { return n.store }

// Name returns the member's name.
func (n *Node) Name() string { return n.cfg.Name }

// IsLeader reports whether this member is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }
