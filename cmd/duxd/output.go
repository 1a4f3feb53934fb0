package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// kvJSON is a KeyValue as the HTTP API prints it: the value is the JSON
// document itself.
type kvJSON struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value,omitempty"`
	CreateRevision uint64          `json:"create_revision"`
	ModRevision    uint64          `json:"mod_revision"`
	Version        uint64          `json:"version"`
	Lease          uint64          `json:"lease"`
	Origin         string          `json:"origin,omitempty"`
}

func toKVJSON(kv *proto.KeyValue) kvJSON {
	v := json.RawMessage(kv.Value)
	if len(v) > 0 && !json.Valid(v) {
		// Never expected (the store takes JSON only), but a broken value
		// must not break the output: show it as a string.
		v, _ = json.Marshal(string(kv.Value))
	}
	return kvJSON{Key: kv.Key, Value: v, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease, Origin: kv.Origin}
}

func toKVsJSON(kvs []*proto.KeyValue) []kvJSON {
	out := make([]kvJSON, len(kvs)) // [] rather than null when empty
	for i, kv := range kvs {
		out[i] = toKVJSON(kv)
	}
	return out
}

// writeJSON prints v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table prints aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// maxValueCells is how many characters of a value a table shows.
const maxValueCells = 60

// writeKVTable prints keys as a table: KEY, MOD_REV, VERSION, LEASE, VALUE.
func writeKVTable(w io.Writer, kvs []*proto.KeyValue) error {
	t := newTable(w, "KEY", "MOD_REV", "VERSION", "LEASE", "VALUE")
	for _, kv := range kvs {
		lease := "-"
		if kv.Lease != 0 {
			lease = strconv.FormatUint(kv.Lease, 10)
		}
		t.row(kv.Key, u64(kv.ModRevision), u64(kv.Version), lease, truncateValue(kv.Value, maxValueCells))
	}
	return t.flush()
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

// truncateValue shows a JSON value on one line in at most max characters.
func truncateValue(v []byte, max int) string {
	if len(v) == 0 {
		return "" // a keys-only listing
	}
	var s string
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err == nil {
		s = buf.String()
	} else {
		s = strconv.Quote(string(v)) // not JSON: quoted, so it stays on one line
	}
	// Tabs would break the table's columns; compact JSON has none outside
	// strings, where they are escaped.
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-3]) + "..."
}

// presentError words a failed request's error for the terminal:
// "not found: key /x not found". It is never a usage error (exit code 1).
func presentError(err error, addrs []string, timeout time.Duration) error {
	if err == nil {
		return nil
	}
	var fe *fsm.Error
	var msg string
	switch {
	case errors.As(err, &fe):
		msg = codeWords(fe.Code) + ": " + fe.Message
		if fe.Code == fsm.CodeInvalid && fe.Field != "" && !strings.Contains(fe.Message, fe.Field) {
			msg += " (field " + fe.Field + ")"
		}
	case errors.Is(err, client.ErrUnavailable):
		msg = fmt.Sprintf("%v (members tried: %s)", err, strings.Join(addrs, ","))
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("timed out after %s (raise --timeout)", timeout)
	default:
		if st, ok := status.FromError(err); ok {
			if st.Code() == codes.DeadlineExceeded {
				msg = fmt.Sprintf("timed out after %s (raise --timeout)", timeout)
			} else {
				msg = camelWords(st.Code().String()) + ": " + st.Message()
			}
		} else {
			msg = err.Error()
		}
	}
	return &cliError{msg: msg, err: err}
}

// cliError is an error worded for the terminal that still matches its cause.
type cliError struct {
	msg string
	err error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

func codeWords(c fsm.Code) string {
	switch c {
	case fsm.CodeInvalid:
		return "invalid argument"
	case fsm.CodeNotFound:
		return "not found"
	case fsm.CodeFailedPrecondition:
		return "failed precondition"
	}
	return "error"
}

// camelWords turns "PermissionDenied" into "permission denied".
func camelWords(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
