package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/proto"
)

// ErrJoin is returned when no address given to Join answered.
var ErrJoin = errors.New("cluster: join failed")

// ErrUnknownMember is returned for a member name Raft does not know.
var ErrUnknownMember = errors.New("cluster: unknown member")

// MemberList describes every member: gossip's view of its health, and its
// Raft role.
func (n *Node) MemberList() []*proto.MemberInfo {
	servers, _ := n.raftServers()
	_, leader := n.raft.LeaderWithID()
	var out []*proto.MemberInfo
	for _, m := range n.Members() {
		info := &proto.MemberInfo{
			Name: m.Name, Status: string(m.Status), Raft: "none", Leader: raft.ServerID(m.Name) == leader,
			Addresses: m.Addresses(), Labels: m.Labels, Docker: m.Docker, Version: m.Version,
			Resources: &proto.Resources{Cpu: m.CPU, Memory: m.Memory},
		}
		if s, ok := servers[raft.ServerID(m.Name)]; ok {
			info.Raft = "voter"
			if s.Suffrage != raft.Voter {
				info.Raft = "nonvoter"
			}
		}
		out = append(out, info)
	}
	return out
}

// JoinCluster joins the gossip of the members at addrs; the leader then
// adds this member to Raft.
func (n *Node) JoinCluster(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, fmt.Errorf("%w: no address given", ErrJoin)
	}
	for _, a := range addrs {
		if _, _, err := splitHostPort(a); err != nil {
			return 0, fmt.Errorf("%w: address %q: %v", ErrConfig, a, err)
		}
	}
	k, err := n.Join(addrs)
	if err != nil {
		return 0, fmt.Errorf("%w: no member answered at %v: %v", ErrJoin, addrs, err)
	}
	return k, nil
}

// TransferLeader hands leadership to the member named to, or to the voter
// Raft picks when to is empty. A follower passes the request to the leader.
func (n *Node) TransferLeader(ctx context.Context, to string) (string, error) {
	if n.raft.State() != raft.Leader {
		var leader string
		err := n.withLeader(ctx, func(ctx context.Context, l Member) error {
			resp, err := n.peers.cluster(l.GRPC).TransferLeader(ctx, &proto.TransferLeaderRequest{To: to})
			if err == nil {
				leader = resp.Leader
			}
			return err
		})
		if errors.Is(err, errLeaderIsSelf) {
			return n.TransferLeader(ctx, to)
		}
		return leader, err
	}
	var f raft.Future
	if to == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		servers, err := n.raftServers()
		if err != nil {
			return "", err
		}
		s, ok := servers[raft.ServerID(to)]
		if !ok || s.Suffrage != raft.Voter {
			return "", fmt.Errorf("%w: %q is not a voter", ErrUnknownMember, to)
		}
		if to == n.cfg.Name {
			return to, nil
		}
		f = n.raft.LeadershipTransferToServer(s.ID, s.Address)
	}
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("%w: leadership transfer: %v", ErrNoLeader, err)
	}
	return n.waitLeader(ctx)
}

// waitLeader waits until a leader is known and returns its name.
func (n *Node) waitLeader(ctx context.Context) (string, error) {
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return string(id), nil
		}
		if err := n.pause(ctx); err != nil {
			return "", err
		}
	}
}

// RemovePeer removes a member from the Raft configuration. A follower
// passes the request to the leader.
func (n *Node) RemovePeer(ctx context.Context, id string) error {
	if n.raft.State() != raft.Leader {
		err := n.withLeader(ctx, func(ctx context.Context, l Member) error {
			_, err := n.peers.cluster(l.GRPC).RemovePeer(ctx, &proto.RemovePeerRequest{Id: id})
			return err
		})
		if errors.Is(err, errLeaderIsSelf) {
			return n.RemovePeer(ctx, id)
		}
		return err
	}
	servers, err := n.raftServers()
	if err != nil {
		return err
	}
	if _, ok := servers[raft.ServerID(id)]; !ok {
		return fmt.Errorf("%w: %q is not in the Raft configuration", ErrUnknownMember, id)
	}
	if id == n.cfg.Name {
		return fmt.Errorf("%w: the leader cannot remove itself; transfer leadership first", ErrNotLeader)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("%w: remove %s: %v", ErrNoLeader, id, err)
	}
	n.log.Info("removed server", "member", id)
	return nil
}

// Leave leaves the cluster gracefully: a leader first hands leadership on,
// then the member is removed from Raft, then it leaves gossip, so the
// others mark it left rather than failed. The caller stops the agent
// afterwards.
func (n *Node) Leave(ctx context.Context) error {
	n.log.Info("leaving the cluster")
	// Say so first: the autopilot then neither re-adds nor promotes this
	// member, and the others record a leave, not a failure.
	n.updateMu.Lock()
	n.metaMu.Lock()
	n.meta.Leaving = true
	n.metaMu.Unlock()
	if err := n.ml.UpdateNode(5 * time.Second); err != nil {
		n.log.Warn("leave: announce", "error", err)
	}
	n.updateMu.Unlock()
	if n.IsLeader() && n.voterCount() > 1 {
		if _, err := n.TransferLeader(ctx, ""); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		for n.IsLeader() {
			if err := n.pause(ctx); err != nil {
				return fmt.Errorf("leave: leadership did not move: %w", err)
			}
		}
	}
	if servers, err := n.raftServers(); err == nil && len(servers) > 1 {
		if _, ok := servers[raft.ServerID(n.cfg.Name)]; ok {
			if err := n.RemovePeer(ctx, n.cfg.Name); err != nil {
				return fmt.Errorf("leave: %w", err)
			}
		}
	}
	if err := n.ml.Leave(5 * time.Second); err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	// Give the leave a moment to spread before gossip stops.
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	n.leftOnce.Do(func() { close(n.left) })
	return nil
}

// Left is closed once the member has left the cluster: the agent stops.
func (n *Node) Left() <-chan struct{} { return n.left }
