package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

var testKV = &proto.KeyValue{Key: "/config/app/db", Value: []byte(`{ "host": "db-1", "port": 5432 }`),
	CreateRevision: 4, ModRevision: 9, Version: 3, Lease: 0, Origin: "cli"}

// The JSON of a key is the HTTP API's: same field names, the value as the
// document itself.
func TestOutput_KeyValueJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, toKVJSON(testKV)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"key": "/config/app/db", "value": map[string]any{"host": "db-1", "port": 5432.0},
		"create_revision": 4.0, "mod_revision": 9.0, "version": 3.0, "lease": 0.0, "origin": "cli",
	}
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Errorf("got %s\nwant %s", g, w)
	}

	// Keys only: no value field at all; no origin when none.
	buf.Reset()
	writeJSON(&buf, toKVJSON(&proto.KeyValue{Key: "/k", ModRevision: 1}))
	if s := buf.String(); strings.Contains(s, `"value"`) || strings.Contains(s, `"origin"`) {
		t.Errorf("keys-only JSON: got %s, want no value and no origin", s)
	}
}

func TestOutput_ListJSONHasEmptyItems(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := writeList(&out, &errOut, "json", &proto.ListResponse{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(strings.Fields(out.String()), ""), `{"revision":3,"items":[]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestOutput_KeyValueTable(t *testing.T) {
	long := &proto.KeyValue{Key: "/l", Value: []byte(`"` + strings.Repeat("a", 100) + `"`), ModRevision: 12, Version: 1, Lease: 7}
	var buf bytes.Buffer
	if err := writeKVTable(&buf, []*proto.KeyValue{testKV, long}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"KEY             MOD_REV  VERSION  LEASE  VALUE\n" +
		`/config/app/db  9        3        -      {"host":"db-1","port":5432}` + "\n" +
		`/l              12       1        7      "` + strings.Repeat("a", 56) + "...\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestOutput_TruncateValue(t *testing.T) {
	cases := []struct{ in, want string }{
		{``, ``},
		{`{"a": [1, 2]}`, `{"a":[1,2]}`},
		{"\"tab\\there\"", "\"tab\\there\""},
		{"not\tjson", `"not\tjson"`},
		{`"` + strings.Repeat("é", 70) + `"`, `"` + strings.Repeat("é", 56) + "..."},
	}
	for _, c := range cases {
		if got := truncateValue([]byte(c.in), 60); got != c.want {
			t.Errorf("truncateValue(%q): got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestOutput_PresentError(t *testing.T) {
	addrs := []string{"a:1", "b:2"}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"not found", &fsm.Error{Code: fsm.CodeNotFound, Field: "key", Message: "key /x not found"},
			"not found: key /x not found"},
		{"invalid with field", &fsm.Error{Code: fsm.CodeInvalid, Field: "value", Message: "bad JSON"},
			"invalid argument: bad JSON (field value)"},
		{"compare failed", &fsm.Error{Code: fsm.CodeFailedPrecondition, Field: "cas_revision", Revision: 4, Message: "compare failed on /x: current mod revision is 4"},
			"failed precondition: compare failed on /x: current mod revision is 4"},
		{"unavailable", fmt.Errorf("%w: no leader", client.ErrUnavailable),
			"client: unavailable: no leader (members tried: a:1,b:2)"},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"timed out after 10s (raise --timeout)"},
		{"context deadline", context.DeadlineExceeded, "timed out after 10s (raise --timeout)"},
		{"other status", status.Error(codes.PermissionDenied, "no"), "permission denied: no"},
		{"plain", errors.New("disk full"), "disk full"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := presentError(c.err, addrs, 10*time.Second)
			if got := err.Error(); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			if !errors.Is(err, c.err) {
				t.Errorf("the presented error no longer matches its cause")
			}
			if exitCode(err) != 1 {
				t.Errorf("exit code: got %d, want 1", exitCode(err))
			}
		})
	}
}
