package rpc

import (
	"context"
	"net/http"
	"testing"

	"github.com/dux-io/dux/proto"
)

type statusBackend struct {
	Backend
	resp *proto.ClusterStatusResponse
}

func (b statusBackend) ClusterStatus(context.Context) (*proto.ClusterStatusResponse, error) {
	return b.resp, nil
}

// Rule: GET /v1/cluster/status shows each member as /v1/cluster/members
// does, with its health and figures; an unknown lag is null, not 0.
func TestHTTP_ClusterStatus(t *testing.T) {
	lag := uint64(3)
	b := statusBackend{resp: &proto.ClusterStatusResponse{
		Leader: "a", Term: 2, CommitIndex: 40, AppliedIndex: 40, Revision: 40, AnsweredBy: "b",
		Members: []*proto.MemberStatus{
			{Member: &proto.MemberInfo{Name: "a", Status: "alive", Raft: "voter", Leader: true,
				Addresses: map[string]string{"grpc": "10.0.0.1:7700"}, Version: "v1"},
				Health: "healthy", Reachable: true, RaftState: "leader", Term: 2, CommitIndex: 40, Revision: 37, Lag: &lag},
			{Member: &proto.MemberInfo{Name: "c", Status: "failed", Raft: "voter"}, Health: "failed"},
		},
	}}
	code, m := serve(t, b, "GET", "/v1/cluster/status", "")
	if code != http.StatusOK || m["leader"] != "a" || m["commit_index"] != 40.0 || m["answered_by"] != "b" {
		t.Fatalf("got %d %v", code, m)
	}
	members := m["members"].([]any)
	a, c := members[0].(map[string]any), members[1].(map[string]any)
	if a["name"] != "a" || a["health"] != "healthy" || a["lag"] != 3.0 || a["raft_state"] != "leader" ||
		a["version"] != "v1" || a["addresses"].(map[string]any)["grpc"] != "10.0.0.1:7700" || a["revision"] != 37.0 {
		t.Errorf("member a: got %v", a)
	}
	if lag, ok := c["lag"]; !ok || lag != nil || c["health"] != "failed" || c["reachable"] != false {
		t.Errorf("member c: got %v, want health failed, unreachable, lag null", c)
	}
}
