package rpc

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// txnJSON is the body of POST /v1/txn.
type txnJSON struct {
	Compares []compareJSON `json:"compares"`
	Success  []opJSON      `json:"success"`
	Failure  []opJSON      `json:"failure"`
	Origin   string        `json:"origin"`
}

type compareJSON struct {
	Key string `json:"key"`
	// Target is mod_revision (default), create_revision, version, value or lease.
	Target string `json:"target"`
	// Op is =, !=, < or > (default =).
	Op     string          `json:"op"`
	Number uint64          `json:"number"`
	Value  json.RawMessage `json:"value"`
}

type opJSON struct {
	// Type is get, put or delete.
	Type   string          `json:"type"`
	Key    string          `json:"key"`
	Value  json.RawMessage `json:"value"`
	Lease  uint64          `json:"lease"`
	Prefix bool            `json:"prefix"`
	// Limit caps the keys a get returns (0: the most, fsm.MaxTxnGetKeys).
	Limit uint64 `json:"limit"`
}

var (
	compareTargets = map[string]proto.Compare_Target{
		"": proto.Compare_MOD_REVISION, "mod_revision": proto.Compare_MOD_REVISION,
		"create_revision": proto.Compare_CREATE_REVISION, "version": proto.Compare_VERSION,
		"value": proto.Compare_VALUE, "lease": proto.Compare_LEASE,
	}
	compareOps = map[string]proto.Compare_Operator{
		"": proto.Compare_EQUAL, "=": proto.Compare_EQUAL, "==": proto.Compare_EQUAL,
		"!=": proto.Compare_NOT_EQUAL, "<": proto.Compare_LESS, ">": proto.Compare_GREATER,
	}
	opTypes = map[string]proto.Op_Type{"get": proto.Op_GET, "put": proto.Op_PUT, "delete": proto.Op_DELETE}
)

func (t *txnJSON) toProto() (*proto.TxnRequest, error) {
	req := &proto.TxnRequest{Origin: t.Origin}
	for i, c := range t.Compares {
		target, ok := compareTargets[c.Target]
		if !ok {
			return nil, badParam(fmt.Sprintf("compares[%d].target", i), "unknown compare target %q", c.Target)
		}
		op, ok := compareOps[c.Op]
		if !ok {
			return nil, badParam(fmt.Sprintf("compares[%d].op", i), "unknown compare operator %q", c.Op)
		}
		req.Compares = append(req.Compares, &proto.Compare{Key: c.Key, Target: target, Op: op, Number: c.Number, Value: c.Value})
	}
	var err error
	if req.Success, err = opsToProto("success", t.Success); err != nil {
		return nil, err
	}
	if req.Failure, err = opsToProto("failure", t.Failure); err != nil {
		return nil, err
	}
	return req, nil
}

func opsToProto(branch string, ops []opJSON) ([]*proto.Op, error) {
	out := make([]*proto.Op, 0, len(ops))
	for i, o := range ops {
		typ, ok := opTypes[o.Type]
		if !ok {
			return nil, badParam(fmt.Sprintf("%s[%d].type", branch, i), "unknown op type %q (want get, put or delete)", o.Type)
		}
		if o.Limit > math.MaxUint32 {
			// The Backend refuses anything over fsm.MaxTxnGetKeys; this only
			// keeps the number from wrapping on its way there.
			return nil, badParam(fmt.Sprintf("%s[%d].limit", branch, i), "limit %d is more than %d", o.Limit, fsm.MaxTxnGetKeys)
		}
		out = append(out, &proto.Op{Type: typ, Key: o.Key, Value: o.Value, Lease: o.Lease, Prefix: o.Prefix, Limit: uint32(o.Limit)})
	}
	return out, nil
}

func (h *httpAPI) txn(w http.ResponseWriter, r *http.Request) {
	var body txnJSON
	if err := decodeBody(r, int64(4*h.maxValue+1<<20), &body); err != nil {
		h.fail(w, err)
		return
	}
	req, err := body.toProto()
	if err != nil {
		h.fail(w, err)
		return
	}
	resp, err := h.b.Txn(r.Context(), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	type resultJSON struct {
		Kvs     []kvJSON `json:"kvs,omitempty"`
		Deleted uint64   `json:"deleted,omitempty"`
		More    bool     `json:"more,omitempty"`
	}
	out := struct {
		Revision  uint64       `json:"revision"`
		Succeeded bool         `json:"succeeded"`
		Results   []resultJSON `json:"results"`
	}{Revision: resp.Revision, Succeeded: resp.Succeeded, Results: []resultJSON{}}
	for _, res := range resp.Results {
		out.Results = append(out.Results, resultJSON{Kvs: toKVsJSON(res.Kvs), Deleted: res.Deleted, More: res.More})
	}
	writeJSON(w, http.StatusOK, out)
}
