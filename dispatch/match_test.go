package dispatch_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

const (
	PUT      = proto.Event_PUT
	DELETE   = proto.Event_DELETE
	EXPIRE   = proto.Event_EXPIRE
	MESSAGE  = proto.Event_MESSAGE
	STATE    = proto.Event_STATE
	SYNCED   = proto.Event_SYNCED
	PROGRESS = proto.Event_PROGRESS
	RESYNC   = proto.Event_RESYNC
)

// fast is a request for channels resuming after rev, with a short progress
// interval so that caughtUp returns promptly.
func fast(rev uint64, channels ...string) *proto.SubscribeRequest {
	return &proto.SubscribeRequest{Channels: channels, FromRevision: rev, ProgressIntervalMs: 5}
}

// Rule (dispatch.proto, SubscribeRequest.channels and Event.Type): a
// channel names a key exactly or, ending in "/", every key under it, "/"
// being every key; a subscriber gets every matching event once, in
// revision order, with puts, deletes (one per key of a prefix delete),
// lease expiries as EXPIRE, published messages as MESSAGE, and the events
// of one entry numbered 0, 1, 2… by index. Entries that change no key (a
// barrier, a lease grant, a configuration entry) produce nothing.
func TestSubscribe_MatchesChannelsInRevisionOrder(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	start := h.barrier()

	subs := map[string]*sub{}
	channels := map[string][]string{
		"exact":       {"/hosts/web-1"},
		"prefix":      {"/hosts/"},
		"all":         {"/"},
		"overlapping": {"/hosts/web-1", "/hosts/", "/hosts/db/", "/hosts/", "/hosts/web-1"},
		"allAndMore":  {"/hosts/", "/", "/a"},
		"a/":          {"/a/"},
		"a":           {"/a"},
		"chat":        {"/chat/room-1"},
		"none":        {"/nothing/here"},
	}
	for name, chans := range channels {
		subs[name] = h.subscribe(fast(start, chans...))
	}

	r1 := h.put("/hosts/web-1", `1`)
	r2 := h.put("/hosts/db/1", `2`)
	r3 := h.put("/hosts/db/2", `3`)
	r4 := h.put("/ab", `4`)
	r5 := h.put("/a/x", `5`)
	r6 := h.put("/a", `6`)
	r7 := h.put("/hosts/web-1", `7`)
	lease := h.grant(10)
	r8 := h.putLease("/hosts/web-3", `8`, lease)
	r9 := h.putLease("/hosts/web-2", `9`, lease)
	r10 := h.publish("/chat/room-1", `"hi"`)
	r11 := h.txn(opPut("/a/y", `11`), opPut("/hosts/web-1", `12`), opDel("/ab"))
	r12 := h.delPrefix("/hosts/db/")
	h.config()
	r13 := h.expire(lease)
	r14 := h.del("/hosts/web-1")
	r15 := h.publish("/chat/room-2", `"other room"`)
	r16 := h.put("/hosts/web-1", `16`)
	head := h.head()

	all := []string{
		ev(PUT, r1, 0, "/hosts/web-1=1"),
		ev(PUT, r2, 0, "/hosts/db/1=2"),
		ev(PUT, r3, 0, "/hosts/db/2=3"),
		ev(PUT, r4, 0, "/ab=4"),
		ev(PUT, r5, 0, "/a/x=5"),
		ev(PUT, r6, 0, "/a=6"),
		ev(PUT, r7, 0, "/hosts/web-1=7"),
		ev(PUT, r8, 0, "/hosts/web-3=8"),
		ev(PUT, r9, 0, "/hosts/web-2=9"),
		ev(MESSAGE, r10, 0, `/chat/room-1="hi"`),
		ev(PUT, r11, 0, "/a/y=11"),
		ev(PUT, r11, 1, "/hosts/web-1=12"),
		ev(DELETE, r11, 2, "/ab"),
		ev(DELETE, r12, 0, "/hosts/db/1"),
		ev(DELETE, r12, 1, "/hosts/db/2"),
		ev(EXPIRE, r13, 0, "/hosts/web-2"),
		ev(EXPIRE, r13, 1, "/hosts/web-3"),
		ev(DELETE, r14, 0, "/hosts/web-1"),
		ev(MESSAGE, r15, 0, `/chat/room-2="other room"`),
		ev(PUT, r16, 0, "/hosts/web-1=16"),
	}
	hosts := []string{
		ev(PUT, r1, 0, "/hosts/web-1=1"),
		ev(PUT, r2, 0, "/hosts/db/1=2"),
		ev(PUT, r3, 0, "/hosts/db/2=3"),
		ev(PUT, r7, 0, "/hosts/web-1=7"),
		ev(PUT, r8, 0, "/hosts/web-3=8"),
		ev(PUT, r9, 0, "/hosts/web-2=9"),
		ev(PUT, r11, 1, "/hosts/web-1=12"),
		ev(DELETE, r12, 0, "/hosts/db/1"),
		ev(DELETE, r12, 1, "/hosts/db/2"),
		ev(EXPIRE, r13, 0, "/hosts/web-2"),
		ev(EXPIRE, r13, 1, "/hosts/web-3"),
		ev(DELETE, r14, 0, "/hosts/web-1"),
		ev(PUT, r16, 0, "/hosts/web-1=16"),
	}
	want := map[string][]string{
		"exact": {
			ev(PUT, r1, 0, "/hosts/web-1=1"),
			ev(PUT, r7, 0, "/hosts/web-1=7"),
			ev(PUT, r11, 1, "/hosts/web-1=12"),
			ev(DELETE, r14, 0, "/hosts/web-1"),
			ev(PUT, r16, 0, "/hosts/web-1=16"),
		},
		"prefix":      hosts,
		"all":         all,
		"overlapping": hosts,
		"allAndMore":  all,
		"a/": { // "/a/" matches neither "/a" nor "/ab"
			ev(PUT, r5, 0, "/a/x=5"),
			ev(PUT, r11, 0, "/a/y=11"),
		},
		"a": { // an exact channel matches neither "/a/x" nor "/ab"
			ev(PUT, r6, 0, "/a=6"),
		},
		"chat": {ev(MESSAGE, r10, 0, `/chat/room-1="hi"`)},
		"none": nil,
	}
	for name, s := range subs {
		checkEvents(t, name, s.caughtUp(head), want[name])
	}

	// A message is delivered, not stored.
	if _, _, err := h.store.Get("/chat/room-1"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("Get(/chat/room-1) after publish: error %v, want ErrNotFound", err)
	}
}

// Rule (dispatch.proto, Event.kv and prev_kv): a PUT carries the new
// key-value at its revision, a DELETE or EXPIRE the key and the deleting
// revision; prev_kv carries the key before the write only when asked for.
func TestSubscribe_EventContentsAndPrevKV(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	start := h.barrier()
	plain := h.subscribe(fast(start, "/k/"))
	withPrev := fast(start, "/k/")
	withPrev.PrevKv = true
	prev := h.subscribe(withPrev)

	r1 := h.put("/k/a", `1`)
	r2 := h.put("/k/a", `2`)
	lease := h.grant(5)
	r3 := h.putLease("/k/b", `3`, lease)
	r4 := h.del("/k/a")
	r5 := h.expire(lease)
	head := h.head()

	type kv struct {
		key              string
		value            string
		create, mod, ver uint64
	}
	type want struct {
		typ  proto.Event_Type
		rev  uint64
		kv   kv
		prev *kv
	}
	wants := []want{
		{PUT, r1, kv{"/k/a", "1", r1, r1, 1}, nil},
		{PUT, r2, kv{"/k/a", "2", r1, r2, 2}, &kv{"/k/a", "1", r1, r1, 1}},
		{PUT, r3, kv{"/k/b", "3", r3, r3, 1}, nil},
		{DELETE, r4, kv{"/k/a", "", 0, r4, 0}, &kv{"/k/a", "2", r1, r2, 2}},
		{EXPIRE, r5, kv{"/k/b", "", 0, r5, 0}, &kv{"/k/b", "3", r3, r3, 1}},
	}
	toKV := func(p *proto.KeyValue) *kv {
		if p == nil {
			return nil
		}
		return &kv{p.Key, string(p.Value), p.CreateRevision, p.ModRevision, p.Version}
	}
	for name, s := range map[string]*sub{"plain": plain, "prev_kv": prev} {
		got := s.caughtUp(head)
		if len(got) != len(wants) {
			t.Fatalf("%s: got %d events %v, want %d", name, len(got), strs(got), len(wants))
		}
		for i, w := range wants {
			g := got[i]
			if g.Type != w.typ || g.Revision != w.rev {
				t.Errorf("%s event %d: got %s %d, want %s %d", name, i, g.Type, g.Revision, w.typ, w.rev)
			}
			if gk := toKV(g.Kv); gk == nil || *gk != w.kv {
				t.Errorf("%s event %d: kv = %+v, want %+v", name, i, gk, w.kv)
			}
			wantPrev := w.prev
			if name == "plain" {
				wantPrev = nil
			}
			gp := toKV(g.PrevKv)
			switch {
			case (gp == nil) != (wantPrev == nil):
				t.Errorf("%s event %d: prev_kv = %+v, want %+v", name, i, gp, wantPrev)
			case gp != nil && *gp != *wantPrev:
				t.Errorf("%s event %d: prev_kv = %+v, want %+v", name, i, *gp, *wantPrev)
			}
		}
	}
}

// Rule (Subscribe doc; STYLE.md "rpc and dispatch": validate first): a
// request with no channel, or a channel that is neither a key nor a
// prefix, is refused with an *fsm.Error of CodeInvalid naming the channel
// at fault, before anything is streamed.
func TestSubscribe_InvalidChannels(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	h.put("/a", `1`)
	tests := []struct {
		name     string
		channels []string
		field    string
	}{
		{"none", nil, "channels"},
		{"empty list", []string{}, "channels"},
		{"no leading slash", []string{"nope"}, "channels[0]"},
		{"empty segment", []string{"/a//b"}, "channels[0]"},
		{"empty segment in prefix", []string{"/a//"}, "channels[0]"},
		{"empty channel", []string{"/a", ""}, "channels[1]"},
		{"dot segment", []string{"/a", "/b/", "/c/../d"}, "channels[2]"},
		{"double slash", []string{"//"}, "channels[0]"},
		{"control character", []string{"/a\x01"}, "channels[0]"},
		{"second bad", []string{"/ok/", "nope/"}, "channels[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent []*proto.Event
			err := h.hub.Subscribe(t.Context(), &proto.SubscribeRequest{Channels: tt.channels, WithState: true},
				func(ev *proto.Event) error { sent = append(sent, ev); return nil })
			if !errors.Is(err, fsm.ErrInvalid) {
				t.Fatalf("Subscribe(%q): error %v, want one matching fsm.ErrInvalid", tt.channels, err)
			}
			var fe *fsm.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Subscribe(%q): error %v (%T) is not an *fsm.Error", tt.channels, err, err)
			}
			if fe.Code != fsm.CodeInvalid {
				t.Errorf("Subscribe(%q): Code = %v, want CodeInvalid", tt.channels, fe.Code)
			}
			if fe.Field != tt.field {
				t.Errorf("Subscribe(%q): Field = %q, want %q", tt.channels, fe.Field, tt.field)
			}
			if len(sent) != 0 {
				t.Errorf("Subscribe(%q) sent %v before refusing", tt.channels, strs(sent))
			}
			// ValidateChannels, for callers that check before streaming,
			// says the same.
			verr := dispatch.ValidateChannels(tt.channels)
			var ve *fsm.Error
			if !errors.As(verr, &ve) || *ve != *fe {
				t.Errorf("ValidateChannels(%q) = %v, want %v", tt.channels, verr, fe)
			}
		})
	}
	if got := h.hub.Stats().Subscribers; got != 0 {
		t.Errorf("Stats().Subscribers after refused requests = %d, want 0", got)
	}
	for _, ok := range [][]string{{"/"}, {"/a"}, {"/a/", "/a/b", "/"}} {
		if err := dispatch.ValidateChannels(ok); err != nil {
			t.Errorf("ValidateChannels(%q) = %v, want nil", ok, err)
		}
	}
}

// Rule (dispatch.proto, Event.last: "set on the last event of its
// revision that this subscriber receives"): Last depends on what each
// subscriber gets (its channels, skip, prev_kv, LATEST coalescing), and
// marking it for one subscriber changes no other's event.
func TestSubscribe_LastMarksEndOfRevision(t *testing.T) {
	h := newHarness(t, dispatch.Config{})
	start := h.barrier()
	withPrev := fast(start, "/l/")
	withPrev.PrevKv = true
	skipped := fast(start+1, "/l/")
	skipped.Skip = 1
	subs := map[string]*sub{
		"all":     h.subscribe(fast(start, "/")),
		"l":       h.subscribe(fast(start, "/l/")),
		"m":       h.subscribe(fast(start, "/m/")),
		"prev_kv": h.subscribe(withPrev),
	}
	r1 := h.put("/l/a", `0`)
	r2 := h.txn(opPut("/l/a", `1`), opPut("/m/b", `2`), opPut("/l/c", `3`))
	r3 := h.delPrefix("/")
	subs["skip"] = h.subscribe(skipped) // from r1, skipping (r2, 0)

	render := func(evs []*proto.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, fmt.Sprintf("%s last=%v", str(e), e.Last))
		}
		return out
	}
	want := map[string][]string{
		"all": {
			ev(PUT, r1, 0, "/l/a=0") + " last=true",
			ev(PUT, r2, 0, "/l/a=1") + " last=false",
			ev(PUT, r2, 1, "/m/b=2") + " last=false",
			ev(PUT, r2, 2, "/l/c=3") + " last=true",
			ev(DELETE, r3, 0, "/l/a") + " last=false",
			ev(DELETE, r3, 1, "/l/c") + " last=false",
			ev(DELETE, r3, 2, "/m/b") + " last=true",
		},
		"l": {
			ev(PUT, r1, 0, "/l/a=0") + " last=true",
			ev(PUT, r2, 0, "/l/a=1") + " last=false",
			ev(PUT, r2, 2, "/l/c=3") + " last=true",
			ev(DELETE, r3, 0, "/l/a") + " last=false",
			ev(DELETE, r3, 1, "/l/c") + " last=true",
		},
		"m": {
			ev(PUT, r2, 1, "/m/b=2") + " last=true",
			ev(DELETE, r3, 2, "/m/b") + " last=true",
		},
		"skip": {
			ev(PUT, r2, 2, "/l/c=3") + " last=true",
			ev(DELETE, r3, 0, "/l/a") + " last=false",
			ev(DELETE, r3, 1, "/l/c") + " last=true",
		},
	}
	want["prev_kv"] = want["l"]
	for name, s := range subs {
		got := render(s.caughtUp(r3))
		if strings.Join(got, "\n") != strings.Join(want[name], "\n") {
			t.Errorf("%s: got\n\t%s\nwant\n\t%s", name, strings.Join(got, "\n\t"), strings.Join(want[name], "\n\t"))
		}
	}

	// LATEST: the last event of a revision it receives may be one that
	// was not last before coalescing.
	b := newBlocker(t, 0)
	req := fast(r3, "/l/")
	req.Delivery = proto.Delivery_LATEST
	latest := h.subscribeSend(req, b.gate)
	r4 := h.put("/l/x", `4`)
	b.waitBlocked(t)
	r5 := h.txn(opPut("/l/b", `5`), opPut("/l/a", `6`))
	r6 := h.put("/l/a", `7`)
	b.open()
	got := render(latest.caughtUp(r6))
	wantLatest := []string{
		ev(PUT, r4, 0, "/l/x=4") + " last=true",
		ev(PUT, r5, 0, "/l/b=5") + " last=true",
		ev(PUT, r6, 0, "/l/a=7") + " last=true",
	}
	if strings.Join(got, "\n") != strings.Join(wantLatest, "\n") {
		t.Errorf("latest: got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(wantLatest, "\n\t"))
	}
}
