//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dux-io/dux/proto"
)

// duxdBin is the duxd binary built once by TestMain, with the race
// detector; duxdFast is built without it, for the load tests.
var duxdBin, duxdFast string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dux-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	duxdBin, duxdFast = filepath.Join(dir, "duxd-race"), filepath.Join(dir, "duxd")
	builds := [][]string{{"build", "-race", "-o", duxdBin, "../cmd/duxd"}, {"build", "-o", duxdFast, "../cmd/duxd"}}
	if os.Getenv("DUX_INTEGRATION_NORACE") != "" {
		duxdBin = duxdFast
		builds = builds[1:]
	}
	for _, args := range builds {
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build duxd:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	removeDockerLeftovers()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut are the ports freePort has returned: the kernel may offer a
// port again as soon as it is released, before the agent given it binds
// it, so a port is never handed out twice in one run.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// freePort returns a port free on 127.0.0.1 for both TCP and UDP (gossip
// needs both), and not handed out before in this run. It picks from below
// Linux's ephemeral range (32768 and up), so that the source port of some
// outgoing connection cannot take it before the agent binds it.
func freePort(t *testing.T) int {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 500 {
		port := 20000 + rand.IntN(12000)
		if handedOut[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		handedOut[port] = true
		return port
	}
	t.Fatal("no free port")
	return 0
}

// agent is one duxd process.
type agent struct {
	t       *testing.T
	bin     string
	name    string
	dir     string
	grpc    string
	http    string
	raft    string
	gossip  string
	extra   []string
	env     []string // added to the test's environment
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	conn *grpc.ClientConn
}

func newAgent(t *testing.T, name string, extra ...string) *agent {
	a := &agent{
		t:      t,
		bin:    duxdBin,
		name:   name,
		dir:    filepath.Join(t.TempDir(), name),
		grpc:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		http:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		raft:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		gossip: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		extra:  extra,
	}
	a.logPath = a.dir + ".log"
	t.Cleanup(func() {
		a.kill()
		if a.conn != nil {
			a.conn.Close()
		}
		if t.Failed() {
			a.dumpLog(60)
		}
	})
	return a
}

func (a *agent) args() []string {
	return append([]string{"agent",
		"--name", a.name, "--data-dir", a.dir,
		"--grpc-addr", a.grpc, "--http-addr", a.http, "--raft-addr", a.raft, "--gossip-addr", a.gossip,
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
		"--log-level", "info",
		// Only the scheduler's tests run containers (--no-docker=false).
		"--no-docker",
	}, a.extra...)
}

func (a *agent) start() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		a.t.Fatal(err)
	}
	cmd := exec.Command(a.bin, a.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(a.env) > 0 {
		cmd.Env = append(os.Environ(), a.env...)
	}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("start %s: %v", a.name, err)
	}
	a.cmd, a.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(a.done)
}

// kill sends SIGKILL: no clean shutdown, as a crash.
func (a *agent) kill() { a.signal(syscall.SIGKILL) }

// stop sends SIGTERM and waits for a clean exit.
func (a *agent) stop() { a.signal(syscall.SIGTERM) }

func (a *agent) signal(sig syscall.Signal) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		a.t.Errorf("%s did not exit on %v", a.name, sig)
	}
}

func (a *agent) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}

func (a *agent) dumpLog(lines int) {
	f, err := os.Open(a.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var all []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	a.t.Logf("--- last %d log lines of %s ---\n%s", len(all), a.name, strings.Join(all, "\n"))
}

func (a *agent) client() *grpc.ClientConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		c, err := grpc.NewClient("passthrough:///"+a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			a.t.Fatal(err)
		}
		a.conn = c
	}
	return a.conn
}

func (a *agent) state() proto.StateClient     { return proto.NewStateClient(a.client()) }
func (a *agent) cluster() proto.ClusterClient { return proto.NewClusterClient(a.client()) }

// startCluster starts n agents with --bootstrap-expect n, each joining the
// first, and waits until they agree on a leader.
func startCluster(t *testing.T, n int, extra ...string) []*agent {
	t.Helper()
	return startClusterOf(t, duxdBin, n, extra...)
}

// startClusterOf is startCluster with the given duxd binary.
func startClusterOf(t *testing.T, bin string, n int, extra ...string) []*agent {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	return startClusterNamed(t, bin, names, extra...)
}

// startClusterNamed is startClusterOf with the members' names.
func startClusterNamed(t *testing.T, bin string, names []string, extra ...string) []*agent {
	t.Helper()
	agents := clusterAgents(t, bin, names, extra...)
	for _, a := range agents {
		a.start()
	}
	waitLeader(t, agents)
	return agents
}

// clusterAgents returns the agents startClusterNamed starts, not started
// yet.
func clusterAgents(t *testing.T, bin string, names []string, extra ...string) []*agent {
	t.Helper()
	n := len(names)
	agents := make([]*agent, n)
	for i := range agents {
		agents[i] = newAgent(t, names[i], extra...)
		agents[i].bin = bin
	}
	for i, a := range agents {
		a.extra = append(a.extra, "--bootstrap-expect", fmt.Sprint(n))
		for j, b := range agents {
			if i != j {
				a.extra = append(a.extra, "--join", b.gossip)
			}
		}
	}
	return agents
}

// waitLeader polls until every running agent names the same leader and
// answers a linearizable read, and returns the leader.
func waitLeader(t *testing.T, agents []*agent) *agent {
	t.Helper()
	var leader *agent
	eventually(t, 30*time.Second, func() error {
		leader = nil
		var id string
		for _, a := range agents {
			if !a.running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := a.cluster().Leader(ctx, &proto.LeaderRequest{})
			if err == nil {
				_, err = a.state().List(ctx, &proto.ListRequest{Prefix: "/", Limit: 1})
			}
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %v", a.name, err)
			}
			if resp.Id == "" || (id != "" && resp.Id != id) {
				return fmt.Errorf("%s sees leader %q, others %q", a.name, resp.Id, id)
			}
			id = resp.Id
		}
		for _, a := range agents {
			if a.name == id {
				leader = a
			}
		}
		if leader == nil || !leader.running() {
			return fmt.Errorf("leader %q is not a running agent", id)
		}
		return nil
	})
	return leader
}

// eventually polls fn until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not within %v: %v", within, err)
}

func followers(agents []*agent, leader *agent) []*agent {
	var out []*agent
	for _, a := range agents {
		if a != leader && a.running() {
			out = append(out, a)
		}
	}
	return out
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func readLog(t *testing.T, a *agent) string {
	t.Helper()
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitUp waits until an agent answers on its gRPC address.
func waitUp(t *testing.T, a *agent) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := a.cluster().Members(ctx, &proto.MembersRequest{})
		return err
	})
}
