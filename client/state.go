package client

import (
	"context"

	"github.com/dux-io/dux/proto"
)

// Get returns the key and the store revision the read was served at. A
// missing key is an error matching fsm.ErrNotFound. Reads are linearizable
// unless Stale is given.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (*proto.KeyValue, uint64, error) {
	req := &proto.GetRequest{Key: key}
	for _, o := range opts {
		o.applyGet(req)
	}
	var resp *proto.GetResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.state.Get(ctx, req)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return resp.Kv, resp.Revision, nil
}

// List returns one page of the keys that start with prefix, in key order.
// The response's Next, when not empty, is the key to pass to WithAfter for
// the following page.
func (c *Client) List(ctx context.Context, prefix string, opts ...ListOption) (*proto.ListResponse, error) {
	req := &proto.ListRequest{Prefix: prefix}
	for _, o := range opts {
		o.applyList(req)
	}
	return c.list(ctx, req)
}

func (c *Client) list(ctx context.Context, req *proto.ListRequest) (*proto.ListResponse, error) {
	var resp *proto.ListResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.state.List(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// ListAll returns every key that starts with prefix, paging through the
// listing (WithLimit sets the page size). The pages are separate reads, so
// the result is not one atomic view when writes land in between; rev is the
// revision of the first page.
func (c *Client) ListAll(ctx context.Context, prefix string, opts ...ListOption) (kvs []*proto.KeyValue, rev uint64, err error) {
	req := &proto.ListRequest{Prefix: prefix}
	for _, o := range opts {
		o.applyList(req)
	}
	for page := 0; ; page++ {
		resp, err := c.list(ctx, req)
		if err != nil {
			return kvs, rev, err
		}
		if page == 0 {
			rev = resp.Revision
		}
		kvs = append(kvs, resp.Items...)
		if resp.Next == "" {
			return kvs, rev, nil
		}
		req.After = resp.Next
	}
}

// Put writes the key and returns the revision of the write. It is never
// retried: a put that failed with ErrUnavailable may have been applied.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...PutOption) (uint64, error) {
	o := putOptions{req: &proto.PutRequest{Key: key, Value: value}}
	for _, opt := range opts {
		opt.applyPut(&o)
	}
	resp, err := c.state.Put(ctx, o.req)
	if err != nil {
		return 0, fromStatus(err)
	}
	if o.prevKV != nil {
		*o.prevKV = resp.PrevKv
	}
	return resp.Revision, nil
}

// Delete deletes the key (or, WithPrefix, every key under it) and returns
// the revision of the write and the number of keys deleted. Deleting a
// missing key is not an error: it deletes 0 keys. It is never retried.
func (c *Client) Delete(ctx context.Context, key string, opts ...DeleteOption) (rev, deleted uint64, err error) {
	req := &proto.DeleteRequest{Key: key}
	for _, o := range opts {
		o.applyDelete(req)
	}
	resp, err := c.state.Delete(ctx, req)
	if err != nil {
		return 0, 0, fromStatus(err)
	}
	return resp.Revision, resp.Deleted, nil
}

// Txn runs a transaction: if every compare holds, the success ops, else the
// failure ops, all in one write. It is never retried.
func (c *Client) Txn(ctx context.Context, req *proto.TxnRequest) (*proto.TxnResponse, error) {
	resp, err := c.state.Txn(ctx, req)
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp, nil
}

// LeaseGrant creates a lease that expires ttlSeconds after its last
// keep-alive and returns its ID.
func (c *Client) LeaseGrant(ctx context.Context, ttlSeconds int64) (uint64, error) {
	resp, err := c.state.LeaseGrant(ctx, &proto.LeaseGrantRequest{TtlSeconds: ttlSeconds})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.Id, nil
}

// LeaseKeepAlive renews the lease and returns its TTL in seconds. An
// expired or unknown lease is an error matching fsm.ErrNotFound.
func (c *Client) LeaseKeepAlive(ctx context.Context, id uint64) (int64, error) {
	resp, err := c.state.LeaseKeepAlive(ctx, &proto.LeaseKeepAliveRequest{Id: id})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.TtlSeconds, nil
}

// LeaseRevoke ends the lease, deleting its keys, and returns the revision of
// the write.
func (c *Client) LeaseRevoke(ctx context.Context, id uint64) (uint64, error) {
	resp, err := c.state.LeaseRevoke(ctx, &proto.LeaseRevokeRequest{Id: id})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.Revision, nil
}
