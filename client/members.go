package client

import (
	"context"

	"github.com/dux-io/dux/proto"
)

// Members lists every member the answering member knows, with its health
// (alive, suspect, failed, left) and Raft role.
func (c *Client) Members(ctx context.Context) ([]*proto.MemberInfo, error) {
	var resp *proto.MembersResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.cluster.Members(ctx, &proto.MembersRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// Join asks the member the client is connected to (use a client of one
// endpoint) to join the gossip of the members at the gossip addresses.
func (c *Client) Join(ctx context.Context, addresses []string) (int, error) {
	resp, err := c.cluster.Join(ctx, &proto.JoinRequest{Addresses: addresses})
	if err != nil {
		return 0, fromStatus(err)
	}
	return int(resp.Joined), nil
}

// Leave asks the member the client is connected to (use a client of one
// endpoint) to leave the cluster gracefully and stop.
func (c *Client) Leave(ctx context.Context) error {
	_, err := c.cluster.Leave(ctx, &proto.LeaveRequest{})
	return fromStatus(err)
}

// RemovePeer removes a member from the Raft configuration.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	_, err := c.cluster.RemovePeer(ctx, &proto.RemovePeerRequest{Id: id})
	return fromStatus(err)
}

// TransferLeader hands leadership to the member named to (any voter if
// empty) and returns the leader afterwards.
func (c *Client) TransferLeader(ctx context.Context, to string) (string, error) {
	resp, err := c.cluster.TransferLeader(ctx, &proto.TransferLeaderRequest{To: to})
	if err != nil {
		return "", fromStatus(err)
	}
	return resp.Leader, nil
}

// Status asks the member the client reaches to ask every member for its
// Raft figures and revision, and returns the cluster's health and each
// member's lag behind the leader's commit index.
func (c *Client) Status(ctx context.Context) (*proto.ClusterStatusResponse, error) {
	var resp *proto.ClusterStatusResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.cluster.Status(ctx, &proto.ClusterStatusRequest{})
		return err
	})
	return resp, err
}
