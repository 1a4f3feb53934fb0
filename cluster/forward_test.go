package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// fakeCall is one call the forwarder made; the test answers it.
type fakeCall struct {
	ctx    context.Context
	addr   string
	cmds   []*proto.Command
	answer chan fakeAnswer
}

type fakeAnswer struct {
	outs []forwardOutcome
	err  error
}

func (c *fakeCall) keys() []string {
	keys := make([]string, len(c.cmds))
	for i, cmd := range c.cmds {
		keys[i] = cmd.GetPut().GetKey()
	}
	return keys
}

// ok answers every command of the call with a result whose revision is
// base plus its position.
func (c *fakeCall) ok(base uint64) {
	outs := make([]forwardOutcome, len(c.cmds))
	for i := range outs {
		outs[i].res = &proto.Result{Revision: base + uint64(i)}
	}
	c.answer <- fakeAnswer{outs: outs}
}

// fakeSender hands each call to the test on calls and returns what the
// test answers.
type fakeSender struct {
	calls chan *fakeCall
}

func newFakeSender() *fakeSender { return &fakeSender{calls: make(chan *fakeCall, 16)} }

func (s *fakeSender) applyBatch(ctx context.Context, addr string, cmds []*proto.Command) ([]forwardOutcome, error) {
	c := &fakeCall{ctx: ctx, addr: addr, cmds: cmds, answer: make(chan fakeAnswer, 1)}
	s.calls <- c
	a := <-c.answer
	return a.outs, a.err
}

func (s *fakeSender) next(t *testing.T) *fakeCall {
	t.Helper()
	select {
	case c := <-s.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no call to the leader within 5s")
		return nil
	}
}

func (s *fakeSender) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-s.calls:
		t.Fatalf("unexpected call with %v", c.keys())
	case <-time.After(50 * time.Millisecond):
	}
}

func putCmd(key string) *proto.Command {
	return &proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{Key: key, Value: []byte(`"v"`)}}}
}

type fwdResult struct {
	res *proto.Result
	err error
}

// submit forwards a put of key in the background and waits until it is
// queued or sent, so that the order of submits is the order of arrival.
func submit(t *testing.T, f *forwarder, ctx context.Context, addr, key string) <-chan fwdResult {
	t.Helper()
	before := f.arrivals()
	ch := make(chan fwdResult, 1)
	go func() {
		res, err := f.forward(ctx, addr, putCmd(key))
		ch <- fwdResult{res, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.arrivals() == before {
		if time.Now().After(deadline) {
			t.Fatalf("put %s never reached the forwarder", key)
		}
		time.Sleep(time.Millisecond)
	}
	return ch
}

func (f *forwarder) arrivals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.arrived
}

func wait(t *testing.T, ch <-chan fwdResult) fwdResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("forward did not return within 5s")
		return fwdResult{}
	}
}

func pending(t *testing.T, ch <-chan fwdResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("forward returned early: %v, %v", r.res, r.err)
	case <-time.After(20 * time.Millisecond):
	}
}

func newTestForwarder(s forwardSender) *forwarder {
	return newForwarder(s)
}

func equalKeys(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// Rule: a write to an idle leader is sent at once, alone; writes arriving
// while a call is in flight wait, and all of them go, in arrival order, in
// the next call as soon as it returns. Each gets its own result.
func TestForwarder_GroupCommit(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	ctx := context.Background()

	first := submit(t, f, ctx, "l:1", "/a")
	c1 := s.next(t)
	if !equalKeys(c1.keys(), []string{"/a"}) {
		t.Fatalf("first call carries %v, want [/a] at once", c1.keys())
	}
	var rest []<-chan fwdResult
	for _, k := range []string{"/b", "/c", "/d", "/e"} {
		rest = append(rest, submit(t, f, ctx, "l:1", k))
	}
	s.none(t) // nothing more while the first call is in flight
	pending(t, rest[0])
	c1.ok(10)
	if r := wait(t, first); r.err != nil || r.res.Revision != 10 {
		t.Fatalf("first: got %v, %v; want revision 10", r.res, r.err)
	}
	c2 := s.next(t)
	if !equalKeys(c2.keys(), []string{"/b", "/c", "/d", "/e"}) {
		t.Fatalf("second call carries %v, want [/b /c /d /e]", c2.keys())
	}
	c2.ok(20)
	for i, ch := range rest {
		if r := wait(t, ch); r.err != nil || r.res.Revision != 20+uint64(i) {
			t.Errorf("write %d: got %v, %v; want revision %d", i, r.res, r.err, 20+i)
		}
	}
	s.none(t)
	waitIdle(t, f)
}

func waitIdle(t *testing.T, f *forwarder) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.lanes)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lanes still open with nothing to send", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Rule: each write of a batch gets its own outcome: a result, a rule
// violation inside its result, or the cluster error the leader gave for it.
func TestForwarder_PerWriteOutcomes(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	ctx := context.Background()

	block := submit(t, f, ctx, "l:1", "/block")
	c1 := s.next(t)
	chs := []<-chan fwdResult{
		submit(t, f, ctx, "l:1", "/ok"),
		submit(t, f, ctx, "l:1", "/cas"),
		submit(t, f, ctx, "l:1", "/lost"),
		submit(t, f, ctx, "l:1", "/notleader"),
	}
	c1.ok(1)
	wait(t, block)
	c2 := s.next(t)
	casErr := &proto.Error{Code: proto.Error_FAILED_PRECONDITION, Message: "compare failed", Field: "cas_revision", Revision: 7}
	c2.answer <- fakeAnswer{outs: outcomesFromProto([]*proto.ApplyOutcome{
		outcomeToProto(&proto.Result{Revision: 5}, nil),
		outcomeToProto(&proto.Result{Error: casErr}, nil),
		outcomeToProto(nil, fmt.Errorf("%w: leadership lost", ErrIndeterminate)),
		outcomeToProto(nil, ErrNotLeader),
	})}

	if r := wait(t, chs[0]); r.err != nil || r.res.Revision != 5 {
		t.Errorf("/ok: got %v, %v; want revision 5", r.res, r.err)
	}
	if r := wait(t, chs[1]); r.err != nil || !errors.Is(fsm.FromProto(r.res.GetError()), fsm.ErrCompareFailed) {
		t.Errorf("/cas: got %v, %v; want a result carrying the failed compare", r.res, r.err)
	}
	if r := wait(t, chs[2]); !errors.Is(fromStatus(r.err), ErrIndeterminate) {
		t.Errorf("/lost: got %v; want ErrIndeterminate once read as Apply's status", r.err)
	}
	if r := wait(t, chs[3]); !errors.Is(fromStatus(r.err), ErrNotLeader) {
		t.Errorf("/notleader: got %v; want ErrNotLeader (retryable) once read as Apply's status", r.err)
	}
}

// Rule: an error for the whole call is every write's error, read as a
// single forwarded write's would be; a leader that answers the wrong number
// of outcomes leaves every write of the call indeterminate.
func TestForwarder_CallErrors(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	ctx := context.Background()

	a := submit(t, f, ctx, "l:1", "/a")
	c := s.next(t)
	b1 := submit(t, f, ctx, "l:1", "/b1")
	b2 := submit(t, f, ctx, "l:1", "/b2")
	c.answer <- fakeAnswer{err: status.Error(codes.Unavailable, "connection refused")}
	if r := wait(t, a); !errors.Is(fromStatus(r.err), ErrIndeterminate) {
		t.Errorf("unreachable leader: got %v, want ErrIndeterminate", r.err)
	}
	c = s.next(t)
	c.answer <- fakeAnswer{err: status.Error(codes.Unavailable, ErrNotLeader.Error())}
	for _, ch := range []<-chan fwdResult{b1, b2} {
		if r := wait(t, ch); !errors.Is(fromStatus(r.err), ErrNotLeader) {
			t.Errorf("not leader: got %v, want ErrNotLeader", r.err)
		}
	}

	x := submit(t, f, ctx, "l:1", "/x")
	c = s.next(t)
	c.answer <- fakeAnswer{outs: []forwardOutcome{}}
	if r := wait(t, x); !errors.Is(r.err, ErrIndeterminate) {
		t.Errorf("no outcome for the write: got %v, want ErrIndeterminate", r.err)
	}
}

// Rule: a batch holds at most maxCount writes and maxBytes of commands (at
// least one write); the rest wait for the next call, in order.
func TestForwarder_Bounds(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		s := newFakeSender()
		f := newTestForwarder(s)
		f.maxCount = 3
		ctx := context.Background()
		first := submit(t, f, ctx, "l:1", "/0")
		c := s.next(t)
		var chs []<-chan fwdResult
		for i := 1; i <= 7; i++ {
			chs = append(chs, submit(t, f, ctx, "l:1", fmt.Sprintf("/%d", i)))
		}
		c.ok(0)
		wait(t, first)
		for _, want := range [][]string{{"/1", "/2", "/3"}, {"/4", "/5", "/6"}, {"/7"}} {
			c := s.next(t)
			if !equalKeys(c.keys(), want) {
				t.Fatalf("call carries %v, want %v", c.keys(), want)
			}
			c.ok(0)
		}
		for _, ch := range chs {
			if r := wait(t, ch); r.err != nil {
				t.Error(r.err)
			}
		}
	})
	t.Run("bytes", func(t *testing.T) {
		s := newFakeSender()
		f := newTestForwarder(s)
		one := forwardSize(putCmd("/a"), 1<<20)
		f.maxBytes = 2*one + one/2 // two puts fit, three do not
		ctx := context.Background()
		first := submit(t, f, ctx, "l:1", "/0")
		c := s.next(t)
		var chs []<-chan fwdResult
		for _, k := range []string{"/a", "/b", "/c", "/d", "/e"} {
			chs = append(chs, submit(t, f, ctx, "l:1", k))
		}
		big := make(chan fwdResult, 1)
		go func() {
			cmd := &proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{Key: "/big", Value: make([]byte, 4*one)}}}
			res, err := f.forward(ctx, "l:1", cmd)
			big <- fwdResult{res, err}
		}()
		for f.arrivals() < 7 {
			time.Sleep(time.Millisecond)
		}
		chs = append(chs, submit(t, f, ctx, "l:1", "/f"))
		c.ok(0)
		wait(t, first)
		for _, want := range [][]string{{"/a", "/b"}, {"/c", "/d"}, {"/e"}, {"/big"}, {"/f"}} {
			c := s.next(t)
			if !equalKeys(c.keys(), want) {
				t.Fatalf("call carries %v, want %v", c.keys(), want)
			}
			c.ok(0)
		}
		if r := wait(t, big); r.err != nil {
			t.Error(r.err)
		}
		for _, ch := range chs {
			if r := wait(t, ch); r.err != nil {
				t.Error(r.err)
			}
		}
	})
	t.Run("a result that carries values travels alone", func(t *testing.T) {
		max := maxForwardBatchBytes
		prev := &proto.Command{Cmd: &proto.Command_Put{Put: &proto.PutRequest{Key: "/p", PrevKv: true}}}
		get := &proto.Command{Cmd: &proto.Command_Txn{Txn: &proto.TxnRequest{
			Failure: []*proto.Op{{Type: proto.Op_PUT, Key: "/x"}, {Type: proto.Op_GET, Key: "/x"}}}}}
		puts := &proto.Command{Cmd: &proto.Command_Txn{Txn: &proto.TxnRequest{
			Success: []*proto.Op{{Type: proto.Op_PUT, Key: "/x"}, {Type: proto.Op_DELETE, Key: "/y"}}}}}
		if forwardSize(prev, max) != max || forwardSize(get, max) != max {
			t.Error("a put with prev_kv and a txn with a get should each count as a full batch")
		}
		if forwardSize(puts, max) >= max || forwardSize(putCmd("/a"), max) >= max {
			t.Error("a plain put and a txn without a get should count their size")
		}
	})
}

// Rule: a write whose context ends while it is queued is never sent and
// reports errNotForwarded with its context's error.
func TestForwarder_CancelWhileQueued(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	ctx := context.Background()

	first := submit(t, f, ctx, "l:1", "/a")
	c := s.next(t)
	cctx, cancel := context.WithCancel(ctx)
	b := submit(t, f, cctx, "l:1", "/b")
	dctx := newExpiring()
	d := submit(t, f, dctx, "l:1", "/d")
	e := submit(t, f, ctx, "l:1", "/e")
	cancel()
	dctx.expire()
	if r := wait(t, b); !errors.Is(r.err, errNotForwarded) || !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled while queued: got %v, want errNotForwarded and context.Canceled", r.err)
	}
	if r := wait(t, d); !errors.Is(r.err, errNotForwarded) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("deadline while queued: got %v, want errNotForwarded and context.DeadlineExceeded", r.err)
	}
	c.ok(1)
	wait(t, first)
	c = s.next(t)
	if !equalKeys(c.keys(), []string{"/e"}) {
		t.Fatalf("next call carries %v, want only [/e]: given-up writes are not sent", c.keys())
	}
	c.ok(2)
	if r := wait(t, e); r.err != nil {
		t.Error(r.err)
	}

	// A write whose context has already ended is not queued at all.
	if _, err := f.forward(cctx, "l:1", putCmd("/late")); !errors.Is(err, errNotForwarded) {
		t.Errorf("forward with an ended context: got %v, want errNotForwarded", err)
	}
	s.none(t)
	waitIdle(t, f)
}

// Rule: a write whose context ends while its call is in flight returns at
// once with the status a single call would have had (Canceled, or
// DeadlineExceeded, which fromStatus reads as indeterminate); the others of
// the call still get their outcome, and the call itself is cancelled only
// once every write in it has been given up.
func TestForwarder_CancelInFlight(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	ctx := context.Background()

	first := submit(t, f, ctx, "l:1", "/0")
	c0 := s.next(t)
	actx, acancel := context.WithCancel(ctx)
	a := submit(t, f, actx, "l:1", "/a")
	bctx := newExpiring()
	b := submit(t, f, bctx, "l:1", "/b")
	keep := submit(t, f, ctx, "l:1", "/keep")
	c0.ok(0)
	wait(t, first)
	c := s.next(t)
	if !equalKeys(c.keys(), []string{"/a", "/b", "/keep"}) {
		t.Fatalf("call carries %v", c.keys())
	}
	acancel()
	bctx.expire()
	if r := wait(t, a); status.Code(r.err) != codes.Canceled {
		t.Errorf("cancelled in flight: got %v, want status Canceled", r.err)
	}
	if r := wait(t, b); status.Code(r.err) != codes.DeadlineExceeded || !errors.Is(fromStatus(r.err), ErrIndeterminate) {
		t.Errorf("deadline in flight: got %v, want status DeadlineExceeded, read as ErrIndeterminate", r.err)
	}
	if c.ctx.Err() != nil {
		t.Fatal("the call was cancelled while one of its writes still waits")
	}
	c.ok(30)
	if r := wait(t, keep); r.err != nil || r.res.Revision != 32 {
		t.Errorf("/keep: got %v, %v; want revision 32", r.res, r.err)
	}

	// Every write of a call given up: the call is cancelled.
	x0 := submit(t, f, ctx, "l:1", "/x0")
	c0 = s.next(t)
	xctx, xcancel := context.WithCancel(ctx)
	x1 := submit(t, f, xctx, "l:1", "/x1")
	x2 := submit(t, f, xctx, "l:1", "/x2")
	c0.ok(0)
	wait(t, x0)
	c = s.next(t)
	xcancel()
	wait(t, x1)
	wait(t, x2)
	select {
	case <-c.ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call not cancelled once every write in it was given up")
	}
	c.answer <- fakeAnswer{err: status.FromContextError(c.ctx.Err()).Err()}
	s.none(t)
	waitIdle(t, f)
}

// expiring is a context that the test ends, as a deadline would end it.
type expiring struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newExpiring() *expiring {
	return &expiring{Context: context.Background(), done: make(chan struct{})}
}

func (e *expiring) Done() <-chan struct{} { return e.done }

func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (e *expiring) expire() { e.once.Do(func() { close(e.done) }) }

// Rule: a call ends at the latest deadline of its writes, and has none when
// one of them has none.
func TestForwarder_CallDeadline(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	ctx := context.Background()
	first := submit(t, f, ctx, "l:1", "/0")
	c0 := s.next(t)
	if _, ok := c0.ctx.Deadline(); ok {
		t.Error("a call of writes without deadlines has a deadline")
	}
	near, cancel1 := context.WithTimeout(ctx, time.Minute)
	defer cancel1()
	far, cancel2 := context.WithTimeout(ctx, time.Hour)
	defer cancel2()
	a := submit(t, f, near, "l:1", "/a")
	b := submit(t, f, far, "l:1", "/b")
	c0.ok(0)
	wait(t, first)
	c := s.next(t)
	want, _ := far.Deadline()
	if got, ok := c.ctx.Deadline(); !ok || !got.Equal(want) {
		t.Errorf("call deadline %v (%v), want the latest of its writes, %v", got, ok, want)
	}
	c.ok(0)
	wait(t, a)
	wait(t, b)
}

// Rule: each leader address has its own queue; with several calls allowed
// in flight a write is sent at once while one is free.
func TestForwarder_LanesAndCallsInFlight(t *testing.T) {
	s := newFakeSender()
	f := newTestForwarder(s)
	f.maxCalls = 2
	ctx := context.Background()

	a := submit(t, f, ctx, "l:1", "/a")
	ca := s.next(t)
	b := submit(t, f, ctx, "l:1", "/b")
	cb := s.next(t) // a second call at once: one was free
	c := submit(t, f, ctx, "l:1", "/c")
	d := submit(t, f, ctx, "l:1", "/d")
	other := submit(t, f, ctx, "l:2", "/other")
	co := s.next(t)
	if co.addr != "l:2" || !equalKeys(co.keys(), []string{"/other"}) {
		t.Fatalf("got a call to %s with %v, want l:2 with [/other]", co.addr, co.keys())
	}
	s.none(t)
	cb.ok(0)
	ccd := s.next(t)
	if ccd.addr != "l:1" || !equalKeys(ccd.keys(), []string{"/c", "/d"}) {
		t.Fatalf("got a call to %s with %v, want l:1 with [/c /d]", ccd.addr, ccd.keys())
	}
	ca.ok(0)
	co.ok(0)
	ccd.ok(0)
	for _, ch := range []<-chan fwdResult{a, b, c, d, other} {
		if r := wait(t, ch); r.err != nil {
			t.Error(r.err)
		}
	}
	waitIdle(t, f)
}

// orderSender answers at once and records the order in which it received
// commands (it stands for the leader's Raft log).
type orderSender struct {
	mu   sync.Mutex
	log  []string
	busy bool
}

func (s *orderSender) applyBatch(ctx context.Context, _ string, cmds []*proto.Command) ([]forwardOutcome, error) {
	s.mu.Lock()
	if s.busy {
		s.mu.Unlock()
		return nil, errors.New("two calls in flight at once")
	}
	s.busy = true
	outs := make([]forwardOutcome, len(cmds))
	for i, c := range cmds {
		s.log = append(s.log, c.GetPut().GetKey())
		outs[i].res = &proto.Result{Revision: uint64(len(s.log))}
	}
	s.mu.Unlock()
	time.Sleep(100 * time.Microsecond)
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
	return outs, nil
}

// Rule: under concurrent load, each client's sequential writes reach the
// leader in the client's order, each write's result is its own, and never
// more than one call is in flight.
func TestForwarder_SequentialWritesKeepTheirOrder(t *testing.T) {
	s := &orderSender{}
	f := newTestForwarder(s)
	const clients, writes = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := range writes {
				key := fmt.Sprintf("/c%02d/%04d", c, i)
				res, err := f.forward(context.Background(), "l:1", putCmd(key))
				if err != nil {
					errs <- err
					return
				}
				s.mu.Lock()
				got := s.log[res.Revision-1]
				s.mu.Unlock()
				if got != key || res.Revision <= last {
					errs <- fmt.Errorf("%s got the result of %s (revision %d after %d)", key, got, res.Revision, last)
					return
				}
				last = res.Revision
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next := make([]int, clients)
	for _, key := range s.log {
		var c, i int
		fmt.Sscanf(key, "/c%02d/%04d", &c, &i)
		if i != next[c] {
			t.Fatalf("client %d's write %d reached the leader when %d was due", c, i, next[c])
		}
		next[c]++
	}
	if len(s.log) != clients*writes {
		t.Fatalf("leader got %d writes, want %d", len(s.log), clients*writes)
	}
	waitIdle(t, f)
}

// A connection asked for after the pool is closed is closed too: nothing
// is left open by a forwarder draining at shutdown.
func TestPeerPool_NoConnectionAfterClose(t *testing.T) {
	p := newPeerPool()
	p.conn("127.0.0.1:1")
	p.close()
	c := p.conn("127.0.0.1:2")
	if got := c.GetState().String(); got != "SHUTDOWN" {
		t.Fatalf("connection after close is %s, want SHUTDOWN", got)
	}
	if len(p.conns) != 0 {
		t.Fatalf("pool holds %d connections after close", len(p.conns))
	}
}
