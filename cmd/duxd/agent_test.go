package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Rule: the agent's HTTP server serves the web UI under /ui/, sends a
// browser at / there, and leaves every other path, unknown ones included,
// to the API.
func TestWithUI_Routes(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-From", "api")
		w.WriteHeader(http.StatusTeapot)
	})
	h := withUI(api)
	for _, c := range []struct {
		method, path string
		code         int
		check        string // a header to look at: "api", "location" or "html"
	}{
		{"GET", "/ui/", 200, "html"},
		{"GET", "/ui", 302, "location"},
		{"GET", "/", 302, "location"},
		{"HEAD", "/", 302, "location"},
		{"POST", "/", http.StatusTeapot, "api"},
		{"GET", "/v1/state/a", http.StatusTeapot, "api"},
		{"GET", "/nothing", http.StatusTeapot, "api"},
		{"GET", "/v1/state//ui/x", http.StatusTeapot, "api"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.code {
			t.Errorf("%s %s: got %d, want %d", c.method, c.path, rec.Code, c.code)
			continue
		}
		switch c.check {
		case "api":
			if rec.Header().Get("X-From") != "api" {
				t.Errorf("%s %s: not passed to the API", c.method, c.path)
			}
		case "location":
			if got := rec.Header().Get("Location"); got != "/ui/" {
				t.Errorf("%s %s: Location %q, want /ui/", c.method, c.path, got)
			}
		case "html":
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Errorf("%s %s: Content-Type %q", c.method, c.path, rec.Header().Get("Content-Type"))
			}
		}
	}
}
