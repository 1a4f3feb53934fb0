//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dux-io/dux/proto"
)

// listAll pages through every key under prefix on one agent.
func listAll(ctx context.Context, a *agent, prefix string, c proto.Consistency) (map[string]*proto.KeyValue, uint64, error) {
	out := make(map[string]*proto.KeyValue)
	var after string
	var rev uint64
	for {
		resp, err := a.state().List(ctx, &proto.ListRequest{Prefix: prefix, After: after, Limit: 1000, Consistency: c})
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Revision
		}
		for _, kv := range resp.Items {
			out[kv.Key] = kv
		}
		if resp.Next == "" {
			return out, rev, nil
		}
		after = resp.Next
	}
}

// Rule: a write acknowledged through any member is visible to a
// linearizable read on every other member right after.
func TestCluster_PutOnFollowerIsReadLinearizablyEverywhere(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	fs := followers(agents, leader)
	ctx := ctxT(t, 30*time.Second)
	for i := range 20 {
		writer := fs[i%2]
		key := fmt.Sprintf("/config/app/k%d", i)
		val := fmt.Sprintf(`{"i":%d}`, i)
		put, err := writer.state().Put(ctx, &proto.PutRequest{Key: key, Value: []byte(val), Origin: "test"})
		if err != nil {
			t.Fatalf("put %s on follower %s: %v", key, writer.name, err)
		}
		for _, reader := range agents {
			got, err := reader.state().Get(ctx, &proto.GetRequest{Key: key})
			if err != nil {
				t.Fatalf("get %s on %s: %v", key, reader.name, err)
			}
			if string(got.Kv.Value) != val || got.Kv.ModRevision != put.Revision || got.Kv.Origin != "test" {
				t.Fatalf("get %s on %s = %s@%d origin %q, want %s@%d origin test",
					key, reader.name, got.Kv.Value, got.Kv.ModRevision, got.Kv.Origin, val, put.Revision)
			}
		}
	}
}

// writeLoad runs writers against every agent until stop is closed, and
// returns each acknowledged key with its value.
func writeLoad(agents []*agent, perAgent int, stop <-chan struct{}) (acked func() map[string]string, wait func()) {
	var mu sync.Mutex
	ack := make(map[string]string)
	var wg sync.WaitGroup
	for i, a := range agents {
		for w := range perAgent {
			wg.Add(1)
			go func(a *agent, id int) {
				defer wg.Done()
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					key := fmt.Sprintf("/load/w%d/%06d", id, seq)
					val := fmt.Sprintf(`{"writer":%d,"seq":%d}`, id, seq)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := a.state().Put(ctx, &proto.PutRequest{Key: key, Value: []byte(val)})
					cancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					mu.Lock()
					ack[key] = val
					mu.Unlock()
				}
			}(a, i*perAgent+w)
		}
	}
	return func() map[string]string {
			mu.Lock()
			defer mu.Unlock()
			out := make(map[string]string, len(ack))
			for k, v := range ack {
				out[k] = v
			}
			return out
		}, func() {
			wg.Wait()
		}
}

func checkAcked(t *testing.T, a *agent, acked map[string]string, c proto.Consistency) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, _, err := listAll(ctx, a, "/load/", c)
	if err != nil {
		return fmt.Errorf("list on %s: %w", a.name, err)
	}
	missing := 0
	var example string
	for k, v := range acked {
		kv, ok := got[k]
		if !ok || string(kv.Value) != v {
			missing++
			example = k
		}
	}
	if missing > 0 {
		return fmt.Errorf("%s lacks %d of %d acknowledged writes (e.g. %s)", a.name, missing, len(acked), example)
	}
	return nil
}

// Rule: no acknowledged write is lost when the leader is killed under
// load, and a restarted member catches up.
func TestCluster_LeaderKillUnderWriteLoadLosesNothing(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)

	stop := make(chan struct{})
	acked, wait := writeLoad(agents, 3, stop)
	time.Sleep(2 * time.Second)
	before := len(acked())
	leader.kill()
	killedAt := time.Now()
	t.Logf("killed leader %s after %d acknowledged writes", leader.name, before)

	survivors := followers(agents, leader)
	newLeader := waitLeader(t, survivors)
	t.Logf("new leader %s after %v", newLeader.name, time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	close(stop)
	wait()
	all := acked()
	if len(all) <= before {
		t.Fatalf("no write was acknowledged after the leader was killed (%d before, %d in all)", before, len(all))
	}
	t.Logf("%d writes acknowledged in all", len(all))
	for _, a := range survivors {
		if err := checkAcked(t, a, all, proto.Consistency_LINEARIZABLE); err != nil {
			t.Fatal(err)
		}
	}
	leader.start()
	eventually(t, 30*time.Second, func() error {
		return checkAcked(t, leader, all, proto.Consistency_STALE)
	})
}

// Rule: a member restarted after a snapshot recovers the same state and
// revision from snapshot + log; so does a whole cluster restarted.
func TestCluster_RestartAfterSnapshotRecoversStateAndRevision(t *testing.T) {
	agents := startCluster(t, 3, "--raft-snapshot-threshold", "100", "--raft-snapshot-interval", "200ms",
		"--raft-trailing-logs", "20")
	leader := waitLeader(t, agents)
	ctx := ctxT(t, 60*time.Second)
	lease, err := leader.state().LeaseGrant(ctx, &proto.LeaseGrantRequest{TtlSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		req := &proto.PutRequest{Key: fmt.Sprintf("/snap/k%04d", i), Value: []byte(fmt.Sprintf(`{"i":%d}`, i)), Origin: "snap-test"}
		if i%10 == 0 {
			req.Lease = lease.Id
		}
		if _, err := agents[i%3].state().Put(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		eventually(t, 20*time.Second, func() error {
			snaps, _ := filepath.Glob(filepath.Join(a.dir, "raft", "snapshots", "*", "meta.json"))
			if len(snaps) == 0 {
				return fmt.Errorf("%s has no snapshot yet", a.name)
			}
			return nil
		})
	}
	want, wantRev, err := listAll(ctx, leader, "/snap/", proto.Consistency_LINEARIZABLE)
	if err != nil {
		t.Fatal(err)
	}
	sameState := func(a *agent, c proto.Consistency, exactRev bool) error {
		got, rev, err := listAll(ctx, a, "/snap/", c)
		if err != nil {
			return err
		}
		if rev < wantRev {
			return fmt.Errorf("%s at revision %d, want at least %d", a.name, rev, wantRev)
		}
		if exactRev {
			// The membership sensor may have written since: the leader's
			// own revision is the one to match.
			_, lrev, err := listAll(ctx, leader, "/snap/", proto.Consistency_STALE)
			if err != nil {
				return err
			}
			if rev != lrev {
				return fmt.Errorf("%s at revision %d, the leader at %d", a.name, rev, lrev)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s has %d keys, want %d", a.name, len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			if g == nil || string(g.Value) != string(w.Value) || g.ModRevision != w.ModRevision ||
				g.CreateRevision != w.CreateRevision || g.Version != w.Version || g.Lease != w.Lease || g.Origin != w.Origin {
				return fmt.Errorf("%s: key %s = %v, want %v", a.name, k, g, w)
			}
		}
		return nil
	}

	// One follower, restarted while the cluster is idle, comes back at the
	// leader's exact revision.
	f := followers(agents, leader)[0]
	f.stop()
	f.start()
	eventually(t, 30*time.Second, func() error { return sameState(f, proto.Consistency_STALE, true) })

	// The whole cluster, stopped and restarted, keeps every key with its
	// revisions, and the lease still owns its keys.
	for _, a := range agents {
		a.stop()
	}
	for _, a := range agents {
		a.start()
	}
	leader = waitLeader(t, agents)
	for _, a := range agents {
		eventually(t, 30*time.Second, func() error { return sameState(a, proto.Consistency_LINEARIZABLE, false) })
	}
	rv, err := leader.state().LeaseRevoke(ctx, &proto.LeaseRevokeRequest{Id: lease.Id})
	if err != nil {
		t.Fatal(err)
	}
	if rv.Deleted != 40 {
		t.Fatalf("revoking the lease after restart deleted %d keys, want 40", rv.Deleted)
	}
}

// Rule: a key written with a lease disappears once the lease expires, and
// keep-alives through any member hold it.
func TestCluster_LeaseExpiryDeletesKeys(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	f := followers(agents, leader)[0]
	ctx := ctxT(t, 60*time.Second)
	held, err := f.state().LeaseGrant(ctx, &proto.LeaseGrantRequest{TtlSeconds: 2})
	if err != nil {
		t.Fatal(err)
	}
	short, err := f.state().LeaseGrant(ctx, &proto.LeaseGrantRequest{TtlSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		key   string
		lease uint64
	}{{"/lease/held", held.Id}, {"/lease/short", short.Id}} {
		if _, err := f.state().Put(ctx, &proto.PutRequest{Key: p.key, Value: []byte(`"x"`), Lease: p.lease}); err != nil {
			t.Fatal(err)
		}
	}
	var kept atomic.Bool
	kept.Store(true)
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := f.state().LeaseKeepAlive(ctx, &proto.LeaseKeepAliveRequest{Id: held.Id}); err != nil {
			t.Fatalf("keep-alive through follower: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, a := range agents {
		if _, err := a.state().Get(ctx, &proto.GetRequest{Key: "/lease/held"}); err != nil {
			t.Fatalf("%s: kept-alive key is gone: %v", a.name, err)
		}
		if _, err := a.state().Get(ctx, &proto.GetRequest{Key: "/lease/short"}); err == nil {
			t.Fatalf("%s: key of the expired lease is still there", a.name)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if _, err := f.state().Get(ctx, &proto.GetRequest{Key: "/lease/held"}); err == nil {
			return fmt.Errorf("key still there after keep-alives stopped")
		}
		return nil
	})
}

// Rule: a transaction's get returns at most its limit of keys and says
// "more" when keys were left out, over HTTP and gRPC, on a follower that
// forwards the transaction to the leader; the get sees the branch's earlier
// puts.
func TestCluster_TxnGetLimitThroughFollower(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	f := followers(agents, leader)[0]
	body := `{"success":[{"type":"put","key":"/lim/a","value":1},{"type":"put","key":"/lim/b","value":2},
	  {"type":"put","key":"/lim/c","value":3},{"type":"get","key":"/lim/","prefix":true,"limit":2}]}`
	code, b := httpDo(t, "POST", "http://"+f.http+"/v1/txn", []byte(body))
	if code != 200 {
		t.Fatalf("txn: %d %s", code, b)
	}
	var resp struct {
		Results []struct {
			Kvs []struct {
				Key string `json:"key"`
			} `json:"kvs"`
			More bool `json:"more"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("txn response %s: %v", b, err)
	}
	if len(resp.Results) != 4 {
		t.Fatalf("txn response %s: want 4 results", b)
	}
	if got := resp.Results[3]; len(got.Kvs) != 2 || got.Kvs[0].Key != "/lim/a" || got.Kvs[1].Key != "/lim/b" || !got.More {
		t.Fatalf("get with limit 2 = %+v, want /lim/a and /lim/b with more", got)
	}

	ctx := ctxT(t, 30*time.Second)
	for _, tt := range []struct {
		limit uint32
		keys  int
		more  bool
	}{{1, 1, true}, {3, 3, false}, {0, 3, false}} {
		res, err := f.state().Txn(ctx, &proto.TxnRequest{Success: []*proto.Op{
			{Type: proto.Op_GET, Key: "/lim/", Prefix: true, Limit: tt.limit},
		}})
		if err != nil {
			t.Fatalf("limit %d: %v", tt.limit, err)
		}
		if got := res.Results[0]; len(got.Kvs) != tt.keys || got.More != tt.more {
			t.Errorf("limit %d: %d keys, more %v; want %d, %v", tt.limit, len(got.Kvs), got.More, tt.keys, tt.more)
		}
	}
}

// jsonBody is a tiny helper for the HTTP tests.
func jsonBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response %q is not JSON: %v", b, err)
	}
	return m
}
