package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/graph"
	"github.com/dux-io/dux/proto"
)

// fakeGraphState lists fixed components, two a page.
type fakeGraphState struct{ kvs []*proto.KeyValue }

func (f *fakeGraphState) List(_ context.Context, r *proto.ListRequest) (*proto.ListResponse, error) {
	resp := &proto.ListResponse{Revision: 42}
	for _, kv := range f.kvs {
		if strings.HasPrefix(kv.Key, r.Prefix) && kv.Key > r.After && len(resp.Items) < 2 {
			resp.Items = append(resp.Items, kv)
		}
	}
	if n := len(resp.Items); n == 2 && resp.Items[1] != f.kvs[len(f.kvs)-1] {
		resp.Next = resp.Items[1].Key
	}
	return resp, nil
}

type fakeObserver dispatch.Observed

func (f fakeObserver) Observed(time.Time) dispatch.Observed { return dispatch.Observed(f) }

func edgeLines(g *graph.Graph) []string {
	var out []string
	for _, e := range g.Edges {
		var ss []string
		for _, s := range e.Sources {
			ss = append(ss, string(s))
		}
		line := fmt.Sprintf("%s -> %s (%s)", e.From, e.To, strings.Join(ss, ","))
		if e.Cycle > 0 {
			line += fmt.Sprintf(" #%d", e.Cycle)
		}
		out = append(out, line)
	}
	return out
}

// Rule: the graph merges the built-in programs, the reads and writes of
// valid component specs, and what the Dispatcher observed; the built-in
// loop is an expected cycle, a loop between components is not.
func TestGraphSource_MergesSources(t *testing.T) {
	st := &fakeGraphState{kvs: []*proto.KeyValue{
		{Key: "/components/broken", Value: []byte(`{"image":""}`)},
		{Key: "/components/ingest", Value: []byte(`{"image":"i","reads":["/jobs/"],"writes":["/results/"]}`)},
		{Key: "/components/plain", Value: []byte(`{"image":"p"}`)},
		{Key: "/components/report", Value: []byte(`{"image":"r","reads":["/results/"],"writes":["/jobs/retry/"]}`)},
	}}
	seen := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	obs := fakeObserver{Window: 10 * time.Minute,
		Readers: []dispatch.Reader{{Name: "component/report", Channels: []string{"/results/daily/"}}, {Name: "dashboard", Channels: []string{"/status/"}}},
		Writers: []dispatch.Writer{
			{Origin: "scheduler", Prefix: "/allocations/web/", Seen: seen},
			{Origin: "sensor/membership", Prefix: "/hosts/", Seen: seen},
			{Origin: "component/ingest", Prefix: "/results/", Seen: seen},
			{Origin: "cli", Prefix: "/config/app/", Seen: seen},
		}}
	g, err := NewGraphSource(st, obs, "n1").Graph(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cli -> /config/app/ (observed)",
		"/jobs/ -> component/ingest (declared) #1",
		"component/ingest -> /results/ (declared,observed) #1",
		"component/report -> /jobs/retry/ (declared) #1",
		"/results/ -> component/report (declared,observed) #1",
		"/status/ -> dashboard (observed)",
		"/allocations/ -> scheduler (builtin) #2",
		"scheduler -> /allocations/ (builtin,observed) #2",
		"/components/ -> scheduler (builtin)",
		"/hosts/ -> scheduler (builtin)",
		"scheduler -> /scheduler/ (builtin)",
		"/status/allocations/ -> scheduler (builtin) #2",
		"scheduler -> /status/components/ (builtin)",
		"/allocations/ -> sensor/executor (builtin) #2",
		"sensor/executor -> /status/allocations/ (builtin) #2",
		"sensor/membership -> /hosts/ (builtin,observed)",
	}
	if got := edgeLines(g); !slices.Equal(got, want) {
		t.Errorf("edges:\ngot:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(g.Cycles) != 2 {
		t.Fatalf("cycles: %+v", g.Cycles)
	}
	if c := g.Cycles[0]; !slices.Equal(c.Actors, []string{"component/ingest", "component/report"}) || c.Expected ||
		!slices.Equal(c.Prefixes, []string{"/jobs/", "/jobs/retry/", "/results/"}) {
		t.Errorf("user cycle: %+v", c)
	}
	if c := g.Cycles[1]; !slices.Equal(c.Actors, []string{"scheduler", "sensor/executor"}) || !c.Expected || c.Note != ExpectedCycleNote {
		t.Errorf("control loop: %+v", c)
	}
	if g.Revision != 42 || g.Member != "n1" || g.ObservedWindowSeconds != 600 {
		t.Errorf("revision %d, member %q, window %d", g.Revision, g.Member, g.ObservedWindowSeconds)
	}
	for _, n := range g.Nodes {
		if n.Name == "component/plain" || n.Name == "component/broken" {
			t.Errorf("a component that declares nothing is drawn: %+v", n)
		}
		if n.Name == "scheduler" && n.Note == "" {
			t.Errorf("the scheduler has no note")
		}
	}
}
