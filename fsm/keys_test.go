package fsm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// checkInvalid asserts that err is an ErrInvalid *fsm.Error on field.
func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want ErrInvalid on %q", field)
	}
	if !errors.Is(err, fsm.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", err)
	}
	if errors.Is(err, fsm.ErrNotFound) || errors.Is(err, fsm.ErrCompareFailed) {
		t.Errorf("error %v matches a sentinel of another code", err)
	}
	var fe *fsm.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not an *fsm.Error", err, err)
	}
	if got, want := fe.Field, field; got != want {
		t.Errorf("Field = %q, want %q", got, want)
	}
	if got, want := fe.Code, fsm.CodeInvalid; got != want {
		t.Errorf("Code = %v, want %v", got, want)
	}
}

// keyOfLen returns a valid key of exactly n bytes (n >= 2).
func keyOfLen(n int) string {
	return "/" + strings.Repeat("k", n-1)
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		valid bool
	}{
		{"single segment", "/a", true},
		{"nested", "/config/app/db", true},
		{"dots inside a segment", "/a.b/c..d/...", true},
		{"dot prefixed segment", "/.hidden/..x", true},
		{"space and punctuation", "/a b/c-d_e:f@g", true},
		{"unicode", "/ünï/日本/🙂", true},
		{"exactly MaxKeyBytes", keyOfLen(fsm.MaxKeyBytes), true},

		{"empty", "", false},
		{"no leading slash", "a/b", false},
		{"relative dot", "./a", false},
		{"root only", "/", false},
		{"trailing slash", "/a/", false},
		{"double slash", "//a", false},
		{"empty middle segment", "/a//b", false},
		{"dot segment", "/a/./b", false},
		{"final dot segment", "/a/.", false},
		{"dotdot segment", "/a/../b", false},
		{"final dotdot segment", "/..", false},
		{"NUL", "/a\x00b", false},
		{"newline", "/a\nb", false},
		{"tab", "/a\tb", false},
		{"carriage return", "/a\r", false},
		{"DEL", "/a\x7fb", false},
		{"unit separator", "/a\x1f", false},
		{"invalid UTF-8 byte", "/a\xffb", false},
		{"truncated UTF-8 sequence", "/a\xc3", false},
		{"overlong encoding", "/\xc0\xaf", false},
		{"one byte over MaxKeyBytes", keyOfLen(fsm.MaxKeyBytes + 1), false},
		{"far over MaxKeyBytes", keyOfLen(10 * fsm.MaxKeyBytes), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fsm.ValidateKey(tt.key)
			if tt.valid {
				if err != nil {
					t.Fatalf("ValidateKey(%q) = %v, want nil", tt.key, err)
				}
				return
			}
			checkInvalid(t, err, "key")
		})
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		valid  bool
	}{
		{"root selects everything", "/", true},
		{"directory", "/a/", true},
		{"nested directory", "/a/b/c/", true},
		{"without trailing slash", "/a", true},
		{"exactly MaxKeyBytes", keyOfLen(fsm.MaxKeyBytes), true},

		{"empty", "", false},
		{"no leading slash", "a/", false},
		{"double slash", "//", false},
		{"empty segment before trailing slash", "/a//", false},
		{"dot segment", "/./", false},
		{"dotdot segment", "/a/../", false},
		{"control character", "/a\n/", false},
		{"invalid UTF-8", "/\xff/", false},
		{"over MaxKeyBytes", keyOfLen(fsm.MaxKeyBytes + 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fsm.ValidatePrefix(tt.prefix)
			if tt.valid {
				if err != nil {
					t.Fatalf("ValidatePrefix(%q) = %v, want nil", tt.prefix, err)
				}
				return
			}
			checkInvalid(t, err, "key")
		})
	}
}

// jsonOfLen returns a JSON string document of exactly n bytes (n >= 2).
func jsonOfLen(n int) []byte {
	return []byte(`"` + strings.Repeat("v", n-2) + `"`)
}

func TestValidateValue(t *testing.T) {
	const small = 16
	tests := []struct {
		name  string
		value []byte
		max   int
		valid bool
	}{
		{"object", []byte(`{"image":"nginx","replicas":3}`), fsm.DefaultMaxValueBytes, true},
		{"empty object", []byte(`{}`), fsm.DefaultMaxValueBytes, true},
		{"array", []byte(`[1,"two",{"three":3}]`), fsm.DefaultMaxValueBytes, true},
		{"string", []byte(`"hello"`), fsm.DefaultMaxValueBytes, true},
		{"number", []byte(`-12.5e3`), fsm.DefaultMaxValueBytes, true},
		{"true", []byte(`true`), fsm.DefaultMaxValueBytes, true},
		{"null", []byte(`null`), fsm.DefaultMaxValueBytes, true},
		{"surrounding whitespace", []byte(" {\"a\": 1}\n"), fsm.DefaultMaxValueBytes, true},
		{"exactly the small limit", jsonOfLen(small), small, true},
		{"exactly DefaultMaxValueBytes", jsonOfLen(fsm.DefaultMaxValueBytes), fsm.DefaultMaxValueBytes, true},

		{"nil", nil, fsm.DefaultMaxValueBytes, false},
		{"empty", []byte{}, fsm.DefaultMaxValueBytes, false},
		{"only whitespace", []byte("  "), fsm.DefaultMaxValueBytes, false},
		{"unterminated object", []byte(`{"a":1`), fsm.DefaultMaxValueBytes, false},
		{"missing value", []byte(`{"a":}`), fsm.DefaultMaxValueBytes, false},
		{"bare word", []byte(`hello`), fsm.DefaultMaxValueBytes, false},
		{"single quotes", []byte(`{'a':1}`), fsm.DefaultMaxValueBytes, false},
		{"two documents", []byte(`{} {}`), fsm.DefaultMaxValueBytes, false},
		{"trailing comma", []byte(`[1,2,]`), fsm.DefaultMaxValueBytes, false},
		{"one byte over the small limit", jsonOfLen(small + 1), small, false},
		{"one byte over DefaultMaxValueBytes", jsonOfLen(fsm.DefaultMaxValueBytes + 1), fsm.DefaultMaxValueBytes, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fsm.ValidateValue(tt.value, tt.max)
			if tt.valid {
				if err != nil {
					t.Fatalf("ValidateValue(%d bytes, %d) = %v, want nil", len(tt.value), tt.max, err)
				}
				return
			}
			checkInvalid(t, err, "value")
		})
	}
}

func TestError_IsMatchesByCode(t *testing.T) {
	sentinels := map[fsm.Code]error{
		fsm.CodeInvalid:            fsm.ErrInvalid,
		fsm.CodeNotFound:           fsm.ErrNotFound,
		fsm.CodeFailedPrecondition: fsm.ErrCompareFailed,
	}
	for code := range sentinels {
		err := fmt.Errorf("wrapped: %w", &fsm.Error{Code: code, Field: "f", Message: "m"})
		for other, sentinel := range sentinels {
			if got, want := errors.Is(err, sentinel), code == other; got != want {
				t.Errorf("errors.Is(code %d, sentinel code %d) = %v, want %v", code, other, got, want)
			}
		}
	}
	if errors.Is(errors.New("fsm: not found"), fsm.ErrNotFound) {
		t.Errorf("a plain error with the same text matches ErrNotFound")
	}
}

// Error() is the message alone; the field travels separately in Field.
func TestError_Message(t *testing.T) {
	err := &fsm.Error{Code: fsm.CodeInvalid, Field: "key", Message: "key is empty"}
	if got, want := err.Error(), "key is empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := fsm.ValidateKey(""); got == nil || got.Error() == "" {
		t.Errorf("ValidateKey(\"\") = %v, want an error with a message", got)
	}
}

func TestError_ProtoRoundTrip(t *testing.T) {
	tests := []struct {
		err      *fsm.Error
		wantCode proto.Error_Code
		sentinel error
	}{
		{&fsm.Error{Code: fsm.CodeInvalid, Field: "key", Message: "bad"}, proto.Error_INVALID_ARGUMENT, fsm.ErrInvalid},
		{&fsm.Error{Code: fsm.CodeNotFound, Field: "lease", Message: "no lease"}, proto.Error_NOT_FOUND, fsm.ErrNotFound},
		{&fsm.Error{Code: fsm.CodeFailedPrecondition, Field: "cas_revision", Message: "cmp", Revision: 42}, proto.Error_FAILED_PRECONDITION, fsm.ErrCompareFailed},
	}
	for _, tt := range tests {
		p := fsm.ToProto(tt.err)
		if p.Code != tt.wantCode {
			t.Errorf("ToProto(%v).Code = %v, want %v", tt.err, p.Code, tt.wantCode)
		}
		back := fsm.FromProto(p)
		var fe *fsm.Error
		if !errors.As(back, &fe) {
			t.Fatalf("FromProto(%v) = %T, want *fsm.Error", p, back)
		}
		if *fe != *tt.err {
			t.Errorf("round trip = %+v, want %+v", *fe, *tt.err)
		}
		if !errors.Is(back, tt.sentinel) {
			t.Errorf("errors.Is(%v, %v) = false, want true", back, tt.sentinel)
		}
	}

	if got := fsm.ToProto(nil); got != nil {
		t.Errorf("ToProto(nil) = %v, want nil", got)
	}
	if got := fsm.FromProto(nil); got != nil {
		t.Errorf("FromProto(nil) = %v, want nil", got)
	}
	unknown := fsm.FromProto(&proto.Error{Code: proto.Error_UNKNOWN, Message: "boom"})
	if unknown == nil || errors.Is(unknown, fsm.ErrInvalid) || errors.Is(unknown, fsm.ErrNotFound) || errors.Is(unknown, fsm.ErrCompareFailed) {
		t.Errorf("FromProto(UNKNOWN) = %v, want a non-nil error matching no sentinel", unknown)
	}
}
