package rpc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/graph"
	"github.com/dux-io/dux/proto"
)

type fakeGrapher struct {
	g   *graph.Graph
	err error
}

func (f fakeGrapher) Graph(context.Context) (*graph.Graph, error) { return f.g, f.err }

// sampleGraph is a user's two-component loop beside the scheduler's own.
func sampleGraph() *graph.Graph {
	b := graph.NewBuilder()
	b.ExpectedNote = "the scheduler's control loop"
	seen := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	b.Actor("scheduler", graph.Builtin, "places components")
	for _, u := range []graph.Use{
		{Actor: "component/a", Prefix: "/x/", Access: graph.Write, Source: graph.Declared},
		{Actor: "component/a", Prefix: "/y/", Access: graph.Read, Source: graph.Declared},
		{Actor: "component/b", Prefix: "/y/", Access: graph.Write, Source: graph.Declared},
		{Actor: "component/b", Prefix: "/x/", Access: graph.Read, Source: graph.Observed},
		{Actor: "scheduler", Prefix: "/allocations/", Access: graph.Write, Source: graph.Builtin},
		{Actor: "scheduler", Prefix: "/allocations/", Access: graph.Read, Source: graph.Builtin},
		{Actor: "scheduler", Prefix: "/allocations/web/", Access: graph.Write, Source: graph.Observed, Seen: seen},
		{Actor: "cli", Prefix: "/config/", Access: graph.Write, Source: graph.Observed, Seen: seen},
		{Actor: "probe", Prefix: "/", Access: graph.Read, Source: graph.Observed},
	} {
		b.Add(u)
	}
	g := b.Build()
	g.Revision, g.Member, g.ObservedWindowSeconds = 9, "n1", 600
	return g
}

func serveGraph(t *testing.T, g Grapher, target string) (int, map[string]any) {
	t.Helper()
	h := NewHTTP(Config{Backend: &fakeBackend{}, Graph: g})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("GET %s: body %q is not JSON", target, rec.Body)
	}
	return rec.Code, m
}

// Rule: GET /v1/graph answers the graph as JSON: nodes, edges with their
// access and source, and cycles flagged expected or not.
func TestHTTP_Graph(t *testing.T) {
	code, m := serveGraph(t, fakeGrapher{g: sampleGraph()}, "/v1/graph")
	if code != http.StatusOK {
		t.Fatalf("got %d %v", code, m)
	}
	if m["revision"] != 9.0 || m["member"] != "n1" || m["observed_window_seconds"] != 600.0 {
		t.Errorf("header fields: %v", m)
	}
	cycles := m["cycles"].([]any)
	if len(cycles) != 2 {
		t.Fatalf("cycles: %v", cycles)
	}
	user := cycles[0].(map[string]any)
	if user["id"] != 1.0 || user["expected"] != false || !reflect.DeepEqual(user["actors"], []any{"component/a", "component/b"}) ||
		!reflect.DeepEqual(user["prefixes"], []any{"/x/", "/y/"}) {
		t.Errorf("user cycle: %v", user)
	}
	loop := cycles[1].(map[string]any)
	if loop["expected"] != true || loop["note"] != "the scheduler's control loop" || !reflect.DeepEqual(loop["actors"], []any{"scheduler"}) {
		t.Errorf("built-in cycle: %v", loop)
	}
	var found bool
	for _, e := range m["edges"].([]any) {
		e := e.(map[string]any)
		if e["from"] == "scheduler" && e["to"] == "/allocations/" {
			found = true
			if e["access"] != "write" || e["source"] != "builtin" || !reflect.DeepEqual(e["sources"], []any{"builtin", "observed"}) ||
				e["last_seen"] != "2025-03-01T12:00:00Z" || e["cycle"] != 2.0 {
				t.Errorf("scheduler -> /allocations/: %v", e)
			}
		}
	}
	if !found {
		t.Errorf("no edge scheduler -> /allocations/ in %v", m["edges"])
	}
	if o := m["overlaps"].([]any); len(o) != 4 || o[0].(map[string]any)["from"] != "/allocations/" || o[0].(map[string]any)["to"] != "/" {
		t.Errorf("overlaps: %v", o)
	}
	node := m["nodes"].([]any)[0].(map[string]any)
	if node["kind"] != "actor" || node["name"] != "cli" || !reflect.DeepEqual(node["sources"], []any{"observed"}) {
		t.Errorf("first node: %v", node)
	}
}

// Rule: the graph's errors are the API's: no leader is 503, an unknown
// parameter 400, and a server without a graph has no such endpoint.
func TestHTTP_GraphErrors(t *testing.T) {
	code, m := serveGraph(t, fakeGrapher{err: cluster.ErrNoLeader}, "/v1/graph")
	if code != http.StatusServiceUnavailable || m["error"].(map[string]any)["code"] != "unavailable" {
		t.Errorf("no leader: %d %v", code, m)
	}
	code, m = serveGraph(t, fakeGrapher{g: sampleGraph()}, "/v1/graph?format=dot")
	if code != http.StatusBadRequest || m["error"].(map[string]any)["field"] != "format" {
		t.Errorf("unknown parameter: %d %v", code, m)
	}
	code, m = serveGraph(t, nil, "/v1/graph")
	if code != http.StatusNotFound {
		t.Errorf("without a grapher: %d %v", code, m)
	}
}

// Rule: the gRPC form carries the same graph: turned back, its JSON is
// the HTTP API's, byte for byte.
func TestGraph_ProtoRoundTrip(t *testing.T) {
	g := sampleGraph()
	want, _ := json.Marshal(g)
	got, _ := json.Marshal(GraphFromProto(GraphToProto(g)))
	if string(got) != string(want) {
		t.Errorf("round trip:\ngot  %s\nwant %s", got, want)
	}
	empty, _ := json.Marshal(GraphFromProto(&proto.GraphResponse{}))
	if !strings.Contains(string(empty), `"nodes":[],"edges":[],"overlaps":[],"cycles":[]`) {
		t.Errorf("an empty graph: %s", empty)
	}
}

// recordingSubscriber records the request it is given and ends at once.
type recordingSubscriber struct {
	Subscriber
	req *proto.SubscribeRequest
}

func (s *recordingSubscriber) Subscribe(_ context.Context, req *proto.SubscribeRequest, _ func(*proto.Event) error) error {
	s.req = req
	return nil
}

// Rule: a subscriber over HTTP names itself with name=, checked as an
// origin is (a bad one is refused before the stream opens).
func TestHTTP_SubscribeName(t *testing.T) {
	sub := &recordingSubscriber{}
	h := NewHTTP(Config{Backend: &fakeBackend{}, Dispatcher: sub})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/subscribe?channel=/jobs/&name=component/worker", nil))
	if rec.Code != http.StatusOK || sub.req == nil || sub.req.Name != "component/worker" {
		t.Fatalf("got %d, request %v", rec.Code, sub.req)
	}
	for _, name := range []string{"bad%01name", strings.Repeat("y", dispatch.MaxNameBytes+1)} {
		sub.req = nil
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/subscribe?channel=/jobs/&name="+name, nil))
		var m map[string]map[string]any
		json.Unmarshal(rec.Body.Bytes(), &m)
		if rec.Code != http.StatusBadRequest || m["error"]["field"] != "name" || sub.req != nil {
			t.Errorf("name %.20q: %d %s", name, rec.Code, rec.Body)
		}
	}
}
