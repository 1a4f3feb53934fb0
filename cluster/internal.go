package cluster

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// RegisterInternal serves the member-to-member Internal service on s.
func (n *Node) RegisterInternal(s grpc.ServiceRegistrar) {
	proto.RegisterInternalServer(s, &internalServer{n: n})
}

type internalServer struct {
	proto.UnimplementedInternalServer
	n *Node
}

// Apply runs a forwarded command. Rule violations travel inside the Result;
// only cluster errors become a status.
func (s *internalServer) Apply(ctx context.Context, req *proto.ApplyRequest) (*proto.Result, error) {
	if req.Command == nil {
		return nil, status.Error(codes.InvalidArgument, "command is missing")
	}
	if !s.n.IsLeader() {
		return nil, toStatus(ErrNotLeader)
	}
	res, err := s.n.applyLocal(req.Command)
	var fe *fsm.Error
	if errors.As(err, &fe) {
		return res, nil
	}
	return res, toStatus(err)
}

// ApplyBatch runs commands forwarded together: it proposes all of them
// before it waits for any, so that Raft appends them in one batch, and
// answers each command's outcome as Apply would have.
func (s *internalServer) ApplyBatch(ctx context.Context, req *proto.ApplyBatchRequest) (*proto.ApplyBatchResponse, error) {
	if len(req.Commands) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no commands")
	}
	for i, c := range req.Commands {
		if c.GetCmd() == nil {
			return nil, status.Errorf(codes.InvalidArgument, "command %d is missing", i)
		}
	}
	if !s.n.IsLeader() {
		return nil, toStatus(ErrNotLeader)
	}
	proposed := make([]proposedCommand, len(req.Commands))
	for i, c := range req.Commands {
		proposed[i] = s.n.proposeLocal(c)
	}
	resp := &proto.ApplyBatchResponse{Outcomes: make([]*proto.ApplyOutcome, len(proposed))}
	for i, p := range proposed {
		res, err := s.n.awaitLocal(p)
		var fe *fsm.Error
		if errors.As(err, &fe) {
			err = nil
		}
		resp.Outcomes[i] = outcomeToProto(res, err)
	}
	return resp, nil
}

func (s *internalServer) ReadIndex(ctx context.Context, _ *proto.ReadIndexRequest) (*proto.ReadIndexResponse, error) {
	index, err := s.n.leaderReadIndex(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &proto.ReadIndexResponse{Index: index}, nil
}

func (s *internalServer) Status(ctx context.Context, _ *proto.StatusRequest) (*proto.StatusResponse, error) {
	return s.n.localStatus(), nil
}

func (s *internalServer) LeaseKeepAlive(ctx context.Context, req *proto.LeaseKeepAliveRequest) (*proto.Result, error) {
	if !s.n.IsLeader() {
		return nil, toStatus(ErrNotLeader)
	}
	ttl, err := s.n.lessor.keepAlive(req.Id)
	var fe *fsm.Error
	if errors.As(err, &fe) {
		return &proto.Result{Error: fsm.ToProto(fe)}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &proto.Result{Result: &proto.Result_LeaseKeepAlive{
		LeaseKeepAlive: &proto.LeaseKeepAliveResponse{Id: req.Id, TtlSeconds: ttl},
	}}, nil
}
