package graph

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Source says how a use of a prefix is known.
type Source string

const (
	// Declared: a component spec's reads and writes.
	Declared Source = "declared"
	// Builtin: what Dux's own programs read and write.
	Builtin Source = "builtin"
	// Observed: the channels of a named subscriber, and the prefixes
	// written recently with an origin.
	Observed Source = "observed"
)

// rank orders sources: an edge's Source is its first.
func (s Source) rank() int {
	switch s {
	case Declared:
		return 0
	case Builtin:
		return 1
	}
	return 2
}

// Access is what an actor does with a prefix.
type Access string

const (
	// Read: the actor consumes the prefix (subscribes to it, lists it).
	Read Access = "read"
	// Write: the actor writes keys, or publishes messages, under it.
	Write Access = "write"
)

// Node kinds.
const (
	KindActor  = "actor"
	KindPrefix = "prefix"
)

// Node is an actor or a prefix.
type Node struct {
	// Kind is "actor" or "prefix".
	Kind string `json:"kind"`
	// Name is the actor's name ("scheduler", "component/web") or the
	// prefix: a slash path ending in "/" (every key and channel under it)
	// or an exact key or channel.
	Name string `json:"name"`
	// Sources says how an actor is known; prefixes have none.
	Sources []Source `json:"sources,omitempty"`
	// Note describes a built-in actor.
	Note string `json:"note,omitempty"`
	// Cycle is the ID of the cycle the actor is part of, 0 for none.
	Cycle int `json:"cycle,omitempty"`
}

// Edge is a use of a prefix by an actor: from the actor to the prefix for
// a write, from the prefix to the actor for a read.
type Edge struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Access Access `json:"access"`
	// Source is the first of Sources in the order declared, builtin,
	// observed; Sources says every way the use is known.
	Source  Source   `json:"source"`
	Sources []Source `json:"sources"`
	// LastSeen is when a write was last observed, if it was.
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// Cycle is the ID of the cycle the edge closes, 0 for none.
	Cycle int `json:"cycle,omitempty"`
}

// Actor is the edge's actor, whichever its direction.
func (e Edge) Actor() string {
	if e.Access == Write {
		return e.From
	}
	return e.To
}

// Prefix is the edge's prefix, whichever its direction.
func (e Edge) Prefix() string {
	if e.Access == Write {
		return e.To
	}
	return e.From
}

// Cycle is a set of actors each of which depends, through the others, on
// itself: one strongly connected component of the dependency graph, or a
// single actor that reads what it writes.
type Cycle struct {
	// ID numbers the cycles from 1, in the order of their first actor.
	ID int `json:"id"`
	// Actors are the actors in the cycle, sorted.
	Actors []string `json:"actors"`
	// Prefixes are those that close it: written by one actor of the
	// cycle and read, or overlapping one read, by another (or the same).
	Prefixes []string `json:"prefixes"`
	// Expected is set when the cycle is made only of built-in actors and
	// built-in uses: Dux's own control loop, which converges.
	Expected bool   `json:"expected"`
	Note     string `json:"note,omitempty"`
}

// Graph is the whole graph. Nodes are actors then prefixes, each sorted by
// name; edges are sorted by actor, prefix and access; overlaps by their
// prefixes; cycles by ID.
type Graph struct {
	// Revision is the revision of the state the declared uses were read
	// at; Member names the member that drew the graph (observed reads are
	// those of its subscribers); ObservedWindowSeconds is how long an
	// observed write stays in it. The Builder leaves them to its caller.
	Revision              uint64 `json:"revision"`
	Member                string `json:"member,omitempty"`
	ObservedWindowSeconds int64  `json:"observed_window_seconds"`

	Nodes    []Node    `json:"nodes"`
	Edges    []Edge    `json:"edges"`
	Overlaps []Overlap `json:"overlaps"`
	Cycles   []Cycle   `json:"cycles"`
}

// Overlap links a written prefix to a different read prefix that selects
// keys in common with it (/jobs/retry/ and /jobs/): through it the reader
// of one depends on the writer of the other, which no edge shows.
type Overlap struct {
	// From is the written prefix, To the read one.
	From string `json:"from"`
	To   string `json:"to"`
	// Cycle is the ID of the cycle the overlap closes, 0 for none.
	Cycle int `json:"cycle,omitempty"`
}

// Use is one actor's use of one prefix, as a Builder takes it.
type Use struct {
	Actor  string
	Prefix string
	Access Access
	Source Source
	// Seen is when an observed write was last seen; zero otherwise.
	Seen time.Time
}

// Builder collects uses and builds the graph. The zero value is not
// ready; use NewBuilder.
type Builder struct {
	// ExpectedNote explains an expected cycle (see Cycle.Expected).
	ExpectedNote string

	actors map[string]*actorInfo
	uses   map[useKey]*useInfo
}

type actorInfo struct {
	sources []Source
	note    string
}

type useKey struct {
	actor, prefix string
	access        Access
}

type useInfo struct {
	sources []Source
	seen    time.Time
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{actors: map[string]*actorInfo{}, uses: map[useKey]*useInfo{}}
}

// Actor records an actor, how it is known and, for a built-in one, a note
// saying what it is. An actor also comes into being with its first use.
func (b *Builder) Actor(name string, src Source, note string) {
	a := b.actors[name]
	if a == nil {
		a = &actorInfo{}
		b.actors[name] = a
	}
	a.sources = addSource(a.sources, src)
	if note != "" {
		a.note = note
	}
}

// Add records a use. The same use from several sources is one edge.
func (b *Builder) Add(u Use) {
	b.Actor(u.Actor, u.Source, "")
	k := useKey{u.Actor, u.Prefix, u.Access}
	in := b.uses[k]
	if in == nil {
		in = &useInfo{}
		b.uses[k] = in
	}
	in.sources = addSource(in.sources, u.Source)
	if u.Seen.After(in.seen) {
		in.seen = u.Seen
	}
}

func addSource(list []Source, s Source) []Source {
	if slices.Contains(list, s) {
		return list
	}
	list = append(list, s)
	slices.SortFunc(list, func(a, b Source) int { return a.rank() - b.rank() })
	return list
}

// Covers reports whether prefix p selects every key that q selects: they
// are equal, or p ends in "/" and q is under it.
func Covers(p, q string) bool {
	return p == q || (strings.HasSuffix(p, "/") && strings.HasPrefix(q, p))
}

// Overlaps reports whether two prefixes (or exact keys) select a key in
// common: one covers the other.
func Overlaps(p, q string) bool { return Covers(p, q) || Covers(q, p) }

// Build returns the graph. An observed use that a declared or built-in
// use of the same actor and access covers is folded into that one, which
// then counts as observed too: a subscriber that reads /allocations/web/
// confirms a declared read of /allocations/, and adds no edge of its own.
func (b *Builder) Build() *Graph {
	uses := b.fold()
	g := &Graph{Nodes: []Node{}, Edges: make([]Edge, 0, len(uses)), Overlaps: []Overlap{}, Cycles: []Cycle{}}

	actorNames := make([]string, 0, len(b.actors))
	for name := range b.actors {
		actorNames = append(actorNames, name)
	}
	sort.Strings(actorNames)
	actorIdx := make(map[string]int, len(actorNames))
	for i, name := range actorNames {
		actorIdx[name] = i
	}

	prefixSet := map[string]bool{}
	for k, in := range uses {
		prefixSet[k.prefix] = true
		e := Edge{Access: k.access, Source: in.sources[0], Sources: in.sources}
		if k.access == Write {
			e.From, e.To = k.actor, k.prefix
		} else {
			e.From, e.To = k.prefix, k.actor
		}
		if !in.seen.IsZero() {
			seen := in.seen.UTC()
			e.LastSeen = &seen
		}
		g.Edges = append(g.Edges, e)
	}
	slices.SortFunc(g.Edges, func(x, y Edge) int {
		if c := strings.Compare(x.Actor(), y.Actor()); c != 0 {
			return c
		}
		if c := strings.Compare(x.Prefix(), y.Prefix()); c != 0 {
			return c
		}
		return strings.Compare(string(x.Access), string(y.Access))
	})

	cycles, actorCycle, edgeCycle, overlaps := findCycles(actorNames, actorIdx, g.Edges)
	if overlaps != nil {
		g.Overlaps = overlaps
	}
	// A cycle is expected when its actors and the uses that close it are
	// all built in.
	builtin := make([]bool, len(cycles))
	for i := range builtin {
		builtin[i] = true
	}
	for i, name := range actorNames {
		if c := actorCycle[i]; c > 0 && !slices.Contains(b.actors[name].sources, Builtin) {
			builtin[c-1] = false
		}
	}
	for i, c := range edgeCycle {
		g.Edges[i].Cycle = c
		if c > 0 && !slices.Contains(g.Edges[i].Sources, Builtin) {
			builtin[c-1] = false
		}
	}
	for i := range cycles {
		if cycles[i].Expected = builtin[i]; builtin[i] {
			cycles[i].Note = b.ExpectedNote
		}
	}
	g.Cycles = cycles

	for i, name := range actorNames {
		a := b.actors[name]
		g.Nodes = append(g.Nodes, Node{Kind: KindActor, Name: name, Sources: a.sources, Note: a.note, Cycle: actorCycle[i]})
	}
	prefixes := make([]string, 0, len(prefixSet))
	for p := range prefixSet {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		g.Nodes = append(g.Nodes, Node{Kind: KindPrefix, Name: p})
	}
	return g
}

// fold returns the uses with every observed-only use that a declared or
// built-in use of the same actor and access covers folded into the most
// specific such use.
func (b *Builder) fold() map[useKey]*useInfo {
	type actorAccess struct {
		actor  string
		access Access
	}
	out := make(map[useKey]*useInfo, len(b.uses))
	known := map[actorAccess][]string{} // prefixes of declared and built-in uses
	var observed []useKey
	for k, in := range b.uses {
		if len(in.sources) == 1 && in.sources[0] == Observed {
			observed = append(observed, k)
			continue
		}
		out[k] = &useInfo{sources: slices.Clone(in.sources), seen: in.seen}
		aa := actorAccess{k.actor, k.access}
		known[aa] = append(known[aa], k.prefix)
	}
	for _, k := range observed {
		in := b.uses[k]
		best := ""
		for _, p := range known[actorAccess{k.actor, k.access}] {
			if Covers(p, k.prefix) && len(p) > len(best) {
				best = p
			}
		}
		if best == "" {
			out[k] = &useInfo{sources: slices.Clone(in.sources), seen: in.seen}
			continue
		}
		into := out[useKey{k.actor, best, k.access}]
		into.sources = addSource(into.sources, Observed)
		if in.seen.After(into.seen) {
			into.seen = in.seen
		}
	}
	return out
}
