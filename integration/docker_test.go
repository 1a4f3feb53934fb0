//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dux-io/dux/proto"
)

// The Docker harness runs members as containers of an image built FROM
// scratch around a static duxd, on a private network of their own, so that
// a member can be cut off for real with `docker network disconnect`.
// Everything it creates is named with a per-run prefix and removed at the
// end, even when a test fails.

var (
	dockerOnce  sync.Once
	dockerErr   error
	dockerImage string
	// extraImages are the other images this run built.
	extraImages []string
	runPrefix   = fmt.Sprintf("duxtest-%d-%04x", os.Getpid(), rand.IntN(1<<16))
)

// docker runs the docker CLI and returns its trimmed output.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// requireDocker skips a test when Docker is not there, unless
// DUX_REQUIRE_DOCKER=1 (CI), where that is a failure. It builds the image
// once.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		if os.Getenv("DUX_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker is required (DUX_REQUIRE_DOCKER=1) but not reachable: %v", err)
		}
		t.Skipf("Docker not reachable: %v", err)
	}
	dockerOnce.Do(func() { dockerImage, dockerErr = buildImage() })
	if dockerErr != nil {
		t.Fatal(dockerErr)
	}
}

// buildImage builds the duxd image FROM scratch with a static binary;
// nothing is pulled.
func buildImage() (string, error) {
	dir, err := os.MkdirTemp("", "dux-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "duxd"), "../cmd/duxd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build static duxd: %v: %s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY duxd /duxd\nENTRYPOINT [\"/duxd\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return "", err
	}
	image := runPrefix + ":latest"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := docker(ctx, "build", "-q", "-t", image, dir); err != nil {
		return "", err
	}
	return image, nil
}

// removeDockerLeftovers removes every container, network and image of this
// run. TestMain calls it last.
func removeDockerLeftovers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if ids, _ := docker(ctx, "ps", "-aq", "--filter", "name="+runPrefix); ids != "" {
		docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker(ctx, "network", "ls", "-q", "--filter", "name="+runPrefix); ids != "" {
		docker(ctx, append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	if dockerImage != "" {
		docker(ctx, "rmi", "-f", dockerImage)
	}
	for _, image := range extraImages {
		docker(ctx, "rmi", "-f", image)
	}
}

// dnet is a private Docker network with its own subnet.
type dnet struct {
	name   string
	subnet string // first three octets, e.g. "172.29.14"
}

func newNetwork(t *testing.T) *dnet {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	var lastErr error
	for range 20 {
		n := &dnet{
			name:   fmt.Sprintf("%s-net%d", runPrefix, rand.IntN(1e6)),
			subnet: fmt.Sprintf("172.%d.%d", 24+rand.IntN(8), rand.IntN(256)),
		}
		_, err := docker(ctx, "network", "create", "--subnet", n.subnet+".0/24", n.name)
		if err == nil {
			t.Cleanup(func() { docker(context.Background(), "network", "rm", n.name) })
			return n
		}
		lastErr = err // the subnet may overlap another network: try another
	}
	t.Fatalf("create network: %v", lastErr)
	return nil
}

// cmember is one duxd container.
type cmember struct {
	t    *testing.T
	net  *dnet
	name string
	ip   string
	args []string
	conn *grpc.ClientConn
}

func (m *cmember) container() string { return runPrefix + "-" + m.name }
func (m *cmember) grpcAddr() string  { return m.ip + ":7700" }
func (m *cmember) gossipAddr() string {
	return m.ip + ":7703"
}

// startContainers starts n members on net; they find each other through
// gossip and bootstrap with --bootstrap-expect n.
func startContainers(t *testing.T, net *dnet, n int, extra ...string) []*cmember {
	t.Helper()
	ms := make([]*cmember, n)
	for i := range ms {
		ms[i] = &cmember{t: t, net: net, name: fmt.Sprintf("c%d", i+1), ip: fmt.Sprintf("%s.%d", net.subnet, 10+i)}
	}
	for i, m := range ms {
		m.args = append([]string{"--bootstrap-expect", fmt.Sprint(n)}, extra...)
		for j, o := range ms {
			if i != j {
				m.args = append(m.args, "--join", o.gossipAddr())
			}
		}
		m.run()
	}
	return ms
}

func (m *cmember) run() {
	m.t.Helper()
	ctx := ctxT(m.t, time.Minute)
	args := append([]string{"run", "-d", "--name", m.container(), "--network", m.net.name, "--ip", m.ip,
		"--label", "dux.test=" + runPrefix, dockerImage,
		"agent", "--name", m.name, "--data-dir", "/data", "--advertise", m.ip,
		"--grpc-addr", "0.0.0.0:7700", "--http-addr", "0.0.0.0:7701",
		"--raft-addr", "0.0.0.0:7702", "--gossip-addr", "0.0.0.0:7703",
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
	}, m.args...)
	if _, err := docker(ctx, args...); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() {
		if m.t.Failed() {
			logs, _ := exec.Command("docker", "logs", "--tail", "40", m.container()).CombinedOutput()
			m.t.Logf("--- last log lines of %s ---\n%s", m.name, logs)
		}
		docker(context.Background(), "rm", "-f", "-v", m.container())
		if m.conn != nil {
			m.conn.Close()
		}
	})
}

func (m *cmember) client() *grpc.ClientConn {
	if m.conn == nil {
		c, err := grpc.NewClient("passthrough:///"+m.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			m.t.Fatal(err)
		}
		m.conn = c
	}
	return m.conn
}

func (m *cmember) state() proto.StateClient     { return proto.NewStateClient(m.client()) }
func (m *cmember) cluster() proto.ClusterClient { return proto.NewClusterClient(m.client()) }

// disconnect cuts the member off its network; connect heals it at the same address.
func (m *cmember) disconnect() {
	if _, err := docker(ctxT(m.t, 30*time.Second), "network", "disconnect", m.net.name, m.container()); err != nil {
		m.t.Fatal(err)
	}
}

func (m *cmember) connect() {
	if _, err := docker(ctxT(m.t, 30*time.Second), "network", "connect", "--ip", m.ip, m.net.name, m.container()); err != nil {
		m.t.Fatal(err)
	}
}

// waitContainerLeader polls until every given member answers a
// linearizable read.
func waitContainerLeader(t *testing.T, ms []*cmember) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		for _, m := range ms {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := m.state().List(ctx, &proto.ListRequest{Prefix: "/", Limit: 1})
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %v", m.name, err)
			}
		}
		return nil
	})
}
