package fsm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/dux-io/dux/proto"
)

// DefaultListLimit is the page size of a List that names no limit.
const DefaultListLimit = 1000

// MaxTxnGetKeys caps the keys one GET of a transaction returns; it is also
// the limit of a GET that names none. A GET that stops at its limit with
// keys left under the prefix says so (OpResult.more). Apply computes the
// result under the write lock on every member, so it must be bounded.
const MaxTxnGetKeys = 10000

// EventType says what a committed write did to a key.
type EventType int

const (
	// EventPut is a create or an update.
	EventPut EventType = iota
	// EventDelete is a delete by a client.
	EventDelete
	// EventExpire is a delete because the key's lease expired.
	EventExpire
	// EventMessage is a message published on a channel: KV.Key is the
	// channel, KV.Value the payload. It changes no key.
	EventMessage
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventExpire:
		return "expire"
	case EventMessage:
		return "message"
	}
	return "unknown"
}

// Event is one change to one key made by a committed entry. For a delete KV
// holds the key, the deleting revision and the origin, and no value.
type Event struct {
	Type   EventType
	KV     *proto.KeyValue
	PrevKV *proto.KeyValue
}

// Hook is told of every applied entry, in log order, with the events it
// produced (none for an entry that changed no key). It is called with the
// store's write lock held, so that what it sees matches the state at rev
// exactly: it must not block and must not call back into the store except
// through the ReadView it is given.
type Hook func(rev uint64, events []Event, view ReadView)

// RestoreHook is told when a snapshot replaced the whole state, with the
// new revision. It is called with the store's write lock held.
type RestoreHook func(rev uint64, view ReadView)

// ReadView reads the state as of the revision the Hook was called for.
type ReadView interface {
	List(prefix, after string, limit int) (items []*proto.KeyValue, next string)
}

// state is the whole StateStore: keys, leases and revision. The tree holds
// immutable *proto.KeyValue: a write replaces the item, it never mutates it,
// so a cloned tree (a snapshot) stays valid while writes go on.
type state struct {
	tree   *btree.BTreeG[*proto.KeyValue]
	leases map[uint64]*lease
	rev    uint64
	// bytes is the sum of kvBytes over the tree, kept as keys are written
	// and deleted, so that it never has to be counted.
	bytes int64
}

// kvBytes is what a key counts towards Stats.Bytes: its key and its value.
func kvBytes(kv *proto.KeyValue) int64 { return int64(len(kv.Key) + len(kv.Value)) }

type lease struct {
	id   uint64
	ttl  int64
	keys map[string]struct{}
}

func lessKV(a, b *proto.KeyValue) bool { return a.Key < b.Key }

func newState() *state {
	return &state{
		tree:   btree.NewG[*proto.KeyValue](32, lessKV),
		leases: make(map[uint64]*lease),
	}
}

// Store is the StateStore. It is safe for concurrent use: reads take the read
// lock; Apply, Restore and taking a snapshot (a B-tree Clone) take the write
// lock.
type Store struct {
	// mu guards st (which Restore replaces whole) and the hook.
	mu          sync.RWMutex
	st          *state
	hook        Hook
	restoreHook RestoreHook
	// applied is closed and replaced whenever the revision moves.
	applied chan struct{}

	// stats are copied from st under the write lock at the end of every
	// batch and restore, and read without a lock (Stats), so that metrics
	// scrapes never wait for Apply nor Apply for them.
	stats struct {
		keys, bytes atomic.Int64
		rev         atomic.Uint64
	}
}

// New returns an empty Store.
func New() *Store {
	return &Store{st: newState(), applied: make(chan struct{})}
}

// WaitRevision blocks until the store has applied rev or ctx ends.
func (s *Store) WaitRevision(ctx context.Context, rev uint64) error {
	for {
		s.mu.RLock()
		cur, ch := s.st.rev, s.applied
		s.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for revision %d (at %d): %w", rev, cur, ctx.Err())
		}
	}
}

// notifyApplied publishes the stats and wakes WaitRevision callers; s.mu
// must be held for writing.
func (s *Store) notifyApplied() {
	s.stats.keys.Store(int64(s.st.tree.Len()))
	s.stats.bytes.Store(s.st.bytes)
	s.stats.rev.Store(s.st.rev)
	close(s.applied)
	s.applied = make(chan struct{})
}

// Stats are the store's figures, for metrics.
type Stats struct {
	// Keys is the number of keys.
	Keys int64
	// Bytes is the total size of every key and value, not counting
	// revisions, origins or the index's own overhead.
	Bytes int64
	// Revision is the index of the last applied entry.
	Revision uint64
}

// Stats returns the figures as of the last applied batch or restore. It
// takes no lock: the three figures are each current, but a batch applied
// meanwhile may show in some and not yet in others.
func (s *Store) Stats() Stats {
	return Stats{Keys: s.stats.keys.Load(), Bytes: s.stats.bytes.Load(), Revision: s.stats.rev.Load()}
}

// SetHook installs the function told of every applied entry.
func (s *Store) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// SetRestoreHook installs the function told of every restore.
func (s *Store) SetRestoreHook(h RestoreHook) {
	s.mu.Lock()
	s.restoreHook = h
	s.mu.Unlock()
}

// View returns a read-only view of the whole state at the current
// revision, and that revision. It costs O(1) (a copy-on-write clone) and
// stays valid while writes go on, so a long listing holds no lock.
func (s *Store) View() (*View, uint64) {
	// Cloning writes to the original tree, so it takes the write lock.
	s.mu.Lock()
	defer s.mu.Unlock()
	return &View{st: &state{tree: s.st.tree.Clone(), rev: s.st.rev}}, s.st.rev
}

// View is a read-only copy of the state at one revision.
type View struct{ st *state }

// List is Store.List on the view.
func (v *View) List(prefix, after string, limit int) (items []*proto.KeyValue, next string) {
	return v.st.list(prefix, after, limit)
}

// Revision returns the index of the last applied entry.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.rev
}

// Get returns the key's current value, or an ErrNotFound error, and the store
// revision it read at. The returned KeyValue must not be modified.
func (s *Store) Get(key string) (*proto.KeyValue, uint64, error) {
	if err := ValidateKey(key); err != nil {
		return nil, 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	kv, ok := s.st.tree.Get(&proto.KeyValue{Key: key})
	if !ok {
		return nil, s.st.rev, notFound("key", "key %s not found", key)
	}
	return kv, s.st.rev, nil
}

// List returns, in key order, at most limit keys that start with prefix and
// sort after after (DefaultListLimit when limit <= 0). next is the last key
// returned when more remain, "" on the last page. The returned KeyValues
// must not be modified.
func (s *Store) List(prefix, after string, limit int) (items []*proto.KeyValue, next string, rev uint64, err error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, "", 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	items, next = s.st.list(prefix, after, limit)
	return items, next, s.st.rev, nil
}

// Lease returns the TTL of a lease, or an ErrNotFound error.
func (s *Store) Lease(id uint64) (ttl int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.st.leases[id]
	if !ok {
		return 0, notFound("lease", "lease %d not found", id)
	}
	return l.ttl, nil
}

// Leases returns every lease's ID and TTL.
func (s *Store) Leases() map[uint64]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[uint64]int64, len(s.st.leases))
	for id, l := range s.st.leases {
		out[id] = l.ttl
	}
	return out
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.tree.Len()
}

func (st *state) list(prefix, after string, limit int) (items []*proto.KeyValue, next string) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	from := prefix
	if after >= from {
		from = after + "\x00"
	}
	st.tree.AscendGreaterOrEqual(&proto.KeyValue{Key: from}, func(kv *proto.KeyValue) bool {
		if !strings.HasPrefix(kv.Key, prefix) {
			return false
		}
		if len(items) == limit {
			next = items[len(items)-1].Key
			return false
		}
		items = append(items, kv)
		return true
	})
	return items, next
}

func (st *state) get(key string) *proto.KeyValue {
	kv, _ := st.tree.Get(&proto.KeyValue{Key: key})
	return kv
}

// stateView is the ReadView handed to the Hook while the write lock is held.
type stateView struct{ st *state }

func (v stateView) List(prefix, after string, limit int) ([]*proto.KeyValue, string) {
	return v.st.list(prefix, after, limit)
}
