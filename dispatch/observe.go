package dispatch

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// MaxNameBytes bounds a subscriber's name, as an origin is bounded.
const MaxNameBytes = 256

// ValidateName checks a subscriber's name: empty (anonymous), or valid
// UTF-8 of at most MaxNameBytes with no control character.
func ValidateName(name string) error {
	bad := func(msg string) error { return &fsm.Error{Code: fsm.CodeInvalid, Field: "name", Message: msg} }
	if len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return bad(fmt.Sprintf("name must be valid UTF-8 of at most %d bytes", MaxNameBytes))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return bad("name holds a control character")
		}
	}
	return nil
}

// Reader is a named subscriber as the graph sees it: what it reads.
type Reader struct {
	Name string
	// Channels are those of every live subscription with the name,
	// sorted, each once.
	Channels []string
}

// Writer is an origin seen writing under a prefix.
type Writer struct {
	Origin string
	// Prefix is the written keys' first two segments ("/status/allocations/"
	// for /status/allocations/a1), the first one for a key of two segments
	// ("/hosts/" for /hosts/web-1), or the key of one segment itself.
	Prefix string
	// Seen is when the last such write was applied on this member, to the
	// second.
	Seen time.Time
}

// Observed is what the hub has seen of who reads and who writes what.
type Observed struct {
	Readers []Reader
	Writers []Writer
	// Window is how long a write counts after it was applied.
	Window time.Duration
}

// Observed returns the named subscribers connected now and the writes
// applied within the window before now, each list sorted.
func (h *Hub) Observed(now time.Time) Observed {
	h.mu.Lock()
	byName := map[string][]string{}
	for s := range h.subs {
		if s.req.Name != "" {
			byName[s.req.Name] = append(byName[s.req.Name], s.req.Channels...)
		}
	}
	h.writes.prune(now.Unix() - int64(h.cfg.ObservedWindow/time.Second))
	out := Observed{Window: h.cfg.ObservedWindow, Writers: make([]Writer, 0, len(h.writes.seen))}
	for k, at := range h.writes.seen {
		out.Writers = append(out.Writers, Writer{Origin: k.origin, Prefix: k.prefix, Seen: time.Unix(*at, 0)})
	}
	h.mu.Unlock()

	for name, channels := range byName {
		slices.Sort(channels)
		out.Readers = append(out.Readers, Reader{Name: name, Channels: slices.Compact(channels)})
	}
	slices.SortFunc(out.Readers, func(a, b Reader) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(out.Writers, func(a, b Writer) int {
		if c := strings.Compare(a.Origin, b.Origin); c != 0 {
			return c
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
	return out
}

// writeLog records, per origin, the prefixes it wrote recently. It is fed
// by Applied under the hub's lock, so it must stay cheap: a write under
// the same origin and prefix as the one before costs two string compares
// and a store; another one already known, a map lookup; only a new pair
// allocates. It holds at most max pairs: when full, pairs older than the
// window are dropped (at most once a second), and a new pair that still
// does not fit is not recorded, only counted.
type writeLog struct {
	max  int
	seen map[writeKey]*int64 // unix second of the last write
	// last is the pair of the previous write, and its entry.
	last      writeKey
	lastSeen  *int64
	lastPrune int64
	dropped   uint64
}

type writeKey struct{ origin, prefix string }

func newWriteLog(max int) writeLog {
	return writeLog{max: max, seen: make(map[writeKey]*int64)}
}

// note records a write of key by origin at now (unix seconds).
func (w *writeLog) note(origin, key string, now, oldest int64) {
	if origin == "" {
		return
	}
	prefix := writePrefix(key)
	if w.lastSeen != nil && origin == w.last.origin && prefix == w.last.prefix {
		*w.lastSeen = now
		return
	}
	k := writeKey{origin, prefix}
	at, ok := w.seen[k]
	if !ok {
		if len(w.seen) >= w.max && now > w.lastPrune {
			w.lastPrune = now
			w.prune(oldest)
		}
		if len(w.seen) >= w.max {
			w.dropped++
			return
		}
		// Copies, so that the log does not keep the write's key alive.
		k = writeKey{strings.Clone(origin), strings.Clone(prefix)}
		at = new(int64)
		w.seen[k] = at
	}
	*at = now
	w.last, w.lastSeen = k, at
}

// prune drops the pairs last written before oldest (unix seconds).
func (w *writeLog) prune(oldest int64) {
	for k, at := range w.seen {
		if *at < oldest {
			delete(w.seen, k)
			if at == w.lastSeen {
				w.last, w.lastSeen = writeKey{}, nil
			}
		}
	}
}

// writePrefix is the part of a written key the graph records: see
// Writer.Prefix.
func writePrefix(key string) string {
	second := strings.IndexByte(key[1:], '/') + 1
	if second == 0 {
		return key // "/a"
	}
	third := strings.IndexByte(key[second+1:], '/')
	if third < 0 {
		return key[:second+1] // "/a/b" -> "/a/"
	}
	return key[:second+1+third+1] // "/a/b/c..." -> "/a/b/"
}

// observe records the writes of an applied entry; h.mu must be held.
func (h *Hub) observe(ev *proto.Event) {
	if ev.Type == proto.Event_EXPIRE || ev.Kv == nil {
		return // a lease ran out: nobody wrote
	}
	now := h.clock.Load()
	h.writes.note(ev.Kv.Origin, ev.Kv.Key, now, now-int64(h.cfg.ObservedWindow/time.Second))
}
