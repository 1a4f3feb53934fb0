//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock returns the lines of the first ```sh block after marker in
// the README.
func readmeBlock(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README has no %q", marker)
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	return strings.Split(strings.TrimSpace(block), "\n")
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// Rule: on a fresh machine (an empty home), `make run` starts a dev agent
// that prints its addresses (the APIs' and the web UI's), and the README's
// curl examples work against it.
func TestQuickstart_MakeRunAndReadmeCurl(t *testing.T) {
	home := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "run")
	// A fresh home for the agent's data; Go keeps its caches where they are.
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME=",
		"GOMODCACHE="+goEnv(t, "GOMODCACHE"), "GOCACHE="+goEnv(t, "GOCACHE"), "GOPATH="+goEnv(t, "GOPATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("make run stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(done)
	}()
	var printed []string
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(strings.Join(printed, "\n"), "Data dir:") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended early:\n%s", strings.Join(printed, "\n"))
			}
			printed = append(printed, l)
		case <-deadline:
			t.Fatalf("make run printed no addresses:\n%s", strings.Join(printed, "\n"))
		}
	}
	out := strings.Join(printed, "\n")
	for _, want := range []string{"gRPC API:  127.0.0.1:7700", "HTTP API:  http://127.0.0.1:7701/v1/", "Web UI:    http://127.0.0.1:7701/ui/", home} {
		if !strings.Contains(out, want) {
			t.Fatalf("make run output lacks %q:\n%s", want, out)
		}
	}
	curls := readmeBlock(t, "Write and read state over HTTP:")
	if len(curls) != 3 {
		t.Fatalf("README quickstart has %d curl lines, want 3: %q", len(curls), curls)
	}
	var results []map[string]any
	for _, c := range curls {
		var body []byte
		eventuallyOK := time.Now().Add(30 * time.Second)
		for {
			body, err = exec.Command("bash", "-c", c+" --silent --show-error --fail-with-body").Output()
			if err == nil || time.Now().After(eventuallyOK) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s: %v %s", c, err, body)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: not JSON: %s", c, body)
		}
		results = append(results, m)
	}
	rev := results[0]["revision"]
	got := results[1]
	value, _ := got["value"].(map[string]any)
	if rev == nil || got["key"] != "/config/app/db" || value["host"] != "db1" || got["mod_revision"] != rev {
		t.Fatalf("README put/get: put %v, get %v", results[0], got)
	}
	if items, _ := results[2]["items"].([]any); len(items) != 1 {
		t.Fatalf("README list: %v", results[2])
	}
	t.Logf("quickstart put at revision %v", rev)
}
