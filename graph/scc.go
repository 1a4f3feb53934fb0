package graph

import (
	"sort"
	"strings"
)

// findCycles finds the cycles among the actors. It runs Tarjan's strongly
// connected components over a three-layer graph rather than the graph of
// actors: actor -> written prefix -> read prefix that overlaps it ->
// reading actor. Written and read prefixes are separate nodes, so every
// path between two actors goes through exactly one overlap, and two actors
// share a component there exactly when they depend on each other (through
// the others). The actor graph itself could need an edge for every writer
// and reader of a busy prefix; this one needs one per use and one per
// overlapping pair of distinct prefixes.
//
// Every cycle of the layered graph passes through an actor, so a
// component of more than one node is a cycle; an actor that reads what it
// writes is one with its two prefixes. An edge lies on a cycle exactly
// when both its ends are in the same component.
//
// It returns the cycles (with IDs in the order of their first actor), the
// cycle ID of each actor (by index into actors) and of each edge (0 for
// none), and the overlaps between distinct written and read prefixes.
func findCycles(actors []string, actorIdx map[string]int, edges []Edge) (cycles []Cycle, actorCycle, edgeCycle []int, overlaps []Overlap) {
	na := len(actors)
	writeIdx, readIdx := map[string]int{}, map[string]int{}
	var writes, reads []string
	for _, e := range edges {
		switch p := e.Prefix(); e.Access {
		case Write:
			if _, ok := writeIdx[p]; !ok {
				writeIdx[p] = len(writes)
				writes = append(writes, p)
			}
		default:
			if _, ok := readIdx[p]; !ok {
				readIdx[p] = len(reads)
				reads = append(reads, p)
			}
		}
	}
	nw := len(writes)
	wNode := func(p string) int { return na + writeIdx[p] }
	rNode := func(p string) int { return na + nw + readIdx[p] }
	n := na + nw + len(reads)
	adj := make([][]int, n)
	ends := make([][2]int, len(edges)) // each edge's actor node and prefix node
	for i, e := range edges {
		a := actorIdx[e.Actor()]
		if e.Access == Write {
			ends[i] = [2]int{a, wNode(e.Prefix())}
			adj[a] = append(adj[a], wNode(e.Prefix()))
		} else {
			ends[i] = [2]int{a, rNode(e.Prefix())}
			adj[rNode(e.Prefix())] = append(adj[rNode(e.Prefix())], a)
		}
	}
	sorted := append([]string(nil), writes...)
	sort.Strings(sorted)
	for _, q := range reads {
		for _, p := range overlapping(sorted, writeIdx, q) {
			adj[wNode(p)] = append(adj[wNode(p)], rNode(q))
			if p != q {
				overlaps = append(overlaps, Overlap{From: p, To: q})
			}
		}
	}

	comp, ncomp := tarjan(adj)
	size := make([]int, ncomp)
	first := make([]int, ncomp) // the first actor of each component, by name
	for i := range first {
		first[i] = -1
	}
	for v, c := range comp {
		size[c]++
		if v < na && first[c] < 0 {
			first[c] = v // actors are numbered in name order
		}
	}
	// Number the cycles in the order of their first actor.
	var order []int
	for c := range ncomp {
		if size[c] > 1 && first[c] >= 0 {
			order = append(order, c)
		}
	}
	sort.Slice(order, func(i, j int) bool { return first[order[i]] < first[order[j]] })
	id := make([]int, ncomp)
	cycles = make([]Cycle, len(order))
	for i, c := range order {
		id[c] = i + 1
		cycles[i] = Cycle{ID: i + 1, Actors: []string{}, Prefixes: []string{}}
	}
	actorCycle = make([]int, na)
	for v := range na {
		if c := id[comp[v]]; c > 0 {
			actorCycle[v] = c
			cycles[c-1].Actors = append(cycles[c-1].Actors, actors[v])
		}
	}
	edgeCycle = make([]int, len(edges))
	for i, ep := range ends {
		if c := id[comp[ep[0]]]; c > 0 && comp[ep[0]] == comp[ep[1]] {
			edgeCycle[i] = c
			p := edges[i].Prefix()
			if ps := cycles[c-1].Prefixes; !containsSorted(ps, p) {
				cycles[c-1].Prefixes = insertSorted(ps, p)
			}
		}
	}
	for i, o := range overlaps {
		if c := id[comp[wNode(o.From)]]; c > 0 && comp[wNode(o.From)] == comp[rNode(o.To)] {
			overlaps[i].Cycle = c
		}
	}
	sort.Slice(overlaps, func(i, j int) bool {
		if overlaps[i].From != overlaps[j].From {
			return overlaps[i].From < overlaps[j].From
		}
		return overlaps[i].To < overlaps[j].To
	})
	return cycles, actorCycle, edgeCycle, overlaps
}

// overlapping returns the written prefixes (sorted, and indexed by idx)
// that overlap q: those under q (q itself included) when q ends in "/",
// q itself when it is an exact key, and q's ancestors ending in "/".
func overlapping(sorted []string, idx map[string]int, q string) []string {
	var out []string
	if strings.HasSuffix(q, "/") {
		for i := sort.SearchStrings(sorted, q); i < len(sorted) && strings.HasPrefix(sorted[i], q); i++ {
			out = append(out, sorted[i])
		}
	} else if _, ok := idx[q]; ok {
		out = append(out, q)
	}
	for i := 0; i < len(q)-1; i++ {
		if q[i] != '/' {
			continue
		}
		if _, ok := idx[q[:i+1]]; ok {
			out = append(out, q[:i+1])
		}
	}
	return out
}

func containsSorted(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func insertSorted(list []string, s string) []string {
	i := sort.SearchStrings(list, s)
	list = append(list, "")
	copy(list[i+1:], list[i:])
	list[i] = s
	return list
}

// tarjan returns the strongly connected component of every node of the
// graph adj, numbered from 0, and how many there are. It is iterative, so
// a long chain of nodes cannot exhaust the stack.
func tarjan(adj [][]int) (comp []int, ncomp int) {
	n := len(adj)
	index := make([]int, n) // 0: not visited yet; else the visit order from 1
	low := make([]int, n)
	onStack := make([]bool, n)
	comp = make([]int, n)
	var stack []int
	type frame struct{ v, next int }
	var calls []frame
	visited := 0
	visit := func(v int) {
		visited++
		index[v], low[v] = visited, visited
		stack = append(stack, v)
		onStack[v] = true
		calls = append(calls, frame{v: v})
	}
	for root := range n {
		if index[root] != 0 {
			continue
		}
		visit(root)
		for len(calls) > 0 {
			top := len(calls) - 1
			v := calls[top].v
			if i := calls[top].next; i < len(adj[v]) {
				calls[top].next++
				w := adj[v][i]
				if index[w] == 0 {
					visit(w)
				} else if onStack[w] {
					low[v] = min(low[v], index[w])
				}
				continue
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == v {
						break
					}
				}
				ncomp++
			}
			calls = calls[:top]
			if top > 0 {
				u := calls[top-1].v
				low[u] = min(low[u], low[v])
			}
		}
	}
	return comp, ncomp
}
