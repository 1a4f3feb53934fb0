package client

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/proto"
)

func (f *fakeServer) Draw(_ context.Context, r *proto.GraphRequest) (*proto.GraphResponse, error) {
	if err := f.record("Draw", r); err != nil {
		return nil, err
	}
	return &proto.GraphResponse{Revision: 5, Member: "m1", Cycles: []*proto.GraphCycle{{Id: 1, Actors: []string{"component/a"}}}}, nil
}

// Subscribe records the request and sends one progress event.
func (f *fakeServer) Subscribe(r *proto.SubscribeRequest, stream grpc.ServerStreamingServer[proto.SubscribeResponse]) error {
	if err := f.record("Subscribe", r); err != nil {
		return err
	}
	return stream.Send(&proto.SubscribeResponse{Events: []*proto.Event{{Type: proto.Event_PROGRESS, Revision: 7}}})
}

// Rule: Graph is a read: retried on Unavailable, and answered as sent.
func TestClient_Graph(t *testing.T) {
	f, c := setup(t)
	f.fail = func(method string, n int) error {
		if n == 1 {
			return status.Error(codes.Unavailable, "cluster: no leader")
		}
		return nil
	}
	g, err := c.Graph(testCtx(t))
	if err != nil {
		t.Fatalf("Graph: %v", err)
	}
	if g.Member != "m1" || g.Revision != 5 || len(g.Cycles) != 1 || f.count("Draw") != 2 {
		t.Errorf("got %v after %d calls", g, f.count("Draw"))
	}
}

// Rule: WithName names the subscriber in its request.
func TestClient_SubscribeWithName(t *testing.T) {
	f, c := setup(t)
	sub := c.Subscribe(testCtx(t), []string{"/jobs/"}, WithName("component/worker"))
	ev, err := sub.Recv()
	if err != nil || ev.Type != proto.Event_PROGRESS {
		t.Fatalf("Recv: %v, %v", ev, err)
	}
	if req, _ := f.lastReq("Subscribe").(*proto.SubscribeRequest); req == nil || req.Name != "component/worker" ||
		len(req.Channels) != 1 || req.Channels[0] != "/jobs/" {
		t.Errorf("request %v", req)
	}
}
