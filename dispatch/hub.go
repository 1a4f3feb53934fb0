package dispatch

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Config bounds the replay window and the subscribers.
type Config struct {
	// WindowEvents and WindowBytes bound the replay window: the most recent
	// events a subscriber can resume from.
	WindowEvents int
	WindowBytes  int64
	// MaxLag is how many events an EVERY subscriber may fall behind the
	// newest before it is cut off; the backlog a resuming subscriber asked
	// for does not count. It is kept below WindowEvents, so a subscriber
	// that is cut off can still resume from its last revision.
	MaxLag int
	// ProgressInterval is the default idle time before a PROGRESS event.
	ProgressInterval time.Duration
	// ObservedWindow is how long the hub remembers that an origin wrote
	// under a prefix, for the graph of who reads and writes what.
	ObservedWindow time.Duration
	// MaxObservedWrites bounds the (origin, prefix) pairs remembered.
	MaxObservedWrites int
	Logger            *slog.Logger
}

// DefaultConfig returns the default bounds.
func DefaultConfig() Config {
	return Config{
		WindowEvents:      100_000,
		WindowBytes:       64 << 20,
		MaxLag:            50_000,
		ProgressInterval:  time.Second,
		ObservedWindow:    10 * time.Minute,
		MaxObservedWrites: 1024,
	}
}

// Validate fills zero fields with defaults and checks the bounds.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.WindowEvents == 0 {
		c.WindowEvents = d.WindowEvents
	}
	if c.WindowBytes == 0 {
		c.WindowBytes = d.WindowBytes
	}
	if c.MaxLag == 0 {
		c.MaxLag = max(1, min(d.MaxLag, c.WindowEvents/2))
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = d.ProgressInterval
	}
	if c.ObservedWindow == 0 {
		c.ObservedWindow = d.ObservedWindow
	}
	if c.MaxObservedWrites == 0 {
		c.MaxObservedWrites = d.MaxObservedWrites
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.WindowEvents < 1 || c.WindowBytes < 1:
		return fmt.Errorf("dispatch: window must hold at least one event and one byte")
	case c.MaxLag < 1 || c.MaxLag > c.WindowEvents:
		return fmt.Errorf("dispatch: max lag %d must be between 1 and the window's %d events", c.MaxLag, c.WindowEvents)
	case c.ObservedWindow < time.Second || c.MaxObservedWrites < 1:
		return fmt.Errorf("dispatch: observed writes need a window of at least 1s and room for one")
	}
	return nil
}

// StateSource gives a consistent view of the whole state at the current
// revision, for with_state and resync. fsm.Store implements it.
type StateSource interface {
	View() (*fsm.View, uint64)
}

// Errors a subscription ends with.
var (
	// ErrCompacted: the requested revision has left the replay window.
	ErrCompacted = errors.New("dispatch: revision compacted")
	// ErrSlow: the subscriber fell too far behind and was cut off.
	ErrSlow = errors.New("dispatch: subscriber too slow")
)

// CompactedError says which revisions can still be resumed from.
type CompactedError struct {
	// Requested is the revision the subscriber asked to resume after.
	Requested uint64
	// Oldest is the oldest revision a subscriber may resume after.
	Oldest uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("revision %d has left the replay window; resume from revision %d or later, or ask for the current state",
		e.Requested, e.Oldest)
}

func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// SlowError says how far behind a subscriber was when it was cut off.
type SlowError struct {
	Lag, Limit int
	// Resume is the last revision the subscriber received whole: resume
	// after it. It is 0 when it had none (cut off in its first state
	// listing): subscribe with with_state again.
	Resume uint64
}

func (e *SlowError) Error() string {
	return fmt.Sprintf("subscriber fell %d events behind (limit %d) and was cut off; resume from revision %d",
		e.Lag, e.Limit, e.Resume)
}

func (e *SlowError) Is(target error) bool { return target == ErrSlow }

// Hub holds the replay window and the subscribers of one member.
type Hub struct {
	cfg   Config
	state StateSource

	// mu guards everything below. Applied and Restored hold it briefly,
	// under the store's write lock; subscribers hold it only to copy
	// pointers out of the window.
	mu sync.Mutex
	// win is a ring of events; first is the sequence number of win[start].
	win      []*item
	start, n int
	first    uint64
	bytes    int64
	floor    uint64 // every event with a revision above floor is in the window
	head     uint64 // revision of the last applied entry
	epoch    uint64 // bumped by Restored: history before it is gone
	notify   chan struct{}
	subs     map[*subscriber]struct{}
	cutoffs  uint64
	writes   writeLog // who wrote under which prefix, recently
	// writesFull is set once the log of writes has been full (and said so).
	writesFull bool

	// clock is the time in unix seconds, kept by the watchdog, so that
	// Applied dates writes without reading the clock.
	clock atomic.Int64

	sent atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

type item struct {
	ev   *proto.Event
	size int64
	wire wireCache
}

// New returns a Hub whose window starts at the state's current revision.
func New(cfg Config, state StateSource) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	_, rev := state.View()
	h := &Hub{
		cfg:    cfg,
		state:  state,
		win:    make([]*item, min(1024, cfg.WindowEvents)),
		floor:  rev,
		head:   rev,
		notify: make(chan struct{}),
		subs:   make(map[*subscriber]struct{}),
		writes: newWriteLog(cfg.MaxObservedWrites),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	h.clock.Store(time.Now().Unix())
	go h.watch()
	return h, nil
}

// Close stops the hub's watchdog. Subscriptions end with their contexts.
func (h *Hub) Close() {
	close(h.stop)
	<-h.done
}

// watch cuts off EVERY subscribers that fall more than MaxLag events
// behind, including those stuck in a send that will never return, and
// keeps the clock.
func (h *Hub) watch() {
	defer close(h.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.clock.Store(time.Now().Unix())
		h.mu.Lock()
		if h.writes.dropped > 0 && !h.writesFull {
			h.writesFull = true
			h.cfg.Logger.Warn("too many writers to observe: some writes are left out of the graph",
				"max_pairs", h.cfg.MaxObservedWrites, "window", h.cfg.ObservedWindow)
		}
		end := h.end()
		for s := range h.subs {
			if s.latest {
				continue
			}
			if lag := s.lagLocked(end); lag > h.cfg.MaxLag {
				h.cutoffLocked(s, lag)
			}
		}
		h.mu.Unlock()
	}
}

// cutoffLocked ends a subscriber that fell behind; h.mu must be held.
func (h *Hub) cutoffLocked(s *subscriber, lag int) {
	if s.cut {
		return
	}
	s.cut = true
	h.cutoffs++
	err := &SlowError{Lag: lag, Limit: h.cfg.MaxLag, Resume: s.delivered.Load()}
	h.cfg.Logger.Warn("subscriber cut off", "lag", lag, "limit", h.cfg.MaxLag, "resume", err.Resume)
	s.cancel(err)
}

func eventType(t fsm.EventType) proto.Event_Type {
	switch t {
	case fsm.EventDelete:
		return proto.Event_DELETE
	case fsm.EventExpire:
		return proto.Event_EXPIRE
	case fsm.EventMessage:
		return proto.Event_MESSAGE
	}
	return proto.Event_PUT
}

// Applied is the store's apply hook: it appends the entry's events to the
// window. It never blocks on a subscriber.
func (h *Hub) Applied(rev uint64, events []fsm.Event, _ fsm.ReadView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range events {
		ev := &proto.Event{Type: eventType(e.Type), Revision: rev, Kv: e.KV, PrevKv: e.PrevKV,
			Index: uint32(i), Last: i == len(events)-1}
		h.push(&item{ev: ev, size: int64(len(e.KV.Key) + len(e.KV.Value) + 64)})
		h.observe(ev)
	}
	h.head = rev
	close(h.notify)
	h.notify = make(chan struct{})
}

// Restored is the store's restore hook: the whole state was replaced, so
// the window is emptied and every subscriber will resync.
func (h *Hub) Restored(rev uint64, _ fsm.ReadView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.first += uint64(h.n)
	h.start, h.n, h.bytes = 0, 0, 0
	clear(h.win)
	h.floor, h.head = rev, rev
	h.epoch++
	close(h.notify)
	h.notify = make(chan struct{})
}

func (h *Hub) push(it *item) {
	if h.n == len(h.win) && h.n < h.cfg.WindowEvents {
		grown := make([]*item, min(2*len(h.win), h.cfg.WindowEvents))
		for i := 0; i < h.n; i++ {
			grown[i] = h.win[(h.start+i)%len(h.win)]
		}
		h.win, h.start = grown, 0
	}
	for h.n > 0 && (h.n == len(h.win) || h.bytes+it.size > h.cfg.WindowBytes) {
		h.evict()
	}
	h.win[(h.start+h.n)%len(h.win)] = it
	h.n++
	h.bytes += it.size
}

func (h *Hub) evict() {
	old := h.win[h.start]
	h.win[h.start] = nil
	h.start = (h.start + 1) % len(h.win)
	h.n--
	h.first++
	h.bytes -= old.size
	h.floor = max(h.floor, old.ev.Revision)
}

// at returns the event with sequence number seq; h.mu must be held.
func (h *Hub) at(seq uint64) *item {
	return h.win[(h.start+int(seq-h.first))%len(h.win)]
}

// end is the sequence number the next event will get; h.mu must be held.
func (h *Hub) end() uint64 { return h.first + uint64(h.n) }

// seqAfter returns the sequence number of the first event with a revision
// above rev; h.mu must be held and rev must be at least h.floor.
func (h *Hub) seqAfter(rev uint64) uint64 {
	i := sort.Search(h.n, func(i int) bool { return h.at(h.first+uint64(i)).ev.Revision > rev })
	return h.first + uint64(i)
}

// Stats describes the hub, for metrics and status.
type Stats struct {
	Subscribers  int
	WindowEvents int
	WindowBytes  int64
	// Oldest is the oldest revision a subscriber may resume after.
	Oldest   uint64
	Revision uint64
	Sent     uint64
	Cutoffs  uint64
}

// Stats returns the hub's current figures.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Subscribers: len(h.subs), WindowEvents: h.n, WindowBytes: h.bytes,
		Oldest: h.floor, Revision: h.head, Sent: h.sent.Load(), Cutoffs: h.cutoffs}
}
