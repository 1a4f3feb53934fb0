package rpc

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
)

// ErrorDomain is the domain of the ErrorInfo detail on Dux's gRPC errors.
const ErrorDomain = "dux.v1"

// One table maps errors to gRPC codes; HTTP statuses follow from the code.
var errorTable = []struct {
	err  error
	code codes.Code
}{
	{fsm.ErrInvalid, codes.InvalidArgument},
	{fsm.ErrNotFound, codes.NotFound},
	{fsm.ErrCompareFailed, codes.FailedPrecondition},
	{fsm.ErrBadSnapshot, codes.InvalidArgument},
	{cluster.ErrNoLeader, codes.Unavailable},
	{cluster.ErrNotLeader, codes.Unavailable},
	{cluster.ErrIndeterminate, codes.Unavailable},
	{cluster.ErrShutdown, codes.Unavailable},
	{cluster.ErrJoin, codes.Unavailable},
	{cluster.ErrUnknownMember, codes.NotFound},
	{cluster.ErrConfig, codes.InvalidArgument},
	{dispatch.ErrCompacted, codes.OutOfRange},
	{dispatch.ErrSlow, codes.ResourceExhausted},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// ToStatus turns a Backend or Subscriber error into a gRPC status. A typed
// error carries an ErrorInfo detail (see errorInfo).
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status, e.g. passed on from the leader
	}
	code := codes.Internal
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	st := status.New(code, err.Error())
	if info := errorInfo(code, err); info != nil {
		if withInfo, derr := st.WithDetails(info); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

// errorInfo carries the data a client needs to act on a typed error: the
// field at fault, a key's current revision, where to resume.
func errorInfo(code codes.Code, err error) *errdetails.ErrorInfo {
	info := &errdetails.ErrorInfo{Reason: code.String(), Domain: ErrorDomain, Metadata: map[string]string{}}
	var (
		fe *fsm.Error
		ce *dispatch.CompactedError
		se *dispatch.SlowError
	)
	switch {
	case errors.As(err, &fe):
		if fe.Field != "" {
			info.Metadata["field"] = fe.Field
		}
		if fe.Code == fsm.CodeFailedPrecondition {
			info.Metadata["revision"] = strconv.FormatUint(fe.Revision, 10)
		}
	case errors.As(err, &ce):
		info.Metadata["oldest_revision"] = strconv.FormatUint(ce.Oldest, 10)
	case errors.As(err, &se):
		info.Metadata["resume_revision"] = strconv.FormatUint(se.Resume, 10)
	default:
		return nil
	}
	return info
}

// httpStatus maps a gRPC code to an HTTP status.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition, codes.Aborted, codes.AlreadyExists:
		return http.StatusConflict
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON of every HTTP error.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	// Code is the gRPC code in snake case: invalid_argument, not_found, ...
	Code     string `json:"code"`
	Message  string `json:"message"`
	Field    string `json:"field,omitempty"`
	Revision uint64 `json:"revision,omitempty"`
	// OldestRevision is the oldest revision a subscription may resume
	// after, when the one asked for has left the replay window.
	OldestRevision uint64 `json:"oldest_revision,omitempty"`
	// ResumeRevision is where a subscriber that was cut off may resume.
	ResumeRevision uint64 `json:"resume_revision,omitempty"`
}

// toHTTP turns a Backend error into an HTTP status and body.
func toHTTP(err error) (int, errorBody) {
	st, _ := status.FromError(ToStatus(err))
	body := errorBody{Error: errorJSON{Code: snake(st.Code()), Message: st.Message()}}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			body.Error.Field = info.Metadata["field"]
			body.Error.Revision, _ = strconv.ParseUint(info.Metadata["revision"], 10, 64)
			body.Error.OldestRevision, _ = strconv.ParseUint(info.Metadata["oldest_revision"], 10, 64)
			body.Error.ResumeRevision, _ = strconv.ParseUint(info.Metadata["resume_revision"], 10, 64)
		}
	}
	return httpStatus(st.Code()), body
}

func snake(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "invalid_argument"
	case codes.NotFound:
		return "not_found"
	case codes.FailedPrecondition:
		return "failed_precondition"
	case codes.Unavailable:
		return "unavailable"
	case codes.DeadlineExceeded:
		return "deadline_exceeded"
	case codes.Canceled:
		return "canceled"
	case codes.ResourceExhausted:
		return "resource_exhausted"
	case codes.OutOfRange:
		return "out_of_range"
	case codes.Unimplemented:
		return "unimplemented"
	}
	return "internal"
}
