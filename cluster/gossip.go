package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/proto"
)

func (n *Node) setupGossip() error {
	c := n.cfg
	n.meta = memberMeta{
		Raft:    c.advertised(c.RaftAddr),
		GRPC:    c.advertised(c.GRPCAddr),
		HTTP:    c.advertised(c.HTTPAddr),
		Expect:  c.BootstrapExpect,
		Version: c.Version,
		Labels:  c.Labels,
		CPU:     c.Resources.CPU,
		Memory:  c.Resources.Memory,
		// Docker is false until the host's executor finds its engine
		// answering (SetDocker).
	}
	if b, _ := json.Marshal(n.meta); len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: gossip metadata is %d bytes, more than %d: use fewer or shorter labels",
			ErrConfig, len(b), memberlist.MetaMaxSize)
	}
	mc := memberlist.DefaultLANConfig()
	if c.GossipProfile == "local" {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = c.Name
	host, port, _ := splitHostPort(c.GossipAddr)
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if c.Advertise != "" {
		mc.AdvertiseAddr = c.Advertise
	}
	mc.Delegate = gossipDelegate{n}
	mc.Events = gossipEvents{n}
	mc.Conflict = gossipConflicts{n}
	mc.Alive = gossipConflicts{n}
	// A member that comes back under its old name on a new address is
	// accepted once its old address has been dead this long.
	mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	if len(c.EncryptKey) > 0 {
		mc.SecretKey = c.EncryptKey
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Logger = newStdLogger(c.Logger.With("subsystem", "memberlist"))
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip on %s: %w", c.GossipAddr, err)
	}
	n.ml = ml
	n.selfGossip.Store(ml.LocalNode().Address())
	n.started = time.Now()
	return nil
}

// SetDocker records whether this host's Docker Engine answers and, when
// that changed, gossips it to the other members at once (memberlist's
// UpdateNode); the leader writes it to /hosts/<name> as the host's docker
// flag, and the scheduler places replicas only on hosts whose flag is set.
// It is false until first set. The error says the change was not
// broadcast within a few seconds; it still reaches the others with the
// next push-pull exchange. It must not be called from a memberlist
// delegate.
func (n *Node) SetDocker(up bool) error {
	n.updateMu.Lock()
	defer n.updateMu.Unlock()
	n.metaMu.Lock()
	changed := n.meta.Docker != up
	n.meta.Docker = up
	n.metaMu.Unlock()
	if !changed {
		return nil
	}
	n.log.Info("advertising the Docker engine", "docker", up)
	if err := n.ml.UpdateNode(5 * time.Second); err != nil {
		return fmt.Errorf("gossip docker=%v: %w", up, err)
	}
	return nil
}

// Join asks gossip to join the members at addrs and returns how many answered.
func (n *Node) Join(addrs []string) (int, error) {
	n.joinedAt.Store(time.Now().UnixNano())
	k, err := n.ml.Join(addrs)
	if k == 0 && err != nil {
		return 0, fmt.Errorf("join %v: %w", addrs, err)
	}
	return k, nil
}

// joinLoop joins the --join addresses, retrying until one answers: members
// may start in any order.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	if len(n.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		k, err := n.Join(n.cfg.Join)
		if err == nil {
			n.log.Info("joined gossip", "addrs", n.cfg.Join, "answered", k)
			return
		}
		n.log.Warn("join failed; retrying", "error", err, "in", backoff)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// bootstrapLoop bootstraps a new cluster once: at once in dev mode, or when
// bootstrap-expect servers have found each other through gossip and none of
// them holds Raft state. Every one of them bootstraps the same
// configuration (every server, sorted by name), which Raft accepts.
func (n *Node) bootstrapLoop() {
	defer n.wg.Done()
	if n.hasState() {
		n.log.Info("raft state found; not bootstrapping")
		return
	}
	if n.cfg.Dev {
		conf := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.Name), Address: raft.ServerAddress(n.meta.Raft),
		}}}
		if err := n.raft.BootstrapCluster(conf).Error(); err != nil {
			n.log.Error("bootstrap dev member", "error", err)
		}
		return
	}
	expect := n.cfg.BootstrapExpect
	if expect == 0 {
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := n.tryBootstrap(expect)
		if done {
			return
		}
		if err != nil {
			n.log.Debug("bootstrap not yet possible", "reason", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-n.gossipCh:
		}
	}
}

func (n *Node) tryBootstrap(expect int) (done bool, err error) {
	if n.hasState() {
		return true, nil
	}
	if _, id := n.raft.LeaderWithID(); id != "" {
		return true, nil
	}
	var servers []Member
	for _, m := range n.liveMembers() {
		if m.Expect != expect {
			if m.Expect != 0 {
				n.log.Warn("member expects a different cluster size", "member", m.Name, "its", m.Expect, "ours", expect)
			}
			continue
		}
		servers = append(servers, m)
	}
	if len(servers) < expect {
		return false, fmt.Errorf("%d of %d servers seen", len(servers), expect)
	}
	for _, m := range servers {
		if m.Name == n.cfg.Name {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		st, err := n.peers.internal(m.GRPC).Status(ctx, &proto.StatusRequest{})
		cancel()
		if err != nil {
			return false, fmt.Errorf("status of %s: %w", m.Name, err)
		}
		if st.HasState || st.Leader != "" {
			n.log.Info("a peer already holds raft state; waiting to be added", "peer", m.Name)
			return true, nil
		}
	}
	var conf raft.Configuration
	for _, m := range servers {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.Raft),
		})
	}
	n.log.Info("bootstrapping cluster", "servers", len(conf.Servers))
	if err := n.raft.BootstrapCluster(conf).Error(); err != nil && err != raft.ErrCantBootstrap {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	return true, nil
}
