package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/graph"
	"github.com/dux-io/dux/proto"
	"github.com/dux-io/dux/rpc"
)

// Draw answers a user's two-component loop, a sensor that reads what it
// writes, and the scheduler's own loop.
func (f *fakeMember) Draw(context.Context, *proto.GraphRequest) (*proto.GraphResponse, error) {
	b := graph.NewBuilder()
	b.ExpectedNote = "the scheduler's control loop"
	seen := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, u := range []graph.Use{
		{Actor: "component/a", Prefix: "/x/", Access: graph.Write, Source: graph.Declared},
		{Actor: "component/a", Prefix: "/y/", Access: graph.Read, Source: graph.Declared},
		{Actor: "component/b", Prefix: "/y/", Access: graph.Write, Source: graph.Declared},
		{Actor: "component/b", Prefix: "/x/", Access: graph.Read, Source: graph.Declared},
		{Actor: "component/b", Prefix: "/x/", Access: graph.Read, Source: graph.Observed},
		{Actor: "probe", Prefix: "/probe/", Access: graph.Read, Source: graph.Observed},
		{Actor: "probe", Prefix: "/probe/last", Access: graph.Write, Source: graph.Observed, Seen: seen},
		{Actor: "scheduler", Prefix: "/allocations/", Access: graph.Write, Source: graph.Builtin},
		{Actor: "scheduler", Prefix: "/status/allocations/", Access: graph.Read, Source: graph.Builtin},
		{Actor: "sensor/executor", Prefix: "/allocations/", Access: graph.Read, Source: graph.Builtin},
		{Actor: "sensor/executor", Prefix: "/status/allocations/", Access: graph.Write, Source: graph.Builtin},
	} {
		b.Add(u)
	}
	g := b.Build()
	g.Revision, g.Member, g.ObservedWindowSeconds = 12, "n1", 600
	return rpc.GraphToProto(g), nil
}

// Rule: duxd graph prints every use, then a "cycle:" line per user cycle
// and an "expected cycle:" line for the scheduler's loop, and succeeds
// with cycles; -o json is the JSON of GET /v1/graph.
func TestCLI_Graph(t *testing.T) {
	_, addr := startFakeMember(t)
	out, _, err := cliRun(t, "", "graph", "--addr", addr)
	if err != nil {
		t.Fatalf("graph: %v", err)
	}
	want := `ACTOR            ACCESS  PREFIX                SOURCE             CYCLE
component/a      writes  /x/                   declared           #1
component/a      reads   /y/                   declared           #1
component/b      reads   /x/                   declared+observed  #1
component/b      writes  /y/                   declared           #1
probe            reads   /probe/               observed           #2
probe            writes  /probe/last           observed           #2
scheduler        writes  /allocations/         builtin            #3
scheduler        reads   /status/allocations/  builtin            #3
sensor/executor  reads   /allocations/         builtin            #3
sensor/executor  writes  /status/allocations/  builtin            #3

cycle: #1 component/a, component/b via /x/, /y/
cycle: #2 probe via /probe/, /probe/last (it reads what it writes)
expected cycle: #3 scheduler, sensor/executor via /allocations/, /status/allocations/ (the scheduler's control loop)

Observed by member n1: its named subscribers, and the writes of the last 10m0s.
`
	if out != want {
		t.Errorf("graph output:\ngot:\n%s\nwant:\n%s", out, want)
	}

	out, _, err = cliRun(t, "", "graph", "--addr", addr, "-o", "json")
	if err != nil {
		t.Fatalf("graph -o json: %v", err)
	}
	var g graph.Graph
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("graph -o json is not JSON: %v\n%s", err, out)
	}
	if len(g.Cycles) != 3 || g.Cycles[2].Expected != true || g.Member != "n1" || !strings.Contains(out, `"last_seen": "2025-03-01T12:00:00Z"`) {
		t.Errorf("graph -o json: %s", out)
	}
}
