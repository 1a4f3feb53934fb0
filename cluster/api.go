package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/raft"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Limits on requests, checked before anything is proposed.
const (
	// MaxTxnOps caps the ops of one transaction branch.
	MaxTxnOps = 128
	// MaxOriginBytes caps the writer name of a write.
	MaxOriginBytes = 256
	// MaxLeaseTTL is the longest lease, one year.
	MaxLeaseTTL = 365 * 24 * 3600
)

// linearize waits until this member's state covers every write
// acknowledged before the call: it gets a read index (from itself as
// leader, or from the leader) and waits until it has applied that far.
func (n *Node) linearize(ctx context.Context, c proto.Consistency) error {
	if c == proto.Consistency_STALE || n.cfg.UnsafeStaleReads {
		return nil
	}
	index, err := n.reads.get(ctx)
	if err != nil {
		return err
	}
	return n.store.WaitRevision(ctx, index)
}

// Get reads one key.
func (n *Node) Get(ctx context.Context, req *proto.GetRequest) (*proto.GetResponse, error) {
	if err := fsm.ValidateKey(req.Key); err != nil {
		return nil, err
	}
	if err := n.linearize(ctx, req.Consistency); err != nil {
		return nil, err
	}
	kv, rev, err := n.store.Get(req.Key)
	if err != nil {
		return nil, err
	}
	return &proto.GetResponse{Kv: kv, Revision: rev}, nil
}

// List reads a page of keys under a prefix.
func (n *Node) List(ctx context.Context, req *proto.ListRequest) (*proto.ListResponse, error) {
	if err := fsm.ValidatePrefix(req.Prefix); err != nil {
		return nil, err
	}
	if err := n.linearize(ctx, req.Consistency); err != nil {
		return nil, err
	}
	items, next, rev, err := n.store.List(req.Prefix, req.After, int(req.Limit))
	if err != nil {
		return nil, err
	}
	if req.KeysOnly {
		stripped := make([]*proto.KeyValue, len(items))
		for i, kv := range items {
			stripped[i] = &proto.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision,
				ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease, Origin: kv.Origin}
		}
		items = stripped
	}
	return &proto.ListResponse{Items: items, Revision: rev, Next: next}, nil
}

// Put writes one key.
func (n *Node) Put(ctx context.Context, req *proto.PutRequest) (*proto.PutResponse, error) {
	if err := n.checkWrite(req.Key, req.Value, req.Origin); err != nil {
		return nil, err
	}
	res, err := n.Apply(ctx, &proto.Command{Cmd: &proto.Command_Put{Put: req}})
	if err != nil {
		return nil, err
	}
	return res.GetPut(), nil
}

// Delete deletes one key or every key under a prefix.
func (n *Node) Delete(ctx context.Context, req *proto.DeleteRequest) (*proto.DeleteResponse, error) {
	if req.Prefix {
		if err := fsm.ValidatePrefix(req.Key); err != nil {
			return nil, err
		}
		if req.CasRevision != nil {
			return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: "cas_revision", Message: "a prefix delete takes no cas_revision"}
		}
	} else if err := fsm.ValidateKey(req.Key); err != nil {
		return nil, err
	}
	if err := checkOrigin(req.Origin); err != nil {
		return nil, err
	}
	res, err := n.Apply(ctx, &proto.Command{Cmd: &proto.Command_Delete{Delete: req}})
	if err != nil {
		return nil, err
	}
	return res.GetDelete(), nil
}

// Txn applies a transaction: compares, then one branch of ops, atomically.
func (n *Node) Txn(ctx context.Context, req *proto.TxnRequest) (*proto.TxnResponse, error) {
	if err := n.checkTxn(req); err != nil {
		return nil, err
	}
	res, err := n.Apply(ctx, &proto.Command{Cmd: &proto.Command_Txn{Txn: req}})
	if err != nil {
		return nil, err
	}
	return res.GetTxn(), nil
}

// Publish sends a message on a channel through the Raft log: every
// subscriber of the channel, on every member, receives it in the same total
// order as state events. It is not stored.
func (n *Node) Publish(ctx context.Context, req *proto.PublishRequest) (*proto.PublishResponse, error) {
	if err := fsm.ValidateKey(req.Channel); err != nil {
		return nil, withField(err, "channel")
	}
	if err := fsm.ValidateValue(req.Payload, n.cfg.MaxValueBytes); err != nil {
		return nil, withField(err, "payload")
	}
	if err := checkOrigin(req.Origin); err != nil {
		return nil, err
	}
	res, err := n.Apply(ctx, &proto.Command{Cmd: &proto.Command_Publish{Publish: req}})
	if err != nil {
		return nil, err
	}
	return res.GetPublish(), nil
}

// LeaseGrant creates a lease with a TTL in seconds.
func (n *Node) LeaseGrant(ctx context.Context, req *proto.LeaseGrantRequest) (*proto.LeaseGrantResponse, error) {
	if req.TtlSeconds < 1 || req.TtlSeconds > MaxLeaseTTL {
		return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: "ttl_seconds",
			Message: fmt.Sprintf("ttl_seconds must be between 1 and %d, got %d", MaxLeaseTTL, req.TtlSeconds)}
	}
	res, err := n.Apply(ctx, &proto.Command{Cmd: &proto.Command_LeaseGrant{LeaseGrant: req}})
	if err != nil {
		return nil, err
	}
	return res.GetLeaseGrant(), nil
}

// LeaseRevoke ends a lease and deletes its keys.
func (n *Node) LeaseRevoke(ctx context.Context, req *proto.LeaseRevokeRequest) (*proto.LeaseRevokeResponse, error) {
	res, err := n.Apply(ctx, &proto.Command{Cmd: &proto.Command_LeaseRevoke{LeaseRevoke: &proto.LeaseRevoke{Id: req.Id}}})
	if err != nil {
		return nil, err
	}
	return res.GetLeaseRevoke(), nil
}

// LeaseKeepAlive restarts a lease's TTL. Lease clocks live on the leader, so
// a follower forwards the call.
func (n *Node) LeaseKeepAlive(ctx context.Context, req *proto.LeaseKeepAliveRequest) (*proto.LeaseKeepAliveResponse, error) {
	for {
		if n.raft.State() == raft.Leader {
			ttl, err := n.lessor.keepAlive(req.Id)
			if errors.Is(err, ErrNotLeader) {
				if werr := n.pause(ctx); werr != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, err
			}
			return &proto.LeaseKeepAliveResponse{Id: req.Id, TtlSeconds: ttl}, nil
		}
		var res *proto.Result
		err := n.withLeader(ctx, func(ctx context.Context, leader Member) error {
			var err error
			res, err = n.peers.internal(leader.GRPC).LeaseKeepAlive(ctx, req)
			return err
		})
		if errors.Is(err, errLeaderIsSelf) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := fsm.FromProto(res.Error); err != nil {
			return nil, err
		}
		return res.GetLeaseKeepAlive(), nil
	}
}

func (n *Node) checkWrite(key string, value []byte, origin string) error {
	if err := fsm.ValidateKey(key); err != nil {
		return err
	}
	if err := fsm.ValidateValue(value, n.cfg.MaxValueBytes); err != nil {
		return err
	}
	if err := n.checkValue(key, value); err != nil {
		return err
	}
	return checkOrigin(origin)
}

// checkValue runs Config.CheckValue.
func (n *Node) checkValue(key string, value []byte) error {
	if n.cfg.CheckValue == nil {
		return nil
	}
	err := n.cfg.CheckValue(key, value)
	var fe *fsm.Error
	if err == nil || errors.As(err, &fe) {
		return err
	}
	return &fsm.Error{Code: fsm.CodeInvalid, Field: "value", Message: err.Error()}
}

func checkOrigin(origin string) error {
	if len(origin) > MaxOriginBytes || !utf8.ValidString(origin) {
		return &fsm.Error{Code: fsm.CodeInvalid, Field: "origin",
			Message: fmt.Sprintf("origin must be valid UTF-8 of at most %d bytes", MaxOriginBytes)}
	}
	for _, r := range origin {
		if r < 0x20 || r == 0x7f {
			return &fsm.Error{Code: fsm.CodeInvalid, Field: "origin", Message: "origin holds a control character"}
		}
	}
	return nil
}

// checkTxn validates a transaction before it is proposed. Its rules beyond
// those Apply enforces (value JSON and size, origin, op counts, limits, no key
// written twice in a branch) are checked here only: Apply must keep applying
// entries that an older version let into the log exactly as it always has.
func (n *Node) checkTxn(req *proto.TxnRequest) error {
	if err := checkOrigin(req.Origin); err != nil {
		return err
	}
	if len(req.Compares) > MaxTxnOps || len(req.Success) > MaxTxnOps || len(req.Failure) > MaxTxnOps {
		return &fsm.Error{Code: fsm.CodeInvalid, Field: "txn",
			Message: fmt.Sprintf("a transaction takes at most %d compares and %d ops per branch", MaxTxnOps, MaxTxnOps)}
	}
	for i, c := range req.Compares {
		if err := fsm.ValidateKey(c.Key); err != nil {
			return withField(err, fmt.Sprintf("compares[%d].key", i))
		}
	}
	size := 0
	for _, b := range []struct {
		name string
		ops  []*proto.Op
	}{{"success", req.Success}, {"failure", req.Failure}} {
		for i, op := range b.ops {
			field := fmt.Sprintf("%s[%d]", b.name, i)
			var err error
			switch {
			case op.Limit != 0 && op.Type != proto.Op_GET:
				err = &fsm.Error{Code: fsm.CodeInvalid, Field: "limit", Message: "limit applies to get ops only"}
			case op.Limit > fsm.MaxTxnGetKeys:
				err = &fsm.Error{Code: fsm.CodeInvalid, Field: "limit",
					Message: fmt.Sprintf("limit %d is more than %d", op.Limit, fsm.MaxTxnGetKeys)}
			case op.Type == proto.Op_PUT:
				if err = fsm.ValidateKey(op.Key); err == nil {
					err = fsm.ValidateValue(op.Value, n.cfg.MaxValueBytes)
				}
				if err == nil {
					err = n.checkValue(op.Key, op.Value)
				}
				size += len(op.Value)
			case op.Prefix:
				err = fsm.ValidatePrefix(op.Key)
			default:
				err = fsm.ValidateKey(op.Key)
			}
			if err != nil {
				var fe *fsm.Error
				if errors.As(err, &fe) {
					return withField(err, field+"."+fe.Field)
				}
				return err
			}
		}
		if err := checkWritesOnce(b.name, b.ops); err != nil {
			return err
		}
	}
	if size > 2*n.cfg.MaxValueBytes {
		return &fsm.Error{Code: fsm.CodeInvalid, Field: "txn",
			Message: fmt.Sprintf("transaction values total %d bytes, more than %d", size, 2*n.cfg.MaxValueBytes)}
	}
	return nil
}

// checkWritesOnce refuses a branch that writes a key more than once: two
// puts or deletes of one key, a put or delete of a key under a prefix the
// branch deletes, or two prefix deletes of which one covers the other. Apply
// would run them in order, bumping a key's version twice at one revision and
// telling subscribers of two changes at once. etcd refuses a put of a key
// that the branch also puts or deletes ("duplicate key given in txn
// request"); Dux refuses overlapping deletes too, so that the rule reads
// "each key once". The error names the later op.
// Branches hold at most MaxTxnOps ops, so comparing every pair is cheap.
func checkWritesOnce(branch string, ops []*proto.Op) error {
	for i, op := range ops {
		if op.Type == proto.Op_GET {
			continue
		}
		iPrefix := op.Type == proto.Op_DELETE && op.Prefix
		for j, prev := range ops[:i] {
			if prev.Type == proto.Op_GET {
				continue
			}
			jPrefix := prev.Type == proto.Op_DELETE && prev.Prefix
			var clash string
			switch {
			case !iPrefix && !jPrefix && op.Key == prev.Key:
				clash = fmt.Sprintf("%s[%d] writes key %q, as %s[%d] does", branch, i, op.Key, branch, j)
			case !iPrefix && jPrefix && strings.HasPrefix(op.Key, prev.Key):
				clash = fmt.Sprintf("%s[%d] writes key %q under prefix %q, which %s[%d] deletes", branch, i, op.Key, prev.Key, branch, j)
			case iPrefix && !jPrefix && strings.HasPrefix(prev.Key, op.Key):
				clash = fmt.Sprintf("%s[%d] deletes prefix %q, which covers key %q that %s[%d] writes", branch, i, op.Key, prev.Key, branch, j)
			case iPrefix && jPrefix && (strings.HasPrefix(op.Key, prev.Key) || strings.HasPrefix(prev.Key, op.Key)):
				clash = fmt.Sprintf("%s[%d] deletes prefix %q, which overlaps prefix %q that %s[%d] deletes", branch, i, op.Key, prev.Key, branch, j)
			default:
				continue
			}
			return &fsm.Error{Code: fsm.CodeInvalid, Field: fmt.Sprintf("%s[%d].key", branch, i),
				Message: "duplicate key in transaction: " + clash + "; a branch may put or delete each key once"}
		}
	}
	return nil
}

func withField(err error, field string) error {
	var fe *fsm.Error
	if errors.As(err, &fe) {
		c := *fe
		c.Field = field
		return &c
	}
	return err
}

// Leader describes the current leader; ID is empty when none is known.
func (n *Node) Leader() *proto.LeaderResponse {
	addr, id := n.raft.LeaderWithID()
	resp := &proto.LeaderResponse{Id: string(id), RaftAddress: string(addr), Term: n.raft.CurrentTerm()}
	if m, ok := n.member(string(id)); ok {
		resp.GrpcAddress, resp.HttpAddress = m.GRPC, m.HTTP
	}
	return resp
}

// RaftConfiguration returns the Raft servers and their roles.
func (n *Node) RaftConfiguration() (*proto.RaftConfigurationResponse, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	_, leader := n.raft.LeaderWithID()
	resp := &proto.RaftConfigurationResponse{Index: f.Index()}
	for _, s := range f.Configuration().Servers {
		suffrage := "voter"
		switch s.Suffrage {
		case raft.Nonvoter:
			suffrage = "nonvoter"
		case raft.Staging:
			suffrage = "staging"
		}
		resp.Servers = append(resp.Servers, &proto.RaftServer{
			Id: string(s.ID), Address: string(s.Address), Suffrage: suffrage, Leader: s.ID == leader,
		})
	}
	return resp, nil
}

// Ready reports whether this member can serve: a leader is known and this
// member has applied what it knows to be committed.
func (n *Node) Ready() error {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ErrNoLeader
	}
	if n.raft.State() == raft.Leader && !n.leaderReady.Load() {
		return fmt.Errorf("%w: leader is applying its barrier", ErrNoLeader)
	}
	if applied, commit := n.raft.AppliedIndex(), n.raft.CommitIndex(); applied < commit {
		return fmt.Errorf("%w: applied index %d behind commit index %d", ErrNoLeader, applied, commit)
	}
	return nil
}

// Snapshot streams a consistent snapshot of the whole state, as fresh as a
// linearizable read, and returns its revision.
func (n *Node) Snapshot(ctx context.Context, w io.Writer) (uint64, error) {
	if err := n.linearize(ctx, proto.Consistency_LINEARIZABLE); err != nil {
		return 0, err
	}
	return n.store.WriteSnapshot(w)
}

// Restore replaces the state of the whole cluster with a snapshot. The
// leader hands it to Raft, which installs it on every member; a follower
// passes the stream on to the leader. The restored state takes a revision
// above the cluster's current one, so revisions never go backwards.
func (n *Node) Restore(ctx context.Context, r io.Reader) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return n.forwardRestore(ctx, r)
	}
	snap, err := fsm.ReadSnapshot(r)
	if err != nil {
		return 0, &fsm.Error{Code: fsm.CodeInvalid, Field: "snapshot", Message: err.Error()}
	}
	f, err := os.CreateTemp(n.cfg.DataDir, "restore-*.snap")
	if err != nil {
		return 0, fmt.Errorf("restore: spool snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Raft installs the snapshot at max(last index, meta.Index)+1; leave
	// room for writes that land meanwhile.
	index := max(n.raft.LastIndex()+1024, snap.Revision())
	if err := snap.Encode(f, index+1); err != nil {
		return 0, fmt.Errorf("restore: spool snapshot: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Size: size}
	if err := n.raft.Restore(meta, f, n.cfg.ApplyTimeout); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	// Raft ends a restore with a no-op entry that never reaches the FSM;
	// a barrier command after it brings the FSM's revision past the commit
	// index again, so linearizable reads do not wait for the next write.
	if _, err := n.applyLocal(&proto.Command{Cmd: &proto.Command_Barrier{Barrier: &proto.Barrier{Leader: n.cfg.Name}}}); err != nil {
		return 0, fmt.Errorf("restore: barrier after restore: %w", err)
	}
	n.log.Info("restored snapshot", "keys", snap.Len(), "revision", n.store.Revision())
	return n.store.Revision(), nil
}

func (n *Node) forwardRestore(ctx context.Context, r io.Reader) (uint64, error) {
	var rev uint64
	err := n.withLeader(ctx, func(ctx context.Context, leader Member) error {
		stream, err := n.peers.cluster(leader.GRPC).Restore(ctx)
		if err != nil {
			return err
		}
		for {
			// A sent message must not be modified, so each chunk is new.
			buf := make([]byte, 256<<10)
			k, rerr := io.ReadFull(r, buf)
			if rerr == io.ErrUnexpectedEOF {
				rerr = io.EOF
			}
			if k > 0 {
				if err := stream.Send(&proto.SnapshotChunk{Data: buf[:k]}); err != nil {
					break // the status comes from CloseAndRecv
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return fmt.Errorf("restore: read snapshot: %w", rerr)
			}
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return err
		}
		rev = resp.Revision
		return nil
	})
	if errors.Is(err, errLeaderIsSelf) {
		return 0, fmt.Errorf("%w: leadership moved during restore; retry", ErrNoLeader)
	}
	return rev, err
}
