package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/fsm"
)

func comp(name string, replicas int, mods ...func(*Component)) *Component {
	c := &Component{Name: name, Image: "img:" + name, Replicas: replicas}
	for _, m := range mods {
		m(c)
	}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

func host(name string, mods ...func(*Host)) Host {
	h := Host{Name: name, Status: "alive", Capacity: Resources{CPU: 4, Memory: 8 << 30}, Labels: map[string]string{}}
	for _, m := range mods {
		m(&h)
	}
	return h
}

func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("a%03d", n) }
}

// perHost counts, per host, the allocations of a component that remain
// after applying the plan to allocs.
func perHost(allocs []Allocation, p Plan, component string) map[string]int {
	stopped := map[string]bool{}
	for _, a := range p.Stop {
		stopped[a.ID] = true
	}
	out := map[string]int{}
	for _, a := range append(slices.Clone(allocs), p.Add...) {
		if a.Component == component && !stopped[a.ID] {
			out[a.Host]++
		}
	}
	return out
}

func alloc(id, component, h string, c *Component) Allocation {
	return Allocation{ID: id, Component: component, Host: h, Spec: c.Hash(), Running: true}
}

func TestCompute_Placement(t *testing.T) {
	web := comp("web", 5)
	big := comp("big", 3, func(c *Component) { c.Resources = Resources{CPU: 3} })
	packed := comp("packed", 3, func(c *Component) { c.Strategy = "binpack"; c.Resources = Resources{CPU: 1} })
	zoned := comp("zoned", 2, func(c *Component) {
		c.Constraints = []Constraint{{Label: "zone", Op: "=", Value: "b"}}
	})
	inZones := comp("inzones", 3, func(c *Component) {
		c.Constraints = []Constraint{{Label: "zone", Op: "in", Values: []string{"a", "b"}}, {Label: "ssd", Op: "exists"}}
	})
	ported := comp("ported", 3, func(c *Component) { c.Ports = []Port{{Container: 80, Host: 8080}} })
	three := []Host{host("h1"), host("h2"), host("h3")}
	zonedHosts := []Host{
		host("h1", func(h *Host) { h.Labels = map[string]string{"zone": "a", "ssd": "1"} }),
		host("h2", func(h *Host) { h.Labels = map[string]string{"zone": "b"} }),
		host("h3", func(h *Host) { h.Labels = map[string]string{"zone": "c", "ssd": "1"} }),
	}
	cases := []struct {
		name      string
		c         *Component
		hosts     []Host
		want      map[string]int // per host after the plan
		unplaced  string         // substring of the explanation, "" for none
		stopCount int
	}{
		{"spread over three hosts", web, three, map[string]int{"h1": 2, "h2": 2, "h3": 1}, "", 0},
		{"resources never overcommitted", big, three, map[string]int{"h1": 1, "h2": 1, "h3": 1}, "", 0},
		{"infeasible: not enough CPU", comp("huge", 1, func(c *Component) { c.Resources = Resources{CPU: 5} }), three,
			map[string]int{}, "not enough CPU", 0},
		{"binpack fills one host first", packed, three, map[string]int{"h1": 3}, "", 0},
		{"constraint =", zoned, zonedHosts, map[string]int{"h2": 2}, "", 0},
		{"constraint in and exists; spread yields where one host fits", inZones, zonedHosts, map[string]int{"h1": 3}, "", 0},
		{"host ports never collide", ported, three[:2], map[string]int{"h1": 1, "h2": 1}, "host port 8080/tcp in use", 0},
		{"no alive host", web, []Host{host("h1", func(h *Host) { h.Status = "suspect" })}, map[string]int{}, "host suspect", 0},
		{"zero replicas", comp("none", 0), three, map[string]int{}, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute([]*Component{tc.c}, tc.hosts, nil, ids())
			got := perHost(nil, p, tc.c.Name)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("placement %v, want %v (unplaced %v)", got, tc.want, p.Unplaced)
			}
			why := strings.Join(p.Unplaced[tc.c.Name], "; ")
			if (tc.unplaced == "") != (why == "") || !strings.Contains(why, tc.unplaced) {
				t.Errorf("unplaced %q, want it to say %q", why, tc.unplaced)
			}
			if len(p.Stop) != tc.stopCount {
				t.Errorf("stops %v, want %d", p.Stop, tc.stopCount)
			}
		})
	}
}

func TestCompute_ScaleAndHostLoss(t *testing.T) {
	web := comp("web", 4)
	hosts := []Host{host("h1"), host("h2"), host("h3")}
	cur := []Allocation{alloc("x1", "web", "h1", web), alloc("x2", "web", "h1", web), alloc("x3", "web", "h2", web), alloc("x4", "web", "h3", web)}

	t.Run("scale down stops the most crowded host first", func(t *testing.T) {
		p := Compute([]*Component{comp("web", 3)}, hosts, cur, ids())
		if got := perHost(cur, p, "web"); fmt.Sprint(got) != fmt.Sprint(map[string]int{"h1": 1, "h2": 1, "h3": 1}) {
			t.Errorf("after scale down %v", got)
		}
	})
	t.Run("scale up spreads", func(t *testing.T) {
		p := Compute([]*Component{comp("web", 6)}, hosts, cur, ids())
		if got := perHost(cur, p, "web"); fmt.Sprint(got) != fmt.Sprint(map[string]int{"h1": 2, "h2": 2, "h3": 2}) {
			t.Errorf("after scale up %v", got)
		}
	})
	t.Run("a suspect host keeps its replicas", func(t *testing.T) {
		hs := slices.Clone(hosts)
		hs[0].Status = "suspect"
		if p := Compute([]*Component{web}, hs, cur, ids()); !p.Empty() {
			t.Errorf("plan %+v, want nothing", p)
		}
	})
	t.Run("failed shorter than reschedule_after keeps them", func(t *testing.T) {
		hs := slices.Clone(hosts)
		hs[0].Status, hs[0].FailedFor = "failed", 10*time.Second
		if p := Compute([]*Component{web}, hs, cur, ids()); !p.Empty() {
			t.Errorf("plan %+v, want nothing", p)
		}
	})
	t.Run("failed longer moves them", func(t *testing.T) {
		hs := slices.Clone(hosts)
		hs[0].Status, hs[0].FailedFor = "failed", 2*time.Minute
		p := Compute([]*Component{web}, hs, cur, ids())
		if got := perHost(cur, p, "web"); fmt.Sprint(got) != fmt.Sprint(map[string]int{"h2": 2, "h3": 2}) {
			t.Errorf("after host loss %v (plan %+v)", got, p)
		}
	})
	t.Run("a deleted component is stopped", func(t *testing.T) {
		p := Compute(nil, hosts, cur, ids())
		if len(p.Stop) != 4 || len(p.Add) != 0 {
			t.Errorf("plan %+v, want every allocation stopped", p)
		}
	})
	t.Run("paused changes nothing", func(t *testing.T) {
		paused := comp("web", 9, func(c *Component) { c.Paused = true })
		if p := Compute([]*Component{paused}, hosts, cur, ids()); !p.Empty() {
			t.Errorf("plan %+v, want nothing", p)
		}
	})
}

// Rule: a spec change replaces at most max_unavailable replicas at a time,
// and waits until the new ones run.
func TestCompute_RollingUpdate(t *testing.T) {
	old := comp("web", 4)
	hosts := []Host{host("h1"), host("h2"), host("h3"), host("h4")}
	cur := []Allocation{alloc("x1", "web", "h1", old), alloc("x2", "web", "h2", old), alloc("x3", "web", "h3", old), alloc("x4", "web", "h4", old)}
	changed := comp("web", 4, func(c *Component) { c.Env = map[string]string{"V": "2"}; c.Update.MaxUnavailable = 2 })
	p := Compute([]*Component{changed}, hosts, cur, ids())
	if len(p.Stop) != 2 || len(p.Add) != 2 {
		t.Fatalf("first step: %d stopped, %d added; want 2 and 2", len(p.Stop), len(p.Add))
	}
	// Apply; the new ones are not running yet: nothing more happens.
	next := slices.DeleteFunc(slices.Clone(cur), func(a Allocation) bool {
		return slices.ContainsFunc(p.Stop, func(s Allocation) bool { return s.ID == a.ID })
	})
	next = append(next, p.Add...)
	if p2 := Compute([]*Component{changed}, hosts, next, ids()); !p2.Empty() {
		t.Fatalf("second step while new replicas start: %+v, want nothing", p2)
	}
	for i := range next {
		next[i].Running = true
	}
	if p3 := Compute([]*Component{changed}, hosts, next, ids()); len(p3.Stop) != 2 || len(p3.Add) != 2 {
		t.Fatalf("third step: %+v, want the last two replaced", p3)
	}
}

func TestParseComponent_FieldErrors(t *testing.T) {
	cases := []struct{ json, field string }{
		{`{"replicas":1}`, "image"},
		{`{"image":"x","replicas":-1}`, "replicas"},
		{`{"image":"x","restart":"sometimes"}`, "restart"},
		{`{"image":"x","strategy":"random"}`, "strategy"},
		{`{"image":"x","ports":[{"container":0}]}`, "ports[0].container"},
		{`{"image":"x","ports":[{"container":80,"host":80},{"container":81,"host":80}]}`, "ports[1].host"},
		{`{"image":"x","constraints":[{"label":"zone","op":"~"}]}`, "constraints[0].op"},
		{`{"image":"x","constraints":[{"label":"zone","op":"in"}]}`, "constraints[0].values"},
		{`{"image":"x","reschedule_after":"soon"}`, "spec"},
		{`{"name":"other","image":"x"}`, "name"},
		{`not json`, "spec"},
		{`{"image":"x","reads":["config/"]}`, "reads[0]"},
		{`{"image":"x","reads":["/config/","/a//b/"]}`, "reads[1]"},
		{`{"image":"x","writes":["/status/web/","/a/../b"]}`, "writes[1]"},
		{`{"image":"x","writes":[""]}`, "writes[0]"},
		{`{"image":"x","writes":"/a/"}`, "spec"},
		{`{"image":"x","reads":[` + strings.Repeat(`"/a/",`, MaxUses) + `"/b/"]}`, "reads"},
	}
	for _, c := range cases {
		_, err := ParseComponent("web", []byte(c.json))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: err %v, want a field error on %s", c.json, err, c.field)
		}
	}
	c, err := ParseComponent("web", []byte(`{"image":"x","replicas":2,"reschedule_after":"30s"}`))
	if err != nil || c.Restart != "always" || c.Strategy != "spread" || c.Update.MaxUnavailable != 1 || time.Duration(c.RescheduleAfter) != 30*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}

// Rule: reads and writes are checked as subscription channels are (a key,
// or a prefix ending in "/"), refused on write with the entry at fault,
// and restart nothing: they are not part of the hash.
func TestComponent_ReadsAndWrites(t *testing.T) {
	plain, err := ParseComponent("web", []byte(`{"image":"x","replicas":2}`))
	if err != nil {
		t.Fatal(err)
	}
	declared, err := ParseComponent("web", []byte(`{"image":"x","replicas":2,"reads":["/","/config/web/","/deploy/web"],"writes":["/status/web/"]}`))
	if err != nil {
		t.Fatalf("valid reads and writes refused: %v", err)
	}
	if plain.Hash() != declared.Hash() {
		t.Errorf("declaring reads and writes changed the hash: %s, %s", plain.Hash(), declared.Hash())
	}
	if declared.Actor() != "component/web" || !slices.Equal(declared.Reads, []string{"/", "/config/web/", "/deploy/web"}) {
		t.Errorf("actor %q, reads %v", declared.Actor(), declared.Reads)
	}
	err = CheckValue("/components/web", []byte(`{"image":"x","writes":["/ok/","/bad//key"]}`))
	var fe *fsm.Error
	if !errors.As(err, &fe) || fe.Code != fsm.CodeInvalid || fe.Field != "value.writes[1]" || !strings.Contains(fe.Message, "empty segment") {
		t.Errorf("CheckValue: %v (%#v), want invalid value.writes[1] with the key's fault", err, fe)
	}
}

func BenchmarkCompute_10kReplicasOn1kHosts(b *testing.B) {
	var hosts []Host
	for i := range 1000 {
		hosts = append(hosts, host(fmt.Sprintf("h%04d", i)))
	}
	var comps []*Component
	for i := range 100 {
		comps = append(comps, comp(fmt.Sprintf("c%03d", i), 100, func(c *Component) { c.Resources = Resources{CPU: 0.1, Memory: 64 << 20} }))
	}
	b.ReportAllocs()
	for b.Loop() {
		p := Compute(comps, hosts, nil, ids())
		if len(p.Add) != 10000 {
			b.Fatalf("placed %d", len(p.Add))
		}
	}
}

// benchHosts and benchComponents: 100 components of 100 replicas (10,000
// in all) over 1,000 hosts.
func benchHosts() []Host {
	var hosts []Host
	for i := range 1000 {
		hosts = append(hosts, host(fmt.Sprintf("h%04d", i)))
	}
	return hosts
}

func benchComponents() []*Component {
	var comps []*Component
	for i := range 100 {
		comps = append(comps, comp(fmt.Sprintf("c%03d", i), 100, func(c *Component) { c.Resources = Resources{CPU: 0.1, Memory: 64 << 20} }))
	}
	return comps
}

// The leader plans on every change: most plans find everything in place.
func BenchmarkCompute_10kReplicasOn1kHosts_Steady(b *testing.B) {
	hosts, comps := benchHosts(), benchComponents()
	cur := Compute(comps, hosts, nil, ids()).Add
	for i := range cur {
		cur[i].Running = true
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := Compute(comps, hosts, cur, ids()); !p.Empty() {
			b.Fatalf("steady plan changes %d", len(p.Add)+len(p.Stop))
		}
	}
}

// A host of the 1,000 is lost: its replicas move.
func BenchmarkCompute_10kReplicasOn1kHosts_HostLost(b *testing.B) {
	hosts, comps := benchHosts(), benchComponents()
	cur := Compute(comps, hosts, nil, ids()).Add
	hosts[0].Status, hosts[0].FailedFor = "left", 0
	b.ReportAllocs()
	for b.Loop() {
		if p := Compute(comps, hosts, cur, ids()); len(p.Add) == 0 || len(p.Add) != len(p.Stop) {
			b.Fatalf("moved %d, stopped %d", len(p.Add), len(p.Stop))
		}
	}
}

// One component of 10,000 replicas scaled down to 5,000.
func BenchmarkCompute_ScaleDown10kTo5k(b *testing.B) {
	hosts := benchHosts()
	big := comp("big", 10000)
	cur := Compute([]*Component{big}, hosts, nil, ids()).Add
	half := comp("big", 5000)
	b.ReportAllocs()
	for b.Loop() {
		if p := Compute([]*Component{half}, hosts, cur, ids()); len(p.Stop) != 5000 {
			b.Fatalf("stopped %d", len(p.Stop))
		}
	}
}

// Cost as the cluster grows, replicas ten per host: time and memory should
// grow about linearly in hosts plus allocations.
func BenchmarkCompute_Size(b *testing.B) {
	for _, hosts := range []int{100, 1000, 2000, 4000} {
		b.Run(fmt.Sprintf("hosts=%d/replicas=%d", hosts, 10*hosts), func(b *testing.B) {
			var hs []Host
			for i := range hosts {
				hs = append(hs, host(fmt.Sprintf("h%05d", i)))
			}
			var comps []*Component
			for i := range hosts / 10 {
				comps = append(comps, comp(fmt.Sprintf("c%04d", i), 100, func(c *Component) { c.Resources = Resources{CPU: 0.1, Memory: 64 << 20} }))
			}
			b.ReportAllocs()
			for b.Loop() {
				if p := Compute(comps, hs, nil, ids()); len(p.Add) != 10*hosts {
					b.Fatalf("placed %d", len(p.Add))
				}
			}
		})
	}
}

// apply returns the allocations after a plan, with those added marked
// running or not.
func applyPlan(allocs []Allocation, p Plan, addedRunning bool) []Allocation {
	stopped := map[string]bool{}
	for _, a := range p.Stop {
		stopped[a.ID] = true
	}
	var out []Allocation
	for _, a := range allocs {
		if !stopped[a.ID] {
			out = append(out, a)
		}
	}
	for _, a := range p.Add {
		a.Running = addedRunning
		out = append(out, a)
	}
	return out
}

// Rule: a rollout to a spec that cannot be placed costs at most
// max_unavailable replicas, however many passes run.
func TestCompute_RolloutThatCannotBePlacedStops(t *testing.T) {
	old := comp("web", 3)
	hosts := []Host{host("h1"), host("h2"), host("h3")}
	cur := []Allocation{alloc("x1", "web", "h1", old), alloc("x2", "web", "h2", old), alloc("x3", "web", "h3", old)}
	huge := comp("web", 3, func(c *Component) { c.Resources = Resources{CPU: 64} })
	for pass := range 5 {
		p := Compute([]*Component{huge}, hosts, cur, ids())
		cur = applyPlan(cur, p, false)
		if pass == 0 && len(p.Unplaced["web"]) == 0 {
			t.Fatalf("pass %d: no explanation for the unplaced replica", pass)
		}
	}
	if len(cur) != 2 {
		t.Fatalf("after 5 passes %d replicas remain, want 2 (max_unavailable 1)", len(cur))
	}
}

// Rule: an outdated replica takes what its own spec asks of its host, not
// what the component asks now.
func TestCompute_OutdatedReplicaChargesItsOwnSpec(t *testing.T) {
	big := comp("a", 2, func(c *Component) { c.Resources = Resources{CPU: 3} })
	small := comp("a", 2, func(c *Component) { c.Resources = Resources{CPU: 1} })
	h1 := host("h1")
	cur := []Allocation{
		{ID: "x1", Component: "a", Host: "h1", Spec: small.Hash(), Running: false},
		{ID: "x2", Component: "a", Host: "h1", Spec: big.Hash(), Running: true, Runs: big},
	}
	other := comp("b", 1, func(c *Component) { c.Resources = Resources{CPU: 1} })
	p := Compute([]*Component{small, other}, []Host{h1}, cur, ids())
	if len(p.Stop) != 0 {
		t.Fatalf("stopped %v while a new replica is still starting", p.Stop)
	}
	if len(p.Add) != 0 || !strings.Contains(strings.Join(p.Unplaced["b"], ";"), "not enough CPU") {
		t.Fatalf("b placed on a host whose 4 CPUs the old replica (3) and the new one (1) take: %+v", p)
	}
}

// Rule: scale down stops replicas that are down before those that run.
func TestCompute_ScaleDownStopsReplicasThatAreDownFirst(t *testing.T) {
	web := comp("web", 3)
	hosts := []Host{host("h1"), host("h2"), host("h3")}
	cur := []Allocation{alloc("x1", "web", "h1", web), alloc("x2", "web", "h2", web), alloc("x3", "web", "h3", web)}
	cur[0].Running = false
	p := Compute([]*Component{comp("web", 2)}, hosts, cur, ids())
	if len(p.Stop) != 1 || p.Stop[0].ID != "x1" {
		t.Fatalf("stopped %v, want x1 (not running)", p.Stop)
	}
}

// Rule: changing constraints replaces the replicas, so none stays on a
// host that no longer meets them.
func TestCompute_ConstraintChangeMovesReplicas(t *testing.T) {
	web := comp("web", 1)
	hosts := []Host{host("h1", func(h *Host) { h.Labels = map[string]string{"zone": "a"} }),
		host("h2", func(h *Host) { h.Labels = map[string]string{"zone": "b"} })}
	cur := []Allocation{alloc("x1", "web", "h1", web)}
	inB := comp("web", 1, func(c *Component) { c.Constraints = []Constraint{{Label: "zone", Op: "=", Value: "b"}} })
	p := Compute([]*Component{inB}, hosts, cur, ids())
	if len(p.Stop) != 1 || len(p.Add) != 1 || p.Add[0].Host != "h2" {
		t.Fatalf("plan %+v, want x1 replaced on h2", p)
	}
}

// Rule: a replica on a host that is not alive does not count as running,
// so a rollout does not take down another one meanwhile; and the host
// keeps it until it is rescheduled.
func TestCompute_ReplicaOnSuspectHostCountsAsDown(t *testing.T) {
	old := comp("web", 3)
	hosts := []Host{host("h1", func(h *Host) { h.Status = "suspect" }), host("h2"), host("h3")}
	cur := []Allocation{alloc("x1", "web", "h1", old), alloc("x2", "web", "h2", old), alloc("x3", "web", "h3", old)}
	next := comp("web", 3, func(c *Component) { c.Image = "img:v2" })
	if p := Compute([]*Component{next}, hosts, cur, ids()); !p.Empty() {
		t.Fatalf("plan %+v, want nothing while a replica is down on a suspect host", p)
	}
}

// Rule: a host that is ineligible (its engine does not answer) takes no
// new replica but keeps those it has, even when they are not running; only
// its status (failed, left) moves them.
func TestCompute_IneligibleHostKeepsItsReplicas(t *testing.T) {
	web := comp("web", 3)
	hosts := []Host{host("h1", func(h *Host) { h.Ineligible = "no Docker engine" }), host("h2")}
	allocs := []Allocation{alloc("a1", "web", "h1", web), alloc("a2", "web", "h1", web)}
	for i := range allocs {
		allocs[i].Running = false // reported failed: runtime unreachable
	}
	p := Compute([]*Component{web}, hosts, allocs, ids())
	if len(p.Stop) != 0 {
		t.Errorf("stopped %v on an ineligible host, want them kept", p.Stop)
	}
	if got := perHost(allocs, p, "web"); got["h1"] != 2 || got["h2"] != 1 {
		t.Errorf("replicas per host %v, want h1 keeping 2 and the third on h2", got)
	}
	hosts[1].Ineligible = "no Docker engine"
	p = Compute([]*Component{web}, hosts, allocs, ids())
	if len(p.Add) != 0 || len(p.Stop) != 0 || len(p.Unplaced["web"]) != 1 ||
		!strings.Contains(p.Unplaced["web"][0], "no Docker engine (h1, h2)") {
		t.Errorf("no eligible host: plan %+v, want nothing added or stopped and the reason", p)
	}
}
