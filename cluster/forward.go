package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"

	"github.com/dux-io/dux/proto"
)

// Bounds of one forwarded batch. The byte bound stays well below the
// smallest message a member accepts (1 MiB plus four values); a command
// larger than it travels alone, as every command did before batching.
const (
	maxForwardBatch      = 256
	maxForwardBatchBytes = 512 << 10
	// forwardCallsPerLeader is how many batches may be in flight to one
	// leader at a time: one, so that while it is in flight the next batch
	// gathers (group commit).
	forwardCallsPerLeader = 1
)

// forwardSender sends commands to the leader at addr in one call. It
// returns one outcome per command, in order, or an error for the whole call
// (which then is every command's outcome).
type forwardSender interface {
	applyBatch(ctx context.Context, addr string, cmds []*proto.Command) ([]forwardOutcome, error)
}

// forwardOutcome is what became of one forwarded command: its result, or the
// error a single forwarded Apply would have returned (a gRPC status from the
// leader, for fromStatus to read).
type forwardOutcome struct {
	res *proto.Result
	err error
}

// errNotForwarded is returned when a write's context ended while it waited
// for its batch: it was never sent, so it certainly did not apply.
var errNotForwarded = errors.New("cluster: the write was not forwarded before its context ended")

// forwarder coalesces the writes a follower forwards to the leader. A write
// to a leader that has no call in flight is sent at once, alone; writes
// that arrive while a call is in flight wait, and all of them (up to
// maxCount commands and maxBytes) go in the next call when it returns. No
// write ever waits for a batch to fill.
//
// Each write keeps its own outcome. Writes leave in the order they arrived
// and the leader proposes a batch in that order, so a client's sequential
// writes (each sent after the previous one returned) reach Raft in order.
type forwarder struct {
	send     forwardSender
	maxCount int
	maxBytes int
	maxCalls int // calls in flight per leader

	mu      sync.Mutex
	lanes   map[string]*fwdLane // by leader address; present while a sender runs
	arrived int                 // writes ever queued, for tests to follow
}

func newForwarder(send forwardSender) *forwarder {
	return &forwarder{send: send, maxCount: maxForwardBatch, maxBytes: maxForwardBatchBytes,
		maxCalls: forwardCallsPerLeader, lanes: make(map[string]*fwdLane)}
}

// fwdLane is the queue of writes for one leader address.
type fwdLane struct {
	queue   []*fwdItem
	senders int // goroutines sending this lane's batches
}

type fwdState int

const (
	fwdQueued    fwdState = iota // waiting for a batch
	fwdSent                      // in a call in flight
	fwdAbandoned                 // its caller gave up
	fwdDone                      // its outcome is set
)

type fwdItem struct {
	ctx  context.Context
	cmd  *proto.Command
	size int
	done chan struct{} // closed once out is set

	// guarded by forwarder.mu
	state fwdState
	call  *fwdCall
	out   forwardOutcome
}

// fwdCall is one batch in flight.
type fwdCall struct {
	waiting int // items still waiting for its outcome
	cancel  context.CancelFunc
}

// forward sends cmd to the leader at addr with other writes waiting for
// the same leader, and returns its outcome. When ctx ends first: a write
// still queued is dropped and errNotForwarded returned (wrapping ctx's
// error); a write in flight returns the status a single call cancelled
// in flight would have (Canceled or DeadlineExceeded), and its outcome is
// unknown. A call whose writes have all been given up is cancelled.
func (f *forwarder) forward(ctx context.Context, addr string, cmd *proto.Command) (*proto.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotForwarded, err)
	}
	it := &fwdItem{ctx: ctx, cmd: cmd, size: forwardSize(cmd, f.maxBytes), done: make(chan struct{})}
	f.mu.Lock()
	l := f.lanes[addr]
	if l == nil {
		l = &fwdLane{}
		f.lanes[addr] = l
	}
	l.queue = append(l.queue, it)
	f.arrived++
	if l.senders < f.maxCalls {
		l.senders++
		go f.run(addr, l)
	}
	f.mu.Unlock()

	select {
	case <-it.done:
		return it.out.res, it.out.err
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch it.state {
	case fwdQueued:
		it.state = fwdAbandoned
		it.cmd = nil
		return nil, fmt.Errorf("%w: %w", errNotForwarded, ctx.Err())
	case fwdSent:
		it.state = fwdAbandoned
		if it.call.waiting--; it.call.waiting == 0 {
			it.call.cancel()
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	default: // done while we took the lock
		return it.out.res, it.out.err
	}
}

// forwardSize is what cmd counts against a batch's byte bound. A command
// whose result can carry values (a put asking for the previous value, a
// transaction with a get) counts as a full batch, so that it travels alone
// and a batch's answer stays as small as its commands.
func forwardSize(cmd *proto.Command, maxBytes int) int {
	switch c := cmd.Cmd.(type) {
	case *proto.Command_Put:
		if c.Put.GetPrevKv() {
			return maxBytes
		}
	case *proto.Command_Txn:
		for _, ops := range [][]*proto.Op{c.Txn.GetSuccess(), c.Txn.GetFailure()} {
			for _, op := range ops {
				if op.GetType() == proto.Op_GET {
					return maxBytes
				}
			}
		}
	}
	return gproto.Size(cmd)
}

// run sends the lane's queue in batches until it is empty.
func (f *forwarder) run(addr string, l *fwdLane) {
	for {
		f.mu.Lock()
		batch := f.take(l)
		if len(batch) == 0 {
			if l.senders--; l.senders == 0 && len(l.queue) == 0 {
				delete(f.lanes, addr)
			}
			f.mu.Unlock()
			return
		}
		ctx, cancel := callContext(batch)
		call := &fwdCall{waiting: len(batch), cancel: cancel}
		cmds := make([]*proto.Command, len(batch))
		for i, it := range batch {
			it.state = fwdSent
			it.call = call
			cmds[i] = it.cmd
		}
		f.mu.Unlock()

		outs, err := f.send.applyBatch(ctx, addr, cmds)
		cancel()
		if err == nil && len(outs) != len(cmds) {
			err = fmt.Errorf("%w: the leader answered %d outcomes for %d writes", ErrIndeterminate, len(outs), len(cmds))
		}

		f.mu.Lock()
		for i, it := range batch {
			if it.state != fwdSent {
				continue // abandoned
			}
			it.state = fwdDone
			if err != nil {
				it.out = forwardOutcome{err: err}
			} else {
				it.out = outs[i]
			}
			close(it.done)
		}
		f.mu.Unlock()
	}
}

// take removes the next batch from the lane's queue: the oldest waiting
// writes, at most maxCount of them and maxBytes together (at least one).
// Writes given up while queued are dropped. Called with f.mu held.
func (f *forwarder) take(l *fwdLane) []*fwdItem {
	var batch []*fwdItem
	bytes, i := 0, 0
	for ; i < len(l.queue) && len(batch) < f.maxCount; i++ {
		it := l.queue[i]
		if it.state == fwdAbandoned {
			continue
		}
		if len(batch) > 0 && bytes+it.size > f.maxBytes {
			break
		}
		batch = append(batch, it)
		bytes += it.size
	}
	rest := copy(l.queue, l.queue[i:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return batch
}

// callContext is the context of one batch's call: it ends at the latest
// deadline of its writes (each write stops waiting at its own), or is
// cancelled once every write has been given up.
func callContext(batch []*fwdItem) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, it := range batch {
		d, ok := it.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// grpcForwardSender sends batches over the Internal service.
type grpcForwardSender struct {
	client func(addr string) proto.InternalClient
}

func (s grpcForwardSender) applyBatch(ctx context.Context, addr string, cmds []*proto.Command) ([]forwardOutcome, error) {
	c := s.client(addr)
	resp, err := c.ApplyBatch(ctx, &proto.ApplyBatchRequest{Commands: cmds})
	if status.Code(err) == codes.Unimplemented {
		// A leader from before ApplyBatch (during a rolling upgrade):
		// nothing was proposed, so send each command on its own.
		return applyEach(ctx, c, cmds), nil
	}
	if err != nil {
		return nil, err
	}
	return outcomesFromProto(resp.Outcomes), nil
}

func applyEach(ctx context.Context, c proto.InternalClient, cmds []*proto.Command) []forwardOutcome {
	outs := make([]forwardOutcome, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i].res, outs[i].err = c.Apply(ctx, &proto.ApplyRequest{Command: cmd})
		}()
	}
	wg.Wait()
	return outs
}

// outcomeToProto is the leader's side of an outcome: a result (a rule
// violation inside it), or the status the Apply call would have returned.
func outcomeToProto(res *proto.Result, err error) *proto.ApplyOutcome {
	if err == nil {
		return &proto.ApplyOutcome{Result: res}
	}
	st := status.Convert(toStatus(err))
	return &proto.ApplyOutcome{Code: uint32(st.Code()), Message: st.Message()}
}

func outcomesFromProto(pos []*proto.ApplyOutcome) []forwardOutcome {
	outs := make([]forwardOutcome, len(pos))
	for i, o := range pos {
		switch {
		case o.GetCode() != uint32(codes.OK):
			outs[i].err = status.Error(codes.Code(o.GetCode()), o.GetMessage())
		case o.GetResult() == nil:
			outs[i].err = fmt.Errorf("%w: the leader answered neither a result nor an error", ErrIndeterminate)
		default:
			outs[i].res = o.GetResult()
		}
	}
	return outs
}
