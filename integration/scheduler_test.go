//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/proto"
	"github.com/dux-io/dux/scheduler"
)

// The scheduler's tests run a 3-member cluster of duxd processes that all
// use this machine's one Docker Engine: each member's containers are told
// apart by their dux.host label. Members, components and so containers are
// named with the run's prefix, so that the leftovers of a failed run are
// found and removed.

var (
	appOnce  sync.Once
	appImage string
	appErr   error
)

// requireApp builds the workload image FROM scratch around a static Go
// program (testdata/app); nothing is pulled.
func requireApp(t *testing.T) string {
	t.Helper()
	requireDocker(t)
	appOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dux-app-")
		if err != nil {
			appErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "app"), "./testdata/app")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("build app: %v: %s", err, out)
			return
		}
		df := "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			appErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		image := runPrefix + "-app:1"
		if _, appErr = docker(ctx, "build", "-q", "-t", image, dir); appErr == nil {
			appImage = image
			extraImages = append(extraImages, image)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	return appImage
}

// ctr is a container as `docker ps` shows it.
type ctr struct {
	id, state, host, alloc, spec string
}

// containers lists the containers of a component, running or not.
func containers(t *testing.T, component string) []ctr {
	t.Helper()
	out, err := docker(ctxT(t, 30*time.Second), "ps", "-a", "--filter", "label=dux.component="+component,
		"--format", `{{.ID}} {{.State}} {{.Label "dux.host"}} {{.Label "dux.alloc"}} {{.Label "dux.spec"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var cs []ctr
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 5 {
			cs = append(cs, ctr{f[0], f[1], f[2], f[3], f[4]})
		}
	}
	return cs
}

// running counts a component's running containers per host, leaving out
// the hosts in skip, and checks that no allocation has two containers.
func running(t *testing.T, component string, skip ...string) (perHost map[string]int, specs map[string]int) {
	t.Helper()
	perHost, specs = map[string]int{}, map[string]int{}
	allocs := map[string]int{}
	for _, c := range containers(t, component) {
		allocs[c.alloc]++
		if allocs[c.alloc] > 1 {
			t.Errorf("allocation %s runs in two containers", c.alloc)
		}
		if c.state != "running" || contains(skip, c.host) {
			continue
		}
		perHost[c.host]++
		specs[c.spec]++
	}
	return perHost, specs
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// spread renders per-host counts as sorted counts ("1 2 2"), whatever the
// hosts' names.
func spread(perHost map[string]int) string {
	var ns []int
	for _, n := range perHost {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return strings.Trim(fmt.Sprint(ns), "[]")
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// startSchedulerCluster starts three members that run containers.
func startSchedulerCluster(t *testing.T) []*agent {
	t.Helper()
	names := []string{runPrefix + "-h1", runPrefix + "-h2", runPrefix + "-h3"}
	return startClusterNamed(t, duxdBin, names, "--no-docker=false", "--gossip-profile", "local",
		"--executor-interval", "1s", "--scheduler-interval", "1s")
}

// apply writes a component spec with the CLI, as an operator would.
func apply(t *testing.T, a *agent, spec map[string]any) {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(duxdBin, "component", "apply", "-", "--addr", a.grpc)
	cmd.Stdin = strings.NewReader(string(b))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("component apply %s: %v: %s", b, err, out)
	}
}

func cli(t *testing.T, a *agent, args ...string) string {
	t.Helper()
	out, err := exec.Command(duxdBin, append(args, "--addr", a.grpc)...).CombinedOutput()
	if err != nil {
		t.Fatalf("duxd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitSpread waits until the component runs n containers (outside skip)
// of one spec, spread as given ("" to not check).
func waitSpread(t *testing.T, component string, n int, want string, skip ...string) {
	t.Helper()
	eventually(t, 90*time.Second, func() error {
		ph, specs := running(t, component, skip...)
		if total(ph) != n || len(specs) > 1 || (want != "" && spread(ph) != want) {
			return fmt.Errorf("running %v (specs %v), want %d spread %q", ph, specs, n, want)
		}
		return nil
	})
}

func TestScheduler_Docker(t *testing.T) {
	image := requireApp(t)
	agents := startSchedulerCluster(t)
	a := agents[0]
	web := runPrefix + "-web"
	spec := map[string]any{"name": web, "image": image, "replicas": 5, "reschedule_after": "2s",
		"env": map[string]string{"VERSION": "1"}}

	t.Log("5 replicas spread over 3 hosts")
	apply(t, a, spec)
	waitSpread(t, web, 5, "1 2 2")
	if out := cli(t, a, "component", "ls"); !strings.Contains(out, web) || !strings.Contains(out, image) {
		t.Errorf("component ls:\n%s", out)
	}
	if out := cli(t, a, "alloc", "ls", "--component", web); strings.Count(out, "running") != 5 {
		t.Errorf("alloc ls, want 5 running:\n%s", out)
	}

	t.Log("scale to 2, to 0 and back to 5")
	for _, n := range []int{2, 0, 5} {
		spec["replicas"] = n
		apply(t, a, spec)
		want := map[int]string{2: "1 1", 0: "", 5: "1 2 2"}[n]
		waitSpread(t, web, n, want)
	}

	t.Log("an env change rolls out one replica at a time")
	_, before := running(t, web)
	spec["env"] = map[string]string{"VERSION": "2"}
	apply(t, a, spec)
	low := 5
	eventually(t, 120*time.Second, func() error {
		ph, specs := running(t, web)
		low = min(low, total(ph))
		for s, n := range specs {
			if before[s] == 0 && n == 5 && len(specs) == 1 {
				return nil
			}
		}
		return fmt.Errorf("rolling: %v", specs)
	})
	if low < 4 {
		t.Errorf("during the rollout only %d replicas ran; max_unavailable is 1", low)
	}

	t.Log("a container removed by hand is replaced")
	cs := containers(t, web)
	victim := cs[0]
	if _, err := docker(ctxT(t, 30*time.Second), "rm", "-f", victim.id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		for _, c := range containers(t, web) {
			if c.alloc == victim.alloc && c.id != victim.id && c.state == "running" {
				return nil
			}
		}
		return fmt.Errorf("allocation %s not running again", victim.alloc)
	})

	t.Log("a container Dux did not make is never touched")
	foreign := runPrefix + "-foreign"
	if _, err := docker(ctxT(t, 30*time.Second), "run", "-d", "--name", foreign,
		"--label", "dux.host="+a.name, "--label", "dux.component="+web, image); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // several executor passes
	if st, err := docker(ctxT(t, 30*time.Second), "inspect", "-f", "{{.State.Status}}", foreign); err != nil || st != "running" {
		t.Errorf("foreign container: %q %v, want it running untouched", st, err)
	}

	t.Log("an image that cannot be pulled shows a failed status")
	bad := runPrefix + "-bad"
	apply(t, a, map[string]any{"name": bad, "image": runPrefix + "-missing/none:1", "replicas": 1})
	eventually(t, 60*time.Second, func() error {
		st := allocStatuses(t, a, bad)
		if len(st) == 1 && st[0].State == scheduler.StateFailed && strings.Contains(st[0].Reason, "pull") {
			return nil
		}
		return fmt.Errorf("statuses %+v", st)
	})
	cli(t, a, "component", "rm", bad)

	t.Log("a killed member's replicas move to the others")
	victimHost := agents[2]
	victimHost.kill()
	live := agents[:2]
	waitLeader(t, live)
	waitSpread(t, web, 5, "", victimHost.name)
	eventually(t, 60*time.Second, func() error {
		for _, r := range allocations(t, live[0], web) {
			if r.Host == victimHost.name {
				return fmt.Errorf("allocation %s still on %s", r.ID, victimHost.name)
			}
		}
		return nil
	})
	t.Log("when it returns, its orphaned containers are removed")
	victimHost.start()
	waitSpread(t, web, 5, "")
	eventually(t, 60*time.Second, func() error {
		for _, c := range containers(t, web) {
			if c.host == victimHost.name {
				return fmt.Errorf("orphan %s of %s still there (%s)", c.id, c.host, c.state)
			}
		}
		return nil
	})

	t.Log("removing the component stops every replica")
	cli(t, a, "component", "rm", web)
	eventually(t, 60*time.Second, func() error {
		if cs := containers(t, web); len(cs) != 0 {
			return fmt.Errorf("%d containers left", len(cs))
		}
		return nil
	})
	if st, _ := docker(ctxT(t, 30*time.Second), "inspect", "-f", "{{.State.Status}}", foreign); st != "running" {
		t.Errorf("foreign container is %q after the component was removed", st)
	}
}

// Rule: a leader killed in the middle of a rollout leaves it to the next
// one, which finishes it; no allocation ever runs twice.
func TestScheduler_LeaderKillDuringRollout(t *testing.T) {
	image := requireApp(t)
	agents := startSchedulerCluster(t)
	api := runPrefix + "-api"
	spec := map[string]any{"name": api, "image": image, "replicas": 6, "env": map[string]string{"VERSION": "1"}}
	apply(t, agents[0], spec)
	waitSpread(t, api, 6, "2 2 2")
	_, before := running(t, api)

	spec["env"] = map[string]string{"VERSION": "2"}
	apply(t, agents[0], spec)
	leader := waitLeader(t, agents)
	var old int
	eventually(t, 60*time.Second, func() error { // the rollout has begun
		_, specs := running(t, api)
		if len(specs) < 2 {
			return fmt.Errorf("specs %v", specs)
		}
		for s, n := range specs {
			if before[s] > 0 {
				old = n
			}
		}
		return nil
	})
	if old < 3 {
		t.Fatalf("only %d old replicas left when the leader was to be killed: no rollout to interrupt", old)
	}
	t.Logf("killing the leader %s in the middle of the rollout", leader.name)
	leader.kill()
	var rest []*agent
	for _, a := range agents {
		if a != leader {
			rest = append(rest, a)
		}
	}
	next := waitLeader(t, rest)
	leader.start() // it restarts, as after a crash, and rejoins
	eventually(t, 120*time.Second, func() error {
		ph, specs := running(t, api)
		for s, n := range specs {
			if before[s] == 0 && n == 6 && len(specs) == 1 && total(ph) == 6 {
				return nil
			}
		}
		return fmt.Errorf("rolling: %v per host %v", specs, ph)
	})
	if rs := allocations(t, rest[0], api); len(rs) != 6 {
		t.Errorf("%d allocations after the rollout, want 6", len(rs))
	}
	if !strings.Contains(readLog(t, next), `msg=plan`) {
		t.Errorf("the new leader %s committed no plan: someone else finished the rollout", next.name)
	}
	cli(t, rest[0], "component", "rm", api)
	eventually(t, 60*time.Second, func() error {
		if cs := containers(t, api); len(cs) != 0 {
			return fmt.Errorf("%d containers left", len(cs))
		}
		return nil
	})
}

func allocations(t *testing.T, a *agent, component string) []scheduler.AllocationRecord {
	t.Helper()
	resp, err := a.state().List(ctxT(t, 10*time.Second), &proto.ListRequest{Prefix: scheduler.AllocationsPrefix + component + "/"})
	if err != nil {
		t.Fatal(err)
	}
	var out []scheduler.AllocationRecord
	for _, kv := range resp.Items {
		var r scheduler.AllocationRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func allocStatuses(t *testing.T, a *agent, component string) []scheduler.AllocStatus {
	t.Helper()
	var out []scheduler.AllocStatus
	for _, r := range allocations(t, a, component) {
		resp, err := a.state().Get(ctxT(t, 10*time.Second), &proto.GetRequest{Key: scheduler.AllocStatusPrefix + r.ID})
		if err != nil {
			continue
		}
		var s scheduler.AllocStatus
		if json.Unmarshal(resp.Kv.Value, &s) == nil {
			out = append(out, s)
		}
	}
	return out
}

// socketProxy stands for a Docker Engine that starts and stops: a unix
// socket that, while up, forwards every connection to this machine's real
// engine. Taking it down closes the socket and every connection through
// it; the real engine, and what others run on it, is not touched.
type socketProxy struct {
	path, target string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// engineSocket returns the unix socket of the engine the docker CLI uses,
// or "" when it is not a unix socket.
func engineSocket() string {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		return "/var/run/docker.sock"
	}
	if p, ok := strings.CutPrefix(host, "unix://"); ok {
		return p
	}
	return ""
}

func (p *socketProxy) up(t *testing.T) {
	t.Helper()
	l, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.l, p.conns = l, map[net.Conn]bool{}
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.l != l { // taken down meanwhile
				p.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
}

// down closes the socket (the listener unlinks it) and every connection
// through it, and waits until nothing is forwarded any more.
func (p *socketProxy) down() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func hostRecord(t *testing.T, a *agent, name string) (cluster.Host, error) {
	t.Helper()
	resp, err := a.state().Get(ctxT(t, 10*time.Second), &proto.GetRequest{Key: cluster.HostsPrefix + name})
	if err != nil {
		return cluster.Host{}, err
	}
	var h cluster.Host
	return h, json.Unmarshal(resp.Kv.Value, &h)
}

func componentStatus(t *testing.T, a *agent, name string) scheduler.ComponentStatus {
	t.Helper()
	var s scheduler.ComponentStatus
	resp, err := a.state().Get(ctxT(t, 10*time.Second), &proto.GetRequest{Key: scheduler.ComponentStatusPrefix + name})
	if err == nil {
		json.Unmarshal(resp.Kv.Value, &s)
	}
	return s
}

// waitDocker waits until the host record of member says docker = want.
func waitDocker(t *testing.T, a *agent, member string, want bool) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		h, err := hostRecord(t, a, member)
		if err != nil || h.Docker != want || h.Status != cluster.StatusAlive {
			return fmt.Errorf("host %s: %+v %v, want alive with docker=%v", member, h, err, want)
		}
		return nil
	})
}

// Rule: a host's Docker flag follows its engine at runtime. A member
// whose engine starts after it takes no replicas until the engine answers,
// then takes them; when the engine stops, the host takes no more, keeps
// its allocations and reports them failed ("container runtime
// unreachable"), so the leader does not count them as running; when the
// engine answers again they run again. The third member's engine is a
// socket the test forwards to the real engine, or not.
func TestScheduler_EngineComesAndGoes(t *testing.T) {
	image := requireApp(t)
	target := engineSocket()
	if target == "" {
		t.Skipf("the engine is not on a unix socket (DOCKER_HOST=%s): no way to stand one in", os.Getenv("DOCKER_HOST"))
	}
	dir, err := os.MkdirTemp("", "dux-sock-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	proxy := &socketProxy{path: filepath.Join(dir, "docker.sock"), target: target}
	t.Cleanup(proxy.down) // after the agents are killed: cleanups run last first

	names := []string{runPrefix + "-e1", runPrefix + "-e2", runPrefix + "-e3"}
	agents := clusterAgents(t, duxdBin, names, "--no-docker=false", "--gossip-profile", "local",
		"--executor-interval", "1s", "--scheduler-interval", "1s")
	late := agents[2]
	late.env = []string{"DOCKER_HOST=unix://" + proxy.path}
	for _, a := range agents {
		a.start()
	}
	waitLeader(t, agents)
	a := agents[0]
	web := runPrefix + "-late"

	t.Log("no engine behind the third member's socket: it takes no replicas")
	waitDocker(t, a, names[0], true)
	waitDocker(t, a, names[1], true)
	waitDocker(t, a, late.name, false)
	spec := map[string]any{"name": web, "image": image, "replicas": 4}
	apply(t, a, spec)
	waitSpread(t, web, 4, "2 2")
	for _, r := range allocations(t, a, web) {
		if r.Host == late.name {
			t.Errorf("allocation %s placed on %s, whose engine does not answer", r.ID, late.name)
		}
	}

	t.Log("the engine appears: the member takes replicas")
	proxy.up(t)
	waitDocker(t, a, late.name, true)
	spec["replicas"] = 6
	apply(t, a, spec)
	waitSpread(t, web, 6, "2 2 2")
	onLate := func() []scheduler.AllocationRecord {
		var out []scheduler.AllocationRecord
		for _, r := range allocations(t, a, web) {
			if r.Host == late.name {
				out = append(out, r)
			}
		}
		return out
	}
	eventually(t, 60*time.Second, func() error {
		if s := componentStatus(t, a, web); s.Running != 6 {
			return fmt.Errorf("component status %+v, want 6 running", s)
		}
		return nil
	})

	t.Log("the engine goes: its replicas are reported failed, not running, and stay placed")
	proxy.down()
	waitDocker(t, a, late.name, false)
	eventually(t, 60*time.Second, func() error {
		for _, s := range allocStatuses(t, a, web) {
			if s.Host == late.name && (s.State != scheduler.StateFailed || !strings.HasPrefix(s.Reason, "container runtime unreachable: ")) {
				return fmt.Errorf("status %+v, want failed, runtime unreachable", s)
			}
		}
		if s := componentStatus(t, a, web); s.Running != 4 || s.Failed != 2 || s.Placed != 6 {
			return fmt.Errorf("component status %+v, want 4 running and 2 failed of 6 placed", s)
		}
		return nil
	})
	if n := len(onLate()); n != 2 {
		t.Errorf("%d allocations left on %s, want the 2 it had", n, late.name)
	}

	t.Log("the engine answers again: they run again")
	proxy.up(t)
	waitDocker(t, a, late.name, true)
	eventually(t, 60*time.Second, func() error {
		if s := componentStatus(t, a, web); s.Running != 6 {
			return fmt.Errorf("component status %+v, want 6 running", s)
		}
		return nil
	})

	cli(t, a, "component", "rm", web)
	eventually(t, 60*time.Second, func() error {
		if cs := containers(t, web); len(cs) != 0 {
			return fmt.Errorf("%d containers left", len(cs))
		}
		return nil
	})
}

// Rule: a replica whose process keeps exiting, and which Docker keeps
// restarting, is never reported running: it is pending, "restarting",
// with its exit code, and the component counts it as not running, even
// while Docker has it up for a moment between two crashes.
func TestScheduler_CrashLoopIsNotRunning(t *testing.T) {
	image := requireApp(t)
	agents := startSchedulerCluster(t)
	a := agents[0]
	crash := runPrefix + "-crash"
	apply(t, a, map[string]any{"name": crash, "image": image, "replicas": 1,
		"env": map[string]string{"APP_EXIT": "3", "APP_EXIT_AFTER": "700ms"}})
	var container string
	restarting := 0
	eventually(t, 90*time.Second, func() error {
		st := allocStatuses(t, a, crash)
		if len(st) != 1 {
			return fmt.Errorf("statuses %+v", st)
		}
		s := st[0]
		if s.State == scheduler.StateRunning && container != "" {
			t.Fatalf("a crash-looping replica reported running: %+v", s)
		}
		if s.State == scheduler.StatePending && s.Reason == scheduler.ReasonRestarting && s.ExitCode == 3 {
			container = s.ContainerID
			restarting++
		}
		if restarting < 50 { // five seconds of polls: Docker restarts it meanwhile
			return fmt.Errorf("status %+v, seen restarting %d times", s, restarting)
		}
		return nil
	})
	out, err := docker(ctxT(t, 30*time.Second), "inspect", "-f", "{{.RestartCount}}", container)
	if n, _ := strconv.Atoi(out); err != nil || n == 0 {
		t.Errorf("Docker restarted the container %q times (%v), want it crash-looping", out, err)
	}
	if s := componentStatus(t, a, crash); s.Running != 0 || s.Placed != 1 {
		t.Errorf("component status %+v, want 1 placed, 0 running", s)
	}
	cli(t, a, "component", "rm", crash)
	eventually(t, 60*time.Second, func() error {
		if cs := containers(t, crash); len(cs) != 0 {
			return fmt.Errorf("%d containers left", len(cs))
		}
		return nil
	})
}
