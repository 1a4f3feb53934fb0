//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/dux-io/dux/scheduler"
)

// uiWait bounds every wait for the page: generous, because the machine
// running the tests may be slow and shared. Nothing asserts on speed.
const uiWait = 60 * time.Second

// uiArtifacts is where the screenshots go (ignored by git).
const uiArtifacts = "artifacts/ui"

// chromiumPath finds the browser: $DUX_CHROMIUM (set by `make test`
// through scripts/ensure-chromium.sh), else chromium or Chrome on PATH.
// Without one the test skips, unless DUX_REQUIRE_BROWSER=1 or
// DUX_REQUIRE_DOCKER=1 (CI), where that is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DUX_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Logf("DUX_CHROMIUM=%s does not exist; looking on PATH", p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found: run scripts/ensure-chromium.sh (installs Debian's chromium) or set DUX_CHROMIUM"
	if os.Getenv("DUX_REQUIRE_BROWSER") == "1" || os.Getenv("DUX_REQUIRE_DOCKER") == "1" {
		t.Fatalf("%s (DUX_REQUIRE_BROWSER or DUX_REQUIRE_DOCKER is set, so the browser test must run)", msg)
	}
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium tab, with every JavaScript error the
// page reports recorded.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	// The first Do starts the browser and binds it to its context, so it
	// gets the tab's context itself, with no deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Record uncaught exceptions, console.error calls and browser log
	// errors (CSP violations, for one). Failed HTTP responses (a 404 for a
	// key that is not there, the 409 of a conflict) are the API speaking,
	// not page errors, so the network's log entries are left out.
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			b.problem("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					if len(a.Value) > 0 {
						args = append(args, string(a.Value))
					} else {
						args = append(args, a.Description)
					}
				}
				b.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *log.EventEntryAdded:
			if e := ev.Entry; e.Level == log.EntryLevelError && e.Source != log.EntrySourceNetwork {
				b.problem("browser log (%s): %s %s", e.Source, e.Text, e.URL)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// checkProblems fails the test if the page reported any error so far.
func (b *browser) checkProblems(when string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("JavaScript errors %s:\n%s", when, strings.Join(b.problems, "\n"))
	}
}

// do runs actions with a deadline, failing the test on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.checkProblems("before the failure")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// evalJS evaluates a JavaScript expression and decodes its value.
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// text is the text of the first element sel matches, "" if none does.
func (b *browser) text(sel string) string {
	return evalJS[string](b, fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || ""`, js(sel)))
}

// waitFor polls a JavaScript condition until it holds.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(uiWait)
	for {
		if evalJS[bool](b, fmt.Sprintf(`Boolean(%s)`, cond)) {
			return
		}
		if time.Now().After(deadline) {
			b.checkProblems("while waiting")
			b.t.Fatalf("not within %v: %s (%s)", uiWait, what, cond)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits until the element sel matches contains want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%s shows %q", sel, want),
		fmt.Sprintf(`((document.querySelector(%s) || {}).textContent || "").includes(%s)`, js(sel), js(want)))
}

// waitVisible waits until sel matches an element that is laid out.
func (b *browser) waitVisible(sel string) {
	b.t.Helper()
	b.waitFor(sel+" is visible", fmt.Sprintf(`(e => e && e.getClientRects().length > 0)(document.querySelector(%s))`, js(sel)))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.waitVisible(sel)
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// typeInto replaces the text of an input or textarea by typing, as a user
// would (the page sees key and input events).
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.waitVisible(sel)
	// Empty the field as select-all and delete would (an input event).
	evalJS[bool](b, fmt.Sprintf(`(e => { e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true})); return true })(document.querySelector(%s))`, js(sel)))
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// viewport resizes the page, as a narrower or wider window would.
func (b *browser) viewport(w, h int64) {
	b.t.Helper()
	b.do(fmt.Sprintf("viewport %dx%d", w, h), chromedp.EmulateViewport(w, h))
}

// checkFits fails when the page is wider than the window: at any width
// the page must not need a horizontal scroll bar.
func (b *browser) checkFits(where string) {
	b.t.Helper()
	// Let the layout settle after a resize or a redraw.
	time.Sleep(300 * time.Millisecond)
	sw := evalJS[int](b, `document.documentElement.scrollWidth`)
	iw := evalJS[int](b, `window.innerWidth`)
	if sw > iw {
		wide := evalJS[string](b, `[...document.querySelectorAll("body *")]
			.filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
			.slice(0, 5).map(e => e.tagName + "#" + e.id + "." + e.className).join(", ")`)
		b.t.Errorf("%s: page is %d px wide in a %d px window (overflowing: %s)", where, sw, iw, wide)
	}
}

// screenshot saves a PNG of the page (the whole page when full) under
// integration/artifacts/ui/.
func (b *browser) screenshot(name string, full bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiWait)
	defer cancel()
	// Let animations (a highlighted row fading) finish, and move the
	// mouse off whatever it last clicked, so no hover effect shows.
	time.Sleep(2800 * time.Millisecond)
	if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 0, 0)); err != nil {
		b.t.Fatalf("move the mouse away: %v", err)
	}
	action := chromedp.CaptureScreenshot()
	if full {
		action = chromedp.FullScreenshot(100) // quality 100: PNG
	}
	png, err := chromedp.Run(ctx, action)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(uiArtifacts, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(uiArtifacts, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// uiAPI talks to the agent's HTTP API the way a script would.
type uiAPI struct {
	t    *testing.T
	base string
}

// put writes body at key and returns the revision; it retries while the
// member has no leader yet.
func (a uiAPI) put(key, body string) uint64 {
	a.t.Helper()
	var rev uint64
	eventually(a.t, uiWait, func() error {
		code, out := httpDo(a.t, "PUT", a.base+"/v1/state"+key+"?origin=test-api", []byte(body))
		if code != http.StatusOK {
			return fmt.Errorf("PUT %s: %d %s", key, code, out)
		}
		var r struct{ Revision uint64 }
		if err := json.Unmarshal(out, &r); err != nil {
			return err
		}
		rev = r.Revision
		return nil
	})
	return rev
}

// get reads key; found is false on 404.
func (a uiAPI) get(key string) (value map[string]any, modRevision uint64, found bool) {
	a.t.Helper()
	code, out := httpDo(a.t, "GET", a.base+"/v1/state"+key, nil)
	if code == http.StatusNotFound {
		return nil, 0, false
	}
	if code != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", key, code, out)
	}
	var kv struct {
		Value       map[string]any `json:"value"`
		ModRevision uint64         `json:"mod_revision"`
		Origin      string         `json:"origin"`
	}
	if err := json.Unmarshal(out, &kv); err != nil {
		a.t.Fatalf("GET %s: %v in %s", key, err, out)
	}
	return kv.Value, kv.ModRevision, true
}

func (a uiAPI) publish(channel, body string) uint64 {
	a.t.Helper()
	code, out := httpDo(a.t, "POST", a.base+"/v1/publish"+channel+"?origin=test-api", []byte(body))
	if code != http.StatusOK {
		a.t.Fatalf("publish %s: %d %s", channel, code, out)
	}
	var r struct{ Revision uint64 }
	json.Unmarshal(out, &r)
	return r.Revision
}

// subscribeNamed opens /v1/subscribe on channels as a subscriber named
// name, reads it until stop is called, and returns once it is open.
func (a uiAPI) subscribeNamed(name string, channels ...string) (stop func()) {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a.t.Cleanup(cancel)
	q := url.Values{"name": {name}, "channel": channels, "progress_ms": {"-1"}}
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/v1/subscribe?"+q.Encode(), nil)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("subscribe as %s: %s", name, resp.Status)
	}
	go func() {
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
	}()
	return cancel
}

// subscribeSSE opens /v1/subscribe on channel and returns the data lines
// of the events as they arrive. The stream is open when it returns.
func (a uiAPI) subscribeSSE(channel string) <-chan string {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/v1/subscribe?progress_ms=-1&channel="+channel, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("subscribe %s: %s", channel, resp.Status)
	}
	lines := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				select {
				case lines <- data:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return lines
}

// Rule (issue 7): the web UI, in a real Chromium against a real agent,
// creates keys, follows writes made elsewhere without a reload, shows a
// conflicting edit with both versions and lets the user choose, shows the
// cluster, components, the graph of who reads and writes what with its
// cycles, and channels, raises no JavaScript error, and fits a 1280 px
// and a 400 px wide window.
func TestUI_BrowserAgainstAgent(t *testing.T) {
	b := newBrowser(t) // skips (or fails, in CI) without a browser, before any agent starts
	a := newAgent(t, "ui", "--dev", "--label", "zone=a", "--label", "rack=r1")
	a.start()
	waitUp(t, a)
	api := uiAPI{t: t, base: "http://" + a.http}

	// Some state for the tree to show.
	api.put("/config/app/db", `{"host":"db1","port":5432,"pool":{"max":20,"idle":4}}`)
	api.put("/config/app/cache", `{"host":"cache1","ttl_seconds":300}`)
	api.put("/config/web/features", `{"new_checkout":true,"dark_mode":false,"rollout":{"percent":25,"regions":["eu-west","us-east"]},"owner":"web-team"}`)
	api.put("/dns/web.internal", `{"a":["10.0.0.5","10.0.0.6"],"ttl":30}`)
	api.put("/secrets/db/password", `{"ref":"vault:db/password","rotated":"2025-01-10"}`)

	b.viewport(1280, 800)
	b.do("open the UI", chromedp.Navigate(api.base+"/ui/"))
	b.waitVisible(`#tree [data-key="/config/app/db"]`)
	b.waitText("#live", "Live")
	// A page that reloads loses this mark: the checks below that expect no
	// reload look for it.
	evalJS[bool](b, `window.duxNoReload = true`)

	uiCreate(t, b, api)
	uiLive(t, b, api)
	uiConflict(t, b, api)
	uiDelete(t, b, api)
	uiCluster(t, b, api)
	uiComponents(t, b, api)
	uiGraph(t, b, api)
	uiChannels(t, b, api)
	uiLayout(t, b, api)

	b.checkProblems("in the UI")
}

// uiCreate makes a key in the editor, first with an invalid value and
// a malformed key (refused, the API's errors shown inline), and reads it
// back over the API.
func uiCreate(t *testing.T, b *browser, api uiAPI) {
	b.click("#new-key")
	b.typeInto("#key-path", "/config/ui/created")
	// First an invalid document: the API's error shows next to the editor.
	b.typeInto("#value-editor", `{"replicas": 3,`)
	b.click("#save")
	b.waitVisible("#editor-error")
	b.waitText("#editor-error", "invalid_argument")
	if _, _, found := api.get("/config/ui/created"); found {
		t.Fatal("an invalid value was written")
	}
	// A malformed key is refused too, next to the key field.
	b.typeInto("#key-path", "/config//bad")
	b.typeInto("#value-editor", `{"replicas": 3}`)
	b.click("#save")
	b.waitVisible("#key-error")
	b.waitText("#key-error", "empty segment")
	b.typeInto("#key-path", "/config/ui/created")
	b.typeInto("#value-editor", `{"replicas": 3, "owner": "ui-test"}`)
	b.click("#save")
	b.waitText("#editor-status", "Saved at revision")
	value, _, found := api.get("/config/ui/created")
	if !found || value["replicas"] != 3.0 || value["owner"] != "ui-test" {
		t.Fatalf("over the API after a UI save: found %v, value %v", found, value)
	}
	b.waitVisible(`#tree .selected [data-key="/config/ui/created"]`)
}

// uiLive writes over the API and sees the open page follow without a
// reload: the open key's value, a new key, a deleted key.
func uiLive(t *testing.T, b *browser, api uiAPI) {
	// The key just saved is open and unchanged: a write elsewhere shows
	// in the editor, and a new key appears in the tree.
	rev := api.put("/config/ui/created", `{"replicas": 5, "owner": "api"}`)
	b.waitFor("the open key follows a write over the API",
		`document.querySelector("#value-editor").value.includes('"replicas": 5')`)
	b.waitText("#meta-mod-revision", fmt.Sprint(rev))
	b.waitText("#editor-status", fmt.Sprintf("at revision %d", rev))
	api.put("/config/live/added", `{"added":"over the API"}`)
	b.waitVisible(`#tree [data-key="/config/live/added"]`)
	// And a key deleted elsewhere leaves the tree.
	if code, out := httpDo(t, "DELETE", api.base+"/v1/state/secrets/db/password", nil); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, out)
	}
	b.waitFor("a deleted key leaves the tree", `!document.querySelector('#tree [data-key="/secrets/db/password"]')`)
	if !evalJS[bool](b, `window.duxNoReload === true`) {
		t.Fatal("the page reloaded")
	}
	b.screenshot("state-live-1280", false)
}

// uiConflict edits a key that someone else then writes: the notice,
// the conflict panel with both versions, then each of the two choices.
func uiConflict(t *testing.T, b *browser, api uiAPI) {
	// Load a key, edit it, let someone else write it, then save.
	b.click(`#tree [data-key="/config/app/db"]`)
	b.waitFor("the key is loaded", `document.querySelector("#value-editor").value.includes('"db1"')`)
	mine := `{"host": "db-mine", "port": 5432}`
	b.typeInto("#value-editor", mine)
	theirRev := api.put("/config/app/db", `{"host":"db-theirs","port":6432}`)
	b.waitVisible("#notice")
	b.waitText("#notice", fmt.Sprintf("Changed by someone else (test-api) at revision %d", theirRev))
	if v := evalJS[string](b, `document.querySelector("#value-editor").value`); !strings.Contains(v, "db-mine") {
		t.Fatalf("the editor lost the user's text: %q", v)
	}
	b.click("#save")
	b.waitVisible("#conflict")
	b.waitText("#conflict-mine", "db-mine")
	b.waitText("#conflict-theirs", "db-theirs")
	b.waitText("#conflict-theirs-meta", fmt.Sprintf("revision %d", theirRev))
	if value, _, _ := api.get("/config/app/db"); value["host"] != "db-theirs" {
		t.Fatalf("the refused save changed the key: %v", value)
	}
	b.screenshot("state-conflict-1280", false)
	b.viewport(400, 800)
	b.checkFits("the conflict panel at 400 px")
	b.screenshot("state-conflict-400", true)
	b.viewport(1280, 800)
	b.click("#keep-mine")
	b.waitText("#editor-status", "Saved at revision")
	value, modRev, _ := api.get("/config/app/db")
	if value["host"] != "db-mine" || modRev <= theirRev {
		t.Fatalf("keep mine: the key is %v at %d, want db-mine after %d", value, modRev, theirRev)
	}

	// The other choice: take theirs.
	b.typeInto("#value-editor", `{"host": "db-mine-again"}`)
	theirRev = api.put("/config/app/db", `{"host":"db-theirs-again"}`)
	b.waitText("#notice", fmt.Sprintf("revision %d", theirRev))
	b.click("#save")
	b.waitText("#conflict-theirs", "db-theirs-again")
	b.click("#take-theirs")
	b.waitFor("the editor holds theirs", `document.querySelector("#value-editor").value.includes("db-theirs-again")`)
	b.waitText("#meta-mod-revision", fmt.Sprint(theirRev))
	if value, modRev, _ := api.get("/config/app/db"); value["host"] != "db-theirs-again" || modRev != theirRev {
		t.Fatalf("take theirs wrote: %v at %d", value, modRev)
	}
	if !evalJS[bool](b, `document.querySelector("#conflict").hidden`) {
		t.Fatal("the conflict panel stayed open")
	}
}

// uiDelete deletes a key from the editor, which asks once more first.
func uiDelete(t *testing.T, b *browser, api uiAPI) {
	b.click(`#tree [data-key="/config/live/added"]`)
	b.waitFor("the key is loaded", `document.querySelector("#value-editor").value.includes("over the API")`)
	b.click("#delete")
	b.waitText("#delete", "Confirm delete")
	if _, _, found := api.get("/config/live/added"); !found {
		t.Fatal("deleted before the confirmation")
	}
	b.click("#delete")
	b.waitVisible("#editor-empty")
	b.waitFor("the key leaves the tree", `!document.querySelector('#tree [data-key="/config/live/added"]')`)
	if _, _, found := api.get("/config/live/added"); found {
		t.Fatal("the key is still there over the API")
	}
}

// uiCluster checks the members table and the leader.
func uiCluster(t *testing.T, b *browser, api uiAPI) {
	b.click("#tab-cluster")
	b.waitVisible(`#members tr[data-member="ui"]`)
	b.waitText(`#members tr[data-member="ui"]`, "leader")
	b.waitText(`#members tr[data-member="ui"]`, "alive")
	b.waitText(`#members tr[data-member="ui"]`, "voter")
	b.waitText(`#members tr[data-member="ui"]`, "zone=a")
	b.waitText("#cluster-leader", "ui")
	b.waitFor("the term is shown", `/^[0-9]+$/.test(document.querySelector("#cluster-term").textContent)`)
	b.screenshot("cluster-1280", false)
}

// uiComponents writes components and checks the table the real scheduler
// fills in. The agent runs no containers (--no-docker), so "worker" cannot
// be placed and the scheduler says why; "web" is paused, so the scheduler
// keeps the allocations written here as they are and counts those that
// report running.
func uiComponents(t *testing.T, b *browser, api uiAPI) {
	b.click("#tab-components")
	b.waitText("#components", "No components yet")
	webSpec := `{"name":"web","image":"nginx:1.27","replicas":2,"paused":true}`
	web, err := scheduler.ParseComponent("web", []byte(webSpec))
	if err != nil {
		t.Fatal(err)
	}
	hash := web.Hash()
	api.put("/components/web", webSpec)
	for _, id := range []string{"x", "y", "z"} {
		api.put("/allocations/web/"+id, fmt.Sprintf(`{"id":%q,"component":"web","host":"ui","spec":%q,"run":%s}`, id, hash, webSpec))
	}
	api.put("/status/allocations/x", fmt.Sprintf(`{"id":"x","component":"web","host":"ui","spec":%q,"state":"running","container_id":"3f2a9c0d1b7e"}`, hash))
	api.put("/status/allocations/z", fmt.Sprintf(`{"id":"z","component":"web","host":"ui","spec":%q,"state":"failed","exit_code":137,"reason":"OOMKilled"}`, hash))
	api.put("/components/worker", `{"name":"worker","image":"ghcr.io/example/worker:3.1","replicas":1}`)
	b.waitVisible(`#components tr[data-component="web"]`)
	b.waitText(`#components tr[data-component="web"]`, "nginx:1.27")
	b.waitText(`#components tr[data-component="web"]`, "1 / 2")
	b.waitText(`#components tr[data-component="web"]`, "paused")
	b.waitText(`#components [data-alloc="x"]`, "running")
	b.waitText(`#components [data-alloc="y"]`, "pending")
	b.waitText(`#components [data-alloc="z"]`, "failed")
	b.waitText(`#components tr[data-component="worker"]`, "no Docker engine")
	b.screenshot("components-1280", false)
}

// uiGraph declares components whose reads and writes form a cycle, and
// one that does not, and checks the Graph screen: the cycle flagged in red
// in the drawing and in the list, the scheduler's own loop in amber as
// expected, a named subscriber and a writer's origin drawn as observed
// (a name full of markup shown as text), a cycle picked out, every use in
// the table.
func uiGraph(t *testing.T, b *browser, api uiAPI) {
	api.put("/components/ingest", `{"name":"ingest","image":"registry.example/ingest:2.1","replicas":1,"reads":["/jobs/"],"writes":["/results/"]}`)
	api.put("/components/report", `{"name":"report","image":"registry.example/report:1.0","replicas":1,"reads":["/results/"],"writes":["/jobs/retry/"]}`)
	api.put("/components/api", `{"name":"api","image":"registry.example/api:3.2","replicas":1,"reads":["/config/api/"],"writes":["/status/api/"]}`)
	sub := api.subscribeNamed("dashboard", "/status/", "/hosts/")
	defer sub()
	markup := `<img src=x onerror="window.duxInjected=1">&amp;`
	eventually(t, uiWait, func() error {
		code, out := httpDo(t, "PUT", api.base+"/v1/state/config/api/limits?origin="+url.QueryEscape(markup), []byte(`{"rps":100}`))
		if code != http.StatusOK {
			return fmt.Errorf("PUT: %d %s", code, out)
		}
		return nil
	})

	b.click("#tab-graph")
	b.waitVisible(`#graph-svg [data-node="component/ingest"].cycle`)
	b.waitVisible(`#graph-svg [data-node="component/report"].cycle`)
	b.waitVisible(`#graph-svg [data-node="scheduler"].expected`)
	b.waitVisible(`#graph-svg [data-node="sensor/executor"].expected`)
	b.waitVisible(`#graph-svg [data-node="dashboard"][data-kind="actor"]`)
	b.waitVisible(`#graph-svg [data-node="component/api"]:not(.cycle):not(.expected)`)
	b.waitFor("the edges of the cycle are red", `document.querySelectorAll('#graph-svg .g-edge.cycle').length >= 4`)
	b.waitFor("the overlap that closes it is drawn",
		`document.querySelector('#graph-svg .g-edge.overlap.cycle[data-from="prefix:/jobs/retry/"][data-to="prefix:/jobs/"]')`)
	user := `#graph-cycle-list [data-expected="false"]`
	b.waitText(user, "component/ingest")
	b.waitText(user, "component/report")
	b.waitText(user, "feedback loop")
	b.waitText(`#graph-cycle-list [data-expected="true"]`, "the scheduler's control loop")
	b.waitText("#graph-cycle-count", "1")
	if n := evalJS[int](b, `document.querySelectorAll("#graph-cycle-list [data-cycle]").length`); n != 2 {
		t.Errorf("%d cycles listed, want 2", n)
	}
	// No two boxes of the drawing overlap.
	if n := evalJS[int](b, `(() => {
		const r = [...document.querySelectorAll("#graph-svg .g-node rect")].map(e => e.getBoundingClientRect());
		let n = 0;
		for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++)
			if (r[i].left < r[j].right && r[j].left < r[i].right && r[i].top < r[j].bottom && r[j].top < r[i].bottom) n++;
		return n;
	})()`); n != 0 {
		t.Errorf("%d pairs of nodes overlap in the drawing", n)
	}
	// Names reach the page as text only.
	b.waitFor("the markup origin is a node", fmt.Sprintf(`[...document.querySelectorAll("#graph-svg .g-actor")].some(g => g.dataset.node === %s)`, js(markup)))
	if evalJS[bool](b, `Boolean(document.querySelector("#view-graph img") || window.duxInjected)`) {
		t.Fatal("an origin's markup became an element")
	}
	b.screenshot("graph-1280", false)

	// Pick the cycle out: everything else fades.
	b.click(user + " button")
	b.waitFor("the cycle is picked out", `document.querySelector("#graph-svg").classList.contains("focused") &&
		document.querySelector('#graph-svg [data-node="component/ingest"]').classList.contains("focus") &&
		!document.querySelector('#graph-svg [data-node="scheduler"]').classList.contains("focus")`)
	b.waitText(user+" button", "Show all")
	b.screenshot("graph-cycle-1280", false)
	b.click(user + " button")
	b.waitFor("everything shows again", `!document.querySelector("#graph-svg").classList.contains("focused")`)

	// Every use, in a table.
	b.click(".graph-uses summary")
	b.waitVisible("#graph-uses-table")
	b.waitText("#graph-uses-table", "/jobs/retry/")
	b.waitText("#graph-uses-table", "dashboard")
	evalJS[bool](b, `(() => { window.scrollTo(0, 0); return true })()`)
	b.screenshot("graph-full-1280", true)
	b.viewport(400, 800)
	b.checkFits("the graph at 400 px")
	evalJS[bool](b, `(() => { window.scrollTo(0, 0); return true })()`)
	b.screenshot("graph-full-400", true)
	b.viewport(1280, 800)
}

// uiChannels subscribes in the UI, publishes over the API and from the
// UI, and checks an API subscriber sees the UI's message.
func uiChannels(t *testing.T, b *browser, api uiAPI) {
	b.click("#tab-channels")
	b.typeInto("#channel-input", "/chat/")
	b.click("#subscribe-btn")
	b.waitText("#channel-status", "Live")
	b.waitVisible(`#channel-chips [data-channel="/chat/"]`)
	api.publish("/chat/room", `{"text":"hello from the API"}`)
	b.waitText(`#channel-events li[data-key="/chat/room"]`, "hello from the API")

	// Publish from the UI; an API subscriber and the UI's list see it.
	sub := api.subscribeSSE("/chat/room")
	b.typeInto("#publish-channel", "/chat/room")
	b.typeInto("#publish-body", `{"text": "hello from the UI"}`)
	b.click("#publish-btn")
	b.waitText("#publish-result", "Published to /chat/room at revision")
	deadline := time.After(uiWait)
	for got := false; !got; {
		select {
		case line, ok := <-sub:
			if !ok {
				t.Fatal("the API subscription ended")
			}
			got = strings.Contains(line, "hello from the UI") && strings.Contains(line, `"origin":"web-ui"`)
		case <-deadline:
			t.Fatal("the API subscriber did not see the UI's message")
		}
	}
	b.waitFor("the newest event is on top",
		`document.querySelector("#channel-events li").textContent.includes("hello from the UI")`)
	// A bad channel is refused with the API's reason, next to the form.
	b.typeInto("#publish-channel", "/chat//room")
	b.click("#publish-btn")
	b.waitText("#publish-result", "channel")
	b.waitText("#publish-result", "empty segment")
	b.screenshot("channels-1280", false)
}

// uiLayout checks every screen at 1280 and 400 px wide and saves
// screenshots.
func uiLayout(t *testing.T, b *browser, api uiAPI) {
	b.do("open a key", chromedp.Navigate(api.base+"/ui/#/state?key=%2Fconfig%2Fweb%2Ffeatures"))
	b.waitFor("the key is loaded", `document.querySelector("#value-editor").value.includes("new_checkout")`)
	for _, screen := range []string{"state", "cluster", "components", "graph", "channels"} {
		b.do("go to "+screen, chromedp.Navigate(api.base+"/ui/#/"+screen))
		b.waitVisible("#view-" + screen)
		b.viewport(1280, 800)
		b.checkFits(screen + " at 1280 px")
		b.viewport(400, 800)
		b.checkFits(screen + " at 400 px")
		if screen == "state" {
			// Narrow, the tree sits above the editor rather than beside it.
			if !evalJS[bool](b, `document.querySelector(".tree-pane").getBoundingClientRect().bottom <=
				document.querySelector(".editor-pane").getBoundingClientRect().top`) {
				t.Error("at 400 px the tree is not above the editor")
			}
		}
		b.screenshot(screen+"-400", true)
	}
	b.do("back to state", chromedp.Navigate(api.base+"/ui/#/state"))
	b.viewport(1280, 800)
	b.waitVisible("#editor")
	b.screenshot("state-1280", false)
}
