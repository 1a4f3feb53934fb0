package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Apply commits a command through Raft and returns its result once it is
// applied: on the leader directly, on a follower by forwarding it to the
// leader. A rule violation (failed compare, unknown lease) comes back as a
// typed *fsm.Error together with the result. A write is only retried here
// when it certainly was not appended (the member asked was not leader).
func (n *Node) Apply(ctx context.Context, cmd *proto.Command) (*proto.Result, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if n.raft.State() == raft.Leader {
			res, err := n.applyLocal(cmd)
			if errors.Is(err, ErrNotLeader) {
				if werr := n.pause(ctx); werr != nil {
					return nil, err
				}
				continue
			}
			return res, err
		}
		var res *proto.Result
		err := n.withLeader(ctx, func(ctx context.Context, leader Member) error {
			var err error
			res, err = n.fwd.forward(ctx, leader.GRPC, cmd)
			if errors.Is(err, errNotForwarded) {
				// Still queued when the wait ended: never sent, so it
				// did not apply. withLeader answers as for a leader
				// not found in time (the caller's error if it ended).
				return ErrNoLeader
			}
			return err
		})
		if errors.Is(err, errLeaderIsSelf) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return res, fsm.FromProto(res.Error)
	}
}

func (n *Node) pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrShutdown
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

// applyLocal applies a command on this member, which must be the leader.
func (n *Node) applyLocal(cmd *proto.Command) (*proto.Result, error) {
	return n.awaitLocal(n.proposeLocal(cmd))
}

// proposedCommand is a command handed to Raft on this member, not yet
// waited for.
type proposedCommand struct {
	f     raft.ApplyFuture
	start time.Time
	err   error
}

// proposeLocal hands a command to Raft without waiting for it to commit, so
// that commands proposed one after another share a log append.
func (n *Node) proposeLocal(cmd *proto.Command) proposedCommand {
	data, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return proposedCommand{err: fmt.Errorf("encode command: %w", err)}
	}
	return proposedCommand{f: n.raft.Apply(data, n.cfg.ApplyTimeout), start: time.Now()}
}

// awaitLocal waits for a proposed command's result.
func (n *Node) awaitLocal(p proposedCommand) (*proto.Result, error) {
	if p.err != nil {
		return nil, p.err
	}
	f := p.f
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, ErrNotLeader
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, fmt.Errorf("%w: %v", ErrNoLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, ErrShutdown
		default:
			return nil, fmt.Errorf("%w: %v", ErrIndeterminate, err)
		}
	}
	n.metrics.applyDuration.Observe(time.Since(p.start).Seconds())
	res, ok := f.Response().(*proto.Result)
	if !ok {
		return nil, fmt.Errorf("cluster: unexpected apply response %T", f.Response())
	}
	return res, fsm.FromProto(res.Error)
}

var errLeaderIsSelf = errors.New("cluster: this member became leader")

// withLeader calls fn with the current leader, waiting for one to be known,
// and retries while the member it reached says it is not the leader.
// Errors from fn come back as the cluster's sentinel errors where they are one.
func (n *Node) withLeader(ctx context.Context, fn func(ctx context.Context, leader Member) error) error {
	wait, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	for {
		_, id := n.raft.LeaderWithID()
		switch {
		case id == "":
		case string(id) == n.cfg.Name:
			return errLeaderIsSelf
		default:
			m, ok := n.member(string(id))
			if !ok {
				break
			}
			err := fromStatus(fn(wait, m))
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
				return err
			}
		}
		if err := n.pause(wait); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrNoLeader
		}
	}
}

// sentinels travel between members as Unavailable statuses carrying their text.
var sentinels = []error{ErrNotLeader, ErrNoLeader, ErrIndeterminate, ErrShutdown}

// toStatus turns a cluster error into a gRPC status for the Internal service.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return status.Error(codes.Unavailable, err.Error())
		}
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus turns a status from a peer back into the sentinel it carries;
// a peer that cannot be reached may or may not have received a write.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, s := range sentinels {
		if strings.HasPrefix(st.Message(), s.Error()) {
			return fmt.Errorf("%w (from leader)", s)
		}
	}
	if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
		return fmt.Errorf("%w: forward to leader: %v", ErrIndeterminate, st.Message())
	}
	return err
}
