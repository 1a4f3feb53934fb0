package rpc

import (
	"context"
	"io"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/proto"
)

// Backend is what the APIs need from a member. cluster.Node implements it.
// Errors are *fsm.Error for bad input, missing keys and failed compares, and
// the cluster package's sentinels when no leader can be reached.
type Backend interface {
	Get(ctx context.Context, req *proto.GetRequest) (*proto.GetResponse, error)
	List(ctx context.Context, req *proto.ListRequest) (*proto.ListResponse, error)
	Put(ctx context.Context, req *proto.PutRequest) (*proto.PutResponse, error)
	Delete(ctx context.Context, req *proto.DeleteRequest) (*proto.DeleteResponse, error)
	Txn(ctx context.Context, req *proto.TxnRequest) (*proto.TxnResponse, error)
	LeaseGrant(ctx context.Context, req *proto.LeaseGrantRequest) (*proto.LeaseGrantResponse, error)
	LeaseKeepAlive(ctx context.Context, req *proto.LeaseKeepAliveRequest) (*proto.LeaseKeepAliveResponse, error)
	LeaseRevoke(ctx context.Context, req *proto.LeaseRevokeRequest) (*proto.LeaseRevokeResponse, error)
	// Publish sends a message on a channel through the Raft log.
	Publish(ctx context.Context, req *proto.PublishRequest) (*proto.PublishResponse, error)

	// Leader describes the leader; its ID is empty when none is known.
	Leader() *proto.LeaderResponse
	RaftConfiguration() (*proto.RaftConfigurationResponse, error)
	// Snapshot writes a consistent snapshot to w and returns its revision.
	Snapshot(ctx context.Context, w io.Writer) (uint64, error)
	// Restore replaces the cluster's state with the snapshot read from r.
	Restore(ctx context.Context, r io.Reader) (uint64, error)
	// Ready returns nil when the member can serve linearizable requests.
	Ready() error

	// MemberList describes every member with its health and Raft role.
	MemberList() []*proto.MemberInfo
	// ClusterStatus asks every member for its Raft figures and revision
	// and returns each one's health and lag behind the leader.
	ClusterStatus(ctx context.Context) (*proto.ClusterStatusResponse, error)
	// JoinCluster makes this member join the gossip of the members at addrs.
	JoinCluster(addrs []string) (int, error)
	// Leave makes this member leave the cluster gracefully.
	Leave(ctx context.Context) error
	// RemovePeer removes a member from the Raft configuration.
	RemovePeer(ctx context.Context, id string) error
	// TransferLeader hands leadership to the member named to (any if empty)
	// and returns the new leader.
	TransferLeader(ctx context.Context, to string) (string, error)
}

// Subscriber streams events to one subscription. dispatch.Hub implements it.
type Subscriber interface {
	// Subscribe blocks, sending events through send, until ctx ends, send
	// fails or the subscription is cut off; see dispatch.Hub.Subscribe.
	Subscribe(ctx context.Context, req *proto.SubscribeRequest, send func(*proto.Event) error) error
	// SubscribeBatches is Subscribe, a batch of events at a time.
	SubscribeBatches(ctx context.Context, req *proto.SubscribeRequest, send func(*dispatch.Batch) error) error
}
