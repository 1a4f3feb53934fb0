//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/dux-io/dux/proto"
)

func hostStatus(ctx context.Context, m *cmember, name string) (string, error) {
	resp, err := m.state().Get(ctx, &proto.GetRequest{Key: "/hosts/" + name, Consistency: proto.Consistency_STALE})
	if err != nil {
		return "", err
	}
	var h struct {
		Status string `json:"status"`
	}
	err = json.Unmarshal(resp.Kv.Value, &h)
	return h.Status, err
}

// Rule: a member cut off the network becomes suspect, then failed, in the
// state; healed, it is alive again and catches up with what was written
// meanwhile.
func TestMembership_PartitionedMemberFailsAndHeals(t *testing.T) {
	requireDocker(t)
	net := newNetwork(t)
	ms := startContainers(t, net, 3, "--gossip-profile", "local")
	waitContainerLeader(t, ms)
	ctx := ctxT(t, 3*time.Minute)
	// Cut off a member that is not the leader, so writes go on throughout.
	leader, err := ms[0].cluster().Leader(ctx, &proto.LeaderRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var cut *cmember
	var rest []*cmember
	for _, m := range ms {
		if cut == nil && m.name != leader.Id {
			cut = m
		} else {
			rest = append(rest, m)
		}
	}
	cut.disconnect()
	// It is cut off: it does not even answer the test.
	probe, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = cut.cluster().Members(probe, &proto.MembersRequest{})
	cancel()
	if err == nil {
		t.Fatal("the disconnected member still answers")
	}
	seen := map[string]bool{}
	eventually(t, 60*time.Second, func() error {
		st, err := hostStatus(ctx, rest[0], cut.name)
		if err != nil {
			return err
		}
		seen[st] = true
		if st != "failed" {
			return fmt.Errorf("/hosts/%s is %s", cut.name, st)
		}
		return nil
	})
	t.Logf("statuses seen while cut off: %v", seen)
	for i := range 50 {
		if _, err := rest[i%2].state().Put(ctx, &proto.PutRequest{Key: fmt.Sprintf("/part/k%02d", i), Value: []byte(`1`)}); err != nil {
			t.Fatalf("write during the partition: %v", err)
		}
	}
	cut.connect()
	eventually(t, 60*time.Second, func() error {
		st, err := hostStatus(ctx, rest[0], cut.name)
		if err != nil {
			return err
		}
		if st != "alive" {
			return fmt.Errorf("/hosts/%s is %s", cut.name, st)
		}
		resp, err := cut.state().List(ctx, &proto.ListRequest{Prefix: "/part/", Consistency: proto.Consistency_STALE})
		if err != nil {
			return err
		}
		if len(resp.Items) != 50 {
			return fmt.Errorf("healed member has %d of 50 keys", len(resp.Items))
		}
		return nil
	})
}
