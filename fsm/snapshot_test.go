package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// bufferSink is a raft.SnapshotSink that keeps what is written in memory.
type bufferSink struct {
	bytes.Buffer
	writeErr  error
	closed    bool
	cancelled bool
}

var _ raft.SnapshotSink = (*bufferSink)(nil)

func (s *bufferSink) ID() string { return "test" }

func (s *bufferSink) Write(p []byte) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	return s.Buffer.Write(p)
}

func (s *bufferSink) Close() error {
	s.closed = true
	return nil
}

func (s *bufferSink) Cancel() error {
	s.cancelled = true
	return nil
}

// trackingReader is an io.ReadCloser that records Close.
type trackingReader struct {
	io.Reader
	closed bool
}

func (r *trackingReader) Close() error {
	r.closed = true
	return nil
}

// persist takes a raft snapshot of s and persists it into a buffer sink.
func persist(t testing.TB, s *fsm.Store) []byte {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer sn.Release()
	sink := &bufferSink{}
	if err := sn.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist: sink closed %v, cancelled %v; want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// restore restores b into a new Store.
func restore(t testing.TB, b []byte) *fsm.Store {
	t.Helper()
	s := fsm.New()
	rc := &trackingReader{Reader: bytes.NewReader(b)}
	if err := s.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Errorf("Restore did not close its reader")
	}
	return s
}

// buildState fills h with a few thousand keys: updated, deleted, with
// origins, attached to leases, and an empty lease.
func buildState(h *harness, n int) (leases []uint64) {
	for i := 0; i < 4; i++ {
		leases = append(leases, h.grant(int64(10*(i+1))))
	}
	var logs []*raft.Log
	for i := 0; i < n; i++ {
		req := &proto.PutRequest{
			Key:    fmt.Sprintf("/svc/%02d/inst/%05d", i%37, i),
			Value:  []byte(fmt.Sprintf(`{"i":%d,"pad":"%*s"}`, i, i%50, "")),
			Origin: []string{"", "cli", "scheduler"}[i%3],
		}
		if i%5 == 0 {
			req.Lease = leases[i%3] // the fourth lease keeps no keys
		}
		logs = append(logs, h.entry(putCmd(req)))
		if i%7 == 0 { // an update: version 2, mod revision moves
			req2 := gproto.Clone(req).(*proto.PutRequest)
			req2.Value = []byte(`"updated"`)
			logs = append(logs, h.entry(putCmd(req2)))
		}
		if i%11 == 0 {
			logs = append(logs, h.entry(delCmd(&proto.DeleteRequest{Key: req.Key})))
		}
	}
	for _, out := range h.s.ApplyBatch(logs) {
		if res := out.(*proto.Result); res.Error != nil {
			h.t.Fatalf("buildState: %v", res.Error)
		}
	}
	h.config()
	return leases
}

// compareStores checks that b holds exactly a's keys (every field), leases
// and revision.
func compareStores(t *testing.T, a, b *fsm.Store) {
	t.Helper()
	if ra, rb := a.Revision(), b.Revision(); ra != rb {
		t.Errorf("Revision = %d, want %d", rb, ra)
	}
	if la, lb := a.Len(), b.Len(); la != lb {
		t.Errorf("Len = %d, want %d", lb, la)
	}
	ka, kb := listAll(t, a, "/"), listAll(t, b, "/")
	if len(ka) != len(kb) {
		t.Fatalf("listed %d keys, want %d", len(kb), len(ka))
	}
	for i := range ka {
		if !kvEqual(ka[i], kb[i]) {
			t.Fatalf("key %d = %v, want %v", i, kb[i], ka[i])
		}
	}
	la, lb := a.Leases(), b.Leases()
	if len(la) != len(lb) {
		t.Errorf("Leases() = %v, want %v", lb, la)
	}
	for id, ttl := range la {
		if got, ok := lb[id]; !ok || got != ttl {
			t.Errorf("lease %d: ttl %d (present %v), want %d", id, got, ok, ttl)
		}
	}
}

func TestStore_SnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	leases := buildState(h, 3000)

	viaPersist := persist(t, h.s)
	var buf bytes.Buffer
	rev, err := h.s.WriteSnapshot(&buf)
	if err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	if rev != h.idx {
		t.Errorf("WriteSnapshot revision = %d, want %d", rev, h.idx)
	}
	if !bytes.Equal(viaPersist, buf.Bytes()) {
		t.Errorf("Persist and WriteSnapshot wrote different streams (%d vs %d bytes)", len(viaPersist), buf.Len())
	}

	dec, err := fsm.ReadSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	if dec.Revision() != h.idx || dec.Len() != h.s.Len() {
		t.Errorf("ReadSnapshot: revision %d, %d keys; want %d, %d", dec.Revision(), dec.Len(), h.idx, h.s.Len())
	}

	for name, b := range map[string][]byte{"Persist": viaPersist, "WriteSnapshot": buf.Bytes()} {
		t.Run(name, func(t *testing.T) {
			r := restore(t, b)
			compareStores(t, h.s, r)
			if !bytes.Equal(dump(t, r), b) {
				t.Errorf("a restored store snapshots to different bytes")
			}

			// Lease attachments survive the restore: revoking each lease
			// deletes exactly the keys that carried it in the original.
			attached := map[uint64]uint64{}
			var free []string
			for _, kv := range listAll(t, h.s, "/") {
				if kv.Lease == 0 {
					free = append(free, kv.Key)
				}
				attached[kv.Lease]++
			}
			if attached[leases[0]] == 0 || attached[leases[3]] != 0 {
				t.Fatalf("buildState attached %v, want keys on the first lease and none on the last", attached)
			}
			again := &harness{t: t, s: r, idx: h.idx}
			for _, id := range leases {
				got := again.mustApply(revokeCmd(id, true)).GetLeaseRevoke().GetDeleted()
				if got != attached[id] {
					t.Errorf("revoke %d after restore deleted %d keys, want %d", id, got, attached[id])
				}
			}
			if got := again.keys(); !equalStrings(got, free) {
				t.Errorf("after revoking every lease %d keys are left, want the %d without a lease", len(got), len(free))
			}
			if len(r.Leases()) != 0 {
				t.Errorf("leases left after revoking all: %v", r.Leases())
			}
		})
	}
}

func TestStore_SnapshotEmptyStore(t *testing.T) {
	s := fsm.New()
	r := restore(t, persist(t, s))
	if r.Revision() != 0 || r.Len() != 0 || len(r.Leases()) != 0 {
		t.Errorf("restored empty store: rev %d, %d keys, %d leases", r.Revision(), r.Len(), len(r.Leases()))
	}
}

// Rule: Restore replaces the whole state, it does not merge into it.
func TestStore_RestoreReplacesState(t *testing.T) {
	src := newHarness(t)
	src.put("/a", `1`)
	b := src.dump()

	dst := newHarness(t)
	dst.grant(5)
	for i := 0; i < 10; i++ {
		dst.put(fmt.Sprintf("/x/%d", i), `1`)
	}
	if err := dst.s.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	compareStores(t, src.s, dst.s)
}

// Rule: Snapshot captures the state when it is taken; writes applied before
// Persist runs do not leak into it (copy-on-write).
func TestStore_SnapshotIsCopyOnWrite(t *testing.T) {
	h := newHarness(t)
	leases := buildState(h, 1000)
	want := h.dump()

	sn, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite, delete and add keys, grant and revoke leases.
	var logs []*raft.Log
	for _, kv := range listAll(t, h.s, "/") {
		logs = append(logs, h.entry(putCmd(&proto.PutRequest{Key: kv.Key, Value: []byte(`"changed"`)})))
	}
	logs = append(logs, h.entry(delCmd(&proto.DeleteRequest{Key: "/svc/01/", Prefix: true})))
	for i := 0; i < 500; i++ {
		logs = append(logs, h.entry(putCmd(&proto.PutRequest{Key: fmt.Sprintf("/new/%d", i), Value: []byte(`1`)})))
	}
	logs = append(logs, h.entry(revokeCmd(leases[0], false)), h.entry(grantCmd(99)))
	h.s.ApplyBatch(logs)

	sink := &bufferSink{}
	if err := sn.Persist(sink); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	if !bytes.Equal(sink.Bytes(), want) {
		t.Errorf("snapshot persisted after later writes differs from the state it was taken at")
	}
	if bytes.Equal(h.dump(), want) {
		t.Errorf("test is broken: the writes changed nothing")
	}
}

func TestStore_PersistCancelsOnWriteError(t *testing.T) {
	h := newHarness(t)
	buildState(h, 100)
	sn, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	sink := &bufferSink{writeErr: boom}
	err = sn.Persist(sink)
	if !errors.Is(err, boom) {
		t.Errorf("Persist err = %v, want it to wrap %v", err, boom)
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink cancelled %v, closed %v; want cancelled only", sink.cancelled, sink.closed)
	}
}

// craft writes a snapshot stream by hand, with a valid checksum, so that
// tests can hand Restore content that is consistent on the wire but wrong.
type craft struct {
	buf bytes.Buffer
}

func newCraft(magic string) *craft {
	c := &craft{}
	c.buf.WriteString(magic)
	return c
}

func (c *craft) record(typ byte, m gproto.Message) *craft {
	b, err := gproto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return c.raw(typ, b)
}

func (c *craft) raw(typ byte, b []byte) *craft {
	c.buf.WriteByte(typ)
	c.buf.Write(binary.AppendUvarint(nil, uint64(len(b))))
	c.buf.Write(b)
	return c
}

func (c *craft) end(endByte byte) []byte {
	sum := crc32.Checksum(c.buf.Bytes(), crc32.MakeTable(crc32.Castagnoli))
	out := append([]byte(nil), c.buf.Bytes()...)
	out = append(out, endByte)
	return binary.BigEndian.AppendUint32(out, sum)
}

const (
	magic       = "DUXSNAP\x01"
	recHeader   = 1
	recKeyValue = 2
	recLease    = 3
	recEnd      = 0xff
)

func TestReadSnapshot_CraftedStreams(t *testing.T) {
	kv := &proto.KeyValue{Key: "/a", Value: []byte(`1`), CreateRevision: 2, ModRevision: 3, Version: 2, Lease: 1, Origin: "x"}
	hdr := func(keys, leases uint64) *proto.SnapshotHeader {
		return &proto.SnapshotHeader{Revision: 3, Keys: keys, Leases: leases}
	}

	// The hand-written format matches the real one: a valid stream restores.
	good := newCraft(magic).record(recHeader, hdr(1, 1)).record(recKeyValue, kv).
		record(recLease, &proto.Lease{Id: 1, TtlSeconds: 9}).end(recEnd)
	r := restore(t, good)
	if got, _, _ := r.Get("/a"); !kvEqual(got, kv) || r.Revision() != 3 {
		t.Fatalf("crafted snapshot restored /a = %v at rev %d", got, r.Revision())
	}

	bad := map[string][]byte{
		"key names a missing lease": newCraft(magic).record(recHeader, hdr(1, 1)).record(recKeyValue, kv).
			record(recLease, &proto.Lease{Id: 2, TtlSeconds: 9}).end(recEnd),
		"fewer keys than the header says": newCraft(magic).record(recHeader, hdr(2, 1)).record(recKeyValue, kv).
			record(recLease, &proto.Lease{Id: 1, TtlSeconds: 9}).end(recEnd),
		"more records than the header says": newCraft(magic).record(recHeader, hdr(0, 0)).record(recKeyValue, kv).end(recEnd),
		"header missing":                    newCraft(magic).record(recKeyValue, kv).end(recEnd),
		"other magic version":               newCraft("DUXSNAP\x02").record(recHeader, hdr(0, 0)).end(recEnd),
		"wrong end byte":                    newCraft(magic).record(recHeader, hdr(0, 0)).end(0xfe),
		"undecodable record":                newCraft(magic).record(recHeader, hdr(1, 0)).raw(recKeyValue, []byte{0xff}).end(recEnd),
		"record too long": append(newCraft(magic).buf.Bytes(),
			append([]byte{recHeader}, binary.AppendUvarint(nil, 64<<20+1)...)...),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := fsm.ReadSnapshot(bytes.NewReader(b)); !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Errorf("ReadSnapshot err = %v, want ErrBadSnapshot", err)
			}
		})
	}
}

// Rule: a bad snapshot is refused with ErrBadSnapshot and the store keeps
// the state it had.
func TestStore_RestoreBadSnapshot(t *testing.T) {
	h := newHarness(t)
	id := h.grant(10)
	h.putLease("/a", `{"x":1}`, id)
	h.put("/b/c", `"hello"`)
	good := h.dump()

	cur := newHarness(t)
	buildState(cur, 50)
	before := cur.dump()

	cases := map[string][]byte{
		"empty":                       nil,
		"garbage":                     []byte("this is not a snapshot at all, not even close"),
		"magic only":                  []byte(magic),
		"trailing end record missing": good[:len(good)-5],
	}
	// Every truncation and every single-byte corruption of a good stream.
	for n := 0; n < len(good); n++ {
		cases[fmt.Sprintf("truncated to %d bytes", n)] = good[:n]
	}
	for i := range good {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(good)
			b[i] ^= mask
			cases[fmt.Sprintf("byte %d xor %#x", i, mask)] = b
		}
	}
	for name, b := range cases {
		rc := &trackingReader{Reader: bytes.NewReader(b)}
		err := cur.s.Restore(rc)
		if !errors.Is(err, fsm.ErrBadSnapshot) {
			t.Errorf("%s: Restore err = %v, want ErrBadSnapshot", name, err)
		}
		if !rc.closed {
			t.Errorf("%s: Restore did not close its reader", name)
		}
		if cur.s.Revision() != cur.idx {
			t.Fatalf("%s: Revision = %d, want %d", name, cur.s.Revision(), cur.idx)
		}
	}
	if !bytes.Equal(cur.dump(), before) {
		t.Errorf("refused snapshots changed the store")
	}
}

// Snapshots, reads and applies run concurrently in raft (snapshots run on
// their own goroutine); every snapshot must be a consistent cut. Run with -race.
func TestStore_SnapshotConcurrentWithApply(t *testing.T) {
	h := newHarness(t)
	const writes = 300
	// Each txn writes one /n/ key and /count together, so a consistent cut
	// holds exactly count /n/ keys.
	entries := make([]*raft.Log, writes)
	for i := range entries {
		entries[i] = h.entry(txnCmd(&proto.TxnRequest{Success: []*proto.Op{
			{Type: proto.Op_PUT, Key: fmt.Sprintf("/n/%05d", i), Value: []byte(`1`)},
			{Type: proto.Op_PUT, Key: "/count", Value: []byte(fmt.Sprint(i + 1))},
		}}))
	}

	check := func(b []byte) error {
		s := fsm.New()
		if err := s.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			return err
		}
		items, _, _, _ := s.List("/n/", "", writes+1)
		kv, _, err := s.Get("/count")
		switch {
		case err != nil && len(items) == 0:
			return nil
		case err != nil:
			return fmt.Errorf("%d /n/ keys and no /count", len(items))
		case string(kv.Value) != fmt.Sprint(len(items)):
			return fmt.Errorf("/count = %s with %d /n/ keys", kv.Value, len(items))
		case s.Revision() != uint64(len(items)):
			return fmt.Errorf("revision %d with %d /n/ keys", s.Revision(), len(items))
		}
		return nil
	}

	done := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	snapshotter := func(raftSnap bool) {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			var buf bytes.Buffer
			if raftSnap {
				sn, err := h.s.Snapshot()
				if err != nil {
					errs <- err
					return
				}
				sink := &bufferSink{}
				if err := sn.Persist(sink); err != nil {
					errs <- err
					return
				}
				buf = sink.Buffer
			} else if _, err := h.s.WriteSnapshot(&buf); err != nil {
				errs <- err
				return
			}
			if err := check(buf.Bytes()); err != nil {
				errs <- err
				return
			}
		}
	}
	reader := func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			items, _, rev, err := h.s.List("/n/", "", writes+1)
			if err == nil && uint64(len(items)) != rev {
				errs <- fmt.Errorf("List at rev %d returned %d keys", rev, len(items))
				return
			}
			h.s.Get("/count")
			h.s.Len()
			h.s.Revision()
		}
	}
	wg.Add(4)
	go snapshotter(true)
	go snapshotter(false)
	go snapshotter(true)
	go reader()
	for _, l := range entries {
		h.s.Apply(l)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
