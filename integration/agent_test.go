//go:build integration

package integration

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runDuxd runs the duxd binary to completion and returns its exit code and output.
func runDuxd(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, duxdBin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run duxd %v: %v", args, err)
	}
	return code, out.String()
}

// Rule: a bad flag, a bad value or an address in use stops the agent at
// once with a clear error and a non-zero exit code.
func TestAgent_StartErrorsAreClear(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	base := []string{"agent", "--name", "x", "--data-dir", dir}
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"unknown flag", nil, append(base, "--no-such-flag"), 2, "unknown flag: --no-such-flag"},
		{"bad number", nil, append(base, "--bootstrap-expect", "three"), 2, "invalid argument \"three\""},
		{"bad env value", []string{"DUX_BOOTSTRAP_EXPECT=three"}, base, 2, "DUX_BOOTSTRAP_EXPECT"},
		{"bad address", nil, append(base, "--raft-addr", "nowhere"), 2, "raft-addr"},
		{"bad voters", nil, append(base, "--voters", "4"), 2, "voters must be 3 or 5"},
		{"bad log level", nil, append(base, "--log-level", "loud"), 2, "--log-level"},
		{"grpc address in use", nil, append(base, "--grpc-addr", busy.Addr().String()), 1, "address already in use"},
		{"dev with expect", nil, append(base, "--dev", "--bootstrap-expect", "3"), 2, "dev mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := runDuxd(t, c.env, c.args...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, c.code, c.want)
			}
		})
	}
}

// Rule: flags can come from DUX_<FLAG>, and a second agent on a data dir
// in use is refused.
func TestAgent_EnvFlagsAndDataDirInUse(t *testing.T) {
	a := newAgent(t, "solo", "--dev")
	a.start()
	waitLeader(t, []*agent{a})
	b := newAgent(t, "second")
	code, out := runDuxd(t, []string{"DUX_DATA_DIR=" + a.dir, "DUX_DEV=true"}, "agent", "--name", "second",
		"--grpc-addr", b.grpc, "--http-addr", b.http, "--raft-addr", b.raft, "--gossip-addr", b.gossip)
	if code == 0 || !strings.Contains(out, "in use by another agent") {
		t.Fatalf("second agent on the same data dir: exit %d\n%s", code, out)
	}
}
