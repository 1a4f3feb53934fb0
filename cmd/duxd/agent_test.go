package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// Rule: the agent makes its Docker client whether or not the engine
// answers at start (the executor asks on every pass, so an engine that
// starts later is used); only --no-docker goes without, and a DOCKER_HOST
// that names no engine at all is an error, not a silent "no Docker".
func TestAgentFlags_DockerClientWithoutEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "docker.sock"))
	f := &agentFlags{}
	rt, err := f.docker()
	if err != nil || rt == nil {
		t.Fatalf("docker() with no engine yet: %v, %v; want a client", rt, err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); err == nil {
		t.Errorf("ping of a socket that does not exist succeeded")
	}

	f.noDocker = true
	if rt, err := f.docker(); rt != nil || err != nil {
		t.Errorf("docker() with --no-docker: %v, %v; want none", rt, err)
	}

	f.noDocker = false
	t.Setenv("DOCKER_HOST", "no-scheme-here")
	if rt, err := f.docker(); err == nil {
		rt.Close()
		t.Errorf("docker() with a malformed DOCKER_HOST: no error")
	}
}
