package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// Rule: the prefix itself serves index.html, which loads the app's own
// script and stylesheet and nothing from elsewhere.
func TestHandler_ServesIndex(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/ui/", "/ui/index.html"} {
		rec := get(t, h, "GET", path)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", path, rec.Code)
		}
		if got, want := rec.Header().Get("Content-Type"), "text/html; charset=utf-8"; got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want)
		}
		body, _ := io.ReadAll(rec.Body)
		for _, want := range []string{`<script type="module" src="js/app.js">`, `href="style.css"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("GET %s: body lacks %q", path, want)
			}
		}
		if strings.Contains(string(body), "://") {
			t.Errorf("GET %s: index.html refers to another origin", path)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
}

// Rule: scripts and stylesheets go out with their real types (a module
// script with a wrong type is refused by the browser).
func TestHandler_ContentTypes(t *testing.T) {
	h := Handler()
	for path, want := range map[string]string{
		"/ui/style.css":        "text/css; charset=utf-8",
		"/ui/js/app.js":        "text/javascript; charset=utf-8",
		"/ui/js/state.js":      "text/javascript; charset=utf-8",
		"/ui/js/api.js":        "text/javascript; charset=utf-8",
		"/ui/js/tree.js":       "text/javascript; charset=utf-8",
		"/ui/js/live.js":       "text/javascript; charset=utf-8",
		"/ui/js/cluster.js":    "text/javascript; charset=utf-8",
		"/ui/js/components.js": "text/javascript; charset=utf-8",
		"/ui/js/channels.js":   "text/javascript; charset=utf-8",
		"/ui/js/graph.js":      "text/javascript; charset=utf-8",
		"/ui/js/dom.js":        "text/javascript; charset=utf-8",
		"/ui/favicon.svg":      "image/svg+xml",
	} {
		rec := get(t, h, "GET", path)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
		if rec.Body.Len() == 0 {
			t.Errorf("GET %s: empty body", path)
		}
	}
}

// Rule: anything not embedded is a 404, including directories and paths
// that try to climb out of the asset tree.
func TestHandler_UnknownIs404(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/ui/nope.js", "/ui/js/", "/ui/js", "/ui/../ui.go", "/ui/static/index.html", "/other"} {
		if rec := get(t, h, "GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, rec.Code)
		}
	}
	if rec := get(t, h, "POST", "/ui/"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: got %d, want 405", rec.Code)
	}
}

// Rule: a browser revalidates with the ETag and gets 304 while the asset
// is unchanged.
func TestHandler_ETag(t *testing.T) {
	h := Handler()
	rec := get(t, h, "GET", "/ui/js/app.js")
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if rec := get(t, h, "GET", "/ui/js/app.js", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match: got %d, want 304", rec.Code)
	}
}

// Rule (DESIGN.md, "Untrusted data"): every name and value from the
// cluster reaches the page as text; no script parses markup.
func TestAssets_NoMarkupFromStrings(t *testing.T) {
	assets, err := load(static)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range assets {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		for i, line := range strings.Split(string(a.body), "\n") {
			code := strings.TrimSpace(line)
			if strings.HasPrefix(code, "//") || strings.HasPrefix(code, "*") || strings.HasPrefix(code, "/*") {
				continue // a comment may name what the code avoids
			}
			for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "createContextualFragment"} {
				if strings.Contains(code, sink) {
					t.Errorf("%s:%d uses %s", name, i+1, sink)
				}
			}
		}
	}
}
