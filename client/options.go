package client

import "github.com/dux-io/dux/proto"

// ReadOption configures a Get. Every ReadOption is also a ListOption.
type ReadOption interface {
	ListOption
	applyGet(*proto.GetRequest)
}

// ListOption configures a List or ListAll.
type ListOption interface {
	applyList(*proto.ListRequest)
}

// PutOption configures a Put.
type PutOption interface {
	applyPut(*putOptions)
}

// DeleteOption configures a Delete.
type DeleteOption interface {
	applyDelete(*proto.DeleteRequest)
}

// WriteOption configures a Put or a Delete.
type WriteOption interface {
	PutOption
	DeleteOption
}

type putOptions struct {
	req    *proto.PutRequest
	prevKV **proto.KeyValue
}

// Stale serves a read from the state of the member that receives it, which
// may lag behind the leader, instead of a linearizable read. It is cheaper,
// and works while the cluster has no leader.
func Stale() ReadOption { return staleOption{} }

type staleOption struct{}

func (staleOption) applyGet(r *proto.GetRequest)   { r.Consistency = proto.Consistency_STALE }
func (staleOption) applyList(r *proto.ListRequest) { r.Consistency = proto.Consistency_STALE }

// WithLimit caps the number of items of one List page; 0 means the server's
// default. For ListAll it is the page size.
func WithLimit(n uint32) ListOption { return listFunc(func(r *proto.ListRequest) { r.Limit = n }) }

// WithAfter continues a listing: only keys strictly greater than key are
// returned. Pass the previous page's Next.
func WithAfter(key string) ListOption {
	return listFunc(func(r *proto.ListRequest) { r.After = key })
}

// WithKeysOnly leaves values out of a listing.
func WithKeysOnly() ListOption { return listFunc(func(r *proto.ListRequest) { r.KeysOnly = true }) }

type listFunc func(*proto.ListRequest)

func (f listFunc) applyList(r *proto.ListRequest) { f(r) }

// WithLease attaches the key to a lease: the key is deleted when the lease
// expires or is revoked.
func WithLease(id uint64) PutOption {
	return putFunc(func(o *putOptions) { o.req.Lease = id })
}

// WithPrevKV stores the key's value before the put in *dst (nil if the key
// did not exist).
func WithPrevKV(dst **proto.KeyValue) PutOption {
	return putFunc(func(o *putOptions) { o.req.PrevKv = true; o.prevKV = dst })
}

type putFunc func(*putOptions)

func (f putFunc) applyPut(o *putOptions) { f(o) }

// WithPrefix makes Delete delete every key under key (which should end in
// "/") instead of the key itself.
func WithPrefix() DeleteOption {
	return deleteFunc(func(r *proto.DeleteRequest) { r.Prefix = true })
}

type deleteFunc func(*proto.DeleteRequest)

func (f deleteFunc) applyDelete(r *proto.DeleteRequest) { f(r) }

// WithCAS makes a write conditional on the key's current mod revision being
// rev; rev 0 means the key must not exist. A write whose compare fails
// changes nothing and returns an error matching fsm.ErrCompareFailed whose
// Revision is the key's current mod revision.
func WithCAS(rev uint64) WriteOption { return casOption(rev) }

type casOption uint64

func (o casOption) applyPut(p *putOptions) { rev := uint64(o); p.req.CasRevision = &rev }
func (o casOption) applyDelete(r *proto.DeleteRequest) {
	rev := uint64(o)
	r.CasRevision = &rev
}

// WithOrigin names the writer, e.g. "scheduler"; it is stored with the key.
func WithOrigin(name string) OriginOption { return originOption(name) }

// OriginOption names the writer of a Put or Delete, or the publisher of a
// Publish.
type OriginOption interface {
	WriteOption
	PublishOption
}

type originOption string

func (o originOption) applyPut(p *putOptions)             { p.req.Origin = string(o) }
func (o originOption) applyDelete(r *proto.DeleteRequest) { r.Origin = string(o) }
