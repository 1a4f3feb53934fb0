package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec rawCodec wraps
	"google.golang.org/grpc/mem"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/proto"
)

type dispatcherServer struct {
	proto.UnimplementedDispatcherServer
	b Backend
	d Subscriber
}

func (s *dispatcherServer) Publish(ctx context.Context, r *proto.PublishRequest) (*proto.PublishResponse, error) {
	return s.b.Publish(ctx, r)
}

// Subscribe streams events, a batch per message, sent as the bytes the hub
// encoded once for every subscriber (see rawCodec). When the hub cuts a
// subscriber off while its send is blocked, returning here ends the RPC,
// which unblocks the send.
func (s *dispatcherServer) Subscribe(r *proto.SubscribeRequest, stream grpc.ServerStreamingServer[proto.SubscribeResponse]) error {
	return s.d.SubscribeBatches(stream.Context(), r, func(b *dispatch.Batch) error {
		return stream.SendMsg(rawMessage(b.Wire()))
	})
}

// rawMessage is a message already in its wire form.
type rawMessage []byte

// rawCodec is the proto codec, except that a rawMessage is sent as it is.
type rawCodec struct{ encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{encoding.GetCodecV2("proto")} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if raw, ok := v.(rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(raw)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// eventJSON is an event as server-sent events carry it.
type eventJSON struct {
	Revision       uint64          `json:"revision"`
	Type           string          `json:"type"`
	Key            string          `json:"key,omitempty"`
	Value          json.RawMessage `json:"value,omitempty"`
	CreateRevision uint64          `json:"create_revision,omitempty"`
	ModRevision    uint64          `json:"mod_revision,omitempty"`
	Version        uint64          `json:"version,omitempty"`
	Lease          uint64          `json:"lease,omitempty"`
	Origin         string          `json:"origin,omitempty"`
	Index          uint32          `json:"index,omitempty"`
	Prev           *kvJSON         `json:"prev,omitempty"`
}

var eventTypes = map[proto.Event_Type]string{
	proto.Event_PUT: "put", proto.Event_DELETE: "delete", proto.Event_EXPIRE: "expire",
	proto.Event_MESSAGE: "message", proto.Event_STATE: "state", proto.Event_SYNCED: "synced",
	proto.Event_PROGRESS: "progress", proto.Event_RESYNC: "resync",
}

// EventJSON renders an event as the JSON object of the HTTP API and the CLI.
func EventJSON(ev *proto.Event) ([]byte, error) {
	out := eventJSON{Revision: ev.Revision, Type: eventTypes[ev.Type], Index: ev.Index}
	if kv := ev.Kv; kv != nil {
		out.Key, out.Value, out.Origin = kv.Key, kv.Value, kv.Origin
		if ev.Type != proto.Event_MESSAGE {
			out.CreateRevision, out.ModRevision, out.Version, out.Lease = kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease
		}
	}
	if ev.PrevKv != nil {
		p := toKVJSON(ev.PrevKv)
		out.Prev = &p
	}
	return json.Marshal(out)
}

func (h *httpAPI) publish(w http.ResponseWriter, r *http.Request, channel string) {
	p, err := parseParams(r, "origin")
	if err != nil {
		h.fail(w, err)
		return
	}
	payload, err := readValue(r, h.maxValue)
	if err != nil {
		h.fail(w, err)
		return
	}
	resp, err := h.b.Publish(r.Context(), &proto.PublishRequest{Channel: channel, Payload: payload, Origin: origin(r, p)})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"revision": resp.Revision})
}

// parseResume reads a Last-Event-ID: "R" (every event of revision R was
// received) or "R.I" (events of revision R up to index I were).
func parseResume(id string) (from uint64, skip uint32, err error) {
	revStr, idxStr, partial := strings.Cut(id, ".")
	rev, err := strconv.ParseUint(revStr, 10, 64)
	if err != nil {
		return 0, 0, badParam("Last-Event-ID", "Last-Event-ID %q is not a revision", id)
	}
	if !partial {
		return rev, 0, nil
	}
	idx, err := strconv.ParseUint(idxStr, 10, 32)
	if err != nil || rev == 0 {
		return 0, 0, badParam("Last-Event-ID", "Last-Event-ID %q is not REVISION.INDEX", id)
	}
	return rev - 1, uint32(idx) + 1, nil
}

// subscribe serves GET /v1/subscribe as server-sent events. The id of each
// event is its revision ("R.I" while more events of revision R follow), so
// a browser's EventSource resumes by itself, without gap or duplicate.
func (h *httpAPI) subscribe(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, "channel", "from", "state", "mode", "prev_kv", "progress_ms", "name")
	if err != nil {
		h.fail(w, err)
		return
	}
	req := &proto.SubscribeRequest{Channels: p.v["channel"], ResyncOnCompacted: true, Name: p.v.Get("name")}
	if req.FromRevision, err = p.uint("from"); err != nil {
		h.fail(w, err)
		return
	}
	if req.WithState, err = p.bool("state"); err != nil {
		h.fail(w, err)
		return
	}
	if req.PrevKv, err = p.bool("prev_kv"); err != nil {
		h.fail(w, err)
		return
	}
	switch m := p.v.Get("mode"); m {
	case "", "every":
	case "latest":
		req.Delivery = proto.Delivery_LATEST
	default:
		h.fail(w, badParam("mode", "mode=%q: want every or latest", m))
		return
	}
	if ms := p.v.Get("progress_ms"); ms != "" {
		n, err := strconv.ParseInt(ms, 10, 32)
		if err != nil {
			h.fail(w, badParam("progress_ms", "progress_ms=%q is not an integer", ms))
			return
		}
		req.ProgressIntervalMs = int32(n)
	}
	if err := dispatch.ValidateChannels(req.Channels); err != nil {
		h.fail(w, err)
		return
	}
	if err := dispatch.ValidateName(req.Name); err != nil {
		h.fail(w, err)
		return
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		// A reconnecting EventSource already has the state: resume instead.
		if req.FromRevision, req.Skip, err = parseResume(id); err != nil {
			h.fail(w, err)
			return
		}
		req.WithState = false
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		h.fail(w, fmt.Errorf("streaming unsupported"))
		return
	}
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
	}
	send := func(ev *proto.Event) error {
		start()
		data, err := EventJSON(ev)
		if err != nil {
			return err
		}
		var id string
		switch ev.Type {
		case proto.Event_STATE, proto.Event_RESYNC:
			// No id: a reconnect in the middle of the state must get it anew.
		case proto.Event_SYNCED, proto.Event_PROGRESS:
			id = strconv.FormatUint(ev.Revision, 10)
		default:
			id = strconv.FormatUint(ev.Revision, 10)
			if !ev.Last {
				id += "." + strconv.FormatUint(uint64(ev.Index), 10)
			}
		}
		if id != "" {
			fmt.Fprintf(w, "id: %s\n", id)
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	// Headers go out at once, so a client sees the stream open before the
	// first event.
	start()
	flusher.Flush()
	err = h.d.Subscribe(r.Context(), req, send)
	if err == nil || r.Context().Err() != nil {
		return
	}
	_, body := toHTTP(err)
	data, _ := json.Marshal(body)
	fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
	flusher.Flush()
}
