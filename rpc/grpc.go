package rpc

import (
	"context"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Config configures the API servers.
type Config struct {
	Backend    Backend
	Dispatcher Subscriber
	// RegisterInternal, if set, adds the member-to-member service to the
	// gRPC server.
	RegisterInternal func(grpc.ServiceRegistrar)
	// MaxValueBytes is the value limit; gRPC messages may be a few times
	// larger, so that an oversized value gets a typed InvalidArgument from
	// the Backend rather than a transport error.
	MaxValueBytes int
	Logger        *slog.Logger
	// Graph, if set, serves the graph of who reads and writes what: the
	// Graph service and GET /v1/graph.
	Graph Grapher
	// Metrics, if set, counts and times the gRPC requests (NewGRPC); the
	// HTTP requests are counted by wrapping the handler in Metrics.HTTP.
	Metrics *Metrics
}

func (c *Config) maxMsg() int {
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = fsm.DefaultMaxValueBytes
	}
	return 4*c.MaxValueBytes + 1<<20
}

// NewGRPC returns a gRPC server with the State and Cluster services, the
// health service (SERVING while the Backend is ready, checked until ctx
// ends) and reflection.
func NewGRPC(ctx context.Context, cfg Config) *grpc.Server {
	unary := []grpc.UnaryServerInterceptor{unaryErrors}
	stream := []grpc.StreamServerInterceptor{streamErrors}
	if cfg.Metrics != nil {
		// First, so that they see the status the client gets.
		unary = append([]grpc.UnaryServerInterceptor{cfg.Metrics.unary}, unary...)
		stream = append([]grpc.StreamServerInterceptor{cfg.Metrics.stream}, stream...)
	}
	s := grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.maxMsg()),
		grpc.MaxSendMsgSize(64<<20),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.ForceServerCodecV2(newRawCodec()),
		// Clients (ours) ping idle connections every 10 s; allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	proto.RegisterStateServer(s, &stateServer{b: cfg.Backend})
	proto.RegisterClusterServer(s, &clusterServer{b: cfg.Backend})
	proto.RegisterDispatcherServer(s, &dispatcherServer{b: cfg.Backend, d: cfg.Dispatcher})
	if cfg.Graph != nil {
		proto.RegisterGraphServer(s, &graphServer{g: cfg.Graph})
	}
	if cfg.RegisterInternal != nil {
		cfg.RegisterInternal(s)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	if cfg.Metrics != nil {
		cfg.Metrics.initGRPC(s)
	}
	go watchHealth(ctx, hs, cfg.Backend)
	return s
}

func watchHealth(ctx context.Context, hs *health.Server, b Backend) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st := healthpb.HealthCheckResponse_SERVING
		if b.Ready() != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus("dux.v1.State", st)
		select {
		case <-ctx.Done():
			hs.Shutdown()
			return
		case <-tick.C:
		}
	}
}

// The interceptors map every error a handler returns through one table.
func unaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, ToStatus(err)
}

func streamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return ToStatus(h(srv, ss))
}

type stateServer struct {
	proto.UnimplementedStateServer
	b Backend
}

func (s *stateServer) Get(ctx context.Context, r *proto.GetRequest) (*proto.GetResponse, error) {
	return s.b.Get(ctx, r)
}
func (s *stateServer) List(ctx context.Context, r *proto.ListRequest) (*proto.ListResponse, error) {
	return s.b.List(ctx, r)
}
func (s *stateServer) Put(ctx context.Context, r *proto.PutRequest) (*proto.PutResponse, error) {
	return s.b.Put(ctx, r)
}
func (s *stateServer) Delete(ctx context.Context, r *proto.DeleteRequest) (*proto.DeleteResponse, error) {
	return s.b.Delete(ctx, r)
}
func (s *stateServer) Txn(ctx context.Context, r *proto.TxnRequest) (*proto.TxnResponse, error) {
	return s.b.Txn(ctx, r)
}
func (s *stateServer) LeaseGrant(ctx context.Context, r *proto.LeaseGrantRequest) (*proto.LeaseGrantResponse, error) {
	return s.b.LeaseGrant(ctx, r)
}
func (s *stateServer) LeaseKeepAlive(ctx context.Context, r *proto.LeaseKeepAliveRequest) (*proto.LeaseKeepAliveResponse, error) {
	return s.b.LeaseKeepAlive(ctx, r)
}
func (s *stateServer) LeaseRevoke(ctx context.Context, r *proto.LeaseRevokeRequest) (*proto.LeaseRevokeResponse, error) {
	return s.b.LeaseRevoke(ctx, r)
}

type clusterServer struct {
	proto.UnimplementedClusterServer
	b Backend
}

func (s *clusterServer) Leader(context.Context, *proto.LeaderRequest) (*proto.LeaderResponse, error) {
	return s.b.Leader(), nil
}

func (s *clusterServer) RaftConfiguration(context.Context, *proto.RaftConfigurationRequest) (*proto.RaftConfigurationResponse, error) {
	return s.b.RaftConfiguration()
}

func (s *clusterServer) Members(context.Context, *proto.MembersRequest) (*proto.MembersResponse, error) {
	return &proto.MembersResponse{Members: s.b.MemberList()}, nil
}

func (s *clusterServer) Status(ctx context.Context, _ *proto.ClusterStatusRequest) (*proto.ClusterStatusResponse, error) {
	return s.b.ClusterStatus(ctx)
}

func (s *clusterServer) Join(_ context.Context, r *proto.JoinRequest) (*proto.JoinResponse, error) {
	k, err := s.b.JoinCluster(r.Addresses)
	if err != nil {
		return nil, err
	}
	return &proto.JoinResponse{Joined: uint32(k)}, nil
}

func (s *clusterServer) Leave(ctx context.Context, _ *proto.LeaveRequest) (*proto.LeaveResponse, error) {
	return &proto.LeaveResponse{}, s.b.Leave(ctx)
}

func (s *clusterServer) RemovePeer(ctx context.Context, r *proto.RemovePeerRequest) (*proto.RemovePeerResponse, error) {
	return &proto.RemovePeerResponse{}, s.b.RemovePeer(ctx, r.Id)
}

func (s *clusterServer) TransferLeader(ctx context.Context, r *proto.TransferLeaderRequest) (*proto.TransferLeaderResponse, error) {
	leader, err := s.b.TransferLeader(ctx, r.To)
	if err != nil {
		return nil, err
	}
	return &proto.TransferLeaderResponse{Leader: leader}, nil
}

// snapshotChunk is the size of one SnapshotChunk message.
const snapshotChunk = 256 << 10

func (s *clusterServer) Snapshot(_ *proto.SnapshotRequest, stream grpc.ServerStreamingServer[proto.SnapshotChunk]) error {
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&proto.SnapshotChunk{Data: b}) }}
	if _, err := s.b.Snapshot(stream.Context(), w); err != nil {
		return err
	}
	return w.flush()
}

func (s *clusterServer) Restore(stream grpc.ClientStreamingServer[proto.SnapshotChunk, proto.RestoreResponse]) error {
	rev, err := s.b.Restore(stream.Context(), &chunkReader{recv: func() ([]byte, error) {
		c, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return c.Data, nil
	}})
	if err != nil {
		return err
	}
	return stream.SendAndClose(&proto.RestoreResponse{Revision: rev})
}

// chunkWriter cuts a byte stream into messages of snapshotChunk bytes.
type chunkWriter struct {
	send func([]byte) error
	buf  []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(snapshotChunk-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == snapshotChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = make([]byte, 0, snapshotChunk)
	return err
}

// chunkReader joins received messages into a byte stream.
type chunkReader struct {
	recv func() ([]byte, error)
	buf  []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.recv()
		if err != nil {
			return 0, err // io.EOF at the end of the stream
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

var _ io.Reader = (*chunkReader)(nil)
