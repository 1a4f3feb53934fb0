package cluster

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/proto"
)

// statusProbeTimeout bounds how long ClusterStatus waits for a member.
const statusProbeTimeout = 2 * time.Second

// Health of a member in ClusterStatus, beside the gossip statuses failed
// and left.
const (
	HealthHealthy     = "healthy"
	HealthLagging     = "lagging"
	HealthSuspect     = "suspect"
	HealthUnreachable = "unreachable"
)

// localStatus is this member's answer to Internal.Status.
func (n *Node) localStatus() *proto.StatusResponse {
	_, leader := n.raft.LeaderWithID()
	return &proto.StatusResponse{
		Name:             n.cfg.Name,
		HasState:         n.hasState(),
		Leader:           string(leader),
		AppliedIndex:     n.store.Revision(),
		RaftState:        raftStateName(n.raft.State()),
		Term:             n.raft.CurrentTerm(),
		CommitIndex:      n.raft.CommitIndex(),
		RaftAppliedIndex: n.raft.AppliedIndex(),
		LastIndex:        n.raft.LastIndex(),
	}
}

func raftStateName(s raft.RaftState) string { return strings.ToLower(s.String()) }

// probe is what one member answered to Internal.Status.
type probe struct {
	resp *proto.StatusResponse
	err  error
}

// ClusterStatus asks every member that gossip calls alive or suspect for
// its Raft figures and revision (hashicorp/raft does not expose the
// leader's per-follower match index), in parallel, and returns them with
// each member's lag behind the leader's commit index. The figures are
// taken within a moment of each other, not at one instant, so the lag of
// a member under write load is approximate.
func (n *Node) ClusterStatus(ctx context.Context) (*proto.ClusterStatusResponse, error) {
	members := n.MemberList()
	probes := make([]probe, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		switch {
		case m.Name == n.cfg.Name:
			probes[i] = probe{resp: n.localStatus()}
		case m.Status == string(StatusAlive) || m.Status == string(StatusSuspect):
			wg.Add(1)
			go func(i int, addr string) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(ctx, statusProbeTimeout)
				defer cancel()
				resp, err := n.peers.internal(addr).Status(ctx, &proto.StatusRequest{})
				probes[i] = probe{resp: resp, err: err}
			}(i, m.Addresses["grpc"])
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, leader := n.raft.LeaderWithID()
	return buildStatus(n.cfg.Name, string(leader), members, probes, n.localStatus()), nil
}

// buildStatus turns the members and what each answered (a zero probe: not
// asked) into the cluster's status. self is the answering member's own
// status, used for the cluster's figures when the leader did not answer.
func buildStatus(answeredBy, leader string, members []*proto.MemberInfo, probes []probe, self *proto.StatusResponse) *proto.ClusterStatusResponse {
	out := &proto.ClusterStatusResponse{Leader: leader, AnsweredBy: answeredBy}
	var leaderStatus *proto.StatusResponse
	for i, m := range members {
		if m.Name == leader && leader != "" && probes[i].resp != nil {
			leaderStatus = probes[i].resp
		}
	}
	top := leaderStatus
	if top == nil {
		top = self
	}
	out.Term, out.CommitIndex, out.AppliedIndex, out.Revision = top.Term, top.CommitIndex, top.RaftAppliedIndex, top.AppliedIndex

	for i, m := range members {
		ms := &proto.MemberStatus{Member: m}
		p := probes[i]
		switch {
		case p.resp != nil:
			r := p.resp
			ms.Reachable = true
			ms.RaftState, ms.Term, ms.CommitIndex = r.RaftState, r.Term, r.CommitIndex
			ms.AppliedIndex, ms.Revision, ms.LastIndex = r.RaftAppliedIndex, r.AppliedIndex, r.LastIndex
			if leaderStatus != nil {
				lag := uint64(0)
				if leaderStatus.CommitIndex > r.AppliedIndex {
					lag = leaderStatus.CommitIndex - r.AppliedIndex
				}
				ms.Lag = &lag
			}
		case p.err != nil:
			st := status.Convert(p.err)
			ms.Error = st.Code().String() + ": " + st.Message()
		}
		ms.Health = health(m, ms)
		out.Members = append(out.Members, ms)
	}
	return out
}

func health(m *proto.MemberInfo, ms *proto.MemberStatus) string {
	switch {
	case m.Status == string(StatusFailed) || m.Status == string(StatusLeft):
		return m.Status
	case !ms.Reachable:
		return HealthUnreachable
	case m.Status == string(StatusSuspect):
		return HealthSuspect
	case m.Raft == "none", ms.Lag != nil && *ms.Lag > catchUpEntries:
		return HealthLagging
	}
	return HealthHealthy
}
