package fsm

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/hashicorp/raft"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/proto"
)

var (
	_ raft.FSM         = (*Store)(nil)
	_ raft.BatchingFSM = (*Store)(nil)
)

// EncodeCommand encodes a command for the Raft log.
func EncodeCommand(c *proto.Command) ([]byte, error) {
	return gproto.Marshal(c)
}

// Apply applies one committed log entry. It returns a *proto.Result for a
// command entry and nil for a configuration entry.
func (s *Store) Apply(l *raft.Log) interface{} {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order under one lock.
func (s *Store) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range logs {
		var events []Event
		switch l.Type {
		case raft.LogCommand:
			var c proto.Command
			if err := gproto.Unmarshal(l.Data, &c); err != nil {
				// Replicas must never diverge: an entry this member cannot
				// read is fatal, not skippable.
				panic(fmt.Sprintf("fsm: undecodable entry at index %d: %v", l.Index, err))
			}
			var res *proto.Result
			res, events = s.st.apply(l.Index, &c)
			out[i] = res
		default:
			// Configuration entries move the revision and nothing else.
		}
		s.st.rev = l.Index
		if s.hook != nil {
			s.hook(l.Index, events, stateView{s.st})
		}
	}
	s.notifyApplied()
	return out
}

// apply runs one command at revision rev.
func (st *state) apply(rev uint64, c *proto.Command) (*proto.Result, []Event) {
	a := applier{st: st, rev: rev}
	res := &proto.Result{Revision: rev}
	var err *Error
	switch cmd := c.Cmd.(type) {
	case *proto.Command_Put:
		var r *proto.PutResponse
		r, err = a.put(cmd.Put)
		res.Result = &proto.Result_Put{Put: r}
	case *proto.Command_Delete:
		var r *proto.DeleteResponse
		r, err = a.delete(cmd.Delete)
		res.Result = &proto.Result_Delete{Delete: r}
	case *proto.Command_Txn:
		var r *proto.TxnResponse
		r, err = a.txn(cmd.Txn)
		res.Result = &proto.Result_Txn{Txn: r}
	case *proto.Command_LeaseGrant:
		var r *proto.LeaseGrantResponse
		r, err = a.leaseGrant(cmd.LeaseGrant)
		res.Result = &proto.Result_LeaseGrant{LeaseGrant: r}
	case *proto.Command_LeaseRevoke:
		var r *proto.LeaseRevokeResponse
		r, err = a.leaseRevoke(cmd.LeaseRevoke)
		res.Result = &proto.Result_LeaseRevoke{LeaseRevoke: r}
	case *proto.Command_Publish:
		var r *proto.PublishResponse
		r, err = a.publish(cmd.Publish)
		res.Result = &proto.Result_Publish{Publish: r}
	case *proto.Command_Barrier:
	default:
		panic(fmt.Sprintf("fsm: %v at index %d: %T", errUnknownCommand, rev, c.Cmd))
	}
	if err != nil {
		return &proto.Result{Revision: rev, Error: ToProto(err)}, nil
	}
	return res, a.events
}

// applier carries one entry's revision and collects its events.
type applier struct {
	st     *state
	rev    uint64
	events []Event
}

func (a *applier) put(r *proto.PutRequest) (*proto.PutResponse, *Error) {
	if err := a.checkPut(r.Key, r.Lease); err != nil {
		return nil, err
	}
	prev := a.st.get(r.Key)
	if r.CasRevision != nil {
		if cur := modRev(prev); cur != *r.CasRevision {
			return nil, compareFailed(r.Key, cur)
		}
	}
	a.setKey(r.Key, r.Value, r.Lease, r.Origin)
	resp := &proto.PutResponse{Revision: a.rev}
	if r.PrevKv {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (a *applier) checkPut(key string, leaseID uint64) *Error {
	if err := ValidateKey(key); err != nil {
		return err.(*Error)
	}
	if leaseID != 0 {
		if _, ok := a.st.leases[leaseID]; !ok {
			return notFound("lease", "lease %d not found", leaseID)
		}
	}
	return nil
}

func (a *applier) delete(r *proto.DeleteRequest) (*proto.DeleteResponse, *Error) {
	if r.Prefix {
		if r.CasRevision != nil {
			return nil, invalid("cas_revision", "a prefix delete takes no cas_revision")
		}
		if err := ValidatePrefix(r.Key); err != nil {
			return nil, err.(*Error)
		}
		n := a.deletePrefix(r.Key, r.Origin, EventDelete)
		return &proto.DeleteResponse{Revision: a.rev, Deleted: n}, nil
	}
	if err := ValidateKey(r.Key); err != nil {
		return nil, err.(*Error)
	}
	prev := a.st.get(r.Key)
	if r.CasRevision != nil {
		if cur := modRev(prev); cur != *r.CasRevision {
			return nil, compareFailed(r.Key, cur)
		}
	}
	var n uint64
	if prev != nil {
		a.deleteKey(prev, r.Origin, EventDelete)
		n = 1
	}
	return &proto.DeleteResponse{Revision: a.rev, Deleted: n}, nil
}

func (a *applier) txn(r *proto.TxnRequest) (*proto.TxnResponse, *Error) {
	for i, c := range r.Compares {
		if err := ValidateKey(c.Key); err != nil {
			e := err.(*Error)
			e.Field = fmt.Sprintf("compares[%d].key", i)
			return nil, e
		}
	}
	if err := a.checkOps("success", r.Success); err != nil {
		return nil, err
	}
	if err := a.checkOps("failure", r.Failure); err != nil {
		return nil, err
	}
	ok := true
	for _, c := range r.Compares {
		if !a.compare(c) {
			ok = false
			break
		}
	}
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	resp := &proto.TxnResponse{Revision: a.rev, Succeeded: ok, Results: make([]*proto.OpResult, len(ops))}
	for i, op := range ops {
		resp.Results[i] = a.op(op, r.Origin)
	}
	return resp, nil
}

// checkOps validates every op before any runs, so a txn applies whole or not at all.
func (a *applier) checkOps(branch string, ops []*proto.Op) *Error {
	for i, op := range ops {
		var err error
		switch {
		case op.Type == proto.Op_PUT:
			if e := a.checkPut(op.Key, op.Lease); e != nil {
				err = e
			}
		case op.Prefix:
			err = ValidatePrefix(op.Key)
		default:
			err = ValidateKey(op.Key)
		}
		if err != nil {
			e := *err.(*Error)
			e.Field = fmt.Sprintf("%s[%d].%s", branch, i, e.Field)
			return &e
		}
	}
	return nil
}

func (a *applier) op(op *proto.Op, origin string) *proto.OpResult {
	switch op.Type {
	case proto.Op_PUT:
		a.setKey(op.Key, op.Value, op.Lease, origin)
		return &proto.OpResult{}
	case proto.Op_DELETE:
		if op.Prefix {
			return &proto.OpResult{Deleted: a.deletePrefix(op.Key, origin, EventDelete)}
		}
		if prev := a.st.get(op.Key); prev != nil {
			a.deleteKey(prev, origin, EventDelete)
			return &proto.OpResult{Deleted: 1}
		}
		return &proto.OpResult{}
	default: // GET
		if op.Prefix {
			// The cap bounds the result, not the state, so Apply caps a
			// larger limit (an entry proposed before limits existed asks
			// for none) instead of refusing it.
			limit := int(op.Limit)
			if limit == 0 || limit > MaxTxnGetKeys {
				limit = MaxTxnGetKeys
			}
			res := &proto.OpResult{}
			a.st.tree.AscendGreaterOrEqual(&proto.KeyValue{Key: op.Key}, func(kv *proto.KeyValue) bool {
				if !hasPrefix(kv.Key, op.Key) {
					return false
				}
				if len(res.Kvs) == limit {
					res.More = true
					return false
				}
				res.Kvs = append(res.Kvs, kv)
				return true
			})
			return res
		}
		if kv := a.st.get(op.Key); kv != nil {
			return &proto.OpResult{Kvs: []*proto.KeyValue{kv}}
		}
		return &proto.OpResult{}
	}
}

func (a *applier) compare(c *proto.Compare) bool {
	kv := a.st.get(c.Key)
	if c.Target == proto.Compare_VALUE {
		if kv == nil {
			return c.Op == proto.Compare_NOT_EQUAL
		}
		return cmpResult(bytes.Compare(kv.Value, c.Value), c.Op)
	}
	var have uint64
	if kv != nil {
		switch c.Target {
		case proto.Compare_MOD_REVISION:
			have = kv.ModRevision
		case proto.Compare_CREATE_REVISION:
			have = kv.CreateRevision
		case proto.Compare_VERSION:
			have = kv.Version
		case proto.Compare_LEASE:
			have = kv.Lease
		}
	}
	switch {
	case have < c.Number:
		return cmpResult(-1, c.Op)
	case have > c.Number:
		return cmpResult(1, c.Op)
	}
	return cmpResult(0, c.Op)
}

func cmpResult(sign int, op proto.Compare_Operator) bool {
	switch op {
	case proto.Compare_EQUAL:
		return sign == 0
	case proto.Compare_NOT_EQUAL:
		return sign != 0
	case proto.Compare_LESS:
		return sign < 0
	case proto.Compare_GREATER:
		return sign > 0
	}
	return false
}

func (a *applier) leaseGrant(r *proto.LeaseGrantRequest) (*proto.LeaseGrantResponse, *Error) {
	if r.TtlSeconds <= 0 {
		return nil, invalid("ttl_seconds", "ttl_seconds must be positive, got %d", r.TtlSeconds)
	}
	// The entry's index is unique and the same on every member.
	id := a.rev
	a.st.leases[id] = &lease{id: id, ttl: r.TtlSeconds, keys: make(map[string]struct{})}
	return &proto.LeaseGrantResponse{Id: id, TtlSeconds: r.TtlSeconds, Revision: a.rev}, nil
}

// LeaseOrigin is the origin of the deletes a lease makes: of its keys'
// EventDelete events when it is revoked, and of their EventExpire events when
// it expires (the event type tells the two apart). Apply fixes it rather than
// reading it from the command, so changing it would make entries already in
// the log emit other events on replay than they did when first applied.
const LeaseOrigin = "lease"

func (a *applier) leaseRevoke(r *proto.LeaseRevoke) (*proto.LeaseRevokeResponse, *Error) {
	l, ok := a.st.leases[r.Id]
	if !ok {
		return nil, notFound("lease", "lease %d not found", r.Id)
	}
	t := EventDelete
	if r.Expired {
		t = EventExpire
	}
	for _, key := range sortedKeys(l.keys) {
		if kv := a.st.get(key); kv != nil {
			a.deleteKey(kv, LeaseOrigin, t)
		}
	}
	delete(a.st.leases, r.Id)
	return &proto.LeaseRevokeResponse{Revision: a.rev, Deleted: uint64(len(a.events))}, nil
}

// publish turns a message into an event on its channel; it is not stored.
func (a *applier) publish(r *proto.PublishRequest) (*proto.PublishResponse, *Error) {
	if err := ValidateKey(r.Channel); err != nil {
		e := *err.(*Error)
		e.Field = "channel"
		return nil, &e
	}
	a.events = append(a.events, Event{
		Type: EventMessage,
		KV:   &proto.KeyValue{Key: r.Channel, Value: r.Payload, ModRevision: a.rev, Origin: r.Origin},
	})
	return &proto.PublishResponse{Revision: a.rev}, nil
}

// setKey writes key at this revision, replacing (never mutating) the old item.
func (a *applier) setKey(key string, value []byte, leaseID uint64, origin string) {
	prev := a.st.get(key)
	kv := &proto.KeyValue{
		Key:            key,
		Value:          value,
		CreateRevision: a.rev,
		ModRevision:    a.rev,
		Version:        1,
		Lease:          leaseID,
		Origin:         origin,
	}
	if prev != nil {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
		if prev.Lease != 0 && prev.Lease != leaseID {
			if l, ok := a.st.leases[prev.Lease]; ok {
				delete(l.keys, key)
			}
		}
	}
	if leaseID != 0 {
		a.st.leases[leaseID].keys[key] = struct{}{}
	}
	if prev != nil {
		a.st.bytes -= kvBytes(prev)
	}
	a.st.bytes += kvBytes(kv)
	a.st.tree.ReplaceOrInsert(kv)
	a.events = append(a.events, Event{Type: EventPut, KV: kv, PrevKV: prev})
}

func (a *applier) deleteKey(prev *proto.KeyValue, origin string, t EventType) {
	a.st.tree.Delete(prev)
	a.st.bytes -= kvBytes(prev)
	if prev.Lease != 0 {
		if l, ok := a.st.leases[prev.Lease]; ok {
			delete(l.keys, prev.Key)
		}
	}
	a.events = append(a.events, Event{
		Type:   t,
		KV:     &proto.KeyValue{Key: prev.Key, ModRevision: a.rev, Origin: origin},
		PrevKV: prev,
	})
}

func (a *applier) deletePrefix(prefix, origin string, t EventType) uint64 {
	var doomed []*proto.KeyValue
	a.st.tree.AscendGreaterOrEqual(&proto.KeyValue{Key: prefix}, func(kv *proto.KeyValue) bool {
		if !hasPrefix(kv.Key, prefix) {
			return false
		}
		doomed = append(doomed, kv)
		return true
	})
	for _, kv := range doomed {
		a.deleteKey(kv, origin, t)
	}
	return uint64(len(doomed))
}

func hasPrefix(key, prefix string) bool {
	return len(key) >= len(prefix) && key[:len(prefix)] == prefix
}

func modRev(kv *proto.KeyValue) uint64 {
	if kv == nil {
		return 0
	}
	return kv.ModRevision
}

// sortedKeys returns a set's keys in order, so Apply's output never depends on map order.
func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
