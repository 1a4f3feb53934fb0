package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dux-io/dux/proto"
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
	// Leaving is set by a member that leaves gracefully, just before it
	// leaves gossip, so the others can tell a leave from a failure.
	Leaving bool `json:"x,omitempty"`
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
// including those that failed or left, which memberlist forgets. Gossip
// says alive, failed or left; a member gossip calls alive that does not
// answer this member's probes is suspect.
type tracker struct {
	mu      sync.Mutex
	members map[string]*tracked
}

type tracked struct {
	m           Member // Status is gossip's: alive, failed or left
	unreachable bool
	since       time.Time // of the last change of the status shown
}

func newTracker() *tracker { return &tracker{members: make(map[string]*tracked)} }

// observe records what gossip says of node, and reports whether it changed.
func (t *tracker) observe(node *memberlist.Node, st Status, now time.Time) bool {
	var meta memberMeta
	if err := json.Unmarshal(node.Meta, &meta); err != nil {
		return false // not a Dux member
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if st != StatusAlive && meta.Leaving {
		st = StatusLeft
	}
	m := Member{Name: node.Name, Gossip: node.Address(), Status: st, memberMeta: meta}
	old, ok := t.members[node.Name]
	if !ok {
		t.members[node.Name] = &tracked{m: m, since: now}
		return true
	}
	before := old.status()
	changed := old.m.Status != st || old.m.Gossip != m.Gossip || !sameMeta(old.m.memberMeta, meta)
	old.m = m
	if st != StatusAlive {
		old.unreachable = false
	}
	if old.status() != before {
		old.since = now
	}
	return changed
}

// reachable records whether the member answered a probe, and reports
// whether that changed its status.
func (t *tracker) reachable(name string, ok bool, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, found := t.members[name]
	if !found || e.m.Status != StatusAlive || e.unreachable == !ok {
		return false
	}
	e.unreachable = !ok
	e.since = now
	return true
}

func (e *tracked) status() Status {
	if e.m.Status == StatusAlive && e.unreachable {
		return StatusSuspect
	}
	return e.m.Status
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
	for _, e := range t.members {
		m := e.m
		m.Status, m.Since = e.status(), e.since
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// counts returns how many members are in each status.
func (t *tracker) counts() map[Status]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[Status]int, 4)
	for _, e := range t.members {
		out[e.status()]++
	}
	return out
}

func (t *tracker) get(name string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.members[name]
	if !ok {
		return Member{}, false
	}
	m := e.m
	m.Status, m.Since = e.status(), e.since
	return m, true
}

func (t *tracker) forget(name string) {
	t.mu.Lock()
	delete(t.members, name)
	t.mu.Unlock()
}

// Members returns every member this one knows of, with its status;
// members that failed or left stay listed until they are removed.
func (n *Node) Members() []Member { return n.tracker.list() }

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

// probeInterval is how often each member probes the others over gRPC.
const probeInterval = time.Second

// probeLoop asks every other live member for its status each second; one
// that gossip calls alive but that does not answer is suspect.
func (n *Node) probeLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		var wg sync.WaitGroup
		for _, m := range n.liveMembers() {
			if m.Name == n.cfg.Name {
				continue
			}
			wg.Add(1)
			go func(m Member) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(n.ctx, probeInterval)
				defer cancel()
				_, err := n.peers.internal(m.GRPC).Status(ctx, &proto.StatusRequest{})
				if n.tracker.reachable(m.Name, err == nil, time.Now()) {
					n.gossipChanged()
				}
			}(m)
		}
		wg.Wait()
	}
}

// member looks one member up; it is on the path of every forwarded write.
func (n *Node) member(name string) (Member, bool) { return n.tracker.get(name) }

type gossipDelegate struct{ n *Node }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	d.n.metaMu.Lock()
	b, _ := json.Marshal(d.n.meta)
	d.n.metaMu.Unlock()
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

// memberlist does not keep Node.State current, so the event says what
// happened: a join or an update means alive; a leave means failed, or
// left when the member announced it was leaving (memberMeta.Leaving).
func (e gossipEvents) NotifyJoin(node *memberlist.Node)   { e.n.gossipEvent(node, StatusAlive) }
func (e gossipEvents) NotifyLeave(node *memberlist.Node)  { e.n.gossipEvent(node, StatusFailed) }
func (e gossipEvents) NotifyUpdate(node *memberlist.Node) { e.n.gossipEvent(node, StatusAlive) }

func (n *Node) gossipEvent(node *memberlist.Node, st Status) {
	if n.tracker.observe(node, st, time.Now()) {
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
