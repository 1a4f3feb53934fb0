package fsm_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dux-io/dux/fsm"
)

func TestStore_WaitRevisionAlreadyApplied(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	h.put("/a", `2`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // must not even look at ctx when the revision is there
	for _, rev := range []uint64{0, 1, 2} {
		if err := h.s.WaitRevision(ctx, rev); err != nil {
			t.Errorf("WaitRevision(%d) at revision 2 = %v, want nil", rev, err)
		}
	}
}

func TestStore_WaitRevisionHonoursContext(t *testing.T) {
	h := newHarness(t)
	h.put("/a", `1`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := h.s.WaitRevision(ctx, 5)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitRevision(5) at revision 1 = %v, want context.DeadlineExceeded", err)
	}
}

// waitAsync runs WaitRevision on its own goroutine.
func waitAsync(s *fsm.Store, rev uint64) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.WaitRevision(context.Background(), rev) }()
	return done
}

func awaitDone(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: WaitRevision = %v, want nil", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: WaitRevision still blocked after 5s", what)
	}
}

func TestStore_WaitRevisionWakesOnApply(t *testing.T) {
	h := newHarness(t)
	done := waitAsync(h.s, 3)
	h.put("/a", `1`)
	h.config()
	select {
	case err := <-done:
		t.Fatalf("WaitRevision(3) returned %v at revision 2", err)
	default:
	}
	h.put("/b", `1`) // a rule violation would move the revision just as well
	awaitDone(t, done, "after entry 3")

	// An entry past the one waited for also wakes (indexes have gaps).
	done = waitAsync(h.s, 5)
	h.idx = 9
	h.put("/c", `1`)
	awaitDone(t, done, "after entry 10")
}

func TestStore_WaitRevisionWakesOnRestore(t *testing.T) {
	src := newHarness(t)
	for i := 0; i < 5; i++ {
		src.put("/a", `1`)
	}
	b := src.dump()

	dst := fsm.New()
	done := waitAsync(dst, 4)
	if err := dst.Restore(nopCloser(b)); err != nil {
		t.Fatal(err)
	}
	awaitDone(t, done, "after restore to 5")
}

func nopCloser(b []byte) *trackingReader {
	return &trackingReader{Reader: bytes.NewReader(b)}
}

// Rule: a decoded snapshot written out again may be stamped with a higher
// revision, never a lower one; everything else stays as it was.
func TestSnapshot_EncodeStampsRevision(t *testing.T) {
	h := newHarness(t)
	buildState(h, 200)
	orig := h.dump()
	sn, err := fsm.ReadSnapshot(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}

	var same bytes.Buffer
	if err := sn.Encode(&same, h.idx); err != nil {
		t.Fatalf("Encode(own revision): %v", err)
	}
	if !bytes.Equal(same.Bytes(), orig) {
		t.Errorf("Encode at its own revision changed the stream")
	}

	if err := sn.Encode(&bytes.Buffer{}, h.idx-1); err == nil {
		t.Errorf("Encode(a lower revision) = nil, want an error")
	}

	var higher bytes.Buffer
	if err := sn.Encode(&higher, h.idx+100); err != nil {
		t.Fatalf("Encode(higher revision): %v", err)
	}
	r := restore(t, higher.Bytes())
	if got := r.Revision(); got != h.idx+100 {
		t.Errorf("restored revision = %d, want %d", got, h.idx+100)
	}
	ka, kb := listAll(t, h.s, "/"), listAll(t, r, "/")
	if len(ka) != len(kb) {
		t.Fatalf("restored %d keys, want %d", len(kb), len(ka))
	}
	for i := range ka {
		if !kvEqual(ka[i], kb[i]) {
			t.Fatalf("key %d = %v, want %v", i, kb[i], ka[i])
		}
	}
}
