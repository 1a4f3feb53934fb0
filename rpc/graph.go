package rpc

import (
	"context"
	"net/http"
	"time"

	"github.com/dux-io/dux/graph"
	"github.com/dux-io/dux/proto"
)

// Grapher draws the graph of who reads and writes which prefixes.
// scheduler.GraphSource implements it.
type Grapher interface {
	// Graph fails only when the state cannot be read (no leader, say).
	Graph(ctx context.Context) (*graph.Graph, error)
}

type graphServer struct {
	proto.UnimplementedGraphServer
	g Grapher
}

func (s *graphServer) Draw(ctx context.Context, _ *proto.GraphRequest) (*proto.GraphResponse, error) {
	g, err := s.g.Graph(ctx)
	if err != nil {
		return nil, err
	}
	return GraphToProto(g), nil
}

// graph serves GET /v1/graph: the graph as JSON (graph.Graph). The route
// exists only when the Config has a Grapher.
func (h *httpAPI) graph(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r); err != nil {
		h.fail(w, err)
		return
	}
	g, err := h.g.Graph(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func stringsOf[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

func sources(in []string) []graph.Source {
	out := make([]graph.Source, len(in))
	for i, s := range in {
		out[i] = graph.Source(s)
	}
	return out
}

// GraphToProto is the graph as the gRPC API sends it.
func GraphToProto(g *graph.Graph) *proto.GraphResponse {
	out := &proto.GraphResponse{Revision: g.Revision, Member: g.Member, ObservedWindowSeconds: g.ObservedWindowSeconds}
	for _, n := range g.Nodes {
		out.Nodes = append(out.Nodes, &proto.GraphNode{Kind: n.Kind, Name: n.Name, Sources: stringsOf(n.Sources),
			Note: n.Note, Cycle: uint32(n.Cycle)})
	}
	for _, e := range g.Edges {
		pe := &proto.GraphEdge{From: e.From, To: e.To, Access: string(e.Access), Source: string(e.Source),
			Sources: stringsOf(e.Sources), Cycle: uint32(e.Cycle)}
		if e.LastSeen != nil {
			pe.LastSeenUnixMs = e.LastSeen.UnixMilli()
		}
		out.Edges = append(out.Edges, pe)
	}
	for _, o := range g.Overlaps {
		out.Overlaps = append(out.Overlaps, &proto.GraphOverlap{From: o.From, To: o.To, Cycle: uint32(o.Cycle)})
	}
	for _, c := range g.Cycles {
		out.Cycles = append(out.Cycles, &proto.GraphCycle{Id: uint32(c.ID), Actors: c.Actors, Prefixes: c.Prefixes,
			Expected: c.Expected, Note: c.Note})
	}
	return out
}

// GraphFromProto turns a gRPC answer back into the graph, whose JSON is
// that of GET /v1/graph.
func GraphFromProto(p *proto.GraphResponse) *graph.Graph {
	g := &graph.Graph{Revision: p.Revision, Member: p.Member, ObservedWindowSeconds: p.ObservedWindowSeconds,
		Nodes: []graph.Node{}, Edges: []graph.Edge{}, Overlaps: []graph.Overlap{}, Cycles: []graph.Cycle{}}
	for _, n := range p.Nodes {
		node := graph.Node{Kind: n.Kind, Name: n.Name, Note: n.Note, Cycle: int(n.Cycle)}
		if len(n.Sources) > 0 {
			node.Sources = sources(n.Sources)
		}
		g.Nodes = append(g.Nodes, node)
	}
	for _, e := range p.Edges {
		edge := graph.Edge{From: e.From, To: e.To, Access: graph.Access(e.Access), Source: graph.Source(e.Source),
			Sources: sources(e.Sources), Cycle: int(e.Cycle)}
		if e.LastSeenUnixMs != 0 {
			t := time.UnixMilli(e.LastSeenUnixMs).UTC()
			edge.LastSeen = &t
		}
		g.Edges = append(g.Edges, edge)
	}
	for _, o := range p.Overlaps {
		g.Overlaps = append(g.Overlaps, graph.Overlap{From: o.From, To: o.To, Cycle: int(o.Cycle)})
	}
	for _, c := range p.Cycles {
		g.Cycles = append(g.Cycles, graph.Cycle{ID: int(c.Id), Actors: nonNil(c.Actors), Prefixes: nonNil(c.Prefixes),
			Expected: c.Expected, Note: c.Note})
	}
	return g
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
