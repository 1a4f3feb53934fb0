package fsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Rule: the entry's index is the revision of the write; a create sets
// create_revision = mod_revision = index and version 1, an update keeps
// create_revision, bumps version and sets mod_revision to the new index.
func TestStore_PutCreatesRevisions(t *testing.T) {
	h := newHarness(t)

	res := h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`), Origin: "cli"}))
	if got, want := res.GetPut().GetRevision(), uint64(1); got != want {
		t.Errorf("PutResponse.Revision = %d, want %d", got, want)
	}
	want := &proto.KeyValue{Key: "/a", Value: []byte(`1`), CreateRevision: 1, ModRevision: 1, Version: 1, Origin: "cli"}
	if got := h.get("/a"); !kvEqual(got, want) {
		t.Errorf("after create: got %v, want %v", got, want)
	}

	h.put("/b", `"other"`) // index 2: another key moves the store revision only
	h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`2`), Origin: "scheduler"}))
	want = &proto.KeyValue{Key: "/a", Value: []byte(`2`), CreateRevision: 1, ModRevision: 3, Version: 2, Origin: "scheduler"}
	if got := h.get("/a"); !kvEqual(got, want) {
		t.Errorf("after update: got %v, want %v", got, want)
	}

	h.put("/a", `3`)
	want = &proto.KeyValue{Key: "/a", Value: []byte(`3`), CreateRevision: 1, ModRevision: 4, Version: 3}
	if got := h.get("/a"); !kvEqual(got, want) {
		t.Errorf("after second update (origin cleared): got %v, want %v", got, want)
	}

	b := h.get("/b")
	if b.CreateRevision != 2 || b.ModRevision != 2 || b.Version != 1 {
		t.Errorf("/b = %v, want create 2, mod 2, version 1", b)
	}
	kv, rev, err := h.s.Get("/b")
	if err != nil || rev != 4 || !kvEqual(kv, b) {
		t.Errorf("Get(/b) = %v, %d, %v; want %v, 4, nil", kv, rev, err, b)
	}
}

func TestStore_PutPrevKV(t *testing.T) {
	h := newHarness(t)

	r := h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`), PrevKv: true})).GetPut()
	if r.PrevKv != nil {
		t.Errorf("create with prev_kv: PrevKv = %v, want nil", r.PrevKv)
	}
	before := h.get("/a")

	r = h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`2`), PrevKv: true})).GetPut()
	if !kvEqual(r.PrevKv, before) {
		t.Errorf("update with prev_kv: PrevKv = %v, want %v", r.PrevKv, before)
	}

	r = h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`3`)})).GetPut()
	if r.PrevKv != nil {
		t.Errorf("update without prev_kv: PrevKv = %v, want nil", r.PrevKv)
	}
}

// The Result of a put must not change when later writes replace the key:
// stored items are immutable and replaced, never mutated.
func TestStore_PutResultsAreImmutable(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	old := h.get("/a")
	r := h.mustApply(putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`2`), PrevKv: true})).GetPut()
	h.put("/a", `3`)
	h.mustApply(delCmd(&proto.DeleteRequest{Key: "/a"}))
	if string(old.Value) != `1` || old.ModRevision != 1 || old.Version != 1 {
		t.Errorf("KeyValue read at revision 1 changed to %v", old)
	}
	if string(r.PrevKv.Value) != `1` || r.PrevKv.Version != 1 {
		t.Errorf("PrevKv changed to %v", r.PrevKv)
	}
}

func TestStore_PutInvalidKeyChangesNothing(t *testing.T) {
	for _, key := range []string{"", "a", "/a/", "/a//b", "/a/../b", "/a\x00", keyOfLen(fsm.MaxKeyBytes + 1)} {
		h := newHarness(t)
		h.put("/x", `1`)
		res := h.apply(putCmd(&proto.PutRequest{Key: key, Value: []byte(`1`)}))
		checkErr(t, res, fsm.ErrInvalid, "key")
		if got := h.s.Len(); got != 1 {
			t.Errorf("put %q: Len = %d, want 1", key, got)
		}
		if got := h.s.Revision(); got != 2 {
			t.Errorf("put %q: a rejected entry is still applied: Revision = %d, want 2", key, got)
		}
	}
}

// Rule: Revision() is the index of the last applied entry, whatever it did,
// and indexes may have gaps (entries raft keeps to itself).
func TestStore_RevisionFollowsAppliedIndex(t *testing.T) {
	s := fsm.New()
	if got := s.Revision(); got != 0 {
		t.Fatalf("new store Revision = %d, want 0", got)
	}
	entries := []struct {
		index uint64
		cmd   *proto.Command
	}{
		{3, putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`)})},
		{4, putCmd(&proto.PutRequest{Key: "bad", Value: []byte(`1`)})}, // rejected, still applied
		{9, delCmd(&proto.DeleteRequest{Key: "/missing"})},
		{10, barrierCmd()},
		{12, putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`2`)})},
	}
	for _, e := range entries {
		data, err := fsm.EncodeCommand(e.cmd)
		if err != nil {
			t.Fatal(err)
		}
		res := s.Apply(&raft.Log{Type: raft.LogCommand, Index: e.index, Data: data}).(*proto.Result)
		if res.Revision != e.index {
			t.Errorf("Result.Revision = %d, want %d", res.Revision, e.index)
		}
		if got := s.Revision(); got != e.index {
			t.Errorf("Revision after index %d = %d", e.index, got)
		}
	}
	kv, _, _ := s.Get("/a")
	if kv.CreateRevision != 3 || kv.ModRevision != 12 || kv.Version != 2 {
		t.Errorf("/a = %v, want create 3, mod 12, version 2", kv)
	}
}

// Rule: a configuration entry moves the revision and changes no key.
func TestStore_ConfigurationEntryMovesRevisionOnly(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	before := h.get("/a")

	if out := h.config(); out != nil {
		t.Errorf("Apply(LogConfiguration) = %v, want nil", out)
	}
	if got := h.s.Revision(); got != 2 {
		t.Errorf("Revision = %d, want 2", got)
	}
	if got := h.get("/a"); !kvEqual(got, before) {
		t.Errorf("/a changed to %v, want %v", got, before)
	}
	if got := h.s.Len(); got != 1 {
		t.Errorf("Len = %d, want 1", got)
	}

	h.put("/b", `1`)
	if got := h.get("/b").CreateRevision; got != 3 {
		t.Errorf("/b create_revision = %d, want 3", got)
	}
}

func TestStore_BarrierMovesRevisionOnly(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	res := h.mustApply(barrierCmd())
	if res.Result != nil {
		t.Errorf("barrier result = %v, want no response", res.Result)
	}
	if got := h.s.Revision(); got != 2 {
		t.Errorf("Revision = %d, want 2", got)
	}
	h2 := newHarness(t)
	h2.put("/a", `1`)
	h2.config()
	if !bytes.Equal(h.dump(), h2.dump()) {
		t.Errorf("a barrier changed more than the revision")
	}
}

// Rule: ApplyBatch applies entries in order, one result per entry, exactly
// as the same entries applied one at a time.
func TestStore_ApplyBatchMatchesApply(t *testing.T) {
	one, batch := newHarness(t), newHarness(t)
	cmds := []*proto.Command{
		putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`1`)}),
		putCmd(&proto.PutRequest{Key: "/a", Value: []byte(`2`), PrevKv: true}),
		nil, // a configuration entry
		putCmd(&proto.PutRequest{Key: "/b", Value: []byte(`1`), CasRevision: u64(0)}),
		putCmd(&proto.PutRequest{Key: "/b", Value: []byte(`1`), CasRevision: u64(0)}), // fails
		delCmd(&proto.DeleteRequest{Key: "/a"}),
		grantCmd(5),
	}
	var logs []*raft.Log
	var want []interface{}
	for _, c := range cmds {
		if c == nil {
			want = append(want, one.config())
			batch.idx++
			logs = append(logs, &raft.Log{Type: raft.LogConfiguration, Index: batch.idx})
			continue
		}
		want = append(want, one.apply(c))
		logs = append(logs, batch.entry(c))
	}
	got := batch.s.ApplyBatch(logs)
	if len(got) != len(want) {
		t.Fatalf("ApplyBatch returned %d results, want %d", len(got), len(want))
	}
	for i := range got {
		if want[i] == nil {
			if got[i] != nil {
				t.Errorf("result %d = %v, want nil", i, got[i])
			}
			continue
		}
		g, ok := got[i].(*proto.Result)
		if !ok || !gproto.Equal(g, want[i].(*proto.Result)) {
			t.Errorf("result %d = %v, want %v", i, got[i], want[i])
		}
	}
	if !bytes.Equal(one.dump(), batch.dump()) {
		t.Errorf("state after ApplyBatch differs from state after Apply")
	}
	if got := batch.s.Revision(); got != uint64(len(cmds)) {
		t.Errorf("Revision = %d, want %d", got, len(cmds))
	}
}

// Rule: cas_revision makes a put conditional on the key's current mod
// revision, 0 meaning absent; a failed compare returns FAILED_PRECONDITION
// carrying the current mod revision and changes nothing.
func TestStore_CASPut(t *testing.T) {
	tests := []struct {
		name    string
		exists  bool
		cas     func(cur uint64) uint64
		wantErr bool
	}{
		{"create-only on absent key", false, func(uint64) uint64 { return 0 }, false},
		{"create-only on present key", true, func(uint64) uint64 { return 0 }, true},
		{"matching mod revision", true, func(cur uint64) uint64 { return cur }, false},
		{"older mod revision", true, func(cur uint64) uint64 { return cur - 1 }, true},
		{"newer mod revision", true, func(cur uint64) uint64 { return cur + 1 }, true},
		{"non-zero revision on absent key", false, func(uint64) uint64 { return 1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.put("/other", `0`)
			if tt.exists {
				h.put("/k", `1`)
				h.put("/k", `2`) // mod revision 3, create revision 2
			}
			before := h.get("/k")
			cas := tt.cas(modRevOf(before))
			res := h.apply(putCmd(&proto.PutRequest{Key: "/k", Value: []byte(`"new"`), CasRevision: &cas, Origin: "cas"}))
			if !tt.wantErr {
				if res.Error != nil {
					t.Fatalf("cas %d: unexpected error %v", cas, res.Error)
				}
				got := h.get("/k")
				if string(got.Value) != `"new"` || got.ModRevision != h.idx || got.Version != before.GetVersion()+1 {
					t.Errorf("after CAS put: got %v", got)
				}
				return
			}
			fe := checkErr(t, res, fsm.ErrCompareFailed, "cas_revision")
			if got, want := fe.Revision, modRevOf(before); got != want {
				t.Errorf("Error.Revision = %d, want current mod revision %d", got, want)
			}
			if got := res.Error.Code; got != proto.Error_FAILED_PRECONDITION {
				t.Errorf("Error.Code = %v, want FAILED_PRECONDITION", got)
			}
			if got := h.get("/k"); !kvEqual(got, before) {
				t.Errorf("failed CAS changed /k to %v, want %v", got, before)
			}
		})
	}
}

func modRevOf(kv *proto.KeyValue) uint64 { return kv.GetModRevision() }

func TestStore_CASDelete(t *testing.T) {
	tests := []struct {
		name        string
		exists      bool
		cas         func(cur uint64) uint64
		wantErr     bool
		wantDeleted uint64
	}{
		{"matching mod revision", true, func(cur uint64) uint64 { return cur }, false, 1},
		{"stale mod revision", true, func(cur uint64) uint64 { return cur - 1 }, true, 0},
		{"zero on present key", true, func(uint64) uint64 { return 0 }, true, 0},
		{"zero on absent key", false, func(uint64) uint64 { return 0 }, false, 0},
		{"non-zero on absent key", false, func(uint64) uint64 { return 7 }, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.exists {
				h.put("/k", `1`)
				h.put("/k", `2`)
			}
			h.put("/other", `0`)
			before := h.get("/k")
			cas := tt.cas(modRevOf(before))
			res := h.apply(delCmd(&proto.DeleteRequest{Key: "/k", CasRevision: &cas}))
			if !tt.wantErr {
				if res.Error != nil {
					t.Fatalf("unexpected error %v", res.Error)
				}
				if got := res.GetDelete().GetDeleted(); got != tt.wantDeleted {
					t.Errorf("Deleted = %d, want %d", got, tt.wantDeleted)
				}
				if got := h.get("/k"); got != nil {
					t.Errorf("/k still present: %v", got)
				}
				return
			}
			fe := checkErr(t, res, fsm.ErrCompareFailed, "cas_revision")
			if got, want := fe.Revision, modRevOf(before); got != want {
				t.Errorf("Error.Revision = %d, want %d", got, want)
			}
			if got := h.get("/k"); !kvEqual(got, before) {
				t.Errorf("failed CAS delete changed /k to %v, want %v", got, before)
			}
		})
	}
}

func TestStore_PrefixDeleteWithCASIsInvalid(t *testing.T) {
	h := newHarness(t)
	h.put("/a/1", `1`)
	h.put("/a/2", `1`)
	res := h.apply(delCmd(&proto.DeleteRequest{Key: "/a/", Prefix: true, CasRevision: u64(2)}))
	checkErr(t, res, fsm.ErrInvalid, "cas_revision")
	if got := h.s.Len(); got != 2 {
		t.Errorf("Len = %d, want 2", got)
	}
}

func TestStore_Get(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	h.put("/b", `2`)

	kv, rev, err := h.s.Get("/a")
	if err != nil || rev != 2 || string(kv.Value) != `1` {
		t.Errorf("Get(/a) = %v, %d, %v; want value 1 at rev 2", kv, rev, err)
	}

	kv, rev, err = h.s.Get("/missing")
	if !errors.Is(err, fsm.ErrNotFound) || kv != nil || rev != 2 {
		t.Errorf("Get(/missing) = %v, %d, %v; want nil, 2, ErrNotFound", kv, rev, err)
	}
	var fe *fsm.Error
	if errors.As(err, &fe) && fe.Field != "key" {
		t.Errorf("not-found Field = %q, want key", fe.Field)
	}

	if _, _, err := h.s.Get("/a/"); !errors.Is(err, fsm.ErrInvalid) {
		t.Errorf("Get(/a/) err = %v, want ErrInvalid", err)
	}
}

// listKeys returns the keys of kvs.
func listKeys(kvs []*proto.KeyValue) []string {
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStore_ListByPrefix(t *testing.T) {
	h := newHarness(t)
	// Written out of order: List must return key order, not write order.
	for _, k := range []string{"/b/a", "/ab/x", "/a/c", "/a", "/ab", "/a/b/c", "/a/b", "/a-b", "/a0"} {
		h.put(k, `1`)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"/", []string{"/a", "/a-b", "/a/b", "/a/b/c", "/a/c", "/a0", "/ab", "/ab/x", "/b/a"}},
		{"/a/", []string{"/a/b", "/a/b/c", "/a/c"}}, // not /a, /ab, /a-b or /a0
		{"/a/b/", []string{"/a/b/c"}},
		{"/ab/", []string{"/ab/x"}},
		{"/a", []string{"/a", "/a-b", "/a/b", "/a/b/c", "/a/c", "/a0", "/ab", "/ab/x"}}, // a plain string prefix
		{"/b/a", []string{"/b/a"}},
		{"/zzz/", nil},
		{"/c", nil},
	}
	for _, tt := range tests {
		items, next, rev, err := h.s.List(tt.prefix, "", 0)
		if err != nil {
			t.Errorf("List(%q): %v", tt.prefix, err)
			continue
		}
		if got := listKeys(items); !equalStrings(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
		if next != "" || rev != h.idx {
			t.Errorf("List(%q) next, rev = %q, %d; want \"\", %d", tt.prefix, next, rev, h.idx)
		}
	}
}

func TestStore_ListPaging(t *testing.T) {
	h := newHarness(t)
	var want []string
	h.put("/o", `1`)
	h.put("/p", `1`)
	for i := 0; i < 250; i++ {
		k := "/p/" + pad(i)
		want = append(want, k)
		h.put(k, `1`)
	}
	h.put("/q", `1`)
	h.put("/p0", `1`)

	for _, limit := range []int{1, 7, 50, 249, 250, 251, 1000} {
		var got []string
		after, pages := "", 0
		for {
			items, next, _, err := h.s.List("/p/", after, limit)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			pages++
			if len(items) > limit {
				t.Fatalf("limit %d: page of %d items", limit, len(items))
			}
			if next != "" {
				if len(items) != limit || next != items[len(items)-1].Key {
					t.Fatalf("limit %d: next %q after a page of %d ending %q", limit, next, len(items), listKeys(items))
				}
			}
			got = append(got, listKeys(items)...)
			if next == "" {
				break
			}
			after = next
		}
		if !equalStrings(got, want) {
			t.Errorf("limit %d: paged keys = %d keys, want each of %d exactly once", limit, len(got), len(want))
		}
		// No trailing empty page when the keys divide evenly into pages.
		if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}
}

func pad(i int) string {
	const digits = "0123456789"
	b := []byte("00000")
	for p := len(b) - 1; p >= 0 && i > 0; p-- {
		b[p] = digits[i%10]
		i /= 10
	}
	return string(b)
}

func TestStore_ListAfter(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"/a", "/p/1", "/p/2", "/p/3", "/z"} {
		h.put(k, `1`)
	}
	tests := []struct {
		after string
		want  []string
	}{
		{"", []string{"/p/1", "/p/2", "/p/3"}},
		{"/a", []string{"/p/1", "/p/2", "/p/3"}},  // before the prefix
		{"/p/", []string{"/p/1", "/p/2", "/p/3"}}, // the prefix itself
		{"/p/1", []string{"/p/2", "/p/3"}},        // strictly greater
		{"/p/15", []string{"/p/2", "/p/3"}},       // a key that does not exist
		{"/p/3", nil},                             // the last key
		{"/z", nil},                               // past the prefix
	}
	for _, tt := range tests {
		items, next, _, err := h.s.List("/p/", tt.after, 0)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := listKeys(items); !equalStrings(got, tt.want) || next != "" {
			t.Errorf("List(/p/, after %q) = %q, next %q; want %q, \"\"", tt.after, got, next, tt.want)
		}
	}
}

func TestStore_ListDefaultLimit(t *testing.T) {
	h := newHarness(t)
	const n = fsm.DefaultListLimit + 5
	logs := make([]*raft.Log, 0, n)
	for i := 0; i < n; i++ {
		logs = append(logs, h.entry(putCmd(&proto.PutRequest{Key: "/k/" + pad(i), Value: []byte(`1`)})))
	}
	h.s.ApplyBatch(logs)
	for _, limit := range []int{0, -1} {
		items, next, _, err := h.s.List("/", "", limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != fsm.DefaultListLimit || next != items[len(items)-1].Key {
			t.Errorf("limit %d: %d items, next %q; want %d items and next = last key", limit, len(items), next, fsm.DefaultListLimit)
		}
		rest, next, _, _ := h.s.List("/", next, limit)
		if len(rest) != 5 || next != "" {
			t.Errorf("limit %d: second page %d items, next %q; want 5, \"\"", limit, len(rest), next)
		}
	}
}

func TestStore_ListInvalidPrefix(t *testing.T) {
	s := fsm.New()
	for _, p := range []string{"", "a/", "//", "/a/../"} {
		if _, _, _, err := s.List(p, "", 0); !errors.Is(err, fsm.ErrInvalid) {
			t.Errorf("List(%q) err = %v, want ErrInvalid", p, err)
		}
	}
}

func TestStore_DeleteSingleKey(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	h.put("/a", `2`)
	h.put("/ab", `1`)

	res := h.mustApply(delCmd(&proto.DeleteRequest{Key: "/a", Origin: "cli"}))
	if got := res.GetDelete(); got.GetDeleted() != 1 || got.GetRevision() != 4 {
		t.Errorf("DeleteResponse = %v, want deleted 1 at revision 4", got)
	}
	if got := h.keys(); !equalStrings(got, []string{"/ab"}) {
		t.Errorf("keys = %q, want [/ab]", got)
	}

	// A re-created key starts over.
	h.put("/a", `3`)
	want := &proto.KeyValue{Key: "/a", Value: []byte(`3`), CreateRevision: 5, ModRevision: 5, Version: 1}
	if got := h.get("/a"); !kvEqual(got, want) {
		t.Errorf("re-created /a = %v, want %v", got, want)
	}
}

func TestStore_DeleteAbsentKey(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	res := h.mustApply(delCmd(&proto.DeleteRequest{Key: "/b"}))
	if got := res.GetDelete(); got.GetDeleted() != 0 || got.GetRevision() != 2 {
		t.Errorf("DeleteResponse = %v, want deleted 0 at revision 2", got)
	}
	if got := h.s.Len(); got != 1 {
		t.Errorf("Len = %d, want 1", got)
	}
}

func TestStore_DeleteInvalidKey(t *testing.T) {
	for _, req := range []*proto.DeleteRequest{
		{Key: ""},
		{Key: "/a/"}, // a trailing slash is only for prefix deletes
		{Key: "/a//", Prefix: true},
		{Key: "a/", Prefix: true},
	} {
		h := newHarness(t)
		h.put("/a/b", `1`)
		checkErr(t, h.apply(delCmd(req)), fsm.ErrInvalid, "key")
		if got := h.s.Len(); got != 1 {
			t.Errorf("delete %v: Len = %d, want 1", req, got)
		}
	}
}

func TestStore_DeletePrefix(t *testing.T) {
	all := []string{"/a", "/a/b", "/a/b/c", "/a/c", "/ab", "/ab/x", "/b"}
	tests := []struct {
		prefix string
		want   uint64
		left   []string
	}{
		{"/a/", 3, []string{"/a", "/ab", "/ab/x", "/b"}},
		{"/a/b/", 1, []string{"/a", "/a/b", "/a/c", "/ab", "/ab/x", "/b"}},
		{"/ab/", 1, []string{"/a", "/a/b", "/a/b/c", "/a/c", "/ab", "/b"}},
		{"/a", 6, []string{"/b"}}, // a plain string prefix, as List
		{"/", 7, nil},
		{"/none/", 0, all},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			h := newHarness(t)
			for _, k := range all {
				h.put(k, `1`)
			}
			res := h.mustApply(delCmd(&proto.DeleteRequest{Key: tt.prefix, Prefix: true}))
			if got := res.GetDelete().GetDeleted(); got != tt.want {
				t.Errorf("Deleted = %d, want %d", got, tt.want)
			}
			if got := h.keys(); !equalStrings(got, tt.left) {
				t.Errorf("keys left = %q, want %q", got, tt.left)
			}
		})
	}
}
