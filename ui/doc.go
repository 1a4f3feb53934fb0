// Package ui is Dux's web UI: static HTML, CSS and JavaScript embedded in
// the binary and served by every member under /ui/. The page talks only to
// the HTTP API of the member that served it (/v1/...); it has no server
// side of its own. See DESIGN.md for how the JavaScript is laid out.
package ui
