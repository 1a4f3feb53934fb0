//go:build integration

package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

func httpDo(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// revision returns the store revision as a linearizable list reports it.
func revision(t *testing.T, a *agent) uint64 {
	t.Helper()
	resp, err := a.state().List(ctxT(t, 10*time.Second), &proto.ListRequest{Prefix: "/", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Revision
}

// Rule: bad input gets a typed error (400 with the field at fault, 404,
// 409 with the current revision) and changes nothing.
func TestAPI_BadInputOverHTTPGetsTypedErrorAndChangesNothing(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	a := followers(agents, leader)[0]
	base := "http://" + a.http
	if code, b := httpDo(t, "PUT", base+"/v1/state/cfg/existing", []byte(`{"v":1}`)); code != 200 {
		t.Fatalf("seed put: %d %s", code, b)
	}
	big := []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		code, field        string
	}{
		{"empty segment", "PUT", "/v1/state/cfg//x", []byte(`{}`), 400, "invalid_argument", "key"},
		{"dot segment", "PUT", "/v1/state/cfg/./x", []byte(`{}`), 400, "invalid_argument", "key"},
		{"dotdot segment", "PUT", "/v1/state/cfg/../x", []byte(`{}`), 400, "invalid_argument", "key"},
		{"trailing slash", "PUT", "/v1/state/cfg/x/", []byte(`{}`), 400, "invalid_argument", "key"},
		{"control character", "PUT", "/v1/state/cfg/a%01b", []byte(`{}`), 400, "invalid_argument", "key"},
		{"key too long", "PUT", "/v1/state/" + strings.Repeat("k", 1100), []byte(`{}`), 400, "invalid_argument", "key"},
		{"no key", "PUT", "/v1/state/", []byte(`{}`), 400, "invalid_argument", "key"},
		{"invalid JSON", "PUT", "/v1/state/cfg/x", []byte(`{"a":`), 400, "invalid_argument", "value"},
		{"empty value", "PUT", "/v1/state/cfg/x", nil, 400, "invalid_argument", "value"},
		{"value too large", "PUT", "/v1/state/cfg/x", big, 400, "invalid_argument", "value"},
		{"unknown parameter", "PUT", "/v1/state/cfg/x?bogus=1", []byte(`{}`), 400, "invalid_argument", "bogus"},
		{"bad cas", "PUT", "/v1/state/cfg/x?cas=abc", []byte(`{}`), 400, "invalid_argument", "cas"},
		{"unknown lease", "PUT", "/v1/state/cfg/x?lease=999999", []byte(`{}`), 404, "not_found", "lease"},
		{"cas create on existing", "PUT", "/v1/state/cfg/existing?cas=0", []byte(`{}`), 409, "failed_precondition", "cas_revision"},
		{"cas delete mismatch", "DELETE", "/v1/state/cfg/existing?cas=1", nil, 409, "failed_precondition", "cas_revision"},
		{"prefix delete with cas", "DELETE", "/v1/state/cfg/?prefix=true&cas=1", nil, 400, "invalid_argument", "cas_revision"},
		{"missing key", "GET", "/v1/state/cfg/missing", nil, 404, "not_found", "key"},
		{"bad consistency", "GET", "/v1/state/cfg/existing?consistency=eventual", nil, 400, "invalid_argument", "consistency"},
		{"bad limit", "GET", "/v1/state/cfg/?prefix=true&limit=-1", nil, 400, "invalid_argument", "limit"},
		{"txn invalid JSON", "POST", "/v1/txn", []byte(`{"success":[`), 400, "invalid_argument", "body"},
		{"txn unknown field", "POST", "/v1/txn", []byte(`{"sucess":[]}`), 400, "invalid_argument", "body"},
		{"txn bad op type", "POST", "/v1/txn", []byte(`{"success":[{"type":"upsert","key":"/a"}]}`), 400, "invalid_argument", "success[0].type"},
		{"txn bad key", "POST", "/v1/txn", []byte(`{"success":[{"type":"put","key":"a","value":1}]}`), 400, "invalid_argument", "success[0].key"},
		{"txn put without value", "POST", "/v1/txn", []byte(`{"success":[{"type":"put","key":"/a"}]}`), 400, "invalid_argument", "success[0].value"},
		{"txn key written twice", "POST", "/v1/txn", []byte(`{"success":[{"type":"put","key":"/cfg/d","value":1},{"type":"get","key":"/cfg/d"},{"type":"delete","key":"/cfg/d"}]}`), 400, "invalid_argument", "success[2].key"},
		{"txn put under a deleted prefix", "POST", "/v1/txn", []byte(`{"success":[{"type":"delete","key":"/cfg/","prefix":true},{"type":"put","key":"/cfg/existing","value":2}]}`), 400, "invalid_argument", "success[1].key"},
		{"txn limit on a put", "POST", "/v1/txn", []byte(`{"success":[{"type":"put","key":"/cfg/x","value":1,"limit":1}]}`), 400, "invalid_argument", "success[0].limit"},
		{"txn limit too large", "POST", "/v1/txn", []byte(`{"failure":[{"type":"get","key":"/cfg/","prefix":true,"limit":10001}]}`), 400, "invalid_argument", "failure[0].limit"},
		{"component without image", "PUT", "/v1/state/components/web", []byte(`{"replicas":1}`), 400, "invalid_argument", "value.image"},
		{"component bad replicas", "PUT", "/v1/state/components/web", []byte(`{"image":"x","replicas":-1}`), 400, "invalid_argument", "value.replicas"},
		{"component nested key", "PUT", "/v1/state/components/web/x", []byte(`{"image":"x"}`), 400, "invalid_argument", "key"},
		{"component in a txn", "POST", "/v1/txn", []byte(`{"success":[{"type":"put","key":"/components/web","value":{"image":"x","restart":"sometimes"}}]}`), 400, "invalid_argument", "success[0].value.restart"},
		{"lease ttl zero", "POST", "/v1/lease", []byte(`{"ttl":0}`), 400, "invalid_argument", "ttl_seconds"},
		{"lease bad id", "POST", "/v1/lease/abc/keepalive", nil, 400, "invalid_argument", "id"},
		{"lease unknown keepalive", "POST", "/v1/lease/424242/keepalive", nil, 404, "not_found", ""},
		{"lease unknown revoke", "DELETE", "/v1/lease/424242", nil, 404, "not_found", "lease"},
		{"restore garbage", "POST", "/v1/snapshot", []byte("not a snapshot"), 400, "invalid_argument", "snapshot"},
	}
	before := revision(t, a)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := httpDo(t, c.method, base+c.path, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, b)
			}
			e, _ := jsonBody(t, b)["error"].(map[string]any)
			if e == nil || e["code"] != c.code || (c.field != "" && e["field"] != c.field) || e["message"] == "" {
				t.Fatalf("error body %s, want code %s field %s", b, c.code, c.field)
			}
			if c.status == 409 && e["revision"] == nil {
				t.Fatalf("409 without the current revision: %s", b)
			}
		})
	}
	// Rejected writes change nothing: only revisions of failed Raft
	// commands (lease, cas) may move the revision, never a key.
	got, _, err := listAll(ctxT(t, 10*time.Second), a, "/cfg/", proto.Consistency_LINEARIZABLE)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["/cfg/existing"] == nil || got["/cfg/existing"].Version != 1 {
		t.Fatalf("state after bad input = %v, want only /cfg/existing at version 1", got)
	}
	if comps, _, err := listAll(ctxT(t, 10*time.Second), a, "/components/", proto.Consistency_LINEARIZABLE); err != nil || len(comps) != 0 {
		t.Fatalf("components after bad specs = %v (%v), want none", comps, err)
	}
	t.Logf("revision %d -> %d", before, revision(t, a))
}

func grpcField(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Metadata["field"]
		}
	}
	return ""
}

// Rule: the gRPC API types its errors the same way, and changes nothing.
func TestAPI_BadInputOverGRPCGetsTypedErrorAndChangesNothing(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	s := followers(agents, leader)[0].state()
	ctx := ctxT(t, 30*time.Second)
	if _, err := s.Put(ctx, &proto.PutRequest{Key: "/cfg/existing", Value: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	zero := uint64(0)
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"bad key", func() error {
			_, err := s.Put(ctx, &proto.PutRequest{Key: "cfg/x", Value: []byte(`{}`)})
			return err
		}, codes.InvalidArgument, "key"},
		{"invalid JSON", func() error {
			_, err := s.Put(ctx, &proto.PutRequest{Key: "/cfg/x", Value: []byte(`{`)})
			return err
		}, codes.InvalidArgument, "value"},
		{"value too large", func() error {
			_, err := s.Put(ctx, &proto.PutRequest{Key: "/cfg/x", Value: []byte(`"` + strings.Repeat("x", 1<<20) + `"`)})
			return err
		}, codes.InvalidArgument, "value"},
		{"origin with control character", func() error {
			_, err := s.Put(ctx, &proto.PutRequest{Key: "/cfg/x", Value: []byte(`1`), Origin: "a\nb"})
			return err
		}, codes.InvalidArgument, "origin"},
		{"unknown lease", func() error {
			_, err := s.Put(ctx, &proto.PutRequest{Key: "/cfg/x", Value: []byte(`1`), Lease: 987654})
			return err
		}, codes.NotFound, "lease"},
		{"cas create on existing", func() error {
			_, err := s.Put(ctx, &proto.PutRequest{Key: "/cfg/existing", Value: []byte(`2`), CasRevision: &zero})
			return err
		}, codes.FailedPrecondition, "cas_revision"},
		{"missing key", func() error {
			_, err := s.Get(ctx, &proto.GetRequest{Key: "/cfg/missing"})
			return err
		}, codes.NotFound, "key"},
		{"bad prefix", func() error {
			_, err := s.List(ctx, &proto.ListRequest{Prefix: "nope"})
			return err
		}, codes.InvalidArgument, "key"},
		{"txn bad compare key", func() error {
			_, err := s.Txn(ctx, &proto.TxnRequest{Compares: []*proto.Compare{{Key: "x"}}})
			return err
		}, codes.InvalidArgument, "compares[0].key"},
		{"txn bad put value", func() error {
			_, err := s.Txn(ctx, &proto.TxnRequest{Success: []*proto.Op{
				{Type: proto.Op_PUT, Key: "/cfg/y", Value: []byte(`1`)},
				{Type: proto.Op_PUT, Key: "/cfg/z", Value: []byte(`nope`)},
			}})
			return err
		}, codes.InvalidArgument, "success[1].value"},
		{"txn unknown lease", func() error {
			_, err := s.Txn(ctx, &proto.TxnRequest{Success: []*proto.Op{
				{Type: proto.Op_PUT, Key: "/cfg/y", Value: []byte(`1`)},
				{Type: proto.Op_PUT, Key: "/cfg/z", Value: []byte(`1`), Lease: 55555},
			}})
			return err
		}, codes.NotFound, "success[1].lease"},
		{"txn key put twice", func() error {
			_, err := s.Txn(ctx, &proto.TxnRequest{Success: []*proto.Op{
				{Type: proto.Op_PUT, Key: "/cfg/y", Value: []byte(`1`)},
				{Type: proto.Op_PUT, Key: "/cfg/z", Value: []byte(`1`)},
				{Type: proto.Op_PUT, Key: "/cfg/y", Value: []byte(`2`)},
			}})
			return err
		}, codes.InvalidArgument, "success[2].key"},
		{"txn overlapping prefix deletes", func() error {
			_, err := s.Txn(ctx, &proto.TxnRequest{
				Compares: []*proto.Compare{{Key: "/cfg/existing", Target: proto.Compare_VERSION, Number: 99}},
				Failure: []*proto.Op{
					{Type: proto.Op_DELETE, Key: "/cfg/e", Prefix: true},
					{Type: proto.Op_DELETE, Key: "/cfg/", Prefix: true},
				}})
			return err
		}, codes.InvalidArgument, "failure[1].key"},
		{"txn get limit too large", func() error {
			_, err := s.Txn(ctx, &proto.TxnRequest{Success: []*proto.Op{
				{Type: proto.Op_GET, Key: "/cfg/", Prefix: true, Limit: 10001},
			}})
			return err
		}, codes.InvalidArgument, "success[0].limit"},
		{"lease negative ttl", func() error {
			_, err := s.LeaseGrant(ctx, &proto.LeaseGrantRequest{TtlSeconds: -5})
			return err
		}, codes.InvalidArgument, "ttl_seconds"},
		{"revoke unknown lease", func() error {
			_, err := s.LeaseRevoke(ctx, &proto.LeaseRevokeRequest{Id: 31337})
			return err
		}, codes.NotFound, "lease"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if status.Code(err) != c.code || grpcField(err) != c.field {
				t.Fatalf("err = %v (field %q), want %v field %q", err, grpcField(err), c.code, c.field)
			}
		})
	}
	got, _, err := listAll(ctx, leader, "/cfg/", proto.Consistency_LINEARIZABLE)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["/cfg/existing"].Version != 1 {
		t.Fatalf("state after bad input = %v, want only /cfg/existing at version 1", got)
	}
}

// Rule: with no quorum a write gets Unavailable (HTTP 503), not a hang.
func TestAPI_NoQuorumIsUnavailable(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	for _, f := range followers(agents, leader) {
		f.kill()
	}
	code, b := httpDo(t, "PUT", "http://"+leader.http+"/v1/state/cfg/x", []byte(`1`))
	if code != 503 || !strings.Contains(string(b), `"unavailable"`) {
		t.Fatalf("write without quorum: %d %s, want 503 unavailable", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := leader.state().Get(ctx, &proto.GetRequest{Key: "/cfg/x"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("linearizable read without quorum: %v, want Unavailable", err)
	}
}

// Rule: bad publishes and subscriptions get typed errors and publish nothing.
func TestAPI_BadDispatchInputGetsTypedError(t *testing.T) {
	agents := startCluster(t, 3)
	leader := waitLeader(t, agents)
	a := followers(agents, leader)[0]
	base := "http://" + a.http
	big := []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		code, field        string
	}{
		{"publish malformed channel", "POST", "/v1/publish/a//b", []byte(`{}`), 400, "invalid_argument", "channel"},
		{"publish invalid JSON", "POST", "/v1/publish/a/b", []byte(`{nope`), 400, "invalid_argument", "payload"},
		{"publish empty payload", "POST", "/v1/publish/a/b", nil, 400, "invalid_argument", "payload"},
		{"publish oversized", "POST", "/v1/publish/a/b", big, 400, "invalid_argument", "payload"},
		{"subscribe no channel", "GET", "/v1/subscribe", nil, 400, "invalid_argument", "channels"},
		{"subscribe malformed channel", "GET", "/v1/subscribe?channel=nope", nil, 400, "invalid_argument", "channels[0]"},
		{"subscribe negative revision", "GET", "/v1/subscribe?channel=/a/&from=-1", nil, 400, "invalid_argument", "from"},
		{"subscribe bad mode", "GET", "/v1/subscribe?channel=/a/&mode=sometimes", nil, 400, "invalid_argument", "mode"},
		{"subscribe bad resume id", "GET", "/v1/subscribe?channel=/a/", nil, 400, "invalid_argument", "Last-Event-ID"},
	}
	before := revision(t, a)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, bytes.NewReader(c.body))
			if c.name == "subscribe bad resume id" {
				req.Header.Set("Last-Event-ID", "yesterday")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			e, _ := jsonBody(t, b)["error"].(map[string]any)
			if e == nil || e["code"] != c.code || e["field"] != c.field {
				t.Fatalf("error body %s, want code %s field %s", b, c.code, c.field)
			}
		})
	}
	// gRPC: the same checks, typed.
	d := proto.NewDispatcherClient(a.client())
	ctx := ctxT(t, 10*time.Second)
	if _, err := d.Publish(ctx, &proto.PublishRequest{Channel: "no-slash", Payload: []byte(`1`)}); status.Code(err) != codes.InvalidArgument || grpcField(err) != "channel" {
		t.Fatalf("publish to a malformed channel: %v", err)
	}
	stream, err := d.Subscribe(ctx, &proto.SubscribeRequest{Channels: []string{"/ok/", "bad"}})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || grpcField(err) != "channels[1]" {
		t.Fatalf("subscribe to a malformed channel: %v", err)
	}
	// No message was published: a subscriber from before sees none.
	sub := newClient(t, a).Subscribe(ctx, []string{"/"}, client.FromRevision(before), client.WithProgress(100*time.Millisecond))
	for {
		ev, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == proto.Event_MESSAGE {
			t.Fatalf("a bad publish went through: %v", ev)
		}
		if ev.Type == proto.Event_PROGRESS {
			break
		}
	}
}
