package fsm

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"

	"github.com/google/btree"
	"github.com/hashicorp/raft"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/proto"
)

// The snapshot stream: the magic, then records of (type byte, uvarint
// length, protobuf bytes): one header, every key in key order, every lease
// in ID order, then an end record holding the CRC-32C of all that precedes.
const (
	snapMagic    = "DUXSNAP\x01"
	recHeader    = 1
	recKeyValue  = 2
	recLease     = 3
	recEnd       = 0xff
	maxRecordLen = 64 << 20
)

// ErrBadSnapshot is returned for a snapshot stream that is truncated, corrupt
// or not a Dux snapshot.
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the state in O(1): the B-tree is cloned copy-on-write,
// and the items themselves are immutable.
func (s *Store) Snapshot() (raft.FSMSnapshot, error) {
	// The write lock, not the read lock: Clone mutates the tree (it gives the
	// original a new copy-on-write context) and must not run concurrently
	// with another Clone.
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.snapshot(), nil
}

func (st *state) snapshot() *snapshot {
	leases := make([]*proto.Lease, 0, len(st.leases))
	for _, l := range st.leases {
		leases = append(leases, &proto.Lease{Id: l.id, TtlSeconds: l.ttl})
	}
	return &snapshot{tree: st.tree.Clone(), leases: leases, rev: st.rev}
}

type snapshot struct {
	tree   *btree.BTreeG[*proto.KeyValue]
	leases []*proto.Lease
	rev    uint64
}

// Persist writes the snapshot to the sink, outside any store lock.
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := sn.writeTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot at revision %d: %w", sn.rev, err)
	}
	return sink.Close()
}

func (sn *snapshot) Release() {}

// WriteSnapshot streams a consistent snapshot of the whole state to w and
// returns the revision it was taken at.
func (s *Store) WriteSnapshot(w io.Writer) (uint64, error) {
	s.mu.Lock() // not RLock: Clone mutates the tree, see Snapshot
	sn := s.st.snapshot()
	s.mu.Unlock()
	return sn.rev, sn.writeTo(w)
}

func (sn *snapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	sw := &snapWriter{w: bw, crc: crc32.New(crcTable)}
	sw.raw([]byte(snapMagic))
	sw.record(recHeader, &proto.SnapshotHeader{
		Revision: sn.rev,
		Keys:     uint64(sn.tree.Len()),
		Leases:   uint64(len(sn.leases)),
	})
	sn.tree.Ascend(func(kv *proto.KeyValue) bool {
		sw.record(recKeyValue, kv)
		return sw.err == nil
	})
	sortLeases(sn.leases)
	for _, l := range sn.leases {
		sw.record(recLease, l)
	}
	sum := sw.crc.Sum32()
	sw.raw([]byte{recEnd})
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], sum)
	sw.raw(tail[:])
	if sw.err != nil {
		return sw.err
	}
	return bw.Flush()
}

type snapWriter struct {
	w   io.Writer
	crc hash.Hash32
	buf []byte
	err error
}

func (sw *snapWriter) raw(b []byte) {
	if sw.err != nil {
		return
	}
	sw.crc.Write(b)
	_, sw.err = sw.w.Write(b)
}

func (sw *snapWriter) record(t byte, m gproto.Message) {
	if sw.err != nil {
		return
	}
	var err error
	sw.buf = append(sw.buf[:0], t)
	sw.buf = binary.AppendUvarint(sw.buf, uint64(gproto.Size(m)))
	sw.buf, err = gproto.MarshalOptions{}.MarshalAppend(sw.buf, m)
	if err != nil {
		sw.err = err
		return
	}
	sw.raw(sw.buf)
}

// Restore replaces the whole state with the snapshot read from rc. The new
// state is built aside and swapped in only once the stream has been read
// whole and its checksum holds, so a bad snapshot changes nothing.
func (s *Store) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st = st.st
	if s.restoreHook != nil {
		s.restoreHook(s.st.rev, stateView{s.st})
	}
	s.notifyApplied()
	s.mu.Unlock()
	return nil
}

// Snapshot is a decoded snapshot stream.
type Snapshot struct{ st *state }

// Revision is the revision the snapshot was taken at.
func (sn *Snapshot) Revision() uint64 { return sn.st.rev }

// Encode writes the snapshot again, stamped with revision rev (which must
// not be lower than its own): a restored backup must not take the cluster's
// revision backwards.
func (sn *Snapshot) Encode(w io.Writer, rev uint64) error {
	out := sn.st.snapshot()
	if rev < out.rev {
		return fmt.Errorf("fsm: snapshot revision %d would go back to %d", out.rev, rev)
	}
	out.rev = rev
	return out.writeTo(w)
}

// Len is the number of keys in the snapshot.
func (sn *Snapshot) Len() int { return sn.st.tree.Len() }

// ReadSnapshot decodes and checks a snapshot stream.
func ReadSnapshot(r io.Reader) (*Snapshot, error) {
	// The CRC covers the bytes handed out by the buffered reader, not what
	// it read ahead.
	cr := &crcReader{r: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(crcTable)}
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(cr, magic); err != nil || string(magic) != snapMagic {
		return nil, fmt.Errorf("%w: not a Dux snapshot", ErrBadSnapshot)
	}
	st := newState()
	var hdr proto.SnapshotHeader
	if err := readRecord(cr, recHeader, &hdr); err != nil {
		return nil, err
	}
	st.rev = hdr.Revision
	for i := uint64(0); i < hdr.Keys; i++ {
		kv := &proto.KeyValue{}
		if err := readRecord(cr, recKeyValue, kv); err != nil {
			return nil, err
		}
		if old, dup := st.tree.ReplaceOrInsert(kv); dup {
			st.bytes -= kvBytes(old)
		}
		st.bytes += kvBytes(kv)
	}
	for i := uint64(0); i < hdr.Leases; i++ {
		var l proto.Lease
		if err := readRecord(cr, recLease, &l); err != nil {
			return nil, err
		}
		st.leases[l.Id] = &lease{id: l.Id, ttl: l.TtlSeconds, keys: make(map[string]struct{})}
	}
	sum := cr.crc.Sum32()
	var tail [5]byte
	if _, err := io.ReadFull(cr, tail[:]); err != nil {
		return nil, fmt.Errorf("%w: missing end record: %v", ErrBadSnapshot, err)
	}
	if tail[0] != recEnd || binary.BigEndian.Uint32(tail[1:]) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if _, err := cr.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the end record", ErrBadSnapshot)
	}
	var err error
	st.tree.Ascend(func(kv *proto.KeyValue) bool {
		if kv.Lease == 0 {
			return true
		}
		l, ok := st.leases[kv.Lease]
		if !ok {
			err = fmt.Errorf("%w: key %s names missing lease %d", ErrBadSnapshot, kv.Key, kv.Lease)
			return false
		}
		l.keys[kv.Key] = struct{}{}
		return true
	})
	if err != nil {
		return nil, err
	}
	return &Snapshot{st: st}, nil
}

type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

func readRecord(r *crcReader, want byte, m gproto.Message) error {
	t, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("%w: truncated: %v", ErrBadSnapshot, err)
	}
	if t != want {
		return fmt.Errorf("%w: record type %d, want %d", ErrBadSnapshot, t, want)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > maxRecordLen {
		return fmt.Errorf("%w: bad record length", ErrBadSnapshot)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("%w: truncated record: %v", ErrBadSnapshot, err)
	}
	if err := gproto.Unmarshal(buf, m); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	return nil
}

func sortLeases(ls []*proto.Lease) {
	slices.SortFunc(ls, func(a, b *proto.Lease) int { return cmp.Compare(a.Id, b.Id) })
}
