package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dux-io/dux/proto"
)

// RestoreChunkBytes is the size of the chunks Restore sends.
const RestoreChunkBytes = 256 << 10

// Leader describes the leader as the member that answers knows it; its Id
// is empty when that member knows of no leader.
func (c *Client) Leader(ctx context.Context) (*proto.LeaderResponse, error) {
	var resp *proto.LeaderResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.cluster.Leader(ctx, &proto.LeaderRequest{})
		return err
	})
	return resp, err
}

// RaftConfiguration lists the Raft servers: voters and non-voters.
func (c *Client) RaftConfiguration(ctx context.Context) (*proto.RaftConfigurationResponse, error) {
	var resp *proto.RaftConfigurationResponse
	err := c.retry.idempotent(ctx, func() (err error) {
		resp, err = c.cluster.RaftConfiguration(ctx, &proto.RaftConfigurationRequest{})
		return err
	})
	return resp, err
}

// Snapshot streams a consistent snapshot of the whole state into w and
// returns the number of bytes written. If it fails part way, what was
// written is incomplete; a complete snapshot ends with a checksummed end
// record (fsm.ReadSnapshot checks it).
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if w fails
	stream, err := c.cluster.Snapshot(ctx, &proto.SnapshotRequest{})
	if err != nil {
		return 0, fromStatus(err)
	}
	var n int64
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fromStatus(err)
		}
		k, err := w.Write(chunk.Data)
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("client: write snapshot: %w", err)
		}
	}
}

// Restore replaces the whole state of the cluster with the snapshot read
// from r, sent in chunks of RestoreChunkBytes, and returns the store
// revision after the restore. It is never retried.
func (c *Client) Restore(ctx context.Context, r io.Reader) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if r fails
	stream, err := c.cluster.Restore(ctx)
	if err != nil {
		return 0, fromStatus(err)
	}
	for {
		// A fresh buffer each time: gRPC does not allow a message to be
		// modified after Send, as stats handlers may read it later.
		buf := make([]byte, RestoreChunkBytes)
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&proto.SnapshotChunk{Data: buf[:n]}); err != nil {
				if errors.Is(err, io.EOF) {
					// The server ended the stream; its status says why.
					_, err = stream.CloseAndRecv()
				}
				return 0, fromStatus(err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("client: read snapshot: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.Revision, nil
}
