package scheduler

import (
	"context"
	"strings"
	"time"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/graph"
	"github.com/dux-io/dux/proto"
)

// ExpectedCycleNote explains the cycle that Dux's own programs form.
const ExpectedCycleNote = "the scheduler's control loop: the scheduler places allocations from their " +
	"executors' status, the executors run them and report it, and each writes only what differs, so it converges"

// GuardPrefix holds GuardKey.
const GuardPrefix = "/scheduler/"

// Builtin is one of Dux's own programs in the graph of who reads and
// writes what.
type Builtin struct {
	Actor  string
	Note   string
	Reads  []string
	Writes []string
}

// Builtins are Dux's own programs: the membership sensor, every member's
// executor (a sensor too), and the scheduler on the leader. The executors
// and the scheduler read each other's writes: that loop is expected.
func Builtins() []Builtin {
	return []Builtin{
		{Actor: LeaderOrigin, Note: "places components on hosts; runs on the Raft leader",
			Reads:  []string{ComponentsPrefix, cluster.HostsPrefix, AllocationsPrefix, AllocStatusPrefix},
			Writes: []string{AllocationsPrefix, ComponentStatusPrefix, GuardPrefix}},
		{Actor: ExecutorOrigin, Note: "runs the allocations placed on its host on Docker and reports what it sees; one on every member with Docker",
			Reads:  []string{AllocationsPrefix},
			Writes: []string{AllocStatusPrefix}},
		{Actor: cluster.MembershipOrigin, Note: "writes what gossip says of every host; runs on the Raft leader",
			Writes: []string{cluster.HostsPrefix}},
	}
}

// GraphState is what the graph reads of the StateStore: the component
// specs, through a linearizable list. *cluster.Node provides it.
type GraphState interface {
	List(ctx context.Context, req *proto.ListRequest) (*proto.ListResponse, error)
}

// Observer is what the Dispatcher saw of its subscribers and of the
// writes it dispatched. *dispatch.Hub provides it.
type Observer interface {
	Observed(now time.Time) dispatch.Observed
}

// GraphSource draws the graph of who reads and writes what from three
// sources: the reads and writes component specs declare, Dux's built-in
// programs, and what this member's Dispatcher observed.
type GraphSource struct {
	st     GraphState
	obs    Observer
	member string
	now    func() time.Time
}

// NewGraphSource returns a GraphSource for the member named member.
func NewGraphSource(st GraphState, obs Observer, member string) *GraphSource {
	return &GraphSource{st: st, obs: obs, member: member, now: time.Now}
}

// Graph draws the graph now. It fails only when the components cannot be
// read.
func (s *GraphSource) Graph(ctx context.Context) (*graph.Graph, error) {
	b := graph.NewBuilder()
	b.ExpectedNote = ExpectedCycleNote
	for _, bi := range Builtins() {
		b.Actor(bi.Actor, graph.Builtin, bi.Note)
		for _, p := range bi.Reads {
			b.Add(graph.Use{Actor: bi.Actor, Prefix: p, Access: graph.Read, Source: graph.Builtin})
		}
		for _, p := range bi.Writes {
			b.Add(graph.Use{Actor: bi.Actor, Prefix: p, Access: graph.Write, Source: graph.Builtin})
		}
	}
	rev, err := s.declare(ctx, b)
	if err != nil {
		return nil, err
	}
	o := s.obs.Observed(s.now())
	for _, r := range o.Readers {
		for _, c := range r.Channels {
			b.Add(graph.Use{Actor: r.Name, Prefix: c, Access: graph.Read, Source: graph.Observed})
		}
	}
	for _, w := range o.Writers {
		b.Add(graph.Use{Actor: w.Origin, Prefix: w.Prefix, Access: graph.Write, Source: graph.Observed, Seen: w.Seen})
	}
	g := b.Build()
	g.Revision, g.Member, g.ObservedWindowSeconds = rev, s.member, int64(o.Window/time.Second)
	return g, nil
}

// declare adds the reads and writes of every valid component spec, and
// returns the revision it read them at. An invalid spec declares nothing.
func (s *GraphSource) declare(ctx context.Context, b *graph.Builder) (uint64, error) {
	var rev uint64
	after := ""
	for {
		resp, err := s.st.List(ctx, &proto.ListRequest{Prefix: ComponentsPrefix, After: after, Limit: 1000})
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Revision
		}
		for _, kv := range resp.Items {
			c, err := ParseComponent(strings.TrimPrefix(kv.Key, ComponentsPrefix), kv.Value)
			if err != nil || len(c.Reads)+len(c.Writes) == 0 {
				continue
			}
			b.Actor(c.Actor(), graph.Declared, "")
			for _, p := range c.Reads {
				b.Add(graph.Use{Actor: c.Actor(), Prefix: p, Access: graph.Read, Source: graph.Declared})
			}
			for _, p := range c.Writes {
				b.Add(graph.Use{Actor: c.Actor(), Prefix: p, Access: graph.Write, Source: graph.Declared})
			}
		}
		if resp.Next == "" {
			return rev, nil
		}
		after = resp.Next
	}
}
