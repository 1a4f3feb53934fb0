package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// countingLogs is Raft's log store, counting the appends (StoreLogs calls),
// each of which takes a millisecond, as a sync to disk would.
type countingLogs struct {
	*raft.InmemStore
	mu      sync.Mutex
	appends []int
}

func (c *countingLogs) StoreLogs(logs []*raft.Log) error {
	c.mu.Lock()
	c.appends = append(c.appends, len(logs))
	c.mu.Unlock()
	time.Sleep(time.Millisecond)
	return c.InmemStore.StoreLogs(logs)
}

func (c *countingLogs) appendCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.appends)
}

// newRaftNode is a Node with just enough of a member to propose commands:
// a one-voter in-memory Raft over a fresh StateStore, leader once
// bootstrapped.
func newRaftNode(t *testing.T, bootstrap bool) (*Node, *countingLogs) {
	t.Helper()
	m := newMetrics()
	store := fsm.New()
	logs := &countingLogs{InmemStore: raft.NewInmemStore()}
	addr, trans := raft.NewInmemTransport("")
	rc := raft.DefaultConfig()
	rc.LocalID = "n1"
	rc.Logger = newHCLog(slog.New(slog.NewTextHandler(io.Discard, nil)), "raft")
	rc.HeartbeatTimeout = 50 * time.Millisecond
	rc.ElectionTimeout = 50 * time.Millisecond
	rc.LeaderLeaseTimeout = 50 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	r, err := raft.NewRaft(rc, timedFSM{Store: store, batch: m.fsmApply}, logs, raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	if bootstrap {
		if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}}).Error(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.State() != raft.Leader {
			if time.Now().After(deadline) {
				t.Fatal("no leader within 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return &Node{cfg: Config{Name: "n1", ApplyTimeout: 5 * time.Second}, raft: r, store: store, metrics: m}, logs
}

// internalClient serves srv over an in-memory connection.
func internalClient(t *testing.T, srv proto.InternalServer) proto.InternalClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	proto.RegisterInternalServer(s, srv)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return proto.NewInternalClient(conn)
}

func value(i int) []byte { return fmt.Appendf(nil, `"v%d"`, i) }

// Rule: the leader proposes a batch's commands without waiting between
// them, so Raft appends them together, in order, and answers each
// command's own outcome: a result, or a rule violation inside it.
func TestApplyBatch_LeaderProposesTogether(t *testing.T) {
	n, logs := newRaftNode(t, true)
	send := grpcForwardSender{client: func(string) proto.InternalClient { return internalClient(t, &internalServer{n: n}) }}
	ctx := context.Background()

	appendsBefore := logs.appendCount()
	const count = 200
	cmds := make([]*proto.Command, count)
	for i := range cmds {
		cmds[i] = &proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{
			Key: fmt.Sprintf("/k/%03d", i), Value: value(i), Origin: "test"}}}
	}
	zero := uint64(0)
	cmds[50] = &proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{
		Key: "/k/000", Value: value(0), CasRevision: &zero, Origin: "test"}}} // /k/000 exists by then
	outs, err := send.applyBatch(ctx, "leader", cmds)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != count {
		t.Fatalf("got %d outcomes for %d commands", len(outs), count)
	}
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("command %d: %v", i, o.err)
		}
		if want := outs[0].res.Revision + uint64(i); o.res.Revision != want && i != 50 {
			t.Errorf("command %d applied at revision %d, want %d (in the batch's order)", i, o.res.Revision, want)
		}
	}
	if err := fsm.FromProto(outs[50].res.GetError()); !errors.Is(err, fsm.ErrCompareFailed) {
		t.Errorf("command 50 (put if absent of an existing key): got %v, want a failed compare in its result", err)
	}
	if outs[51].res.GetPut() == nil {
		t.Errorf("command 51: result %v carries no put response", outs[51].res)
	}
	appends := logs.appendCount() - appendsBefore
	t.Logf("%d commands in %d log appends", count, appends)
	if appends > count/10 {
		t.Errorf("%d commands took %d log appends; proposed together, they should share a few", count, appends)
	}
	if kv, _, _ := n.store.Get("/k/199"); kv == nil || string(kv.Value) != `"v199"` {
		t.Errorf("/k/199 = %v after the batch", kv)
	}
}

// Rule: a member that is not leader refuses the whole batch with the
// retryable not-leader status, before proposing anything; a malformed batch
// is refused as invalid.
func TestApplyBatch_Refusals(t *testing.T) {
	n, _ := newRaftNode(t, false)
	c := internalClient(t, &internalServer{n: n})
	ctx := context.Background()
	_, err := c.ApplyBatch(ctx, &proto.ApplyBatchRequest{Commands: []*proto.Command{putCmd("/a")}})
	if !errors.Is(fromStatus(err), ErrNotLeader) {
		t.Errorf("batch to a follower: got %v, want ErrNotLeader", err)
	}
	if _, err := c.ApplyBatch(ctx, &proto.ApplyBatchRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty batch: got %v, want InvalidArgument", err)
	}
	if _, err := c.ApplyBatch(ctx, &proto.ApplyBatchRequest{Commands: []*proto.Command{putCmd("/a"), nil}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("batch with a missing command: got %v, want InvalidArgument", err)
	}
}

// oldInternal is a leader from before ApplyBatch: it only has Apply.
type oldInternal struct {
	proto.UnimplementedInternalServer
	mu  sync.Mutex
	rev uint64
}

func (o *oldInternal) Apply(_ context.Context, req *proto.ApplyRequest) (*proto.Result, error) {
	if req.Command.GetPut().GetKey() == "/refused" {
		return nil, toStatus(ErrNotLeader)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rev++
	return &proto.Result{Revision: o.rev}, nil
}

// Rule: a leader without ApplyBatch (a rolling upgrade) gets each command
// of the batch through Apply, with its own outcome.
func TestApplyBatch_FallsBackToApply(t *testing.T) {
	old := &oldInternal{}
	c := internalClient(t, old)
	send := grpcForwardSender{client: func(string) proto.InternalClient { return c }}
	outs, err := send.applyBatch(context.Background(), "leader", []*proto.Command{putCmd("/a"), putCmd("/refused"), putCmd("/b")})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3 || outs[0].err != nil || outs[2].err != nil || outs[0].res == nil || outs[2].res == nil {
		t.Fatalf("outcomes %+v: want results for /a and /b", outs)
	}
	if !errors.Is(fromStatus(outs[1].err), ErrNotLeader) {
		t.Errorf("/refused: got %v, want ErrNotLeader", outs[1].err)
	}
	if old.rev != 2 {
		t.Errorf("old leader applied %d commands, want 2", old.rev)
	}
}
