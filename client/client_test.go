package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
	"github.com/dux-io/dux/rpc"
)

// fakeServer is a State, Cluster, Graph and Dispatcher service whose
// answers the test sets.
// It records the requests it gets.
type fakeServer struct {
	proto.UnimplementedStateServer
	proto.UnimplementedClusterServer
	proto.UnimplementedGraphServer
	proto.UnimplementedDispatcherServer

	mu    sync.Mutex
	calls map[string]int
	last  map[string]any // method -> last request
	// fail, if set, decides the error of a call; n counts the calls of the
	// method so far, this one included.
	fail func(method string, n int) error

	kvs      []*proto.KeyValue // sorted by key, for List
	snapshot []byte            // sent by Snapshot in snapChunk pieces
	snapStep int
	restored [][]byte // chunks received by Restore
}

func newFakeServer() *fakeServer {
	return &fakeServer{calls: map[string]int{}, last: map[string]any{}}
}

func (f *fakeServer) record(method string, req any) error {
	f.mu.Lock()
	f.calls[method]++
	n := f.calls[method]
	f.last[method] = req
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return fail(method, n)
	}
	return nil
}

func (f *fakeServer) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeServer) lastReq(method string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[method]
}

func (f *fakeServer) Get(_ context.Context, r *proto.GetRequest) (*proto.GetResponse, error) {
	if err := f.record("Get", r); err != nil {
		return nil, err
	}
	return &proto.GetResponse{Kv: &proto.KeyValue{Key: r.Key, Value: []byte(`"v"`), ModRevision: 3}, Revision: 9}, nil
}

func (f *fakeServer) List(_ context.Context, r *proto.ListRequest) (*proto.ListResponse, error) {
	if err := f.record("List", r); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &proto.ListResponse{Revision: uint64(10 + f.calls["List"])}
	for _, kv := range f.kvs {
		if !strings.HasPrefix(kv.Key, r.Prefix) || kv.Key <= r.After {
			continue
		}
		if r.Limit > 0 && len(resp.Items) == int(r.Limit) {
			resp.Next = resp.Items[len(resp.Items)-1].Key
			break
		}
		resp.Items = append(resp.Items, kv)
	}
	return resp, nil
}

func (f *fakeServer) Put(_ context.Context, r *proto.PutRequest) (*proto.PutResponse, error) {
	if err := f.record("Put", r); err != nil {
		return nil, err
	}
	return &proto.PutResponse{Revision: 11, PrevKv: &proto.KeyValue{Key: r.Key, Value: []byte(`1`)}}, nil
}

func (f *fakeServer) Delete(_ context.Context, r *proto.DeleteRequest) (*proto.DeleteResponse, error) {
	if err := f.record("Delete", r); err != nil {
		return nil, err
	}
	return &proto.DeleteResponse{Revision: 12, Deleted: 2}, nil
}

func (f *fakeServer) Txn(_ context.Context, r *proto.TxnRequest) (*proto.TxnResponse, error) {
	if err := f.record("Txn", r); err != nil {
		return nil, err
	}
	return &proto.TxnResponse{Revision: 13, Succeeded: true}, nil
}

func (f *fakeServer) LeaseGrant(_ context.Context, r *proto.LeaseGrantRequest) (*proto.LeaseGrantResponse, error) {
	if err := f.record("LeaseGrant", r); err != nil {
		return nil, err
	}
	return &proto.LeaseGrantResponse{Id: 77, TtlSeconds: r.TtlSeconds, Revision: 14}, nil
}

func (f *fakeServer) LeaseKeepAlive(_ context.Context, r *proto.LeaseKeepAliveRequest) (*proto.LeaseKeepAliveResponse, error) {
	if err := f.record("LeaseKeepAlive", r); err != nil {
		return nil, err
	}
	return &proto.LeaseKeepAliveResponse{Id: r.Id, TtlSeconds: 30}, nil
}

func (f *fakeServer) LeaseRevoke(_ context.Context, r *proto.LeaseRevokeRequest) (*proto.LeaseRevokeResponse, error) {
	if err := f.record("LeaseRevoke", r); err != nil {
		return nil, err
	}
	return &proto.LeaseRevokeResponse{Revision: 15, Deleted: 1}, nil
}

func (f *fakeServer) Leader(_ context.Context, r *proto.LeaderRequest) (*proto.LeaderResponse, error) {
	if err := f.record("Leader", r); err != nil {
		return nil, err
	}
	return &proto.LeaderResponse{Id: "a", Term: 2}, nil
}

func (f *fakeServer) RaftConfiguration(_ context.Context, r *proto.RaftConfigurationRequest) (*proto.RaftConfigurationResponse, error) {
	if err := f.record("RaftConfiguration", r); err != nil {
		return nil, err
	}
	return &proto.RaftConfigurationResponse{Index: 5, Servers: []*proto.RaftServer{{Id: "a", Leader: true}}}, nil
}

func (f *fakeServer) Snapshot(r *proto.SnapshotRequest, stream grpc.ServerStreamingServer[proto.SnapshotChunk]) error {
	if err := f.record("Snapshot", r); err != nil {
		return err
	}
	for b := f.snapshot; len(b) > 0; {
		k := min(f.snapStep, len(b))
		if err := stream.Send(&proto.SnapshotChunk{Data: b[:k]}); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

func (f *fakeServer) Restore(stream grpc.ClientStreamingServer[proto.SnapshotChunk, proto.RestoreResponse]) error {
	if err := f.record("Restore", nil); err != nil {
		return err
	}
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&proto.RestoreResponse{Revision: 99})
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.restored = append(f.restored, c.Data)
		f.mu.Unlock()
	}
}

// testCluster serves fake servers on in-memory listeners, one per name.
type testCluster struct {
	lis map[string]*bufconn.Listener
}

func startFakes(t *testing.T, fakes map[string]*fakeServer) *testCluster {
	t.Helper()
	tc := &testCluster{lis: map[string]*bufconn.Listener{}}
	for name, f := range fakes {
		lis := bufconn.Listen(1 << 20)
		s := grpc.NewServer()
		proto.RegisterStateServer(s, f)
		proto.RegisterClusterServer(s, f)
		proto.RegisterGraphServer(s, f)
		proto.RegisterDispatcherServer(s, f)
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		tc.lis[name] = lis
	}
	return tc
}

// dial routes each endpoint to its listener; an unknown endpoint is a member
// that is down.
func (tc *testCluster) dial(ctx context.Context, addr string) (net.Conn, error) {
	lis, ok := tc.lis[addr]
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	return lis.DialContext(ctx)
}

// fastBackoff keeps retry tests quick.
var fastBackoff = backoff{attempts: 4, first: time.Millisecond, max: 5 * time.Millisecond}

func newTestClient(t *testing.T, tc *testCluster, endpoints ...string) *Client {
	t.Helper()
	c, err := New(Config{Endpoints: endpoints, dialOptions: []grpc.DialOption{grpc.WithContextDialer(tc.dial)}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.retry = fastBackoff
	t.Cleanup(func() { c.Close() })
	return c
}

func setup(t *testing.T) (*fakeServer, *Client) {
	t.Helper()
	f := newFakeServer()
	tc := startFakes(t, map[string]*fakeServer{"m1": f})
	return f, newTestClient(t, tc, "m1")
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The server's mapping (rpc.ToStatus) and the client's (fromStatus) must
// round-trip a typed error: code, message, field and revision.
func TestClient_ErrorMapping(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "cluster: no leader")
	cases := []struct {
		name      string
		server    error
		is        error // the sentinel the client's error must match
		wantCode  fsm.Code
		wantField string
		wantRev   uint64
		wantMsg   string
		grpcCode  codes.Code
	}{
		{name: "invalid", server: rpc.ToStatus(&fsm.Error{Code: fsm.CodeInvalid, Field: "key", Message: `key "x" does not start with "/"`}),
			is: fsm.ErrInvalid, wantCode: fsm.CodeInvalid, wantField: "key", wantMsg: `key "x" does not start with "/"`},
		{name: "not found", server: rpc.ToStatus(&fsm.Error{Code: fsm.CodeNotFound, Field: "key", Message: "key /x not found"}),
			is: fsm.ErrNotFound, wantCode: fsm.CodeNotFound, wantField: "key", wantMsg: "key /x not found"},
		{name: "compare failed", server: rpc.ToStatus(&fsm.Error{Code: fsm.CodeFailedPrecondition, Field: "cas_revision", Revision: 7, Message: "compare failed on /x: current mod revision is 7"}),
			is: fsm.ErrCompareFailed, wantCode: fsm.CodeFailedPrecondition, wantField: "cas_revision", wantRev: 7, wantMsg: "compare failed on /x: current mod revision is 7"},
		{name: "not found without detail", server: status.Error(codes.NotFound, "lease has expired"),
			is: fsm.ErrNotFound, wantCode: fsm.CodeNotFound, wantMsg: "lease has expired"},
		{name: "bad snapshot", server: rpc.ToStatus(fmt.Errorf("%w: checksum mismatch", fsm.ErrBadSnapshot)),
			is: fsm.ErrInvalid, wantCode: fsm.CodeInvalid, wantMsg: "fsm: bad snapshot: checksum mismatch"},
		{name: "unavailable", server: unavailable, is: ErrUnavailable, wantMsg: "unavailable: cluster: no leader", grpcCode: codes.Unavailable},
		{name: "permission denied passes through", server: status.Error(codes.PermissionDenied, "no"),
			wantMsg: "rpc error: code = PermissionDenied desc = no", grpcCode: codes.PermissionDenied},
		{name: "internal passes through", server: status.Error(codes.Internal, "boom"),
			wantMsg: "rpc error: code = Internal desc = boom", grpcCode: codes.Internal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, c := setup(t)
			f.fail = func(string, int) error { return tc.server }
			_, err := c.Put(testCtx(t), "/x", []byte(`1`))
			if err == nil {
				t.Fatal("Put: got nil error")
			}
			if got := err.Error(); got != tc.wantMsg {
				t.Errorf("message: got %q, want %q", got, tc.wantMsg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v): got false, want true", err, tc.is)
			}
			var fe *fsm.Error
			isFsm := errors.As(err, &fe)
			if isFsm != (tc.wantCode != 0) {
				t.Fatalf("errors.As *fsm.Error: got %v, want %v (err %T %v)", isFsm, tc.wantCode != 0, err, err)
			}
			if isFsm {
				if fe.Code != tc.wantCode || fe.Field != tc.wantField || fe.Revision != tc.wantRev {
					t.Errorf("fsm.Error: got code %d field %q revision %d, want %d %q %d",
						fe.Code, fe.Field, fe.Revision, tc.wantCode, tc.wantField, tc.wantRev)
				}
			}
			if tc.grpcCode != 0 {
				if got := status.Code(err); got != tc.grpcCode {
					t.Errorf("status.Code: got %v, want %v", got, tc.grpcCode)
				}
			}
			if tc.is != ErrUnavailable && errors.Is(err, ErrUnavailable) {
				t.Errorf("errors.Is(%v, ErrUnavailable): got true, want false", err)
			}
		})
	}
}

// Reads are idempotent: Unavailable is retried until an answer comes.
func TestClient_RetriesReadsOnUnavailable(t *testing.T) {
	f, c := setup(t)
	f.kvs = []*proto.KeyValue{{Key: "/a"}}
	f.fail = func(_ string, n int) error {
		if n <= 2 {
			return status.Error(codes.Unavailable, "cluster: no leader")
		}
		return nil
	}
	ctx := testCtx(t)
	if _, _, err := c.Get(ctx, "/a"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := c.List(ctx, "/"); err != nil {
		t.Fatalf("List: %v", err)
	}
	if _, err := c.Leader(ctx); err != nil {
		t.Fatalf("Leader: %v", err)
	}
	if _, err := c.RaftConfiguration(ctx); err != nil {
		t.Fatalf("RaftConfiguration: %v", err)
	}
	for _, m := range []string{"Get", "List", "Leader", "RaftConfiguration"} {
		if got := f.count(m); got != 3 {
			t.Errorf("%s calls: got %d, want 3", m, got)
		}
	}
}

func TestClient_ReadRetriesAreBounded(t *testing.T) {
	f, c := setup(t)
	f.fail = func(string, int) error { return status.Error(codes.Unavailable, "cluster: no leader") }
	_, _, err := c.Get(testCtx(t), "/a")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get: got %v, want ErrUnavailable", err)
	}
	if got, want := f.count("Get"), fastBackoff.attempts; got != want {
		t.Errorf("Get calls: got %d, want %d", got, want)
	}
}

func TestClient_ReadRetriesStopWithContext(t *testing.T) {
	f, c := setup(t)
	c.retry = backoff{attempts: 100, first: time.Hour, max: time.Hour}
	f.fail = func(string, int) error { return status.Error(codes.Unavailable, "cluster: no leader") }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.Get(ctx, "/a")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get: got %v, want the last cause, ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Get took %s; the retry should give up when the deadline cannot be met", el)
	}
	if got := f.count("Get"); got != 1 {
		t.Errorf("Get calls: got %d, want 1", got)
	}
}

// Only Unavailable is retried: a typed answer is final.
func TestClient_NoRetryOnTypedError(t *testing.T) {
	f, c := setup(t)
	f.fail = func(string, int) error {
		return rpc.ToStatus(&fsm.Error{Code: fsm.CodeNotFound, Field: "key", Message: "key /a not found"})
	}
	if _, _, err := c.Get(testCtx(t), "/a"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("Get: got %v, want ErrNotFound", err)
	}
	if got := f.count("Get"); got != 1 {
		t.Errorf("Get calls: got %d, want 1", got)
	}
}

// A write that failed with Unavailable may have been applied: never retried.
func TestClient_NoRetryOfWrites(t *testing.T) {
	f, c := setup(t)
	f.fail = func(string, int) error { return status.Error(codes.Unavailable, "cluster: leadership lost") }
	ctx := testCtx(t)
	writes := map[string]func() error{
		"Put":    func() error { _, err := c.Put(ctx, "/a", []byte(`1`)); return err },
		"Delete": func() error { _, _, err := c.Delete(ctx, "/a"); return err },
		"Txn":    func() error { _, err := c.Txn(ctx, &proto.TxnRequest{}); return err },
		"LeaseGrant": func() error {
			_, err := c.LeaseGrant(ctx, 10)
			return err
		},
		"LeaseKeepAlive": func() error { _, err := c.LeaseKeepAlive(ctx, 1); return err },
		"LeaseRevoke":    func() error { _, err := c.LeaseRevoke(ctx, 1); return err },
		"Restore": func() error {
			_, err := c.Restore(ctx, bytes.NewReader([]byte("snap")))
			return err
		},
	}
	for m, call := range writes {
		if err := call(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: got %v, want ErrUnavailable", m, err)
		}
		if got := f.count(m); got != 1 {
			t.Errorf("%s calls: got %d, want 1", m, got)
		}
	}
}

func TestClient_RequestOptions(t *testing.T) {
	f, c := setup(t)
	ctx := testCtx(t)

	kv, rev, err := c.Get(ctx, "/a", Stale())
	if err != nil || kv.Key != "/a" || rev != 9 {
		t.Fatalf("Get: got %v %d %v", kv, rev, err)
	}
	if g := f.lastReq("Get").(*proto.GetRequest); g.Consistency != proto.Consistency_STALE {
		t.Errorf("Get consistency: got %v, want STALE", g.Consistency)
	}
	if _, _, err := c.Get(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	if g := f.lastReq("Get").(*proto.GetRequest); g.Consistency != proto.Consistency_LINEARIZABLE {
		t.Errorf("Get default consistency: got %v, want LINEARIZABLE", g.Consistency)
	}

	if _, err := c.List(ctx, "/p/", Stale(), WithLimit(5), WithAfter("/p/b"), WithKeysOnly()); err != nil {
		t.Fatal(err)
	}
	l := f.lastReq("List").(*proto.ListRequest)
	if l.Prefix != "/p/" || l.Limit != 5 || l.After != "/p/b" || !l.KeysOnly || l.Consistency != proto.Consistency_STALE {
		t.Errorf("List request: got %v", l)
	}

	var prev *proto.KeyValue
	rev, err = c.Put(ctx, "/a", []byte(`{}`), WithLease(4), WithCAS(0), WithOrigin("test"), WithPrevKV(&prev))
	if err != nil || rev != 11 {
		t.Fatalf("Put: got %d %v", rev, err)
	}
	p := f.lastReq("Put").(*proto.PutRequest)
	if p.Key != "/a" || string(p.Value) != `{}` || p.Lease != 4 || p.CasRevision == nil || *p.CasRevision != 0 || p.Origin != "test" || !p.PrevKv {
		t.Errorf("Put request: got %v", p)
	}
	if prev == nil || string(prev.Value) != `1` {
		t.Errorf("WithPrevKV: got %v, want the previous value 1", prev)
	}
	if _, err := c.Put(ctx, "/a", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if p := f.lastReq("Put").(*proto.PutRequest); p.CasRevision != nil || p.PrevKv {
		t.Errorf("plain Put: got cas %v prev_kv %v, want neither", p.CasRevision, p.PrevKv)
	}

	rev, deleted, err := c.Delete(ctx, "/p/", WithPrefix(), WithCAS(3), WithOrigin("test"))
	if err != nil || rev != 12 || deleted != 2 {
		t.Fatalf("Delete: got %d %d %v", rev, deleted, err)
	}
	d := f.lastReq("Delete").(*proto.DeleteRequest)
	if !d.Prefix || d.CasRevision == nil || *d.CasRevision != 3 || d.Origin != "test" {
		t.Errorf("Delete request: got %v", d)
	}

	if id, err := c.LeaseGrant(ctx, 30); err != nil || id != 77 {
		t.Errorf("LeaseGrant: got %d %v", id, err)
	}
	if ttl, err := c.LeaseKeepAlive(ctx, 77); err != nil || ttl != 30 {
		t.Errorf("LeaseKeepAlive: got %d %v", ttl, err)
	}
	if rev, err := c.LeaseRevoke(ctx, 77); err != nil || rev != 15 {
		t.Errorf("LeaseRevoke: got %d %v", rev, err)
	}
}

func TestClient_ListAllPages(t *testing.T) {
	f, c := setup(t)
	for _, k := range []string{"/a", "/p/1", "/p/2", "/p/3", "/p/4", "/p/5", "/q"} {
		f.kvs = append(f.kvs, &proto.KeyValue{Key: k})
	}
	kvs, rev, err := c.ListAll(testCtx(t), "/p/", WithLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	if got, want := strings.Join(keys, ","), "/p/1,/p/2,/p/3,/p/4,/p/5"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
	if got := f.count("List"); got != 3 {
		t.Errorf("pages: got %d, want 3", got)
	}
	if rev != 11 {
		t.Errorf("revision: got %d, want 11 (the first page's)", rev)
	}
}

func TestClient_SnapshotRestoreRoundTrip(t *testing.T) {
	f, c := setup(t)
	f.snapshot = make([]byte, 3*RestoreChunkBytes+12345)
	rand.Read(f.snapshot)
	f.snapStep = 100 << 10
	ctx := testCtx(t)

	var buf bytes.Buffer
	n, err := c.Snapshot(ctx, &buf)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if n != int64(len(f.snapshot)) || !bytes.Equal(buf.Bytes(), f.snapshot) {
		t.Fatalf("Snapshot: got %d bytes (equal %v), want %d", n, bytes.Equal(buf.Bytes(), f.snapshot), len(f.snapshot))
	}

	rev, err := c.Restore(ctx, &buf)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if rev != 99 {
		t.Errorf("Restore revision: got %d, want 99", rev)
	}
	if got := bytes.Join(f.restored, nil); !bytes.Equal(got, f.snapshot) {
		t.Errorf("Restore: the server got %d bytes, not the %d sent", len(got), len(f.snapshot))
	}
	for i, ch := range f.restored[:len(f.restored)-1] {
		if len(ch) != RestoreChunkBytes {
			t.Errorf("chunk %d: got %d bytes, want %d", i, len(ch), RestoreChunkBytes)
		}
	}
	if got := len(f.restored); got != 4 {
		t.Errorf("chunks: got %d, want 4", got)
	}
}

func TestClient_RestoreReportsServerError(t *testing.T) {
	f, c := setup(t)
	f.fail = func(m string, _ int) error {
		return rpc.ToStatus(fmt.Errorf("%w: not a Dux snapshot", fsm.ErrBadSnapshot))
	}
	// Larger than any flow-control window, so that Send meets the closed stream.
	big := bytes.NewReader(make([]byte, 20*RestoreChunkBytes))
	_, err := c.Restore(testCtx(t), big)
	if !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "not a Dux snapshot") {
		t.Fatalf("Restore: got %v, want the server's invalid-argument error", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestClient_SnapshotWriterError(t *testing.T) {
	f, c := setup(t)
	f.snapshot = make([]byte, 10*RestoreChunkBytes)
	f.snapStep = RestoreChunkBytes
	_, err := c.Snapshot(testCtx(t), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Snapshot: got %v, want the writer's error", err)
	}
}

// round_robin spreads requests over the live members and skips the dead one.
func TestClient_SpreadsLoadAndSkipsDeadMember(t *testing.T) {
	f1, f2 := newFakeServer(), newFakeServer()
	tc := startFakes(t, map[string]*fakeServer{"m1": f1, "m2": f2})
	c := newTestClient(t, tc, "m1", "dead", "m2")
	ctx := testCtx(t)
	for i := 0; i < 40; i++ {
		if _, _, err := c.Get(ctx, "/a"); err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
	}
	if f1.count("Get") == 0 || f2.count("Get") == 0 {
		t.Errorf("calls per member: got m1=%d m2=%d, want both > 0", f1.count("Get"), f2.count("Get"))
	}
	if got := f1.count("Get") + f2.count("Get"); got != 40 {
		t.Errorf("calls in all: got %d, want 40", got)
	}
}

func TestClient_DialTimeoutWithNoMember(t *testing.T) {
	tc := startFakes(t, nil)
	start := time.Now()
	_, err := New(Config{Endpoints: []string{"dead1", "dead2"}, DialTimeout: 200 * time.Millisecond,
		dialOptions: []grpc.DialOption{grpc.WithContextDialer(tc.dial)}})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New: got %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("New took %s, want about the dial timeout", el)
	}
}

func TestClient_DialTimeoutWithAMember(t *testing.T) {
	tc := startFakes(t, map[string]*fakeServer{"m1": newFakeServer()})
	c, err := New(Config{Endpoints: []string{"dead", "m1"}, DialTimeout: 5 * time.Second,
		dialOptions: []grpc.DialOption{grpc.WithContextDialer(tc.dial)}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.Close()
}

func TestConfig_Validate(t *testing.T) {
	for _, cfg := range []Config{{}, {Endpoints: []string{" "}}, {Endpoints: []string{"a:1"}, DialTimeout: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): got nil error", cfg)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}
