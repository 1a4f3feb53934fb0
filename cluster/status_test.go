package cluster

import (
	"errors"
	"testing"

	"github.com/dux-io/dux/proto"
)

func st(state string, term, commit, revision uint64) *proto.StatusResponse {
	return &proto.StatusResponse{RaftState: state, Term: term, CommitIndex: commit,
		RaftAppliedIndex: revision, AppliedIndex: revision, LastIndex: commit}
}

func lagOf(ms *proto.MemberStatus) any {
	if ms.Lag == nil {
		return nil
	}
	return *ms.Lag
}

// Rule: a member's lag is the leader's commit index minus the revision the
// member answered (never negative), and its health says whether it is
// caught up (within catchUpEntries), answering, and in gossip's good books.
func TestBuildStatus_LagAndHealth(t *testing.T) {
	members := []*proto.MemberInfo{
		{Name: "a", Status: "alive", Raft: "voter", Leader: true},
		{Name: "b", Status: "alive", Raft: "voter"},
		{Name: "c", Status: "alive", Raft: "voter"},
		{Name: "d", Status: "suspect", Raft: "nonvoter"},
		{Name: "e", Status: "alive", Raft: "nonvoter"},
		{Name: "f", Status: "failed", Raft: "voter"},
		{Name: "g", Status: "left", Raft: "none"},
		{Name: "h", Status: "alive", Raft: "none"},
	}
	probes := []probe{
		{resp: st("leader", 4, 1000, 1000)},
		{resp: st("follower", 4, 998, 990)},
		{resp: st("follower", 4, 1003, 1003)}, // answered after the leader: ahead
		{resp: st("follower", 4, 1000, 1000)},
		{resp: st("follower", 4, 1000, 700)},
		{},
		{},
		{resp: st("follower", 0, 0, 0)},
	}
	probes[5].err = errors.New("connection refused")
	got := buildStatus("b", "a", members, probes, probes[1].resp)
	if got.Leader != "a" || got.AnsweredBy != "b" || got.Term != 4 || got.CommitIndex != 1000 || got.Revision != 1000 {
		t.Errorf("cluster figures: got %+v, want the leader's: term 4, commit 1000, revision 1000", got)
	}
	want := []struct {
		health string
		lag    any
	}{
		{HealthHealthy, uint64(0)},
		{HealthHealthy, uint64(10)},
		{HealthHealthy, uint64(0)},
		{HealthSuspect, uint64(0)},
		{HealthLagging, uint64(300)},
		{"failed", nil},
		{"left", nil},
		{HealthLagging, uint64(1000)},
	}
	if len(got.Members) != len(want) {
		t.Fatalf("members: got %d, want %d", len(got.Members), len(want))
	}
	for i, w := range want {
		ms := got.Members[i]
		if ms.Member.Name != members[i].Name || ms.Health != w.health || lagOf(ms) != w.lag {
			t.Errorf("%s: health %q lag %v, want %q lag %v", members[i].Name, ms.Health, lagOf(ms), w.health, w.lag)
		}
	}
	if f := got.Members[5]; f.Reachable || f.Error != "Unknown: connection refused" {
		t.Errorf("f: reachable %v error %q, want unreachable with the probe's error", f.Reachable, f.Error)
	}
	if b := got.Members[1]; b.RaftState != "follower" || b.CommitIndex != 998 || b.Revision != 990 {
		t.Errorf("b: got %+v, want its own figures", b)
	}
}

// Rule: with no leader known, or a leader that did not answer, lag is
// unknown and the cluster's figures are the answering member's own.
func TestBuildStatus_NoLeaderAnswer(t *testing.T) {
	members := []*proto.MemberInfo{
		{Name: "a", Status: "alive", Raft: "voter"},
		{Name: "b", Status: "alive", Raft: "voter"},
	}
	self := st("follower", 7, 50, 49)
	for _, leader := range []string{"", "a"} {
		probes := []probe{{err: errors.New("deadline exceeded")}, {resp: self}}
		got := buildStatus("b", leader, members, probes, self)
		if got.Leader != leader || got.Term != 7 || got.CommitIndex != 50 || got.Revision != 49 {
			t.Errorf("leader %q: got %+v, want b's own figures", leader, got)
		}
		if a := got.Members[0]; a.Health != HealthUnreachable || a.Lag != nil {
			t.Errorf("leader %q: a: health %q lag %v, want unreachable, no lag", leader, a.Health, lagOf(a))
		}
		if b := got.Members[1]; b.Health != HealthHealthy || b.Lag != nil {
			t.Errorf("leader %q: b: health %q lag %v, want healthy, no lag", leader, b.Health, lagOf(b))
		}
	}
}
