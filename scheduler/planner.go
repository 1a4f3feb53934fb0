package scheduler

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Host is a host as the planner sees it (from /hosts/<name>).
type Host struct {
	Name   string
	Status string // alive, suspect, failed or left
	Labels map[string]string
	// Capacity is what the host offers.
	Capacity Resources
	// FailedFor is how long the host has been failed (0 unless failed).
	FailedFor time.Duration
	// Ineligible, when set, says why the host takes no new replicas at all
	// (it has no container runtime, say); it keeps those it has.
	Ineligible string
}

// Allocation is one replica of a component placed on a host
// (/allocations/<component>/<id>).
type Allocation struct {
	ID        string `json:"id"`
	Component string `json:"component"`
	Host      string `json:"host"`
	// Spec is the hash of the component spec the replica runs.
	Spec string `json:"spec"`
	// Running is whether the host's executor reports it running; the
	// planner replaces outdated replicas only while the new ones run.
	Running bool `json:"-"`
	// Runs is the spec the replica was placed with, when known: what an
	// outdated replica takes of its host (resources, host ports) is its
	// own, not what the component asks now.
	Runs *Component `json:"-"`

	away bool // on a host that is not alive (set by the planner)
}

// Plan is what the planner decided.
type Plan struct {
	// Add are new placements; Stop are allocations to remove.
	Add, Stop []Allocation
	// Unplaced explains, per component, the replicas it could not place.
	Unplaced map[string][]string
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Add) == 0 && len(p.Stop) == 0 }

// usage is what the kept and added allocations take of each host, indexed
// like the hosts slice. Its size is linear in hosts plus allocations.
type usage struct {
	hosts []Host
	index map[string]int
	res   []Resources
	count []int
	ports []map[string]bool      // "80/tcp" taken on the host; nil until one is
	per   map[string]map[int]int // component -> host -> allocations
}

func newUsage(hosts []Host) *usage {
	u := &usage{hosts: hosts, index: make(map[string]int, len(hosts)),
		res: make([]Resources, len(hosts)), count: make([]int, len(hosts)),
		ports: make([]map[string]bool, len(hosts)), per: map[string]map[int]int{}}
	for i, h := range hosts {
		u.index[h.Name] = i
	}
	return u
}

// take records one replica of c on host i.
func (u *usage) take(c *compiled, i int) { u.takeAs(c.Name, c, i) }

// takeAs records one replica of component name on host i, taking what
// spec c asks.
func (u *usage) takeAs(name string, c *compiled, i int) {
	u.res[i].CPU += c.Resources.CPU
	u.res[i].Memory += c.Resources.Memory
	for _, p := range c.portKeys {
		if u.ports[i] == nil {
			u.ports[i] = map[string]bool{}
		}
		u.ports[i][p] = true
	}
	u.count[i]++
	if u.per[name] == nil {
		u.per[name] = map[int]int{}
	}
	u.per[name][i]++
}

// compiled is a component with what placement asks of it over and over
// worked out once.
type compiled struct {
	*Component
	hash     string
	portKeys []string // host ports as "80/tcp"
}

func compile(c *Component) *compiled {
	cc := &compiled{Component: c, hash: c.Hash()}
	for _, p := range c.Ports {
		if p.Host != 0 {
			cc.portKeys = append(cc.portKeys, fmt.Sprintf("%d/%s", p.Host, p.Protocol))
		}
	}
	return cc
}

// Compute is the planner: a pure function from the desired components, the
// hosts and the current allocations to a plan. newID names new allocations.
// It never overcommits a host's declared resources, respects constraints
// and host ports, spreads replicas of one component over hosts (or packs
// them, with strategy binpack), replaces replicas of hosts that stayed
// failed past the component's reschedule_after, rolls spec changes out
// max_unavailable at a time, and explains every replica it cannot place.
func Compute(components []*Component, hosts []Host, allocs []Allocation, newID func() string) Plan {
	plan := Plan{Unplaced: map[string][]string{}}
	byName := make(map[string]*compiled, len(components))
	for _, c := range components {
		byName[c.Name] = compile(c)
	}
	u := newUsage(hosts)
	mine := map[string][]Allocation{}
	for _, a := range allocs {
		if _, ok := byName[a.Component]; !ok {
			plan.Stop = append(plan.Stop, a) // its component is gone
			continue
		}
		mine[a.Component] = append(mine[a.Component], a)
	}
	// First pass: which allocations stay, so that placement sees what
	// every component keeps.
	type work struct {
		c       *compiled
		replace int // replicas to place anew
	}
	var works []work
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := byName[name]
		keep, stop, replace := c.keep(mine[name], u)
		plan.Stop = append(plan.Stop, stop...)
		runs := map[string]*compiled{c.hash: c}
		for _, a := range keep {
			i, ok := u.index[a.Host]
			if !ok {
				continue
			}
			r := runs[a.Spec]
			if r == nil && a.Runs != nil {
				r = compile(a.Runs)
				runs[a.Spec] = r
			}
			if r == nil {
				r = c // what it runs is unknown: charge the current spec
			}
			u.takeAs(c.Name, r, i)
		}
		if replace > 0 {
			works = append(works, work{c, replace})
		}
	}
	// Second pass: place what is missing. The placers share one buffer, so
	// memory stays linear in hosts however many components there are.
	var buf []candidate
	for _, w := range works {
		p := newPlacer(w.c, u, buf[:0])
		buf = p.h.items
		for i := 0; i < w.replace; i++ {
			host := p.next()
			if host < 0 {
				plan.Unplaced[w.c.Name] = append(plan.Unplaced[w.c.Name],
					fmt.Sprintf("%d of %d replicas not placed: %s", w.replace-i, w.c.Replicas, p.why()))
				break
			}
			plan.Add = append(plan.Add, Allocation{ID: newID(), Component: w.c.Name, Host: hosts[host].Name, Spec: w.c.hash})
		}
	}
	return plan
}

// keep decides which of a component's allocations stay and which stop, and
// how many replicas must be placed anew.
//
// A rollout keeps at most max_unavailable replicas down at once: a replica
// is down when it is missing (not placed, or stopped and not yet placed
// again), not running, or on a host that is not alive. Outdated replicas
// that are down anyway are replaced first and for free; a running one is
// stopped only while fewer than max_unavailable are down, so a new spec
// that cannot be placed or does not run costs at most max_unavailable.
func (c *compiled) keep(as []Allocation, u *usage) (keep, stop []Allocation, replace int) {
	as = slices.Clone(as)
	slices.SortFunc(as, func(a, b Allocation) int { return cmp.Compare(a.ID, b.ID) })
	var current, outdated []Allocation
	for _, a := range as {
		lost := true
		if i, ok := u.index[a.Host]; ok {
			h := u.hosts[i]
			lost = h.Status == "left" ||
				(h.Status == "failed" && h.FailedFor >= time.Duration(c.RescheduleAfter))
			if h.Status != "alive" {
				a.Running = false // what it last reported is stale
				a.away = true
			}
		}
		switch {
		case lost && !c.Paused:
			stop = append(stop, a)
		case a.Spec == c.hash:
			current = append(current, a)
		default:
			outdated = append(outdated, a)
		}
	}
	if c.Paused {
		return append(current, outdated...), stop, 0
	}
	// Scale down: outdated replicas go first, those down before those
	// running; then current ones down; then those on the most crowded
	// hosts.
	if n := len(current) + len(outdated) - c.Replicas; n > 0 {
		var gone []Allocation
		outdated, gone = takeDown(outdated, n, true)
		stop = append(stop, gone...)
		n -= len(gone)
		current, gone = takeDown(current, n, false)
		stop = append(stop, gone...)
		n -= len(gone)
		current, gone = thin(current, n)
		stop = append(stop, gone...)
	}
	// Roll out.
	down := max(c.Replicas-len(current)-len(outdated), 0)
	for _, a := range current {
		if !a.Running {
			down++
		}
	}
	var running, away []Allocation
	for _, a := range outdated {
		switch {
		case a.away: // its host keeps it until it is rescheduled
			away = append(away, a)
			down++
		case a.Running:
			running = append(running, a)
		default:
			stop = append(stop, a) // down already: replacing it costs nothing
			down++
		}
	}
	k := min(max(c.Update.MaxUnavailable-down, 0), len(running))
	stop = append(stop, running[:k]...)
	keep = append(append(current, running[k:]...), away...)
	return keep, stop, c.Replicas - len(keep)
}

// takeDown removes up to n allocations, those not running first, the last
// by ID first; running ones only if withRunning is set. It returns those
// left and those removed.
func takeDown(as []Allocation, n int, withRunning bool) (left, gone []Allocation) {
	picked := map[int]bool{}
	for pass := 0; pass < 2 && len(gone) < n; pass++ {
		if pass == 1 && !withRunning {
			break
		}
		for i := len(as) - 1; i >= 0 && len(gone) < n; i-- {
			if !picked[i] && (pass == 1 || !as[i].Running) {
				picked[i] = true
				gone = append(gone, as[i])
			}
		}
	}
	for i, a := range as {
		if !picked[i] {
			left = append(left, a)
		}
	}
	return left, gone
}

// thin removes n allocations, each time one on the host holding the most
// (the last by ID among equals, of the last host by name among equals), and
// returns those left and those removed.
func thin(as []Allocation, n int) (left, gone []Allocation) {
	if n <= 0 {
		return as, nil
	}
	byHost := map[string][]Allocation{}
	for _, a := range as {
		byHost[a.Host] = append(byHost[a.Host], a)
	}
	h := &crowd{}
	for name, hs := range byHost {
		h.items = append(h.items, crowdItem{name, hs})
	}
	heap.Init(h)
	removed := make(map[string]bool, n)
	for range n {
		top := &h.items[0]
		a := top.allocs[len(top.allocs)-1]
		top.allocs = top.allocs[:len(top.allocs)-1]
		heap.Fix(h, 0)
		gone = append(gone, a)
		removed[a.ID] = true
	}
	for _, a := range as {
		if !removed[a.ID] {
			left = append(left, a)
		}
	}
	return left, gone
}

// crowd is a heap of hosts, the one holding the most allocations first.
type crowd struct{ items []crowdItem }

type crowdItem struct {
	host   string
	allocs []Allocation
}

func (h *crowd) Len() int { return len(h.items) }
func (h *crowd) Less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	if len(x.allocs) != len(y.allocs) {
		return len(x.allocs) > len(y.allocs)
	}
	return x.host > y.host
}
func (h *crowd) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *crowd) Push(x any)    { h.items = append(h.items, x.(crowdItem)) }
func (h *crowd) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// placer hands out hosts for the replicas of one component, best first:
// with spread, the host with the fewest replicas of the component, then the
// fewest allocations, then the least used; with binpack, the most used host
// that fits. Ties go to the first name. Hosts that cannot take a replica
// are dropped with the reason; since placement only ever adds load, a host
// that cannot take one replica of the component cannot take a later one.
type placer struct {
	c       *compiled
	u       *usage
	h       candidates
	reasons map[string][]string // why -> host names
}

func newPlacer(c *compiled, u *usage, buf []candidate) *placer {
	p := &placer{c: c, u: u, h: candidates{u: u, items: buf}}
	for i := range u.hosts {
		if why := p.static(i); why != "" {
			p.drop(why, i)
			continue
		}
		p.h.items = append(p.h.items, candidate{host: i, score: p.score(i)})
	}
	heap.Init(&p.h)
	return p
}

// next places one replica and returns its host, or -1 if none fits.
func (p *placer) next() int {
	for p.h.Len() > 0 {
		top := &p.h.items[0]
		if why := p.fits(top.host); why != "" {
			p.drop(why, top.host)
			heap.Pop(&p.h)
			continue
		}
		i := top.host
		p.u.take(p.c, i)
		top.score = p.score(i)
		heap.Fix(&p.h, 0)
		return i
	}
	return -1
}

func (p *placer) drop(why string, host int) {
	if p.reasons == nil {
		p.reasons = map[string][]string{}
	}
	p.reasons[why] = append(p.reasons[why], p.u.hosts[host].Name)
}

// why explains why no host is left.
func (p *placer) why() string {
	if len(p.u.hosts) == 0 {
		return "no hosts"
	}
	parts := make([]string, 0, len(p.reasons))
	for why, hs := range p.reasons {
		if len(hs) > 5 {
			hs = append(hs[:5:5], fmt.Sprintf("and %d more", len(hs)-5))
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", why, strings.Join(hs, ", ")))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (p *placer) score(i int) float64 { // lower is better
	if p.c.Strategy == "binpack" {
		return -utilisation(p.u.hosts[i], p.u.res[i])
	}
	return float64(p.u.per[p.c.Name][i])*1e6 + float64(p.u.count[i])*1e3 + utilisation(p.u.hosts[i], p.u.res[i])
}

// static says why host i can take no replica of the component whatever
// else is placed, or "".
func (p *placer) static(i int) string {
	h := p.u.hosts[i]
	if h.Status != "alive" {
		return "host " + h.Status
	}
	if h.Ineligible != "" {
		return h.Ineligible
	}
	for _, k := range p.c.Constraints {
		if !k.matches(h.Labels) {
			switch k.Op {
			case "in":
				return fmt.Sprintf("constraint %s in [%s] not met", k.Label, strings.Join(k.Values, ","))
			case "exists":
				return fmt.Sprintf("constraint %s exists not met", k.Label)
			}
			return fmt.Sprintf("constraint %s %s %s not met", k.Label, k.Op, k.Value)
		}
	}
	return ""
}

// fits says why host i cannot take one more replica now, or "".
func (p *placer) fits(i int) string {
	c, h, used := p.c, p.u.hosts[i], p.u.res[i]
	if c.Resources.CPU > 0 && used.CPU+c.Resources.CPU > h.Capacity.CPU+1e-9 {
		return fmt.Sprintf("not enough CPU free (needs %g)", c.Resources.CPU)
	}
	if c.Resources.Memory > 0 && used.Memory+c.Resources.Memory > h.Capacity.Memory {
		return fmt.Sprintf("not enough memory free (needs %d bytes)", c.Resources.Memory)
	}
	for _, k := range c.portKeys {
		if p.u.ports[i][k] {
			return "host port " + k + " in use"
		}
	}
	return ""
}

// utilisation is the larger of the used CPU and memory fractions of h.
func utilisation(h Host, used Resources) float64 {
	var f float64
	if h.Capacity.CPU > 0 {
		f = used.CPU / h.Capacity.CPU
	}
	if h.Capacity.Memory > 0 {
		f = max(f, float64(used.Memory)/float64(h.Capacity.Memory))
	}
	return f
}

// candidates is a heap of hosts by score, then name.
type candidates struct {
	u     *usage
	items []candidate
}

type candidate struct {
	host  int
	score float64
}

func (h *candidates) Len() int { return len(h.items) }
func (h *candidates) Less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	if x.score != y.score {
		return x.score < y.score
	}
	return h.u.hosts[x.host].Name < h.u.hosts[y.host].Name
}
func (h *candidates) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *candidates) Push(x any)    { h.items = append(h.items, x.(candidate)) }
func (h *candidates) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
