package cluster

import (
	"errors"
	"testing"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

func put(key string) *proto.Op {
	return &proto.Op{Type: proto.Op_PUT, Key: key, Value: []byte(`1`)}
}

func del(key string) *proto.Op { return &proto.Op{Type: proto.Op_DELETE, Key: key} }

func delPrefix(prefix string) *proto.Op {
	return &proto.Op{Type: proto.Op_DELETE, Key: prefix, Prefix: true}
}

func get(key string, prefix bool, limit uint32) *proto.Op {
	return &proto.Op{Type: proto.Op_GET, Key: key, Prefix: prefix, Limit: limit}
}

// checkTxnErr runs checkTxn on a node with the default configuration and
// checks the outcome: nil when field is "", else an invalid-argument error
// naming field.
func checkTxnErr(t *testing.T, req *proto.TxnRequest, field string) {
	t.Helper()
	n := &Node{cfg: DefaultConfig()}
	err := n.checkTxn(req)
	if field == "" {
		if err != nil {
			t.Fatalf("checkTxn = %v, want nil", err)
		}
		return
	}
	var fe *fsm.Error
	if !errors.As(err, &fe) || !errors.Is(err, fsm.ErrInvalid) || fe.Field != field || fe.Message == "" {
		t.Fatalf("checkTxn = %#v, want an invalid-argument error on %q", err, field)
	}
	t.Log(fe.Message)
}

// Rule: in one branch every key is written (put or deleted) by at most one
// op, as in etcd ("duplicate key given in txn request"): no key put or
// deleted twice, none put or deleted under a prefix the branch deletes, and
// no two prefix deletes of which one covers the other. The error names the
// later op. GETs are reads and may touch any key; the two branches never
// run together, so they are checked apart.
func TestCheckTxn_RefusesAKeyWrittenTwiceInABranch(t *testing.T) {
	tests := []struct {
		name    string
		success []*proto.Op
		failure []*proto.Op
		field   string
	}{
		{"distinct keys", []*proto.Op{put("/a"), put("/b"), del("/c"), delPrefix("/d/"), put("/e/x")}, nil, ""},
		{"put twice", []*proto.Op{put("/a"), put("/b"), put("/c"), put("/a")}, nil, "success[3].key"},
		{"delete twice", []*proto.Op{del("/a"), del("/a")}, nil, "success[1].key"},
		{"put then delete", []*proto.Op{put("/a"), del("/a")}, nil, "success[1].key"},
		{"delete then put", []*proto.Op{del("/a"), put("/a")}, nil, "success[1].key"},
		{"put under a deleted prefix", []*proto.Op{delPrefix("/p/"), put("/q"), put("/p/x/y")}, nil, "success[2].key"},
		{"delete under a deleted prefix", []*proto.Op{delPrefix("/p/"), del("/p/x")}, nil, "success[1].key"},
		{"prefix delete over an earlier put", []*proto.Op{put("/p/x"), delPrefix("/p/")}, nil, "success[1].key"},
		{"prefix is a string prefix", []*proto.Op{put("/config"), delPrefix("/conf")}, nil, "success[1].key"},
		{"prefix delete of the key itself", []*proto.Op{put("/p"), delPrefix("/p")}, nil, "success[1].key"},
		{"root prefix covers everything", []*proto.Op{put("/a"), delPrefix("/")}, nil, "success[1].key"},
		{"nested prefix deletes", []*proto.Op{delPrefix("/p/q/"), delPrefix("/p/")}, nil, "success[1].key"},
		{"same prefix deleted twice", []*proto.Op{delPrefix("/p/"), delPrefix("/p/")}, nil, "success[1].key"},
		{"sibling prefixes", []*proto.Op{delPrefix("/p/"), delPrefix("/q/"), put("/pq")}, nil, ""},
		{"key beside a prefix", []*proto.Op{delPrefix("/p/"), put("/p")}, nil, ""},
		{"gets touch written keys", []*proto.Op{put("/a"), get("/a", false, 0), delPrefix("/p/"), get("/p/", true, 0), get("/a", false, 0)}, nil, ""},
		{"same key in both branches", []*proto.Op{put("/a")}, []*proto.Op{put("/a"), del("/b")}, ""},
		{"duplicate in the failure branch", []*proto.Op{put("/a")}, []*proto.Op{put("/b"), put("/b")}, "failure[1].key"},
		{"the success branch is reported first", []*proto.Op{put("/a"), put("/a")}, []*proto.Op{put("/b"), put("/b")}, "success[1].key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkTxnErr(t, &proto.TxnRequest{Success: tt.success, Failure: tt.failure}, tt.field)
		})
	}
}

// Rule: limit bounds a GET (at most fsm.MaxTxnGetKeys keys); on a put or
// a delete it means nothing and is refused.
func TestCheckTxn_Limit(t *testing.T) {
	tests := []struct {
		name  string
		op    *proto.Op
		field string
	}{
		{"prefix get", get("/p/", true, 10), ""},
		{"prefix get at the cap", get("/p/", true, fsm.MaxTxnGetKeys), ""},
		{"prefix get over the cap", get("/p/", true, fsm.MaxTxnGetKeys+1), "success[0].limit"},
		{"key get", get("/p", false, 1), ""},
		{"put", &proto.Op{Type: proto.Op_PUT, Key: "/a", Value: []byte(`1`), Limit: 1}, "success[0].limit"},
		{"prefix delete", &proto.Op{Type: proto.Op_DELETE, Key: "/a/", Prefix: true, Limit: 1}, "success[0].limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkTxnErr(t, &proto.TxnRequest{Success: []*proto.Op{tt.op}}, tt.field)
		})
	}
}
