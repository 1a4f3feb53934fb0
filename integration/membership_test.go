//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/proto"
)

// fastGossip makes failure detection quick enough for tests on one host.
var fastGossip = []string{"--gossip-profile", "local", "--dead-node-reclaim-time", "2s"}

func members(t *testing.T, a *agent) map[string]*proto.MemberInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := a.cluster().Members(ctx, &proto.MembersRequest{})
	if err != nil {
		t.Fatalf("members on %s: %v", a.name, err)
	}
	out := map[string]*proto.MemberInfo{}
	for _, m := range resp.Members {
		out[m.Name] = m
	}
	return out
}

type hostJSON struct {
	Name   string            `json:"name"`
	Status string            `json:"status"`
	Raft   string            `json:"raft"`
	Labels map[string]string `json:"labels"`
}

func hosts(ctx context.Context, a *agent) (map[string]hostJSON, error) {
	kvs, _, err := listAll(ctx, a, "/hosts/", proto.Consistency_LINEARIZABLE)
	if err != nil {
		return nil, err
	}
	out := map[string]hostJSON{}
	for _, kv := range kvs {
		var h hostJSON
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			return nil, fmt.Errorf("%s: %v", kv.Key, err)
		}
		if kv.Origin != "sensor/membership" {
			return nil, fmt.Errorf("%s written by %q", kv.Key, kv.Origin)
		}
		out[h.Name] = h
	}
	return out, nil
}

func voters(t *testing.T, a *agent) []string {
	t.Helper()
	resp, err := a.cluster().RaftConfiguration(ctxT(t, 5*time.Second), &proto.RaftConfigurationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range resp.Servers {
		if s.Suffrage == "voter" {
			out = append(out, s.Id)
		}
	}
	return out
}

// growCluster starts 3 servers and joins 4 more one at a time, each with a
// zone label, and waits until all 7 are alive in members and /hosts/.
func growCluster(t *testing.T, extra ...string) []*agent {
	t.Helper()
	base := append(append([]string{}, fastGossip...), extra...)
	agents := startCluster(t, 3, append(base, "--label", "zone=a")...)
	for i := 4; i <= 7; i++ {
		a := newAgent(t, fmt.Sprintf("n%d", i), append(base, "--label", fmt.Sprintf("zone=%c", 'a'+i%3), "--label", "tier=edge")...)
		a.start()
		waitUp(t, a)
		code, out := runDuxd(t, nil, "join", "--addr", a.grpc, agents[0].gossip)
		if code != 0 {
			t.Fatalf("duxd join for %s: exit %d: %s", a.name, code, out)
		}
		agents = append(agents, a)
	}
	eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs, err := hosts(ctx, agents[0])
		if err != nil {
			return err
		}
		for _, a := range agents {
			h, ok := hs[a.name]
			if !ok || h.Status != "alive" || h.Raft == "none" {
				return fmt.Errorf("/hosts/%s = %+v", a.name, h)
			}
		}
		return nil
	})
	return agents
}

// Rule: three bootstrap together, four join one at a time: all seven show
// in members and /hosts/ with their labels, and exactly three are voters.
func TestMembership_GrowToSevenWithThreeVoters(t *testing.T) {
	agents := growCluster(t)
	ms := members(t, agents[6])
	for i, a := range agents {
		m := ms[a.name]
		if m == nil || m.Status != "alive" {
			t.Fatalf("members lacks %s alive: %v", a.name, m)
		}
		wantZone := "a"
		if i >= 3 {
			wantZone = string(rune('a' + (i+1)%3))
		}
		if m.Labels["zone"] != wantZone || (i >= 3 && m.Labels["tier"] != "edge") {
			t.Fatalf("%s labels %v, want zone=%s", a.name, m.Labels, wantZone)
		}
		if m.Resources.GetCpu() <= 0 || m.Addresses["grpc"] != a.grpc {
			t.Fatalf("%s resources %v addresses %v", a.name, m.Resources, m.Addresses)
		}
	}
	if v := voters(t, agents[0]); len(v) != 3 {
		t.Fatalf("voters %v, want 3", v)
	}
	hs, err := hosts(ctxT(t, 5*time.Second), agents[0])
	if err != nil {
		t.Fatal(err)
	}
	nv := 0
	for _, h := range hs {
		if h.Raft == "nonvoter" {
			nv++
		}
	}
	if len(hs) != 7 || nv != 4 {
		t.Fatalf("/hosts/ has %d hosts, %d non-voters; want 7 and 4", len(hs), nv)
	}
	// Every member's gossip converges on the same view.
	eventually(t, 30*time.Second, func() error {
		code, out := runDuxd(t, nil, "members", "--addr", agents[3].grpc)
		if code != 0 || strings.Count(out, "alive") != 7 || strings.Count(out, "nonvoter") != 4 || !strings.Contains(out, "zone=") {
			return fmt.Errorf("duxd members:\n%s", out)
		}
		return nil
	})
}

// writeUntil writes unique keys through the given agents until stop is
// closed, and counts the failures that were not a retryable Unavailable.
func writeUntil(agents func() []*agent, stop <-chan struct{}) (ok, bad *atomic.Int64, firstBad *atomic.Value, wait func()) {
	ok, bad, firstBad = new(atomic.Int64), new(atomic.Int64), new(atomic.Value)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				as := agents()
				a := as[(w+i)%len(as)]
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := a.state().Put(ctx, &proto.PutRequest{Key: fmt.Sprintf("/w/%d/%d", w, i), Value: []byte(`1`)})
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case status.Code(err) == codes.Unavailable:
				default:
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%s: %v", a.name, err))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return ok, bad, firstBad, wg.Wait
}

// Rule: when a voter is killed the cluster is back to three healthy voters
// within a bounded time (a caught-up non-voter is promoted), the killed one
// shows failed, after the dead-server timeout it is gone from Raft, and
// writes keep succeeding throughout.
func TestMembership_KilledVoterIsReplacedAndRemoved(t *testing.T) {
	agents := growCluster(t, "--dead-server-timeout", "15s")
	leader := waitLeader(t, agents)
	var victim *agent
	for _, id := range voters(t, leader) {
		if id != leader.name {
			for _, a := range agents {
				if a.name == id {
					victim = a
				}
			}
			break
		}
	}
	var mu sync.Mutex
	live := append([]*agent{}, agents...)
	current := func() []*agent { mu.Lock(); defer mu.Unlock(); return live }
	stop := make(chan struct{})
	okW, bad, firstBad, wait := writeUntil(current, stop)
	time.Sleep(time.Second)

	victim.kill()
	mu.Lock()
	live = followers(agents, victim)
	live = append(live, leader)
	mu.Unlock()
	killed := time.Now()

	var healedIn time.Duration
	eventually(t, 60*time.Second, func() error {
		l := waitLeader(t, current())
		v := voters(t, l)
		if len(v) != 3 {
			return fmt.Errorf("voters %v", v)
		}
		for _, id := range v {
			if id == victim.name {
				return fmt.Errorf("victim %s still a voter: %v", victim.name, v)
			}
		}
		m := members(t, l)[victim.name]
		if m == nil || m.Status != "failed" {
			return fmt.Errorf("victim shows %v", m)
		}
		healedIn = time.Since(killed)
		return nil
	})
	t.Logf("three healthy voters again %v after the kill", healedIn.Round(100*time.Millisecond))
	eventually(t, 60*time.Second, func() error {
		resp, err := current()[0].cluster().RaftConfiguration(ctxT(t, 5*time.Second), &proto.RaftConfigurationRequest{})
		if err != nil {
			return err
		}
		for _, s := range resp.Servers {
			if s.Id == victim.name {
				return fmt.Errorf("%s still in raft as %s", victim.name, s.Suffrage)
			}
		}
		return nil
	})
	t.Logf("removed from Raft %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	close(stop)
	wait()
	if bad.Load() != 0 {
		t.Fatalf("%d writes failed with other than Unavailable; first: %v", bad.Load(), firstBad.Load())
	}
	if okW.Load() == 0 {
		t.Fatal("no write succeeded")
	}
}

// Rule: `duxd leave` on the leader moves leadership first, no write fails
// with anything but a retryable Unavailable, and the member shows left.
func TestMembership_LeaderLeavesGracefully(t *testing.T) {
	agents := startCluster(t, 3, fastGossip...)
	leader := waitLeader(t, agents)
	rest := followers(agents, leader)
	stop := make(chan struct{})
	okW, bad, firstBad, wait := writeUntil(func() []*agent { return rest }, stop)
	time.Sleep(time.Second)
	code, out := runDuxd(t, nil, "leave", "--addr", leader.grpc)
	if code != 0 {
		t.Fatalf("duxd leave: exit %d: %s", code, out)
	}
	select {
	case <-leader.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not stop after leaving")
	}
	leader.mu.Lock()
	leader.cmd = nil
	leader.mu.Unlock()
	newLeader := waitLeader(t, rest)
	if newLeader == leader {
		t.Fatal("leadership did not move")
	}
	time.Sleep(time.Second)
	close(stop)
	wait()
	if bad.Load() != 0 {
		t.Fatalf("%d writes failed with other than Unavailable; first: %v", bad.Load(), firstBad.Load())
	}
	if okW.Load() == 0 {
		t.Fatal("no write succeeded")
	}
	eventually(t, 30*time.Second, func() error {
		m := members(t, newLeader)[leader.name]
		if m == nil || m.Status != "left" || m.Raft != "none" {
			return fmt.Errorf("left leader shows %v", m)
		}
		hs, err := hosts(ctxT(t, 5*time.Second), newLeader)
		if err != nil {
			return err
		}
		if hs[leader.name].Status != "left" {
			return fmt.Errorf("/hosts/%s = %+v", leader.name, hs[leader.name])
		}
		return nil
	})
}

// Rule: a wrong gossip key, a taken name and an unreachable join address
// each get a clear error.
func TestMembership_JoinErrorsAreClear(t *testing.T) {
	key := "cg8StVXbQJ0gPvMd9o7yXuYs4R9uw/NcEjMaaEHKyWQ="
	other := "A7MW6l9B1DxQYbRy/dWkq3UQxz4LqjvMzWLwLHVn0Ws="
	a := newAgent(t, "solo", append([]string{"--dev", "--encrypt", key}, fastGossip...)...)
	a.start()
	waitLeader(t, []*agent{a})

	// A bad key is refused at start.
	code, out := runDuxd(t, nil, "agent", "--name", "x", "--data-dir", t.TempDir(), "--encrypt", "not-base64!")
	if code != 2 || !strings.Contains(out, "--encrypt") {
		t.Fatalf("bad key: exit %d: %s", code, out)
	}
	code, out = runDuxd(t, nil, "agent", "--name", "x", "--data-dir", t.TempDir(), "--encrypt", "c2hvcnQ=")
	if code != 2 || !strings.Contains(out, "want 16, 24 or 32") {
		t.Fatalf("short key: exit %d: %s", code, out)
	}

	// Another key cannot join.
	b := newAgent(t, "wrongkey", append([]string{"--encrypt", other}, fastGossip...)...)
	b.start()
	waitUp(t, b)
	code, out = runDuxd(t, nil, "join", "--addr", b.grpc, a.gossip)
	if code == 0 || !strings.Contains(out, "join") {
		t.Fatalf("join with another key: exit %d: %s", code, out)
	}
	if _, ok := members(t, a)["wrongkey"]; ok {
		t.Fatal("a member with another key joined")
	}

	// An unreachable address.
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	code, out = runDuxd(t, nil, "join", "--addr", b.grpc, dead)
	if code == 0 || !strings.Contains(out, dead) {
		t.Fatalf("join of a dead address: exit %d: %s", code, out)
	}

	// A taken name: the newcomer stops with a clear error.
	dup := newAgent(t, "solo", append([]string{"--encrypt", key, "--join", a.gossip}, fastGossip...)...)
	dup.start()
	select {
	case <-dup.done:
	case <-time.After(30 * time.Second):
		t.Fatal("an agent with a taken name kept running")
	}
	dup.mu.Lock()
	dup.cmd = nil
	dup.mu.Unlock()
	logText := readLog(t, dup)
	if !strings.Contains(logText, `name "solo" is taken`) {
		t.Fatalf("duplicate name log:\n%s", logText)
	}
	if m := members(t, a)["solo"]; m == nil || m.Addresses["grpc"] != a.grpc {
		t.Fatalf("the original member lost its name: %v", m)
	}
}
