package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dux-io/dux/proto"
)

// Status answers as a three-member cluster with one follower behind and
// one that did not answer.
func (f *fakeMember) Status(context.Context, *proto.ClusterStatusRequest) (*proto.ClusterStatusResponse, error) {
	lag := func(n uint64) *uint64 { return &n }
	member := func(name, status, raft string, leader bool) *proto.MemberInfo {
		return &proto.MemberInfo{Name: name, Status: status, Raft: raft, Leader: leader, Version: "1.2.0",
			Addresses: map[string]string{"grpc": "10.0.0." + name[1:] + ":7700"}}
	}
	return &proto.ClusterStatusResponse{
		Leader: "n1", Term: 3, CommitIndex: 1500, AppliedIndex: 1500, Revision: 1500, AnsweredBy: "n2",
		Members: []*proto.MemberStatus{
			{Member: member("n1", "alive", "voter", true), Health: "healthy", Reachable: true,
				RaftState: "leader", Term: 3, CommitIndex: 1500, Revision: 1500, Lag: lag(0)},
			{Member: member("n2", "alive", "voter", false), Health: "lagging", Reachable: true,
				RaftState: "follower", Term: 3, CommitIndex: 1490, Revision: 1200, Lag: lag(300)},
			{Member: member("n3", "alive", "nonvoter", false), Health: "unreachable",
				Error: "DeadlineExceeded: context deadline exceeded"},
		},
	}, nil
}

func TestCLI_Status(t *testing.T) {
	_, addr := startFakeMember(t)
	out, _, err := cliRun(t, "", "status", "--addr", addr)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	want := `Leader:    n1 (term 3)
Indexes:   commit 1500, applied 1500, revision 1500
Members:   3, 1 healthy (as seen by n2)

NAME  HEALTH       STATUS  RAFT      STATE     ADDRESS        VERSION  REVISION  LAG
n1    healthy      alive   voter     leader    10.0.0.1:7700  1.2.0    1500      0
n2    lagging      alive   voter     follower  10.0.0.2:7700  1.2.0    1200      300
n3    unreachable  alive   nonvoter  -         10.0.0.3:7700  1.2.0    -         -
n3 did not answer: DeadlineExceeded: context deadline exceeded
`
	if out != want {
		t.Errorf("status output:\ngot:\n%s\nwant:\n%s", out, want)
	}

	out, _, err = cliRun(t, "", "status", "--addr", addr, "-o", "json")
	if err != nil {
		t.Fatalf("status -o json: %v", err)
	}
	var s struct {
		Leader  string `json:"leader"`
		Term    uint64 `json:"term"`
		Members []struct {
			Name   string  `json:"name"`
			Health string  `json:"health"`
			Lag    *uint64 `json:"lag"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if s.Leader != "n1" || s.Term != 3 || len(s.Members) != 3 {
		t.Fatalf("status -o json: got %+v", s)
	}
	if m := s.Members[1]; m.Name != "n2" || m.Health != "lagging" || m.Lag == nil || *m.Lag != 300 {
		t.Errorf("n2: got %+v", m)
	}
	if m := s.Members[2]; m.Health != "unreachable" || m.Lag != nil {
		t.Errorf("n3: got %+v, want unreachable with a null lag", m)
	}
}

func TestCLI_StatusUsage(t *testing.T) {
	_, _, err := cliRun(t, "", "status", "extra")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("status extra: got %v (exit %d), want a usage error", err, exitCode(err))
	}
}
