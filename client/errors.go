package client

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/fsm"
)

// ErrUnavailable is matched (with errors.Is) by every error of a request
// that the cluster could not serve: no leader, or no member reachable. The
// error's message says why. A write that failed so may still have been
// applied.
var ErrUnavailable = errors.New("client: unavailable")

// errorDomain is the domain of the ErrorInfo detail on Dux's gRPC errors.
const errorDomain = "dux.v1"

// unavailableError is an Unavailable status that matches ErrUnavailable and
// still yields its status to status.FromError.
type unavailableError struct{ st *status.Status }

func (e *unavailableError) Error() string              { return "unavailable: " + e.st.Message() }
func (e *unavailableError) Unwrap() error              { return ErrUnavailable }
func (e *unavailableError) GRPCStatus() *status.Status { return e.st }

// fromStatus turns a gRPC error into a typed error: the codes that the
// server maps *fsm.Error to become *fsm.Error again, Unavailable matches
// ErrUnavailable, and every other error is returned as is.
//
// A Dux server attaches an ErrorInfo of domain dux.v1 carrying the field at
// fault and, for a failed compare, the current revision. A status of the
// same codes without it (a Dux member passing on an error of another, which
// may drop the detail) still becomes an *fsm.Error, without Field or
// Revision: the gRPC library itself never produces these codes.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var code fsm.Code
	switch st.Code() {
	case codes.InvalidArgument:
		code = fsm.CodeInvalid
	case codes.NotFound:
		code = fsm.CodeNotFound
	case codes.FailedPrecondition:
		code = fsm.CodeFailedPrecondition
	case codes.Unavailable:
		return &unavailableError{st: st}
	default:
		return err
	}
	fe := &fsm.Error{Code: code, Message: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != errorDomain {
			continue
		}
		fe.Field = info.Metadata["field"]
		if r, ok := info.Metadata["revision"]; ok {
			fe.Revision, _ = strconv.ParseUint(r, 10, 64)
		}
	}
	return fe
}

// backoff is how reads are retried on Unavailable.
type backoff struct {
	attempts int           // tries in all, the first included
	first    time.Duration // wait before the first retry; doubled for each next
	max      time.Duration
}

// defaultBackoff waits 50, 100 and 200 ms: long enough to ride out a
// connection that just failed over to another member, short enough that a
// caller without a leader hears about it quickly. An election takes longer;
// callers that want to wait for one retry with their own policy.
var defaultBackoff = backoff{attempts: 4, first: 50 * time.Millisecond, max: time.Second}

// idempotent runs call, an idempotent request, and retries it while it
// fails with Unavailable, as long as ctx allows. It returns the last error,
// typed by fromStatus.
func (b backoff) idempotent(ctx context.Context, call func() error) error {
	wait := b.first
	for attempt := 1; ; attempt++ {
		err := fromStatus(call())
		if err == nil || attempt >= b.attempts || !errors.Is(err, ErrUnavailable) {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // no time left for another try: report the cause, not the deadline
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, b.max)
	}
}
