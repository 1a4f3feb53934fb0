package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// HostsPrefix is where the membership sensor writes what it sees.
const HostsPrefix = "/hosts/"

// MembershipOrigin is the origin of the membership sensor's writes.
const MembershipOrigin = "sensor/membership"

// Host is the value of /hosts/<name>.
type Host struct {
	Name      string            `json:"name"`
	Status    Status            `json:"status"`
	Raft      string            `json:"raft"` // voter, nonvoter or none
	Addresses map[string]string `json:"addresses"`
	Labels    map[string]string `json:"labels,omitempty"`
	Resources Resources         `json:"resources"`
	Docker    bool              `json:"docker"`
	Version   string            `json:"version,omitempty"`
	// ChangedAt is when the leader saw the status change.
	ChangedAt time.Time `json:"changed_at"`
}

// catchUpEntries is how close to the leader's commit index a non-voter
// must be before it is promoted.
const catchUpEntries = 256

// reconcile brings Raft and /hosts/ in line with gossip. It runs on the
// leader from scratch each time, so nothing depends on who led before.
func (n *Node) reconcile(ctx context.Context) {
	members := n.Members()
	n.reconcileRaft(ctx, members)
	n.reconcileHosts(ctx, members)
}

func (n *Node) raftServers() (map[raft.ServerID]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := make(map[raft.ServerID]raft.Server)
	for _, s := range f.Configuration().Servers {
		out[s.ID] = s
	}
	return out, nil
}

// reconcileRaft is the autopilot: new members join as non-voters; up to
// cfg.Voters healthy members are voters, non-voters being promoted once they
// have caught up; a failed voter is demoted once it has been replaced;
// members that left are removed, and so are those that stayed failed past
// the dead-server timeout, but never below MinQuorum voters.
func (n *Node) reconcileRaft(ctx context.Context, members []Member) {
	servers, err := n.raftServers()
	if err != nil {
		n.log.Warn("autopilot: read raft configuration", "error", err)
		return
	}
	byName := make(map[string]Member, len(members))
	for _, m := range members {
		byName[m.Name] = m
	}
	healthy := func(id raft.ServerID) bool {
		m, ok := byName[string(id)]
		return ok && (m.Status == StatusAlive || m.Status == StatusSuspect)
	}
	voters, healthyVoters := 0, 0
	for id, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			if healthy(id) || id == raft.ServerID(n.cfg.Name) {
				healthyVoters++
			}
		}
	}
	change := func(what string, m Member, f raft.IndexFuture) bool {
		if err := f.Error(); err != nil {
			n.log.Warn("autopilot: "+what+" failed", "member", m.Name, "error", err)
			return false
		}
		n.log.Info("autopilot: "+what, "member", m.Name, "address", m.Raft)
		return true
	}
	const timeout = 5 * time.Second
	// Add new members and follow address changes.
	for _, m := range members {
		id, addr := raft.ServerID(m.Name), raft.ServerAddress(m.Raft)
		s, known := servers[id]
		if m.Status != StatusAlive || m.Leaving || (known && s.Address == addr) {
			continue
		}
		if known && s.Suffrage == raft.Voter {
			change("updated voter address", m, n.raft.AddVoter(id, addr, 0, timeout))
		} else {
			change("added non-voter", m, n.raft.AddNonvoter(id, addr, 0, timeout))
		}
	}
	// Promote caught-up non-voters while there are too few healthy voters.
	for _, m := range members {
		if healthyVoters >= n.cfg.Voters {
			break
		}
		s, known := servers[raft.ServerID(m.Name)]
		if !known || s.Suffrage == raft.Voter || m.Status != StatusAlive || m.Leaving || !n.caughtUp(ctx, m) {
			continue
		}
		if change("promoted to voter", m, n.raft.AddVoter(s.ID, s.Address, 0, timeout)) {
			healthyVoters++
			voters++
		}
	}
	// Demote failed voters once enough healthy ones stand in, and remove
	// members that left or stayed failed too long.
	for _, m := range members {
		s, known := servers[raft.ServerID(m.Name)]
		if !known || m.Name == n.cfg.Name {
			continue
		}
		gone := m.Status == StatusLeft || (m.Status == StatusFailed && time.Since(m.Since) > n.cfg.DeadServerTimeout)
		switch {
		case m.Status != StatusFailed && m.Status != StatusLeft:
		case s.Suffrage == raft.Voter && m.Status == StatusFailed && gone && voters-1 < n.cfg.MinQuorum:
			n.log.Warn("autopilot: not removing a voter: it would leave fewer than min-quorum voters",
				"member", m.Name, "voters", voters, "min_quorum", n.cfg.MinQuorum)
		case gone:
			if change("removed server", m, n.raft.RemoveServer(s.ID, 0, timeout)) && s.Suffrage == raft.Voter {
				voters--
			}
		case s.Suffrage == raft.Voter && healthyVoters >= n.cfg.Voters:
			if change("demoted failed voter", m, n.raft.DemoteVoter(s.ID, 0, timeout)) {
				voters--
			}
		}
	}
}

// caughtUp asks a member how far it has applied.
func (n *Node) caughtUp(ctx context.Context, m Member) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := n.peers.internal(m.GRPC).Status(ctx, &proto.StatusRequest{})
	if err != nil {
		return false
	}
	return st.AppliedIndex+catchUpEntries >= n.raft.CommitIndex()
}

// reconcileHosts writes what gossip and Raft say of each member to
// /hosts/<name>, only where it changed; a member removed from Raft after
// the dead-server timeout loses its entry.
func (n *Node) reconcileHosts(ctx context.Context, members []Member) {
	servers, err := n.raftServers()
	if err != nil {
		return
	}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		key := HostsPrefix + m.Name
		if fsm.ValidateKey(key) != nil {
			continue
		}
		seen[m.Name] = true
		s, inRaft := servers[raft.ServerID(m.Name)]
		gone := (m.Status == StatusFailed || m.Status == StatusLeft) && time.Since(m.Since) > n.cfg.DeadServerTimeout
		if gone && !inRaft {
			n.deleteHost(ctx, key)
			n.tracker.forget(m.Name)
			continue
		}
		h := Host{
			Name: m.Name, Status: m.Status, Raft: "none", Addresses: m.Addresses(), Labels: m.Labels,
			Resources: Resources{CPU: m.CPU, Memory: m.Memory}, Docker: m.Docker, Version: m.Version,
		}
		if inRaft {
			h.Raft = "voter"
			if s.Suffrage != raft.Voter {
				h.Raft = "nonvoter"
			}
		}
		n.writeHost(ctx, key, h)
	}
	// Entries of members this leader's gossip has never heard of: once
	// gossip has had time to settle, they are failed.
	if time.Since(n.started) < 30*time.Second {
		return
	}
	items, _, _, err := n.store.List(HostsPrefix, "", 0)
	if err != nil {
		return
	}
	for _, kv := range items {
		var h Host
		if json.Unmarshal(kv.Value, &h) != nil || seen[h.Name] || h.Status == StatusFailed || h.Status == StatusLeft {
			continue
		}
		h.Status = StatusFailed
		n.writeHost(ctx, kv.Key, h)
	}
}

// writeHost stores h unless the stored entry already says the same; the
// change time moves only when the status does.
func (n *Node) writeHost(ctx context.Context, key string, h Host) {
	prev, _, err := n.store.Get(key)
	var old Host
	if err == nil && json.Unmarshal(prev.Value, &old) == nil && old.Status == h.Status {
		h.ChangedAt = old.ChangedAt
	} else {
		h.ChangedAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	value, err := json.Marshal(h)
	if err != nil {
		return
	}
	if prev != nil && bytes.Equal(prev.Value, value) {
		return
	}
	if _, err := n.Put(ctx, &proto.PutRequest{Key: key, Value: value, Origin: MembershipOrigin}); err != nil {
		n.log.Warn("membership sensor: write host", "key", key, "error", err)
	}
}

func (n *Node) deleteHost(ctx context.Context, key string) {
	if _, _, err := n.store.Get(key); errors.Is(err, fsm.ErrNotFound) {
		return
	}
	if _, err := n.Delete(ctx, &proto.DeleteRequest{Key: key, Origin: MembershipOrigin}); err != nil {
		n.log.Warn("membership sensor: delete host", "key", key, "error", err)
	}
}
