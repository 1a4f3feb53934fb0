package dispatch

import (
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/proto"
)

// maxBatchBytes bounds the encoded size of one Batch, well under gRPC's
// default 4 MiB message limit of other clients.
const maxBatchBytes = 1 << 20

// Batch is a run of events sent together, in order. Its wire form is a
// proto.SubscribeResponse, assembled from each event's encoding, which the
// window computes once and shares between every subscriber.
type Batch struct {
	Events []*proto.Event
	elems  [][]byte // elems[i]: Events[i] as a SubscribeResponse.events element
	size   int
}

func (b *Batch) add(ev *proto.Event, elem []byte) {
	if elem == nil {
		elem = encodeElem(ev)
	}
	b.Events = append(b.Events, ev)
	b.elems = append(b.elems, elem)
	b.size += len(elem)
}

func (b *Batch) reset() {
	b.Events, b.elems, b.size = b.Events[:0], b.elems[:0], 0
}

// Wire returns the batch encoded as a proto.SubscribeResponse.
func (b *Batch) Wire() []byte {
	out := make([]byte, 0, b.size)
	for _, e := range b.elems {
		out = append(out, e...)
	}
	return out
}

// encodeElem encodes ev as field 1 (events) of a SubscribeResponse.
func encodeElem(ev *proto.Event) []byte {
	body, err := gproto.Marshal(ev)
	if err != nil {
		// An Event holds only strings, bytes and integers: it always encodes.
		panic("dispatch: encode event: " + err.Error())
	}
	out := protowire.AppendTag(make([]byte, 0, len(body)+6), 1, protowire.BytesType)
	out = protowire.AppendBytes(out, body)
	return out
}

// wireCache holds an item's encodings, with and without the previous
// key-value, made by the first subscriber that needs each.
type wireCache struct {
	withPrev, noPrev atomic.Pointer[[]byte]
}

func (c *wireCache) get(ev *proto.Event, prevKV bool) []byte {
	slot := &c.noPrev
	if prevKV || ev.PrevKv == nil {
		slot = &c.withPrev
	}
	if p := slot.Load(); p != nil {
		return *p
	}
	shown := ev
	if !prevKV && ev.PrevKv != nil {
		shown = &proto.Event{Type: ev.Type, Revision: ev.Revision, Kv: ev.Kv, Index: ev.Index, Last: ev.Last}
	}
	b := encodeElem(shown)
	slot.Store(&b)
	return b
}
