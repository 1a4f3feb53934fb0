package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
	"github.com/dux-io/dux/rpc"
)

// cliRun runs duxd with args as the user would, and returns what it printed
// and its error (main prints it as "Error: ..." and exits with exitCode).
func cliRun(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// Usage errors are found before any connection (there is no server here)
// and exit with code 2.
func TestCLI_UsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"state", "get"}, want: "accepts 1 arg(s), received 0"},
		{args: []string{"state", "get", "/a", "/b"}, want: "accepts 1 arg(s), received 2"},
		{args: []string{"state", "get", "/a", "-o", "yaml"}, want: `--output "yaml": want table or json`},
		{args: []string{"state", "get", "/a"}, env: map[string]string{"DUX_OUTPUT": "xml"}, want: `--output "xml"`},
		{args: []string{"state", "get", "/a", "--timeout", "-1s"}, want: "must not be negative"},
		{args: []string{"state", "get", "/a", "--addr", " , "}, want: "no member address"},
		{args: []string{"state", "get", "/a", "--bogus"}, want: "unknown flag: --bogus"},
		{args: []string{"state", "put", "/a"}, want: "accepts 2 arg(s), received 1"},
		{args: []string{"state", "put", "/a", "hello"}, want: "the value is not JSON"},
		{args: []string{"state", "put", "/a", `{"a":`}, want: "the value is not JSON"},
		{args: []string{"state", "put", "/a", "--cas", "x", "1"}, want: `invalid argument "x" for "--cas"`},
		{args: []string{"state", "del", "/a/", "--prefix", "--cas", "3"}, want: "--cas and --prefix cannot be used together"},
		{args: []string{"state", "ls", "/a", "/b"}, want: "accepts at most 1 arg(s), received 2"},
		{args: []string{"state", "ls", "--limit", "-1"}, want: `invalid argument "-1" for "--limit"`},
		{args: []string{"state", "nosuch"}, want: `unknown command "nosuch" for "duxd state"`},
		{args: []string{"raft", "peers", "extra"}, want: `unknown command "extra"`},
		{args: []string{"snapshot", "save"}, want: "accepts 1 arg(s), received 0"},
		{args: []string{"snapshot", "restore", "a", "b"}, want: "accepts 1 arg(s), received 2"},
		{args: []string{"bench", "put", "--clients", "0"}, want: "--clients 0: must be at least 1"},
		{args: []string{"bench", "put", "--total", "0"}, want: "--total 0: must be at least 1"},
		{args: []string{"bench", "put", "--value-size", "1"}, want: "--value-size 1"},
		{args: []string{"bench", "put", "--key-prefix", "bench/"}, want: "must start with /"},
		{args: []string{"bench", "get", "--consistency", "eventual"}, want: `--consistency "eventual"`},
		{args: []string{"bench", "put", "--consistency", "stale"}, want: "unknown flag: --consistency"},
		{args: []string{"bench", "put", "-o", "json"}, want: "unknown shorthand flag: 'o'"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, _, err := cliRun(t, "", c.args...)
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error: got %q, want it to contain %q", err, c.want)
			}
			if got := exitCode(err); got != 2 {
				t.Errorf("exit code: got %d, want 2 (error %q)", got, err)
			}
		})
	}
}

func TestCLI_GroupWithoutSubcommandPrintsHelp(t *testing.T) {
	out, _, err := cliRun(t, "", "state")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"get", "put", "del", "ls"} {
		if !strings.Contains(out, sub) {
			t.Errorf("help does not list %q:\n%s", sub, out)
		}
	}
}

func TestReadValue(t *testing.T) {
	v, err := readValue("-", strings.NewReader(`{"a": 1}`+"\n"))
	if err != nil || string(v) != `{"a": 1}`+"\n" {
		t.Errorf("stdin: got %q %v", v, err)
	}
	_, err = readValue("-", strings.NewReader(`nope`))
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "at byte 2") {
		t.Errorf("bad stdin: got %v, want a usage error with the position", err)
	}
	if v, err := readValue(`"hello"`, nil); err != nil || string(v) != `"hello"` {
		t.Errorf("string: got %q %v", v, err)
	}
}

// fakeMember is an in-memory member: enough of the State and Cluster
// services to drive the CLI, with errors typed as the real server types
// them (rpc.ToStatus).
type fakeMember struct {
	proto.UnimplementedStateServer
	proto.UnimplementedClusterServer
	proto.UnimplementedGraphServer

	mu       sync.Mutex
	rev      uint64
	kvs      map[string]*proto.KeyValue
	puts     []*proto.PutRequest
	deletes  []*proto.DeleteRequest
	gets     []*proto.GetRequest
	lists    []*proto.ListRequest
	restored []byte
}

// pageSize is the fake's List page: small, so listings take several pages.
const pageSize = 2

func startFakeMember(t *testing.T) (*fakeMember, string) {
	t.Helper()
	f := &fakeMember{rev: 1, kvs: map[string]*proto.KeyValue{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			return resp, rpc.ToStatus(err)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return rpc.ToStatus(h(srv, ss))
		}))
	proto.RegisterStateServer(s, f)
	proto.RegisterClusterServer(s, f)
	proto.RegisterGraphServer(s, f)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

func (f *fakeMember) Get(_ context.Context, r *proto.GetRequest) (*proto.GetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, r)
	if !strings.HasPrefix(r.Key, "/") {
		return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: "key", Message: fmt.Sprintf("key %q does not start with \"/\"", r.Key)}
	}
	kv, ok := f.kvs[r.Key]
	if !ok {
		return nil, &fsm.Error{Code: fsm.CodeNotFound, Field: "key", Message: "key " + r.Key + " not found"}
	}
	return &proto.GetResponse{Kv: kv, Revision: f.rev}, nil
}

func (f *fakeMember) List(_ context.Context, r *proto.ListRequest) (*proto.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, r)
	var keys []string
	for k := range f.kvs {
		if strings.HasPrefix(k, r.Prefix) && k > r.After {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	limit := pageSize
	if r.Limit > 0 {
		limit = int(r.Limit)
	}
	resp := &proto.ListResponse{Revision: f.rev}
	for i, k := range keys {
		if i == limit {
			resp.Next = keys[i-1]
			break
		}
		kv := f.kvs[k]
		if r.KeysOnly {
			kv = &proto.KeyValue{Key: kv.Key, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
		}
		resp.Items = append(resp.Items, kv)
	}
	return resp, nil
}

func (f *fakeMember) Put(_ context.Context, r *proto.PutRequest) (*proto.PutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, r)
	if !json.Valid(r.Value) {
		return nil, &fsm.Error{Code: fsm.CodeInvalid, Field: "value", Message: "value is not JSON"}
	}
	old := f.kvs[r.Key]
	if r.CasRevision != nil {
		var cur uint64
		if old != nil {
			cur = old.ModRevision
		}
		if cur != *r.CasRevision {
			return nil, &fsm.Error{Code: fsm.CodeFailedPrecondition, Field: "cas_revision", Revision: cur,
				Message: fmt.Sprintf("compare failed on %s: current mod revision is %d", r.Key, cur)}
		}
	}
	f.rev++
	kv := &proto.KeyValue{Key: r.Key, Value: r.Value, CreateRevision: f.rev, ModRevision: f.rev, Version: 1, Lease: r.Lease, Origin: r.Origin}
	if old != nil {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
	}
	f.kvs[r.Key] = kv
	return &proto.PutResponse{Revision: f.rev}, nil
}

func (f *fakeMember) Delete(_ context.Context, r *proto.DeleteRequest) (*proto.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, r)
	f.rev++
	var n uint64
	for k := range f.kvs {
		if k == r.Key || r.Prefix && strings.HasPrefix(k, r.Key) {
			delete(f.kvs, k)
			n++
		}
	}
	return &proto.DeleteResponse{Revision: f.rev, Deleted: n}, nil
}

func (f *fakeMember) Leader(context.Context, *proto.LeaderRequest) (*proto.LeaderResponse, error) {
	return &proto.LeaderResponse{Id: "a", RaftAddress: "10.0.0.1:7702", GrpcAddress: "10.0.0.1:7700", HttpAddress: "10.0.0.1:7701", Term: 3}, nil
}

func (f *fakeMember) RaftConfiguration(context.Context, *proto.RaftConfigurationRequest) (*proto.RaftConfigurationResponse, error) {
	return &proto.RaftConfigurationResponse{Index: 8, Servers: []*proto.RaftServer{
		{Id: "a", Address: "10.0.0.1:7702", Suffrage: "voter", Leader: true},
		{Id: "b", Address: "10.0.0.2:7702", Suffrage: "voter"},
		{Id: "c", Address: "10.0.0.3:7702", Suffrage: "nonvoter"},
	}}, nil
}

// Snapshot streams a real (empty) StateStore snapshot.
func (f *fakeMember) Snapshot(_ *proto.SnapshotRequest, stream grpc.ServerStreamingServer[proto.SnapshotChunk]) error {
	var buf bytes.Buffer
	if _, err := fsm.New().WriteSnapshot(&buf); err != nil {
		return err
	}
	b := buf.Bytes()
	if err := stream.Send(&proto.SnapshotChunk{Data: b[:5]}); err != nil {
		return err
	}
	return stream.Send(&proto.SnapshotChunk{Data: b[5:]})
}

func (f *fakeMember) Restore(stream grpc.ClientStreamingServer[proto.SnapshotChunk, proto.RestoreResponse]) error {
	var data []byte
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		data = append(data, c.Data...)
	}
	if _, err := fsm.ReadSnapshot(bytes.NewReader(data)); err != nil {
		return &fsm.Error{Code: fsm.CodeInvalid, Field: "snapshot", Message: err.Error()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = data
	f.rev += 1000
	return stream.SendAndClose(&proto.RestoreResponse{Revision: f.rev})
}

func TestCLI_StateRoundTrip(t *testing.T) {
	f, addr := startFakeMember(t)
	t.Setenv("DUX_ADDR", addr)

	out, _, err := cliRun(t, "", "state", "put", "/config/db", `{"host": "db-1"}`, "--lease", "5")
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if want := "KEY         REVISION\n/config/db  2\n"; out != want {
		t.Errorf("put output: got %q, want %q", out, want)
	}
	if p := f.puts[0]; p.Lease != 5 || p.Origin != "cli" || p.CasRevision != nil {
		t.Errorf("put request: got %v", p)
	}
	if _, _, err := cliRun(t, `"from stdin"`, "state", "put", "/config/s", "-", "--cas", "0", "--origin", "me"); err != nil {
		t.Fatalf("put from stdin: %v", err)
	}
	if p := f.puts[1]; string(p.Value) != `"from stdin"` || p.CasRevision == nil || *p.CasRevision != 0 || p.Origin != "me" {
		t.Errorf("put request: got %v", p)
	}

	out, _, err = cliRun(t, "", "state", "get", "/config/db", "-o", "json", "--stale")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	var kv map[string]any
	if err := json.Unmarshal([]byte(out), &kv); err != nil {
		t.Fatalf("get -o json is not JSON: %v\n%s", err, out)
	}
	if kv["key"] != "/config/db" || fmt.Sprint(kv["value"]) != "map[host:db-1]" || kv["mod_revision"] != 2.0 || kv["lease"] != 5.0 {
		t.Errorf("get -o json: got %v", kv)
	}
	if g := f.gets[len(f.gets)-1]; g.Consistency != proto.Consistency_STALE {
		t.Errorf("get --stale: got consistency %v", g.Consistency)
	}

	for i := 0; i < 3; i++ {
		cliRun(t, "", "state", "put", fmt.Sprintf("/config/k%d", i), fmt.Sprint(i))
	}
	// No --limit: every key, over several pages of the fake's pageSize.
	out, _, err = cliRun(t, "", "state", "ls", "/config/")
	if err != nil {
		t.Fatalf("ls: %v", err)
	}
	if got := strings.Count(out, "\n/config/"); got != 5 {
		t.Errorf("ls: got %d keys, want 5:\n%s", got, out)
	}
	if len(f.lists) != 3 {
		t.Errorf("ls pages: got %d, want 3", len(f.lists))
	}

	// --limit: one page, and where to continue.
	out, stderr, err := cliRun(t, "", "state", "ls", "/config/", "--limit", "1", "--keys-only", "-o", "json")
	if err != nil {
		t.Fatalf("ls --limit: %v", err)
	}
	var page struct {
		Revision uint64           `json:"revision"`
		Items    []map[string]any `json:"items"`
		Next     string           `json:"next"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	if len(page.Items) != 1 || page.Next != "/config/db" || page.Items[0]["value"] != nil {
		t.Errorf("ls --limit 1 --keys-only: got %+v", page)
	}
	if stderr != "" {
		t.Errorf("ls -o json: stderr %q, want none", stderr)
	}
	_, stderr, _ = cliRun(t, "", "state", "ls", "/config/", "--limit", "1")
	if !strings.Contains(stderr, "--after /config/db") {
		t.Errorf("ls --limit table: stderr %q, want a hint to continue", stderr)
	}

	out, _, err = cliRun(t, "", "state", "del", "/config/", "--prefix", "-o", "json")
	if err != nil {
		t.Fatalf("del: %v", err)
	}
	if got := strings.Join(strings.Fields(out), ""); got != `{"deleted":5,"key":"/config/","revision":7}` {
		t.Errorf("del -o json: got %s", got)
	}
}

// A typed error from the server reads "not found: ..." and exits with 1.
func TestCLI_TypedErrors(t *testing.T) {
	_, addr := startFakeMember(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"state", "get", "/x"}, "not found: key /x not found"},
		{[]string{"state", "get", "x"}, `invalid argument: key "x" does not start with "/"`},
		{[]string{"state", "put", "/x", "1", "--cas", "3"}, "failed precondition: compare failed on /x: current mod revision is 0"},
	}
	for _, c := range cases {
		_, _, err := cliRun(t, "", append(c.args, "--addr", addr)...)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: got error %v, want %q", c.args, err, c.want)
			continue
		}
		if got := exitCode(err); got != 1 {
			t.Errorf("%v: exit code %d, want 1", c.args, got)
		}
	}
}

func TestCLI_UnreachableMember(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	_, _, err = cliRun(t, "", "state", "get", "/x", "--addr", addr)
	if err == nil || !strings.HasPrefix(err.Error(), "unavailable: ") || !strings.Contains(err.Error(), "members tried: "+addr) {
		t.Errorf("got %v, want an unavailable error naming %s", err, addr)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit code: got %d, want 1", exitCode(err))
	}
}

// Only --addr, --timeout and --output come from DUX_* variables: a stray
// DUX_PREFIX must not turn a delete into a prefix delete.
func TestCLI_EnvSetsOnlySharedFlags(t *testing.T) {
	f, addr := startFakeMember(t)
	t.Setenv("DUX_ADDR", "127.0.0.1:1,"+addr) // a dead member and a live one
	t.Setenv("DUX_PREFIX", "true")
	t.Setenv("DUX_CAS", "9")
	t.Setenv("DUX_OUTPUT", "json")
	out, _, err := cliRun(t, "", "state", "del", "/a")
	if err != nil {
		t.Fatalf("del: %v", err)
	}
	if d := f.deletes[0]; d.Prefix || d.CasRevision != nil {
		t.Errorf("del request: got %v, want no prefix and no cas", d)
	}
	if !strings.HasPrefix(out, "{") {
		t.Errorf("DUX_OUTPUT=json: got %q", out)
	}
}

func TestCLI_RaftPeers(t *testing.T) {
	_, addr := startFakeMember(t)
	out, _, err := cliRun(t, "", "raft", "peers", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID  ADDRESS        SUFFRAGE  LEADER\n" +
		"a   10.0.0.1:7702  voter     *\n" +
		"b   10.0.0.2:7702  voter     \n" +
		"c   10.0.0.3:7702  nonvoter  \n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	out, _, err = cliRun(t, "", "raft", "peers", "--addr", addr, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Index   uint64 `json:"index"`
		Servers []struct {
			ID       string `json:"id"`
			Address  string `json:"address"`
			Suffrage string `json:"suffrage"`
			Leader   bool   `json:"leader"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || cfg.Index != 8 || len(cfg.Servers) != 3 || !cfg.Servers[0].Leader {
		t.Errorf("raft peers -o json: got %+v %v", cfg, err)
	}
	out, _, err = cliRun(t, "", "raft", "leader", "--addr", addr)
	if err != nil || !strings.Contains(out, "a   10.0.0.1:7702") {
		t.Errorf("raft leader: got %q %v", out, err)
	}
}
