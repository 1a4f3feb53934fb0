package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/fsm"
)

// Rule: one table maps every error to its gRPC code and HTTP status, with
// the field at fault and, for a failed compare, the current revision.
func TestToHTTP_MapsEveryErrorKind(t *testing.T) {
	cases := []struct {
		err      error
		status   int
		code     string
		field    string
		revision uint64
	}{
		{&fsm.Error{Code: fsm.CodeInvalid, Field: "key", Message: "bad key"}, 400, "invalid_argument", "key", 0},
		{&fsm.Error{Code: fsm.CodeNotFound, Field: "key", Message: "no key"}, 404, "not_found", "key", 0},
		{&fsm.Error{Code: fsm.CodeFailedPrecondition, Field: "cas_revision", Revision: 42}, 409, "failed_precondition", "cas_revision", 42},
		{fmt.Errorf("wrapped: %w", cluster.ErrNoLeader), 503, "unavailable", "", 0},
		{cluster.ErrIndeterminate, 503, "unavailable", "", 0},
		{fmt.Errorf("restore: %w", fsm.ErrBadSnapshot), 400, "invalid_argument", "", 0},
		{context.DeadlineExceeded, 504, "deadline_exceeded", "", 0},
		{status.Error(codes.NotFound, "from the leader"), 404, "not_found", "", 0},
		{errors.New("disk on fire"), 500, "internal", "", 0},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			st, body := toHTTP(c.err)
			if st != c.status || body.Error.Code != c.code || body.Error.Field != c.field || body.Error.Revision != c.revision {
				t.Fatalf("toHTTP(%v) = %d %+v, want %d %s field %q revision %d",
					c.err, st, body.Error, c.status, c.code, c.field, c.revision)
			}
		})
	}
}

// Rule: a snapshot cut into chunks is joined back byte for byte.
func TestChunks_RoundTrip(t *testing.T) {
	data := make([]byte, 3*snapshotChunk+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var chunks [][]byte
	w := &chunkWriter{send: func(b []byte) error {
		chunks = append(chunks, append([]byte(nil), b...))
		return nil
	}}
	for off := 0; off < len(data); off += 1000 {
		if _, err := w.Write(data[off:min(off+1000, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 4 {
		t.Fatalf("got %d chunks, want 4", len(chunks))
	}
	i := 0
	r := &chunkReader{recv: func() ([]byte, error) {
		if i == len(chunks) {
			return nil, errEOF
		}
		i++
		return chunks[i-1], nil
	}}
	got := make([]byte, 0, len(data))
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != string(data) {
		t.Fatalf("round trip changed the data (%d bytes, want %d)", len(got), len(data))
	}
}

var errEOF = errors.New("EOF")
