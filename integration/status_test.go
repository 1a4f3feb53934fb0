//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/proto"
)

// clusterStatus is the part of `duxd status -o json` the tests read.
type clusterStatus struct {
	Leader      string `json:"leader"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commit_index"`
	Revision    uint64 `json:"revision"`
	AnsweredBy  string `json:"answered_by"`
	Members     []struct {
		Name      string            `json:"name"`
		Health    string            `json:"health"`
		Status    string            `json:"status"`
		Raft      string            `json:"raft"`
		Leader    bool              `json:"leader"`
		RaftState string            `json:"raft_state"`
		Addresses map[string]string `json:"addresses"`
		Version   string            `json:"version"`
		Revision  uint64            `json:"revision"`
		Lag       *uint64           `json:"lag"`
	} `json:"members"`
}

func statusJSON(t *testing.T, a *agent) (clusterStatus, error) {
	t.Helper()
	code, out := runDuxd(t, nil, "status", "--addr", a.grpc, "-o", "json")
	var s clusterStatus
	if code != 0 {
		return s, fmt.Errorf("duxd status -o json on %s: exit %d: %s", a.name, code, out)
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("duxd status -o json on %s is not JSON: %v\n%s", a.name, err, out)
	}
	return s, nil
}

// Rule: `duxd status` on any member shows the whole cluster: one leader,
// every member with its health, Raft role, address and version, and each
// one's lag behind the leader's commit index, 0 once writes have settled.
func TestStatus_ThreeMemberCluster(t *testing.T) {
	agents := startCluster(t, 3, "--gossip-profile", "local")
	leader := waitLeader(t, agents)
	follower := followers(agents, leader)[0]
	ctx := ctxT(t, 60*time.Second)
	var lastRev uint64
	for i := range 25 {
		resp, err := agents[i%3].state().Put(ctx, &proto.PutRequest{Key: fmt.Sprintf("/status-test/k%d", i), Value: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		lastRev = resp.Revision
	}

	// As JSON, from a follower: every member caught up once writes settle.
	var s clusterStatus
	eventually(t, 20*time.Second, func() error {
		var err error
		if s, err = statusJSON(t, follower); err != nil {
			return err
		}
		if len(s.Members) != 3 {
			return fmt.Errorf("%d members, want 3", len(s.Members))
		}
		for _, m := range s.Members {
			if m.Health != "healthy" || m.Lag == nil || *m.Lag != 0 {
				return fmt.Errorf("member %s: health %s, lag %v; want healthy with lag 0", m.Name, m.Health, m.Lag)
			}
		}
		return nil
	})
	if s.Leader != leader.name || s.AnsweredBy != follower.name || s.Term == 0 || s.CommitIndex < lastRev || s.Revision < lastRev {
		t.Errorf("cluster: got leader %q answered by %q, term %d, commit %d, revision %d; want leader %s, answered by %s, indexes >= %d",
			s.Leader, s.AnsweredBy, s.Term, s.CommitIndex, s.Revision, leader.name, follower.name, lastRev)
	}
	leaders := 0
	for i, m := range s.Members {
		a := agents[i] // members come by name: n1, n2, n3
		if m.Name != a.name || m.Status != "alive" || m.Raft != "voter" || m.Addresses["grpc"] != a.grpc ||
			m.Version == "" || m.Revision < lastRev {
			t.Errorf("member %d: got %+v, want %s alive voter at %s with a version and revision >= %d", i, m, a.name, a.grpc, lastRev)
		}
		if m.RaftState == "leader" {
			leaders++
			if !m.Leader || m.Name != leader.name {
				t.Errorf("member %s is in state leader; leader mark %v, want the leader %s", m.Name, m.Leader, leader.name)
			}
		} else if m.RaftState != "follower" {
			t.Errorf("member %s: raft state %q, want follower", m.Name, m.RaftState)
		}
	}
	if leaders != 1 {
		t.Errorf("%d members in state leader, want 1", leaders)
	}

	// The table, from the leader: three member rows, one leader, numeric lags.
	code, out := runDuxd(t, nil, "status", "--addr", leader.grpc)
	if code != 0 {
		t.Fatalf("duxd status: exit %d: %s", code, out)
	}
	t.Logf("duxd status:\n%s", out)
	if !strings.Contains(out, "Leader:    "+leader.name+" (term ") || !strings.Contains(out, "Members:   3, 3 healthy") {
		t.Errorf("duxd status header: got\n%s", out)
	}
	rows, leaderRows := 0, 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 9 || !strings.HasPrefix(f[0], "n") {
			continue
		}
		rows++
		if f[4] == "leader" {
			leaderRows++
		}
		if f[8] != "0" {
			t.Errorf("row %q: lag %q, want 0", line, f[8])
		}
	}
	if rows != 3 || leaderRows != 1 {
		t.Errorf("duxd status: %d member rows, %d leaders; want 3 and 1:\n%s", rows, leaderRows, out)
	}

	// A member that is down: unreachable (or failed, once gossip says so),
	// with no lag, and the others still answer.
	down := followers(agents, leader)[1]
	down.kill()
	s, err := statusJSON(t, leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Members {
		switch {
		case m.Name == down.name && (m.Health != "unreachable" && m.Health != "failed" || m.Lag != nil):
			t.Errorf("killed member %s: health %s lag %v, want unreachable or failed, no lag", m.Name, m.Health, m.Lag)
		case m.Name != down.name && (m.Health != "healthy" || m.Lag == nil):
			t.Errorf("member %s: health %s lag %v, want healthy with a lag", m.Name, m.Health, m.Lag)
		}
	}
}
