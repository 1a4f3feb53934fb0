package cluster

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// gossipNode is a Node with gossip only (no Raft), on a MockNetwork
// transport.
func gossipNode(t *testing.T, name string, tr *memberlist.MockTransport) *Node {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := &Node{cfg: Config{Name: name}, log: logger, tracker: newTracker(), gossipCh: make(chan struct{}, 1),
		meta: memberMeta{Raft: name + ":1", GRPC: name + ":2", HTTP: name + ":3"}}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.Transport = tr
	mc.Delegate = gossipDelegate{n}
	mc.Events = gossipEvents{n}
	mc.Logger = newStdLogger(logger)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	n.ml = ml
	t.Cleanup(func() { ml.Shutdown() })
	return n
}

// dockerSeen waits until observer's view of member says docker = want.
func dockerSeen(t *testing.T, observer *Node, member string, want bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, ok := observer.member(member)
		if ok && m.Docker == want && m.Status == StatusAlive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %s docker=%v (known %v), want %v", observer.cfg.Name, member, m.Docker, ok, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Rule: a host's Docker flag follows what its executor sees at runtime:
// SetDocker changes the gossiped meta, and every member (this one too)
// learns of it without a rejoin, which is what the leader writes to
// /hosts/<name>.docker.
func TestSetDocker_GossipsTheChange(t *testing.T) {
	var net memberlist.MockNetwork
	ta, tb := net.NewTransport("a"), net.NewTransport("b")
	a, b := gossipNode(t, "a", ta), gossipNode(t, "b", tb)
	if _, err := b.ml.Join([]string{a.ml.LocalNode().Address()}); err != nil {
		t.Fatal(err)
	}
	dockerSeen(t, b, "a", false)
	for _, up := range []bool{true, false, true} {
		if err := a.SetDocker(up); err != nil {
			t.Fatalf("SetDocker(%v): %v", up, err)
		}
		dockerSeen(t, b, "a", up)
		dockerSeen(t, a, "a", up)
	}
	if err := a.SetDocker(true); err != nil { // no change: nothing to send
		t.Fatal(err)
	}
	if m, _ := b.member("b"); m.Docker {
		t.Errorf("b's own flag changed with a's")
	}
}
