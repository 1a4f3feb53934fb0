package graph

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func write(actor, prefix string, src Source) Use {
	return Use{Actor: actor, Prefix: prefix, Access: Write, Source: src}
}

func read(actor, prefix string, src Source) Use {
	return Use{Actor: actor, Prefix: prefix, Access: Read, Source: src}
}

func build(uses ...Use) *Graph {
	b := NewBuilder()
	b.ExpectedNote = "the control loop"
	for _, u := range uses {
		b.Add(u)
	}
	return b.Build()
}

// edgeString renders an edge as "from -> to (source) [cycle]".
func edgeString(e Edge) string {
	s := fmt.Sprintf("%s -> %s (%s)", e.From, e.To, strings.Join(sourceStrings(e.Sources), ","))
	if e.Cycle > 0 {
		s += fmt.Sprintf(" #%d", e.Cycle)
	}
	return s
}

func sourceStrings(ss []Source) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func edgeStrings(g *Graph) []string {
	out := make([]string, len(g.Edges))
	for i, e := range g.Edges {
		out[i] = edgeString(e)
	}
	return out
}

func checkEdges(t *testing.T, g *Graph, want ...string) {
	t.Helper()
	if got := edgeStrings(g); !slices.Equal(got, want) {
		t.Errorf("edges:\ngot:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func checkCycles(t *testing.T, g *Graph, want ...Cycle) {
	t.Helper()
	if want == nil {
		want = []Cycle{}
	}
	if !reflect.DeepEqual(g.Cycles, want) {
		t.Errorf("cycles:\ngot  %+v\nwant %+v", g.Cycles, want)
	}
}

func TestOverlaps(t *testing.T) {
	for _, c := range []struct {
		p, q string
		want bool
	}{
		{"/a/", "/a/", true},
		{"/a/", "/a/b", true},
		{"/a/", "/a/b/c/", true},
		{"/", "/anything/at/all", true},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/c", false},
		{"/a", "/a/", false},    // the key /a is not under /a/
		{"/a", "/a/b", false},   // nor is /a/b the key /a
		{"/ab/", "/a/", false},  // a prefix is a path, not a string prefix
		{"/a/", "/ab/c", false}, // likewise
		{"/a/b/", "/a/c/", false},
	} {
		if got := Overlaps(c.p, c.q); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.p, c.q, got, c.want)
		}
		if got := Overlaps(c.q, c.p); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.q, c.p, got, c.want)
		}
	}
}

// Rule: a chain of actors, each reading what the one before writes, is a
// DAG: no cycle, and the nodes and edges come out sorted.
func TestBuild_AcyclicChain(t *testing.T) {
	g := build(
		read("c", "/y/", Declared),
		write("a", "/x/", Declared),
		write("b", "/y/", Declared),
		read("b", "/x/", Declared),
	)
	checkEdges(t, g,
		"a -> /x/ (declared)",
		"/x/ -> b (declared)",
		"b -> /y/ (declared)",
		"/y/ -> c (declared)",
	)
	checkCycles(t, g)
	var nodes []string
	for _, n := range g.Nodes {
		nodes = append(nodes, n.Kind+":"+n.Name)
	}
	if want := []string{"actor:a", "actor:b", "actor:c", "prefix:/x/", "prefix:/y/"}; !slices.Equal(nodes, want) {
		t.Errorf("nodes = %v, want %v", nodes, want)
	}
}

// Rule: two actors that each read what the other writes form a cycle,
// closed by both prefixes; every edge of it carries the cycle's ID.
func TestBuild_TwoCycle(t *testing.T) {
	g := build(
		write("a", "/a/", Declared), read("a", "/b/", Declared),
		write("b", "/b/", Declared), read("b", "/a/", Declared),
		write("c", "/c/", Declared), read("c", "/a/", Declared), // reads the loop, not in it
	)
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"a", "b"}, Prefixes: []string{"/a/", "/b/"}})
	checkEdges(t, g,
		"a -> /a/ (declared) #1",
		"/b/ -> a (declared) #1",
		"/a/ -> b (declared) #1",
		"b -> /b/ (declared) #1",
		"/a/ -> c (declared)",
		"c -> /c/ (declared)",
	)
	for _, n := range g.Nodes {
		if want := map[string]int{"a": 1, "b": 1}[n.Name]; n.Kind == KindActor && n.Cycle != want {
			t.Errorf("actor %s in cycle %d, want %d", n.Name, n.Cycle, want)
		}
	}
}

// Rule (the original Dux README): a component that updates the state must
// not consume the state it updates. A sensor that reads /hosts/ and
// writes a host's key under it is a cycle of one.
func TestBuild_SelfLoop(t *testing.T) {
	g := build(
		read("sensor", "/hosts/", Declared),
		write("sensor", "/hosts/web-1", Declared),
		write("sensor", "/metrics/", Declared),
	)
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"sensor"}, Prefixes: []string{"/hosts/", "/hosts/web-1"}})
	checkEdges(t, g,
		"/hosts/ -> sensor (declared) #1",
		"sensor -> /hosts/web-1 (declared) #1",
		"sensor -> /metrics/ (declared)",
	)
}

// Rule: prefixes depend on each other when one selects keys of the other:
// a writer of a key under a prefix feeds a reader of the prefix, and a
// writer of a prefix feeds a reader of a narrower one; /config and
// /configuration/ are unrelated, and so are the key /a and the prefix /a/.
func TestBuild_OverlappingPrefixes(t *testing.T) {
	g := build(
		write("w-key", "/config/app/db", Declared),
		read("r-wide", "/config/", Declared),
		write("r-wide", "/config/app/", Declared), // closes a loop with r-narrow
		read("r-narrow", "/config/app/cache", Declared),
		write("r-narrow", "/config/app/db", Declared), // a key under r-wide's prefix
		write("w-other", "/configuration/x", Declared),
		write("w-bare", "/config", Declared),
		read("r-bare", "/config/app", Declared),
	)
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"r-narrow", "r-wide"},
		Prefixes: []string{"/config/", "/config/app/", "/config/app/cache", "/config/app/db"}})
	checkEdges(t, g,
		"/config/app -> r-bare (declared)",
		"/config/app/cache -> r-narrow (declared) #1",
		"r-narrow -> /config/app/db (declared) #1",
		"/config/ -> r-wide (declared) #1",
		"r-wide -> /config/app/ (declared) #1",
		"w-bare -> /config (declared)",
		"w-key -> /config/app/db (declared)",
		"w-other -> /configuration/x (declared)",
	)
	// The dependencies between distinct prefixes, which no edge shows.
	want := []Overlap{
		{From: "/config/app/", To: "/config/", Cycle: 1}, // r-wide reads what it writes, too
		{From: "/config/app/", To: "/config/app/cache", Cycle: 1},
		{From: "/config/app/db", To: "/config/", Cycle: 1},
	}
	if !reflect.DeepEqual(g.Overlaps, want) {
		t.Errorf("overlaps = %+v, want %+v", g.Overlaps, want)
	}
}

// Rule: a cycle of built-in actors over built-in uses is expected (the
// scheduler's control loop) and says so; once a user's actor joins it, or
// a built-in actor is observed doing more than it is built to, it is not.
func TestBuild_ExpectedCycles(t *testing.T) {
	builtin := []Use{
		read("scheduler", "/allocations/", Builtin), write("scheduler", "/allocations/", Builtin),
		read("scheduler", "/status/allocations/", Builtin), write("scheduler", "/status/components/", Builtin),
		read("executor", "/allocations/", Builtin), write("executor", "/status/allocations/", Builtin),
		write("membership", "/hosts/", Builtin), read("scheduler", "/hosts/", Builtin),
	}
	g := build(builtin...)
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"executor", "scheduler"},
		Prefixes: []string{"/allocations/", "/status/allocations/"}, Expected: true, Note: "the control loop"})

	g = build(append(slices.Clone(builtin),
		read("component/autoscaler", "/status/components/", Declared),
		write("component/autoscaler", "/allocations/web/", Declared))...)
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"component/autoscaler", "executor", "scheduler"},
		Prefixes: []string{"/allocations/", "/allocations/web/", "/status/allocations/", "/status/components/"}})

	g = build(append(slices.Clone(builtin), read("membership", "/status/", Observed))...)
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"executor", "membership", "scheduler"},
		Prefixes: []string{"/allocations/", "/hosts/", "/status/", "/status/allocations/", "/status/components/"}})
}

// Rule: an observed use inside a declared or built-in one of the same
// actor confirms it (the edge counts as observed too, with the time last
// seen) instead of adding an edge; one outside adds an observed edge.
func TestBuild_FoldsObserved(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	g := build(
		write("scheduler", "/allocations/", Builtin),
		write("scheduler", "/status/components/", Builtin),
		Use{Actor: "scheduler", Prefix: "/allocations/web/", Access: Write, Source: Observed, Seen: at},
		Use{Actor: "scheduler", Prefix: "/allocations/api/", Access: Write, Source: Observed, Seen: at.Add(time.Minute)},
		Use{Actor: "scheduler", Prefix: "/config/", Access: Write, Source: Observed, Seen: at},
		read("scheduler", "/allocations/web/", Observed), // reads are folded only into reads
		read("component/web", "/config/web/", Declared),
		read("component/web", "/config/web/", Observed),
		read("component/web", "/", Observed),
	)
	checkEdges(t, g,
		"/ -> component/web (observed)",
		"/config/web/ -> component/web (declared,observed)",
		"scheduler -> /allocations/ (builtin,observed) #1",
		"/allocations/web/ -> scheduler (observed) #1",
		"scheduler -> /config/ (observed)",
		"scheduler -> /status/components/ (builtin)",
	)
	// The observed read closes a loop that nothing built in explains.
	checkCycles(t, g, Cycle{ID: 1, Actors: []string{"scheduler"}, Prefixes: []string{"/allocations/", "/allocations/web/"}})
	for _, e := range g.Edges {
		if e.From == "scheduler" && e.To == "/allocations/" {
			if e.Source != Builtin || e.LastSeen == nil || !e.LastSeen.Equal(at.Add(time.Minute)) {
				t.Errorf("folded edge: source %s, last seen %v; want builtin, %v", e.Source, e.LastSeen, at.Add(time.Minute))
			}
		}
	}
	var sources []string
	for _, n := range g.Nodes {
		if n.Name == "component/web" {
			sources = sourceStrings(n.Sources)
		}
	}
	if want := []string{"declared", "observed"}; !slices.Equal(sources, want) {
		t.Errorf("component/web is known as %v, want %v", sources, want)
	}
}

// Rule: the output does not depend on the order the uses came in.
func TestBuild_Deterministic(t *testing.T) {
	uses := []Use{
		write("a", "/a/", Declared), read("a", "/b/", Declared),
		write("b", "/b/", Builtin), read("b", "/a/x", Observed),
		write("c", "/c/", Declared), read("c", "/", Declared),
		write("d", "/d/", Declared), read("d", "/d/", Declared),
	}
	want, _ := json.Marshal(build(uses...))
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		r.Shuffle(len(uses), func(i, j int) { uses[i], uses[j] = uses[j], uses[i] })
		if got, _ := json.Marshal(build(uses...)); string(got) != string(want) {
			t.Fatalf("order changed the graph:\n%s\n%s", got, want)
		}
	}
}

// Rule: many nodes: a chain of 20,000 actors has no cycle, and closing it
// makes one cycle of all of them, without exhausting the stack or time.
func TestBuild_ManyNodes(t *testing.T) {
	const n = 20000
	var uses []Use
	for i := range n {
		a := fmt.Sprintf("actor-%05d", i)
		uses = append(uses, write(a, fmt.Sprintf("/chain/%05d/", i), Declared))
		if i > 0 {
			uses = append(uses, read(a, fmt.Sprintf("/chain/%05d/", i-1), Declared))
		}
	}
	start := time.Now()
	g := build(uses...)
	if len(g.Cycles) != 0 || len(g.Nodes) != 2*n || len(g.Edges) != 2*n-1 {
		t.Fatalf("chain: %d cycles, %d nodes, %d edges", len(g.Cycles), len(g.Nodes), len(g.Edges))
	}
	g = build(append(uses, read("actor-00000", fmt.Sprintf("/chain/%05d/k", n-1), Declared))...)
	if len(g.Cycles) != 1 || len(g.Cycles[0].Actors) != n || len(g.Cycles[0].Prefixes) != n+1 {
		t.Fatalf("closed chain: %d cycles", len(g.Cycles))
	}
	for _, e := range g.Edges {
		if e.Cycle != 1 {
			t.Fatalf("edge %s is not in the cycle", edgeString(e))
		}
	}
	// Many actors on one busy prefix: every reader depends on every writer.
	uses = nil
	for i := range 2000 {
		a := fmt.Sprintf("busy-%04d", i)
		uses = append(uses, write(a, "/busy/"+a, Declared), read(a, "/busy/", Declared))
	}
	g = build(uses...)
	if len(g.Cycles) != 1 || len(g.Cycles[0].Actors) != 2000 {
		t.Fatalf("busy prefix: %+v", len(g.Cycles))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// Rule: the cycles, and the edges that close them, are those a brute
// force search finds: two actors are in one cycle when each reaches the
// other through reads of overlapping writes, and an edge closes a cycle
// when the actor at its far end leads back to the actor at its near end.
func TestBuild_MatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	prefixes := []string{"/", "/a/", "/a/b/", "/a/b/c", "/a/c", "/b/", "/b/x", "/c/", "/c/d/e", "/d"}
	withCycles := 0
	for round := range 300 {
		nActors := 1 + r.IntN(7)
		var uses []Use
		for range r.IntN(14) {
			u := Use{Actor: fmt.Sprintf("a%d", r.IntN(nActors)), Prefix: prefixes[r.IntN(len(prefixes))],
				Access: Access([]Access{Read, Write}[r.IntN(2)]), Source: Declared}
			uses = append(uses, u)
		}
		g := build(uses...)
		want := bruteForce(uses)
		got := map[string][]string{}
		for _, c := range g.Cycles {
			got[strings.Join(c.Actors, ",")] = c.Prefixes
		}
		if len(got) > 0 {
			withCycles++
		}
		if !reflect.DeepEqual(got, want.cycles) {
			t.Fatalf("round %d: uses %v\ngot cycles  %v\nwant cycles %v", round, uses, got, want.cycles)
		}
		for _, o := range g.Overlaps {
			if o.From == o.To || !Overlaps(o.From, o.To) || (o.Cycle > 0) != want.onCycle[useKey{"", o.From + " " + o.To, ""}] {
				t.Fatalf("round %d: uses %v: overlap %+v", round, uses, o)
			}
		}
		for _, e := range g.Edges {
			if (e.Cycle > 0) != want.onCycle[useKey{e.Actor(), e.Prefix(), e.Access}] {
				t.Fatalf("round %d: uses %v: edge %s on a cycle: %v", round, uses, edgeString(e), e.Cycle > 0)
			}
		}
	}
	if withCycles < 50 || withCycles > 250 {
		t.Errorf("%d of 300 random graphs had cycles: the generator tests too little", withCycles)
	}
}

type bruteResult struct {
	cycles  map[string][]string // actors joined by "," -> prefixes
	onCycle map[useKey]bool
}

func bruteForce(uses []Use) bruteResult {
	actorSet := map[string]bool{}
	for _, u := range uses {
		actorSet[u.Actor] = true
	}
	var actors []string
	for a := range actorSet {
		actors = append(actors, a)
	}
	slices.Sort(actors)
	dep := func(b, a string) bool { // a reads what b writes
		for _, w := range uses {
			for _, rd := range uses {
				if w.Actor == b && w.Access == Write && rd.Actor == a && rd.Access == Read && Overlaps(w.Prefix, rd.Prefix) {
					return true
				}
			}
		}
		return false
	}
	// reach[x][y]: a path of one or more dependencies from x to y.
	reach := map[string]map[string]bool{}
	for _, x := range actors {
		reach[x] = map[string]bool{}
		for _, y := range actors {
			reach[x][y] = dep(x, y)
		}
	}
	for _, k := range actors {
		for _, x := range actors {
			for _, y := range actors {
				if reach[x][k] && reach[k][y] {
					reach[x][y] = true
				}
			}
		}
	}
	res := bruteResult{cycles: map[string][]string{}, onCycle: map[useKey]bool{}}
	done := map[string]bool{}
	for _, x := range actors {
		if done[x] || !reach[x][x] {
			continue
		}
		var members []string
		for _, y := range actors {
			if y == x || (reach[x][y] && reach[y][x]) {
				members = append(members, y)
				done[y] = true
			}
		}
		prefixSet := map[string]bool{}
		for _, w := range uses {
			for _, rd := range uses {
				if w.Access != Write || rd.Access != Read || !Overlaps(w.Prefix, rd.Prefix) ||
					!slices.Contains(members, w.Actor) || !slices.Contains(members, rd.Actor) {
					continue
				}
				prefixSet[w.Prefix], prefixSet[rd.Prefix] = true, true
				res.onCycle[useKey{w.Actor, w.Prefix, Write}] = true
				res.onCycle[useKey{rd.Actor, rd.Prefix, Read}] = true
				res.onCycle[useKey{"", w.Prefix + " " + rd.Prefix, ""}] = true // an overlap
			}
		}
		var ps []string
		for p := range prefixSet {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		res.cycles[strings.Join(members, ",")] = ps
	}
	return res
}
