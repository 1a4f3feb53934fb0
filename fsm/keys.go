package fsm

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

const (
	// MaxKeyBytes is the longest key accepted.
	MaxKeyBytes = 1024
	// DefaultMaxValueBytes is the default limit on one value.
	DefaultMaxValueBytes = 1 << 20
)

// ValidateKey checks that key is a slash path: it starts with "/", has no
// empty, "." or ".." segment, no control character, is valid UTF-8 and is at
// most MaxKeyBytes long.
func ValidateKey(key string) error {
	// A trailing "/" is an empty last segment, refused by validatePath.
	return validatePath(key)
}

// ValidatePrefix checks a prefix for listing or deleting: like a key, but it
// may end in "/" (and "/" alone selects everything).
func ValidatePrefix(prefix string) error {
	if prefix == "/" {
		return nil
	}
	if len(prefix) > MaxKeyBytes {
		return invalid("key", "prefix is %d bytes, more than %d", len(prefix), MaxKeyBytes)
	}
	return validatePath(strings.TrimSuffix(prefix, "/"))
}

func validatePath(key string) error {
	switch {
	case key == "":
		return invalid("key", "key is empty")
	case len(key) > MaxKeyBytes:
		return invalid("key", "key is %d bytes, more than %d", len(key), MaxKeyBytes)
	case key[0] != '/':
		return invalid("key", "key %q does not start with \"/\"", key)
	case !utf8.ValidString(key):
		return invalid("key", "key is not valid UTF-8")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return invalid("key", "key %q holds a control character", key)
		}
	}
	for _, seg := range strings.Split(key[1:], "/") {
		switch seg {
		case "":
			return invalid("key", "key %q has an empty segment", key)
		case ".", "..":
			return invalid("key", "key %q has a %q segment", key, seg)
		}
	}
	return nil
}

// ValidateValue checks that value is one JSON document of at most max bytes.
func ValidateValue(value []byte, max int) error {
	if len(value) > max {
		return invalid("value", "value is %d bytes, more than the limit of %d", len(value), max)
	}
	if len(value) == 0 {
		return invalid("value", "value is empty; it must be a JSON document")
	}
	if !json.Valid(value) {
		return invalid("value", "value is not valid JSON")
	}
	return nil
}
