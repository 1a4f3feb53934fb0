package cluster

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberMeta is what each member gossips about itself. It must stay under
// memberlist's 512-byte meta limit, so the keys are short.
type memberMeta struct {
	Raft    string            `json:"r"`
	GRPC    string            `json:"g"`
	HTTP    string            `json:"h"`
	Expect  int               `json:"e,omitempty"`
	Version string            `json:"v,omitempty"`
	Labels  map[string]string `json:"l,omitempty"`
	CPU     float64           `json:"c,omitempty"`
	Memory  uint64            `json:"m,omitempty"`
	Docker  bool              `json:"d,omitempty"`
}

// Status is a member's health as gossip sees it.
type Status string

// The statuses of a member.
const (
	StatusAlive   Status = "alive"
	StatusSuspect Status = "suspect"
	StatusFailed  Status = "failed"
	StatusLeft    Status = "left"
)

// Member is a member as gossip sees it.
type Member struct {
	Name string
	// Gossip is the member's gossip address.
	Gossip string
	Status Status
	// Since is when this member last changed status, on this member's clock.
	Since time.Time
	memberMeta
}

// Addresses returns the member's addresses by protocol.
func (m Member) Addresses() map[string]string {
	return map[string]string{"grpc": m.GRPC, "http": m.HTTP, "raft": m.Raft, "gossip": m.Gossip}
}

// tracker remembers every member gossip has told this member about,
// including those that failed or left, which memberlist forgets.
type tracker struct {
	mu      sync.Mutex
	members map[string]*Member
}

func newTracker() *tracker { return &tracker{members: make(map[string]*Member)} }

func statusOf(s memberlist.NodeStateType) Status {
	switch s {
	case memberlist.StateAlive:
		return StatusAlive
	case memberlist.StateSuspect:
		return StatusSuspect
	case memberlist.StateLeft:
		return StatusLeft
	}
	return StatusFailed
}

// observe records what gossip says of node, and reports whether it changed.
func (t *tracker) observe(node *memberlist.Node, now time.Time) bool {
	var meta memberMeta
	if err := json.Unmarshal(node.Meta, &meta); err != nil {
		return false // not a Dux member
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := statusOf(node.State)
	old, ok := t.members[node.Name]
	m := &Member{Name: node.Name, Gossip: node.Address(), Status: st, Since: now, memberMeta: meta}
	if ok && old.Status == st {
		m.Since = old.Since
	}
	t.members[node.Name] = m
	return !ok || old.Status != st || old.Gossip != m.Gossip || !sameMeta(old.memberMeta, meta)
}

func sameMeta(a, b memberMeta) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// list returns every tracked member, by name.
func (t *tracker) list() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Member, 0, len(t.members))
	for _, m := range t.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (t *tracker) forget(name string) {
	t.mu.Lock()
	delete(t.members, name)
	t.mu.Unlock()
}

// Members returns every member this one knows of, with its status;
// members that failed or left stay listed until they are removed.
func (n *Node) Members() []Member {
	n.refreshSuspects()
	return n.tracker.list()
}

// liveMembers returns the members that are alive or suspect.
func (n *Node) liveMembers() []Member {
	var out []Member
	for _, m := range n.Members() {
		if m.Status == StatusAlive || m.Status == StatusSuspect {
			out = append(out, m)
		}
	}
	return out
}

// refreshSuspects picks up suspect members, for which memberlist sends no
// event.
func (n *Node) refreshSuspects() {
	now := time.Now()
	for _, node := range n.ml.Members() {
		n.tracker.observe(node, now)
	}
}

func (n *Node) member(name string) (Member, bool) {
	for _, m := range n.tracker.list() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

type gossipDelegate struct{ n *Node }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(d.n.meta)
	if len(b) > limit {
		d.n.log.Error("gossip metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}
func (gossipDelegate) NotifyMsg([]byte)                           {}
func (gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipDelegate) LocalState(join bool) []byte                { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

type gossipEvents struct{ n *Node }

func (e gossipEvents) NotifyJoin(node *memberlist.Node)   { e.n.gossipEvent(node) }
func (e gossipEvents) NotifyLeave(node *memberlist.Node)  { e.n.gossipEvent(node) }
func (e gossipEvents) NotifyUpdate(node *memberlist.Node) { e.n.gossipEvent(node) }

func (n *Node) gossipEvent(node *memberlist.Node) {
	if n.tracker.observe(node, time.Now()) {
		n.gossipChanged()
	}
}

func (n *Node) gossipChanged() {
	select {
	case n.gossipCh <- struct{}{}:
	default:
	}
}

// gossipConflicts keeps names unique. A member that finds its own name
// held by another address within a minute of joining is the newcomer: it
// stops with a clear error. An established member refuses the newcomer.
type gossipConflicts struct{ n *Node }

const newcomerWindow = time.Minute

func (c gossipConflicts) NotifyConflict(existing, other *memberlist.Node) {
	n := c.n
	if existing.Name != n.cfg.Name {
		n.log.Warn("two members claim one name", "name", existing.Name,
			"kept", existing.Address(), "refused", other.Address())
		return
	}
	if n.newcomer() {
		n.fail(fmt.Errorf("%w: the name %q is taken by the member at %s; choose another --name",
			ErrNameTaken, existing.Name, other.Address()))
	}
}

// NotifyAlive refuses a newcomer that claims this member's own name.
func (c gossipConflicts) NotifyAlive(peer *memberlist.Node) error {
	// Called with memberlist's node lock held: it must not call back
	// into memberlist.
	n := c.n
	self, _ := n.selfGossip.Load().(string)
	if self == "" || peer.Name != n.cfg.Name {
		return nil
	}
	if peer.Address() != self && !n.newcomer() {
		return fmt.Errorf("name %q is this member's", peer.Name)
	}
	return nil
}

// newcomer reports whether this member joined others less than a minute ago.
func (n *Node) newcomer() bool {
	at := n.joinedAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < newcomerWindow
}
