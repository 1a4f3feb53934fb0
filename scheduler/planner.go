package scheduler

import (
	"cmp"
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

// usage is what the kept and added allocations take of each host.
type usage struct {
	res   map[string]Resources
	ports map[string]map[string]bool // host -> "80/tcp"
	count map[string]int             // host -> allocations
	per   map[string]map[string]int  // component -> host -> allocations
}

func newUsage() *usage {
	return &usage{res: map[string]Resources{}, ports: map[string]map[string]bool{},
		count: map[string]int{}, per: map[string]map[string]int{}}
}

func (u *usage) take(c *Component, host string) {
	r := u.res[host]
	r.CPU += c.Resources.CPU
	r.Memory += c.Resources.Memory
	u.res[host] = r
	if u.ports[host] == nil {
		u.ports[host] = map[string]bool{}
	}
	for _, p := range c.Ports {
		if p.Host != 0 {
			u.ports[host][fmt.Sprintf("%d/%s", p.Host, p.Protocol)] = true
		}
	}
	u.count[host]++
	if u.per[c.Name] == nil {
		u.per[c.Name] = map[string]int{}
	}
	u.per[c.Name][host]++
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
	byName := map[string]*Component{}
	for _, c := range components {
		byName[c.Name] = c
	}
	hostByName := map[string]Host{}
	for _, h := range hosts {
		hostByName[h.Name] = h
	}
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
		c                 *Component
		current, outdated []Allocation
		replace           int // replicas to place anew
	}
	u := newUsage()
	var works []*work
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := byName[name]
		w := &work{c: c}
		works = append(works, w)
		hash := c.Hash()
		as := slices.Clone(mine[name])
		slices.SortFunc(as, func(a, b Allocation) int { return cmp.Compare(a.ID, b.ID) })
		for _, a := range as {
			h, ok := hostByName[a.Host]
			lost := !ok || h.Status == "left" ||
				(h.Status == "failed" && h.FailedFor >= time.Duration(c.RescheduleAfter))
			switch {
			case lost && !c.Paused:
				plan.Stop = append(plan.Stop, a)
			case a.Spec == hash:
				w.current = append(w.current, a)
			default:
				w.outdated = append(w.outdated, a)
			}
		}
		if c.Paused {
			for _, a := range append(w.current, w.outdated...) {
				u.take(c, a.Host)
			}
			w.current, w.outdated = nil, nil
			continue
		}
		// Scale down: outdated replicas go first, then those on the most
		// crowded hosts.
		for len(w.current)+len(w.outdated) > c.Replicas {
			if len(w.outdated) > 0 {
				plan.Stop = append(plan.Stop, w.outdated[len(w.outdated)-1])
				w.outdated = w.outdated[:len(w.outdated)-1]
				continue
			}
			i := crowded(w.current)
			plan.Stop = append(plan.Stop, w.current[i])
			w.current = slices.Delete(w.current, i, i+1)
		}
		// Roll out: replace outdated replicas while no more than
		// max_unavailable are down (new ones not yet running count).
		starting := 0
		for _, a := range w.current {
			if !a.Running {
				starting++
			}
		}
		budget := c.Update.MaxUnavailable - starting
		for budget > 0 && len(w.outdated) > 0 {
			plan.Stop = append(plan.Stop, w.outdated[0])
			w.outdated = w.outdated[1:]
			w.replace++
			budget--
		}
		for _, a := range append(w.current, w.outdated...) {
			u.take(c, a.Host)
		}
		w.replace += c.Replicas - (len(w.current) + len(w.outdated) + w.replace)
	}
	// Second pass: place what is missing.
	for _, w := range works {
		for i := 0; i < w.replace; i++ {
			host, why := place(w.c, hosts, u)
			if host == "" {
				plan.Unplaced[w.c.Name] = append(plan.Unplaced[w.c.Name],
					fmt.Sprintf("%d of %d replicas not placed: %s", w.replace-i, w.c.Replicas, why))
				break
			}
			u.take(w.c, host)
			plan.Add = append(plan.Add, Allocation{ID: newID(), Component: w.c.Name, Host: host, Spec: w.c.Hash()})
		}
	}
	return plan
}

// crowded returns the index of the allocation on the host with the most
// replicas of the component (the last by ID among equals).
func crowded(as []Allocation) int {
	per := map[string]int{}
	for _, a := range as {
		per[a.Host]++
	}
	best := 0
	for i, a := range as {
		if per[a.Host] >= per[as[best].Host] {
			best = i
		}
	}
	return best
}

// place picks a host for one replica, or says why none fits: with
// spread, the host with the fewest replicas of the component, then the
// fewest allocations, then the least used; with binpack, the most used
// host that fits. Ties go to the first name.
func place(c *Component, hosts []Host, u *usage) (string, string) {
	best, bestScore := -1, 0.0
	var reasons map[string][]string
	for i, h := range hosts {
		if why := unfit(c, h, u); why != "" {
			if reasons == nil {
				reasons = map[string][]string{}
			}
			reasons[why] = append(reasons[why], h.Name)
			continue
		}
		var score float64 // lower is better
		if c.Strategy == "binpack" {
			score = -utilisation(h, u)
		} else {
			score = float64(u.per[c.Name][h.Name])*1e6 + float64(u.count[h.Name])*1e3 + utilisation(h, u)
		}
		if best < 0 || score < bestScore || (score == bestScore && h.Name < hosts[best].Name) {
			best, bestScore = i, score
		}
	}
	if best >= 0 {
		return hosts[best].Name, ""
	}
	if len(hosts) == 0 {
		return "", "no hosts"
	}
	parts := make([]string, 0, len(reasons))
	for why, hs := range reasons {
		parts = append(parts, fmt.Sprintf("%s (%s)", why, strings.Join(hs, ", ")))
	}
	sort.Strings(parts)
	return "", strings.Join(parts, "; ")
}

// unfit says why a replica of c cannot go on h, or "" if it can.
func unfit(c *Component, h Host, u *usage) string {
	if h.Status != "alive" {
		return "host " + h.Status
	}
	for _, k := range c.Constraints {
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
	used := u.res[h.Name]
	if c.Resources.CPU > 0 && used.CPU+c.Resources.CPU > h.Capacity.CPU+1e-9 {
		return fmt.Sprintf("not enough CPU (needs %g, %g free)", c.Resources.CPU, h.Capacity.CPU-used.CPU)
	}
	if c.Resources.Memory > 0 && used.Memory+c.Resources.Memory > h.Capacity.Memory {
		return fmt.Sprintf("not enough memory (needs %d, %d free)", c.Resources.Memory, h.Capacity.Memory-min(used.Memory, h.Capacity.Memory))
	}
	for _, p := range c.Ports {
		if p.Host != 0 && u.ports[h.Name][fmt.Sprintf("%d/%s", p.Host, p.Protocol)] {
			return fmt.Sprintf("host port %d/%s in use", p.Host, p.Protocol)
		}
	}
	return ""
}

// utilisation is the larger of the used CPU and memory fractions of h.
func utilisation(h Host, u *usage) float64 {
	used := u.res[h.Name]
	var f float64
	if h.Capacity.CPU > 0 {
		f = used.CPU / h.Capacity.CPU
	}
	if h.Capacity.Memory > 0 {
		f = max(f, float64(used.Memory)/float64(h.Capacity.Memory))
	}
	return f
}
