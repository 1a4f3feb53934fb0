// The State screen: the key tree on the left, the JSON editor on the right,
// kept current by a subscription on the tree's prefix.
//
// Saving is always a compare-and-set on the mod revision the user loaded
// (0 for a new key: create only if absent). When someone else wrote the key
// in between, the API refuses the write with 409 and the conflict panel
// shows both versions; the user picks one. Nothing is overwritten unseen.

import * as api from "./api.js";
import { $, h, replace } from "./dom.js";
import { Stream } from "./live.js";
import { KeyTree } from "./tree.js";

/** A loaded key-value as the editor holds it; ev is a put event or a kv. */
function kvOf(ev) {
  return {
    key: ev.key,
    value: ev.value,
    create_revision: ev.create_revision || 0,
    mod_revision: ev.mod_revision || ev.revision || 0,
    version: ev.version || 0,
    lease: ev.lease || 0,
    origin: ev.origin || "",
  };
}

/** folderOf("/a/b/c") is "/a/b/". */
function folderOf(key) {
  return key.slice(0, key.lastIndexOf("/") + 1) || "/";
}

/** normalPrefix makes what the user typed a prefix: "/config" -> "/config/". */
function normalPrefix(s) {
  let p = s.trim() || "/";
  if (!p.startsWith("/")) p = `/${p}`;
  if (!p.endsWith("/")) p += "/";
  return p;
}

/** prettyText indents text when it is JSON and leaves it as it is if not. */
function prettyText(text) {
  try {
    return api.pretty(api.parseJSON(text));
  } catch {
    return text;
  }
}

export class StateView {
  constructor(app) {
    this.app = app;
    this.prefix = "/";
    this.stream = null;
    this.resync = null; // keys gathered between a resync event and synced
    this.revision = 0;
    this.openToken = 0;
    this.tree = new KeyTree($("#tree"), (key) => this.requestOpen(key));
    this.el = {
      prefix: $("#prefix"),
      count: $("#key-count"),
      empty: $("#editor-empty"),
      form: $("#editor"),
      path: $("#key-path"),
      keyError: $("#key-error"),
      meta: $("#meta"),
      notice: $("#notice"),
      text: $("#value-editor"),
      json: $("#json-status"),
      error: $("#editor-error"),
      save: $("#save"),
      revert: $("#revert"),
      format: $("#format"),
      del: $("#delete"),
      status: $("#editor-status"),
      conflict: $("#conflict"),
      title: $("#editor-title"),
    };
    this.ed = this.blank("empty", "");
    this.wire();
  }

  /** blank is the editor state: what was loaded, and what is going on. */
  blank(mode, key) {
    return {
      mode, // "empty" | "loading" | "new" | "existing"
      key,
      loaded: null, // the kv the user loaded: its mod revision is the CAS
      loadedText: "",
      busy: false, // a load or save is in flight
      pending: null, // the newest event for the key seen while busy
      remote: null, // a newer write by someone else, seen while editing
      conflict: null, // {mine, theirs, asOf}: a refused save
      deleteArmed: false,
    };
  }

  wire() {
    const { el } = this;
    $("#prefix-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.prefix = normalPrefix(el.prefix.value);
      el.prefix.value = this.prefix;
      this.reload();
    });
    $("#new-key").addEventListener("click", () => {
      if (!this.confirmDiscard()) return;
      const base = this.ed.key ? folderOf(this.ed.key) : this.prefix;
      this.startNew(base, "");
      this.app.navigate("#/state", true);
      el.path.focus();
      // Put the caret at the end of the folder path, ready for a name.
      el.path.setSelectionRange(base.length, base.length);
    });
    el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    el.text.addEventListener("input", () => this.renderControls());
    el.path.addEventListener("input", () => this.renderControls());
    el.text.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "s") {
        e.preventDefault();
        this.save();
      }
    });
    el.revert.addEventListener("click", () => {
      if (this.ed.loaded) this.load(this.ed.loaded, "Reverted to the loaded version.");
      else el.text.value = "";
      this.renderControls();
    });
    el.format.addEventListener("click", () => {
      el.text.value = prettyText(el.text.value);
      this.renderControls();
    });
    el.del.addEventListener("click", () => this.remove());
    window.addEventListener("beforeunload", (e) => {
      if (this.dirty()) e.preventDefault();
    });
  }

  // ---- screen lifecycle (called by the router) ----

  async show(params) {
    if (!this.started) {
      this.started = true;
      this.reload();
    }
    const key = params.get("key");
    if (key && key !== this.ed.key) {
      if (!this.confirmDiscard()) {
        this.app.navigate(this.hashFor(this.ed.key), true);
        return;
      }
      this.open(key);
    }
  }

  hide() {}

  hashFor(key) {
    return key ? `#/state?key=${encodeURIComponent(key)}` : "#/state";
  }

  // ---- the tree and its subscription ----

  async reload() {
    if (this.stream) this.stream.close();
    this.stream = null;
    const prefix = this.prefix;
    replace(this.el.count, "Loading…");
    let list;
    try {
      list = await api.listAll(prefix, { keysOnly: true, max: 10000 });
    } catch (err) {
      replace(this.el.count, "");
      replace($("#tree"), h("p", { class: "alert alert-error" }, `Cannot list ${prefix}: ${err.message}`));
      return;
    }
    if (prefix !== this.prefix) return; // another reload overtook this one
    this.revision = list.revision;
    this.tree.note = list.truncated ? `Showing the first ${list.items.length} keys: narrow the prefix to see the rest.` : "";
    this.tree.reset(
      list.items.map((kv) => kv.key),
      prefix,
    );
    this.tree.select(this.ed.key);
    this.renderCount();
    // Every change after the listing's revision, then live.
    this.stream = new Stream([prefix], {
      from: list.revision,
      onEvent: (ev) => this.onEvent(ev),
      onStatus: (s) => this.app.setLive(s),
      onError: (err) => this.app.toast(`State subscription: ${err.message}`, "error"),
    }).start();
  }

  onEvent(ev) {
    if (ev.revision > this.revision) this.revision = ev.revision;
    switch (ev.type) {
      case "put":
        this.tree.add(ev.key, true);
        break;
      case "delete":
      case "expire":
        this.tree.remove(ev.key);
        break;
      case "resync": // history was lost: the current state follows
        this.resync = new Set();
        return;
      case "state":
        if (this.resync) this.resync.add(ev.key);
        else this.tree.add(ev.key, false);
        return;
      case "synced": {
        const resynced = this.resync;
        this.resync = null;
        if (!resynced) return;
        this.tree.reset([...resynced], this.prefix);
        this.renderCount();
        // History was lost, so a change to the open key may have been
        // missed: read it again, unless the user is editing it (their
        // save is a compare-and-set, which catches any change).
        if (this.ed.mode === "existing" && !this.ed.busy && !this.dirty()) this.open(this.ed.key, true);
        return;
      }
      case "progress":
        this.renderCount();
        return;
      default:
        return; // messages belong to the channel console
    }
    this.renderCount();
    this.onKeyEvent(ev);
  }

  renderCount() {
    const n = this.tree.keys.size;
    replace(this.el.count, `${n} ${n === 1 ? "key" : "keys"}`, h("span", { class: "muted" }, ` · revision ${this.revision}`));
  }

  // ---- opening keys ----

  /** dirty: the editor holds something the user has not saved. */
  dirty() {
    const { ed, el } = this;
    if (ed.mode === "existing") return el.text.value !== ed.loadedText;
    if (ed.mode === "new") return el.text.value.trim() !== "";
    return false;
  }

  confirmDiscard() {
    return !this.dirty() || window.confirm("Discard your unsaved changes?");
  }

  requestOpen(key) {
    if (key === this.ed.key && this.ed.mode === "existing") return;
    if (!this.confirmDiscard()) return;
    this.open(key);
    this.app.navigate(this.hashFor(key));
  }

  /** open loads key into the editor; quiet leaves out the notice for a missing key. */
  async open(key, quiet) {
    const token = ++this.openToken;
    this.ed = this.blank("loading", key);
    this.ed.busy = true;
    this.tree.select(key);
    this.render();
    let kv;
    try {
      ({ kv } = await api.getKey(key));
    } catch (err) {
      if (token !== this.openToken) return;
      this.ed.busy = false;
      this.startNew(key, "");
      this.showError(err);
      return;
    }
    if (token !== this.openToken) return;
    const pending = this.ed.pending;
    if (!kv) {
      this.startNew(key, "");
      if (!quiet) this.setNotice("warn", `There is no key ${key}. Write a value and save to create it.`);
    } else {
      this.load(kv);
    }
    if (pending) this.onKeyEvent(pending);
  }

  /** load puts kv in the editor as the version the user works from. */
  load(kv, status) {
    const ed = this.blank("existing", kv.key);
    ed.loaded = kv;
    ed.loadedText = api.pretty(kv.value);
    this.ed = ed;
    this.el.text.value = ed.loadedText;
    this.setNotice(null);
    this.clearErrors();
    this.render();
    this.setStatus(status || "");
  }

  startNew(key, text) {
    this.ed = this.blank("new", key);
    this.el.path.value = key;
    this.el.text.value = text;
    this.tree.select("");
    this.setNotice(null);
    this.clearErrors();
    this.render();
    this.setStatus("");
  }

  // ---- live changes to the open key ----

  /** onKeyEvent reacts to a write, by anyone, of the key being shown. */
  onKeyEvent(ev) {
    const { ed } = this;
    const key = ed.mode === "new" ? this.el.path.value.trim() : ed.key;
    if (ev.key !== key || ed.mode === "empty") return;
    if (ed.busy) {
      ed.pending = ev; // decided once the load or save is done
      return;
    }
    if (ed.loaded && ev.revision <= ed.loaded.mod_revision) return; // old news, or our own write
    const who = ev.origin ? ` (${ev.origin})` : "";
    const gone = ev.type !== "put";
    if (ed.conflict) {
      // Keep "theirs" current while the user decides.
      if (ev.revision <= ed.conflict.asOf) return;
      ed.conflict.theirs = gone ? null : kvOf(ev);
      ed.conflict.asOf = ev.revision;
      this.renderConflict();
      return;
    }
    if (!this.dirty()) {
      if (gone) {
        this.startNew(key, this.el.text.value);
        this.setNotice("warn", `Deleted by someone else${who} at revision ${ev.revision}. Save to create it again.`);
      } else {
        this.load(kvOf(ev), `Updated by someone else${who} at revision ${ev.revision}.`);
        this.flash();
      }
      return;
    }
    // The user is editing: keep their text, say what happened.
    ed.remote = gone ? { revision: ev.revision, deleted: true } : kvOf(ev);
    const what = gone ? "Deleted" : "Changed";
    this.setNotice(
      "warn",
      `${what} by someone else${who} at revision ${ev.revision}. Saving will show both versions.`,
      gone ? null : h("button", { type: "button", class: "btn btn-sm", id: "load-theirs", onclick: () => this.load(ed.remote, "Loaded their version; your edits were discarded.") }, "Load theirs (discard my edits)"),
    );
  }

  // ---- saving, conflicts, deleting ----

  async save() {
    const { ed, el } = this;
    if (ed.busy || ed.mode === "empty" || ed.mode === "loading") return;
    this.clearErrors();
    if (ed.mode === "new") {
      await this.write(el.path.value.trim(), el.text.value, 0, null);
    } else {
      await this.write(ed.key, el.text.value, ed.loaded.mod_revision, ed.loaded);
    }
  }

  /**
   * write puts text at key if the key's mod revision is still cas (prev is
   * the kv that revision belongs to, or null when the key must not exist).
   */
  async write(key, text, cas, prev) {
    const ed = this.ed;
    ed.busy = true;
    this.renderControls();
    this.setStatus("Saving…");
    let rev;
    try {
      rev = await api.putKey(key, text, cas, prev ? prev.lease : 0);
    } catch (err) {
      if (this.ed !== ed) return; // the user opened another key meanwhile
      this.setStatus("");
      if (err.status === 409 && err.code === "failed_precondition") {
        await this.showConflict(key, text); // still busy: events wait in pending
        if (this.ed !== ed) return;
      } else {
        this.showError(err);
      }
      ed.busy = false;
      this.renderControls();
      this.flushPending();
      return;
    }
    this.tree.add(key, false);
    if (this.ed !== ed) return; // the user opened another key meanwhile
    // A compare-and-set that held means exactly one write happened on top
    // of prev: the new metadata follows without another read.
    const kv = {
      key,
      value: api.parseJSON(text),
      create_revision: prev ? prev.create_revision : rev,
      mod_revision: rev,
      version: prev ? prev.version + 1 : 1,
      lease: prev ? prev.lease : 0,
      origin: api.ORIGIN,
    };
    const pending = ed.pending;
    this.tree.select(key);
    this.load(kv, `Saved at revision ${rev}.`);
    this.app.navigate(this.hashFor(key), true);
    if (pending) this.onKeyEvent(pending);
  }

  flushPending() {
    const ev = this.ed.pending;
    this.ed.pending = null;
    if (ev) this.onKeyEvent(ev);
  }

  async showConflict(key, mine) {
    const ed = this.ed;
    let read, before;
    try {
      // The store's revision read first: the key read after it reflects
      // every event up to it, even when the key is gone (a 404 carries no
      // revision of its own).
      before = await api.revision();
      read = await api.getKey(key);
    } catch (err) {
      if (this.ed === ed) this.showError(err);
      return;
    }
    if (this.ed !== ed) return; // the user opened another key meanwhile
    // In new mode the key is now the one that someone else created.
    ed.key = key;
    // asOf: the revision "theirs" reflects; older events add nothing.
    const asOf = Math.max(before, read.revision, read.kv ? read.kv.mod_revision : 0);
    ed.conflict = { mine, theirs: read.kv, asOf };
    this.setNotice(null);
    this.renderConflict();
  }

  renderConflict() {
    const { ed, el } = this;
    const c = ed.conflict;
    el.conflict.hidden = !c;
    el.form.classList.toggle("in-conflict", Boolean(c));
    if (!c) {
      replace(el.conflict);
      return;
    }
    const mine = prettyText(c.mine);
    const theirs = c.theirs ? api.pretty(c.theirs.value) : "";
    const theirLines = new Set(theirs.split("\n"));
    const myLines = new Set(mine.split("\n"));
    // Lines one side has and the other lacks are marked: a cheap diff that
    // is enough to spot what differs in a configuration document.
    const lines = (text, other, cls) =>
      text.split("\n").map((line) => h("span", { class: other.has(line) ? "line" : `line ${cls}` }, line, "\n"));
    const loadedRev = ed.loaded ? `revision ${ed.loaded.mod_revision}` : "a key that did not exist";
    const theirMeta = c.theirs
      ? `revision ${c.theirs.mod_revision} · version ${c.theirs.version}${c.theirs.origin ? ` · by ${c.theirs.origin}` : ""}`
      : "deleted";
    replace(
      el.conflict,
      h("div", { class: "conflict-head" },
        h("h3", {}, "Conflict: someone else changed this key"),
        h("p", {},
          `You edited ${loadedRev} of `, h("code", {}, ed.key),
          c.theirs ? `, but it is now at revision ${c.theirs.mod_revision}. ` : ", but it has since been deleted. ",
          "Nothing was overwritten. Choose the version to keep."),
      ),
      h("div", { class: "conflict-sides" },
        h("div", { class: "side side-mine" },
          h("div", { class: "side-head" }, h("strong", {}, "Yours"), h("span", { class: "muted" }, "not saved")),
          h("pre", { id: "conflict-mine", class: "code" }, lines(mine, theirLines, "mine-only")),
        ),
        h("div", { class: "side side-theirs" },
          h("div", { class: "side-head" }, h("strong", {}, "Theirs"), h("span", { class: "muted", id: "conflict-theirs-meta" }, theirMeta)),
          h("pre", { id: "conflict-theirs", class: "code" }, c.theirs ? lines(theirs, myLines, "theirs-only") : h("em", {}, "(deleted)")),
        ),
      ),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn btn-danger", id: "keep-mine", onclick: () => this.keepMine() },
          c.theirs ? "Keep mine (overwrite theirs)" : "Keep mine (create it again)"),
        h("button", { type: "button", class: "btn btn-primary", id: "take-theirs", onclick: () => this.takeTheirs() },
          c.theirs ? "Take theirs" : "Take theirs (leave it deleted)"),
      ),
    );
    this.renderControls();
    el.conflict.scrollIntoView({ block: "nearest" });
  }

  /** keepMine writes my version over theirs: a CAS on their revision. */
  async keepMine() {
    const { mine, theirs } = this.ed.conflict;
    this.ed.conflict = null;
    this.renderConflict();
    await this.write(this.ed.key, mine, theirs ? theirs.mod_revision : 0, theirs);
  }

  takeTheirs() {
    const { theirs } = this.ed.conflict;
    const key = this.ed.key;
    this.ed.conflict = null;
    this.renderConflict();
    if (theirs) {
      this.load(theirs, `Took their version (revision ${theirs.mod_revision}); yours was discarded.`);
    } else {
      this.ed = this.blank("empty", "");
      this.tree.select("");
      this.render();
      this.app.navigate("#/state", true);
      this.app.toast(`${key} stays deleted.`, "info");
    }
  }

  /** remove deletes the open key, asking once more, if it is unchanged. */
  async remove() {
    const { ed, el } = this;
    if (ed.mode !== "existing" || ed.busy) return;
    if (!ed.deleteArmed) {
      ed.deleteArmed = true;
      el.del.textContent = "Confirm delete";
      setTimeout(() => {
        if (this.ed === ed && ed.deleteArmed) {
          ed.deleteArmed = false;
          this.renderControls();
        }
      }, 4000);
      return;
    }
    ed.deleteArmed = false;
    ed.busy = true;
    this.clearErrors();
    this.renderControls();
    try {
      const res = await api.deleteKey(ed.key, ed.loaded.mod_revision);
      const key = ed.key;
      this.tree.remove(key);
      if (this.ed !== ed) return; // the user opened another key meanwhile
      this.ed = this.blank("empty", "");
      this.tree.select("");
      this.render();
      this.app.navigate("#/state", true);
      this.app.toast(`Deleted ${key} at revision ${res.revision}.`, "info");
    } catch (err) {
      if (this.ed !== ed) return;
      ed.busy = false;
      if (err.status === 409) {
        this.setNotice("warn", `Not deleted: the key changed at revision ${err.revision || "?"} after you loaded it.`,
          h("button", { type: "button", class: "btn btn-sm", onclick: () => this.open(ed.key) }, "Load the current version"));
      } else {
        this.showError(err);
      }
      this.renderControls();
      this.flushPending();
    }
  }

  // ---- drawing ----

  render() {
    const { ed, el } = this;
    const empty = ed.mode === "empty";
    el.empty.hidden = !empty;
    el.form.hidden = empty;
    if (empty) return;
    el.path.readOnly = ed.mode !== "new";
    if (ed.mode !== "new") el.path.value = ed.key;
    replace(el.title, ed.mode === "new" ? "New key" : ed.mode === "loading" ? "Loading…" : "Key");
    this.renderMeta();
    this.renderConflict();
    this.renderControls();
  }

  renderMeta() {
    const { ed, el } = this;
    if (ed.mode !== "existing") {
      replace(el.meta, h("p", { class: "muted" }, ed.mode === "new" ? "Saved only if no such key exists yet (compare-and-set on revision 0)." : ""));
      return;
    }
    const kv = ed.loaded;
    const item = (label, value, id) => h("div", { class: "meta-item" }, h("dt", {}, label), h("dd", { id }, value));
    replace(
      el.meta,
      item("Mod revision", String(kv.mod_revision), "meta-mod-revision"),
      item("Created at", String(kv.create_revision), "meta-create-revision"),
      item("Version", String(kv.version), "meta-version"),
      item("Lease", kv.lease ? String(kv.lease) : "none", "meta-lease"),
      item("Origin", kv.origin || "–", "meta-origin"),
    );
  }

  renderControls() {
    const { ed, el } = this;
    const dirty = this.dirty();
    const loading = ed.mode === "loading";
    el.save.disabled = ed.busy || loading || Boolean(ed.conflict) || (ed.mode === "existing" && !dirty);
    el.revert.disabled = ed.busy || !dirty;
    el.format.disabled = ed.busy || loading;
    el.del.disabled = ed.busy || ed.mode !== "existing" || Boolean(ed.conflict);
    el.del.textContent = ed.deleteArmed ? "Confirm delete" : "Delete";
    el.text.readOnly = loading || Boolean(ed.conflict);
    this.renderJSONStatus();
  }

  /** renderJSONStatus says, as the user types, whether the text parses. */
  renderJSONStatus() {
    const text = this.el.text.value;
    if (!text.trim()) {
      replace(this.el.json, "");
      return;
    }
    try {
      JSON.parse(text);
      replace(this.el.json, h("span", { class: "ok" }, "Valid JSON"));
    } catch (err) {
      replace(this.el.json, h("span", { class: "bad" }, `Not valid JSON: ${err.message}`));
    }
  }

  /** showError puts an API error next to the field it names. */
  showError(err) {
    const { el } = this;
    const field = err.field || "";
    const msg = err.code && err.code !== "network" ? `${err.message} (${err.code})` : err.message;
    if (field === "key") {
      el.path.classList.add("invalid");
      el.path.setAttribute("aria-invalid", "true");
      el.keyError.hidden = false;
      replace(el.keyError, msg);
      el.path.focus();
      return;
    }
    if (field === "value") {
      el.text.classList.add("invalid");
      el.text.setAttribute("aria-invalid", "true");
    }
    el.error.hidden = false;
    replace(el.error, h("strong", {}, field ? `${field}: ` : "Error: "), msg);
  }

  clearErrors() {
    const { el } = this;
    for (const input of [el.path, el.text]) {
      input.classList.remove("invalid");
      input.removeAttribute("aria-invalid");
    }
    el.keyError.hidden = true;
    el.error.hidden = true;
    replace(el.error);
  }

  /** setNotice shows (kind "warn" or "info") or clears (null) the notice bar. */
  setNotice(kind, text, ...actions) {
    const { el } = this;
    el.notice.hidden = !kind;
    el.notice.className = kind ? `notice notice-${kind}` : "notice";
    if (kind) replace(el.notice, h("span", {}, text), ...actions.filter(Boolean));
    else replace(el.notice);
  }

  setStatus(text) {
    replace(this.el.status, text);
  }

  /** flash briefly highlights the editor after a live update. */
  flash() {
    const t = this.el.text;
    t.classList.remove("flash");
    void t.offsetWidth; // restart the animation
    t.classList.add("flash");
  }
}
