package rpc

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// fakeBackend records the last request and answers from fixed values.
type fakeBackend struct {
	Backend
	put  *proto.PutRequest
	list *proto.ListRequest
	txn  *proto.TxnRequest
}

func (f *fakeBackend) Put(_ context.Context, r *proto.PutRequest) (*proto.PutResponse, error) {
	f.put = r
	if err := fsm.ValidateValue(r.Value, 16); err != nil {
		return nil, err
	}
	return &proto.PutResponse{Revision: 7}, nil
}

func (f *fakeBackend) List(_ context.Context, r *proto.ListRequest) (*proto.ListResponse, error) {
	f.list = r
	return &proto.ListResponse{Revision: 9, Items: []*proto.KeyValue{{Key: "/a/b", Value: []byte(`{"x":1}`), ModRevision: 3}}, Next: "/a/b"}, nil
}

func (f *fakeBackend) Txn(_ context.Context, r *proto.TxnRequest) (*proto.TxnResponse, error) {
	f.txn = r
	return &proto.TxnResponse{Revision: 11, Succeeded: true, Results: []*proto.OpResult{{}}}, nil
}

func serve(t *testing.T, b Backend, method, target, body string) (int, map[string]any) {
	t.Helper()
	h := NewHTTP(Config{Backend: b, MaxValueBytes: 16})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	var m map[string]any
	raw, _ := io.ReadAll(rec.Body)
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body %q is not JSON", method, target, raw)
	}
	return rec.Code, m
}

// Rule: query parameters reach the Backend as typed fields.
func TestHTTP_PutPassesParameters(t *testing.T) {
	f := &fakeBackend{}
	code, m := serve(t, f, "PUT", "/v1/state/a/b?cas=0&lease=5&origin=scheduler", `{"v":1}`)
	if code != http.StatusOK || m["revision"] != float64(7) {
		t.Fatalf("got %d %v", code, m)
	}
	if f.put.Key != "/a/b" || f.put.CasRevision == nil || *f.put.CasRevision != 0 || f.put.Lease != 5 || f.put.Origin != "scheduler" {
		t.Fatalf("backend got %v", f.put)
	}
}

// Rule: a body larger than the limit is refused with the value error, not
// truncated into a smaller write.
func TestHTTP_OversizedBodyIsRefused(t *testing.T) {
	f := &fakeBackend{}
	code, m := serve(t, f, "PUT", "/v1/state/a", `"`+strings.Repeat("x", 40)+`"`)
	e := m["error"].(map[string]any)
	if code != http.StatusBadRequest || e["field"] != "value" {
		t.Fatalf("got %d %v", code, m)
	}
	if len(f.put.Value) != 17 {
		t.Fatalf("backend saw %d bytes, want the limit plus one", len(f.put.Value))
	}
}

// Rule: a prefix listing passes limit, after and consistency, and the
// response carries next.
func TestHTTP_ListPages(t *testing.T) {
	f := &fakeBackend{}
	code, m := serve(t, f, "GET", "/v1/state/a/?prefix=true&limit=1&after=/a/a&consistency=stale", "")
	if code != 200 || m["next"] != "/a/b" || m["revision"] != float64(9) {
		t.Fatalf("got %d %v", code, m)
	}
	if f.list.Prefix != "/a/" || f.list.Limit != 1 || f.list.After != "/a/a" || f.list.Consistency != proto.Consistency_STALE {
		t.Fatalf("backend got %v", f.list)
	}
	item := m["items"].([]any)[0].(map[string]any)
	if item["value"].(map[string]any)["x"] != float64(1) {
		t.Fatalf("value not embedded as JSON: %v", item)
	}
}

// Rule: a transaction body maps targets, operators and op types.
func TestHTTP_TxnMapsBody(t *testing.T) {
	f := &fakeBackend{}
	body := `{"compares":[{"key":"/a","target":"version","op":">","number":2}],
	  "success":[{"type":"put","key":"/a","value":{"n":1}}],"failure":[{"type":"get","key":"/a/","prefix":true}],"origin":"o"}`
	code, m := serve(t, f, "POST", "/v1/txn", body)
	if code != 200 || m["succeeded"] != true {
		t.Fatalf("got %d %v", code, m)
	}
	c := f.txn.Compares[0]
	if c.Target != proto.Compare_VERSION || c.Op != proto.Compare_GREATER || c.Number != 2 {
		t.Fatalf("compare = %v", c)
	}
	if f.txn.Success[0].Type != proto.Op_PUT || string(f.txn.Success[0].Value) != `{"n":1}` ||
		f.txn.Failure[0].Type != proto.Op_GET || !f.txn.Failure[0].Prefix || f.txn.Origin != "o" {
		t.Fatalf("txn = %v", f.txn)
	}
}

// txnBackend answers a transaction with fixed results.
type txnBackend struct {
	fakeBackend
	results []*proto.OpResult
}

func (f *txnBackend) Txn(_ context.Context, r *proto.TxnRequest) (*proto.TxnResponse, error) {
	f.txn = r
	return &proto.TxnResponse{Revision: 11, Succeeded: true, Results: f.results}, nil
}

// Rule: a GET op's limit reaches the Backend, and a result cut short by it
// says "more"; a limit that does not fit the wire type is refused with the
// op's field.
func TestHTTP_TxnGetLimitAndMore(t *testing.T) {
	f := &txnBackend{results: []*proto.OpResult{
		{Kvs: []*proto.KeyValue{{Key: "/a/1", Value: []byte(`1`)}, {Key: "/a/2", Value: []byte(`2`)}}, More: true},
		{Kvs: []*proto.KeyValue{{Key: "/b/1", Value: []byte(`1`)}}},
	}}
	body := `{"success":[{"type":"get","key":"/a/","prefix":true,"limit":2},{"type":"get","key":"/b/","prefix":true}]}`
	code, m := serve(t, f, "POST", "/v1/txn", body)
	if code != 200 {
		t.Fatalf("got %d %v", code, m)
	}
	if got := f.txn.Success[0].Limit; got != 2 {
		t.Errorf("success[0].limit = %d, want 2", got)
	}
	if got := f.txn.Success[1].Limit; got != 0 {
		t.Errorf("success[1].limit = %d, want 0", got)
	}
	results, _ := m["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("results = %v", m["results"])
	}
	if r := results[0].(map[string]any); r["more"] != true || len(r["kvs"].([]any)) != 2 {
		t.Errorf("results[0] = %v, want 2 kvs and more", r)
	}
	if r := results[1].(map[string]any); r["more"] != nil {
		t.Errorf("results[1] = %v, want no more", r)
	}

	code, m = serve(t, &txnBackend{}, "POST", "/v1/txn", `{"failure":[{"type":"get","key":"/a/","prefix":true,"limit":4294967296}]}`)
	if e, _ := m["error"].(map[string]any); code != 400 || e["field"] != "failure[0].limit" {
		t.Errorf("limit 2^32: got %d %v, want 400 on failure[0].limit", code, m)
	}
}

// Rule: unknown endpoints and methods get JSON errors.
func TestHTTP_UnknownEndpointIsJSON404(t *testing.T) {
	code, m := serve(t, &fakeBackend{}, "GET", "/v2/nothing", "")
	if code != 404 || m["error"] == nil {
		t.Fatalf("got %d %v", code, m)
	}
	code, m = serve(t, &fakeBackend{}, "POST", "/v1/state/a", "")
	if code != 405 || m["error"] == nil {
		t.Fatalf("got %d %v", code, m)
	}
}
