package client

import (
	"context"

	"github.com/dux-io/dux/proto"
)

// Graph draws the graph of who reads and who writes which prefixes, as
// the member that answers sees it (its observed reads are those of the
// subscribers connected to it), with every cycle flagged.
// rpc.GraphFromProto turns it into the JSON of GET /v1/graph.
func (c *Client) Graph(ctx context.Context) (*proto.GraphResponse, error) {
	var resp *proto.GraphResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.graph.Draw(ctx, &proto.GraphRequest{})
		return err
	})
	return resp, err
}
