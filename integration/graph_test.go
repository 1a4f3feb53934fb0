//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/graph"
)

// getGraph reads GET /v1/graph.
func getGraph(t *testing.T, a *agent) *graph.Graph {
	t.Helper()
	code, body := httpDo(t, "GET", "http://"+a.http+"/v1/graph", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/graph: %d %s", code, body)
	}
	var g graph.Graph
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatalf("GET /v1/graph: %v in %s", err, body)
	}
	return &g
}

// uses lists a graph's edges as "actor writes|reads prefix (sources)".
func uses(g *graph.Graph) []string {
	var out []string
	for _, e := range g.Edges {
		var ss []string
		for _, s := range e.Sources {
			ss = append(ss, string(s))
		}
		out = append(out, fmt.Sprintf("%s %ss %s (%s)", e.Actor(), e.Access, e.Prefix(), strings.Join(ss, ",")))
	}
	return out
}

// missing returns the lines of want not in got.
func missing(got, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}

// namedSubscriber opens GET /v1/subscribe as a subscriber named name and
// returns once the stream is open; cancel ends it.
func namedSubscriber(t *testing.T, a *agent, name string, channels ...string) (cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url := "http://" + a.http + "/v1/subscribe?progress_ms=-1&name=" + name
	for _, c := range channels {
		url += "&channel=" + c
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe as %s: %s", name, resp.Status)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
	}()
	return cancel
}

// Rule (docs/GRAPH.md; the original Dux README: a component that updates
// the state must not consume the state it updates): against a real agent,
// the graph merges the reads and writes that component specs declare, the
// built-in programs, the channels of a named subscriber (over HTTP, and
// from duxd subscribe --name) and the prefixes written under an origin,
// and flags exactly two cycles: the two components that feed each other,
// and the scheduler's own loop, as expected. duxd graph prints both and
// succeeds.
func TestGraph_AgainstAgent(t *testing.T) {
	a := newAgent(t, "graph", "--dev")
	a.start()
	waitUp(t, a)
	base := "http://" + a.http

	// Two components that feed each other (ingest writes /results/, which
	// report reads; report writes /jobs/retry/, under the /jobs/ ingest
	// reads), and one that does not.
	apply(t, a, map[string]any{"name": "ingest", "image": "registry.example/ingest:2", "replicas": 1,
		"reads": []string{"/jobs/"}, "writes": []string{"/results/"}})
	apply(t, a, map[string]any{"name": "report", "image": "registry.example/report:1", "replicas": 1,
		"reads": []string{"/results/"}, "writes": []string{"/jobs/retry/"}})
	apply(t, a, map[string]any{"name": "web", "image": "nginx:1.27", "replicas": 1,
		"reads": []string{"/config/web/"}, "writes": []string{"/status/web/"}})
	// A bad entry is refused with the field at fault.
	code, body := httpDo(t, "PUT", base+"/v1/state/components/bad", []byte(`{"image":"x","writes":["/ok/","/a//b"]}`))
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"value.writes[1]"`) {
		t.Fatalf("a bad writes entry: %d %s", code, body)
	}

	// web's program subscribes, naming itself as its component, to its
	// configuration (declared) and to a channel it did not declare.
	stopWeb := namedSubscriber(t, a, "component/web", "/config/web/", "/deploy/web")
	// A deployer writes web's configuration, naming itself as the origin.
	if code, body := httpDo(t, "PUT", base+"/v1/state/config/web/flags?origin=deployer", []byte(`{"dark_mode":true}`)); code != http.StatusOK {
		t.Fatalf("put with an origin: %d %s", code, body)
	}
	// An auditor subscribes with the CLI, and writes its findings under
	// the same name: one actor.
	if code, body := httpDo(t, "PUT", base+"/v1/state/audit/2025-03-01?origin=auditor", []byte(`{"ok":true}`)); code != http.StatusOK {
		t.Fatalf("put with an origin: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	auditor := exec.CommandContext(ctx, duxdBin, "subscribe", "/results/", "--name", "auditor", "--addr", a.grpc)
	if err := auditor.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		auditor.Wait()
	}()

	want := []string{
		// declared
		"component/ingest reads /jobs/ (declared)",
		"component/ingest writes /results/ (declared)",
		"component/report reads /results/ (declared)",
		"component/report writes /jobs/retry/ (declared)",
		"component/web writes /status/web/ (declared)",
		// declared, and confirmed by the named subscriber
		"component/web reads /config/web/ (declared,observed)",
		// built in, and seen writing with their origins
		"scheduler reads /components/ (builtin)",
		"scheduler reads /allocations/ (builtin)",
		"scheduler writes /scheduler/ (builtin,observed)",
		"scheduler writes /status/components/ (builtin,observed)",
		"sensor/executor reads /allocations/ (builtin)",
		"sensor/executor writes /status/allocations/ (builtin)",
		"sensor/membership writes /hosts/ (builtin,observed)",
		// observed only
		"component/web reads /deploy/web (observed)",
		"deployer writes /config/web/ (observed)",
		"auditor reads /results/ (observed)",
		"auditor writes /audit/ (observed)",
	}
	var g *graph.Graph
	eventually(t, 30*time.Second, func() error {
		g = getGraph(t, a)
		if m := missing(uses(g), want); len(m) > 0 {
			return fmt.Errorf("missing uses %q in\n%s", m, strings.Join(uses(g), "\n"))
		}
		return nil
	})
	if g.Member != "graph" || g.ObservedWindowSeconds != 600 || g.Revision == 0 {
		t.Errorf("member %q, window %d, revision %d", g.Member, g.ObservedWindowSeconds, g.Revision)
	}
	auditors := 0
	for _, n := range g.Nodes {
		if n.Name == "auditor" {
			auditors++
		}
	}
	if auditors != 1 {
		t.Errorf("the auditor is %d nodes, want one actor", auditors)
	}
	if len(g.Cycles) != 2 {
		t.Fatalf("cycles: %+v\nuses:\n%s", g.Cycles, strings.Join(uses(g), "\n"))
	}
	user, loop := g.Cycles[0], g.Cycles[1]
	if !slices.Equal(user.Actors, []string{"component/ingest", "component/report"}) || user.Expected ||
		!slices.Equal(user.Prefixes, []string{"/jobs/", "/jobs/retry/", "/results/"}) {
		t.Errorf("the components' cycle: %+v", user)
	}
	if !slices.Equal(loop.Actors, []string{"scheduler", "sensor/executor"}) || !loop.Expected ||
		!strings.Contains(loop.Note, "control loop") {
		t.Errorf("the scheduler's loop: %+v", loop)
	}
	if !slices.Contains(g.Overlaps, graph.Overlap{From: "/jobs/retry/", To: "/jobs/", Cycle: user.ID}) {
		t.Errorf("overlaps %+v lack /jobs/retry/ -> /jobs/ in cycle %d", g.Overlaps, user.ID)
	}
	for _, e := range g.Edges {
		if strings.HasPrefix(e.Actor(), "component/web") && e.Cycle != 0 {
			t.Errorf("web is in no cycle, but %s %s %s is in %d", e.Actor(), e.Access, e.Prefix(), e.Cycle)
		}
	}

	// duxd graph prints the cycles and succeeds.
	out := cli(t, a, "graph")
	for _, line := range []string{
		"cycle: #1 component/ingest, component/report via /jobs/, /jobs/retry/, /results/\n",
		"expected cycle: #2 scheduler, sensor/executor via /allocations/, /status/allocations/ (the scheduler's control loop",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("duxd graph lacks %q:\n%s", line, out)
		}
	}
	if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l), []string{"auditor", "reads", "/results/", "observed"})
	}) {
		t.Errorf("duxd graph lacks the auditor's read:\n%s", out)
	}
	var fromCLI graph.Graph
	if err := json.Unmarshal([]byte(cli(t, a, "graph", "-o", "json")), &fromCLI); err != nil || len(fromCLI.Cycles) != 2 {
		t.Errorf("duxd graph -o json: %v, %+v", err, fromCLI.Cycles)
	}

	// Reads are those of live subscribers: once web's subscription ends,
	// its undeclared channel leaves the graph and its declared one is no
	// longer confirmed.
	stopWeb()
	eventually(t, 30*time.Second, func() error {
		got := uses(getGraph(t, a))
		if slices.Contains(got, "component/web reads /deploy/web (observed)") || !slices.Contains(got, "component/web reads /config/web/ (declared)") {
			return fmt.Errorf("after the subscription ended:\n%s", strings.Join(got, "\n"))
		}
		return nil
	})
}
