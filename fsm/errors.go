package fsm

import (
	"errors"
	"fmt"

	"github.com/dux-io/dux/proto"
)

// Code classifies an Error. Callers map it to gRPC and HTTP status codes.
type Code int

const (
	// CodeInvalid is bad input: a malformed key, invalid JSON, an oversized value.
	CodeInvalid Code = iota + 1
	// CodeNotFound is a key or lease that does not exist.
	CodeNotFound
	// CodeFailedPrecondition is a compare that did not hold.
	CodeFailedPrecondition
)

// Sentinel errors, matched with errors.Is against any *Error of the same code.
var (
	ErrInvalid        = &Error{Code: CodeInvalid, Message: "fsm: invalid argument"}
	ErrNotFound       = &Error{Code: CodeNotFound, Message: "fsm: not found"}
	ErrCompareFailed  = &Error{Code: CodeFailedPrecondition, Message: "fsm: compare failed"}
	errUnknownCommand = errors.New("fsm: unknown command")
)

// Error is a typed StateStore error: what went wrong, and where.
type Error struct {
	Code Code
	// Message says what went wrong, for a human.
	Message string
	// Field names the part of the request at fault ("key", "value", "lease").
	Field string
	// Revision is the key's current mod revision when a compare failed.
	Revision uint64
}

// Error returns the message; the field is reported separately.
func (e *Error) Error() string { return e.Message }

// Is reports whether target is an *Error of the same code, so that
// errors.Is(err, fsm.ErrNotFound) matches every not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(field, format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Field: field, Message: fmt.Sprintf(format, args...)}
}

func compareFailed(key string, current uint64) *Error {
	return &Error{
		Code:     CodeFailedPrecondition,
		Field:    "cas_revision",
		Message:  fmt.Sprintf("compare failed on %s: current mod revision is %d", key, current),
		Revision: current,
	}
}

// ToProto encodes err for a Result; nil stays nil.
func ToProto(err *Error) *proto.Error {
	if err == nil {
		return nil
	}
	code := proto.Error_UNKNOWN
	switch err.Code {
	case CodeInvalid:
		code = proto.Error_INVALID_ARGUMENT
	case CodeNotFound:
		code = proto.Error_NOT_FOUND
	case CodeFailedPrecondition:
		code = proto.Error_FAILED_PRECONDITION
	}
	return &proto.Error{Code: code, Message: err.Message, Field: err.Field, Revision: err.Revision}
}

// FromProto decodes a Result's error; nil stays nil.
func FromProto(p *proto.Error) error {
	if p == nil {
		return nil
	}
	e := &Error{Message: p.Message, Field: p.Field, Revision: p.Revision}
	switch p.Code {
	case proto.Error_INVALID_ARGUMENT:
		e.Code = CodeInvalid
	case proto.Error_NOT_FOUND:
		e.Code = CodeNotFound
	case proto.Error_FAILED_PRECONDITION:
		e.Code = CodeFailedPrecondition
	default:
		return fmt.Errorf("fsm: %s", p.Message)
	}
	return e
}
