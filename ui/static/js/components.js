// The Components screen: what the scheduler was asked to run and what runs.
// It reads four prefixes through the state list API:
//   /components/<name>                 spec: name, image, replicas, ...
//   /allocations/<component>/<id>      id, component, host, spec
//   /status/allocations/<id>           id, component, host, state, exit_code, reason, container_id
//   /status/components/<name>          desired, running, unplaced
// Any of them may be missing, and fields may be missing or of another
// type: everything is read defensively.

import * as api from "./api.js";
import { $, badge, clock, emptyState, h, PolledView, replace } from "./dom.js";

const POLL_MS = 3000;

const stateKind = { running: "ok", pending: "warn", exited: "neutral", failed: "bad" };

/** obj is v when it is a plain JSON object, else {}. */
function obj(v) {
  return v && typeof v === "object" && !Array.isArray(v) ? v : {};
}

/** str is v as display text, or "" for nothing useful. */
function str(v) {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v && typeof v.rawJSON === "string") return v.rawJSON; // an exact number, see api.parseJSON
  return "";
}

/** num is v as a number, or null. */
function num(v) {
  const n = typeof v === "number" ? v : Number(str(v));
  return str(v) !== "" && Number.isFinite(n) ? n : null;
}

/** lastSegment("/status/allocations/x") is "x". */
function lastSegment(key) {
  return key.slice(key.lastIndexOf("/") + 1);
}

/** model joins the four listings into one entry per component. */
export function model(specs, allocs, allocStatus, compStatus) {
  const byName = new Map();
  const entry = (name) => {
    if (!byName.has(name)) byName.set(name, { name, spec: null, status: null, allocs: [] });
    return byName.get(name);
  };
  for (const kv of specs) {
    const v = obj(kv.value);
    entry(str(v.name) || lastSegment(kv.key)).spec = v;
  }
  const statusByID = new Map();
  for (const kv of allocStatus) {
    const v = obj(kv.value);
    statusByID.set(str(v.id) || lastSegment(kv.key), v);
  }
  for (const kv of allocs) {
    const v = obj(kv.value);
    // /allocations/<component>/<id>: the key names both when the value does not.
    const parts = kv.key.split("/");
    const id = str(v.id) || lastSegment(kv.key);
    const st = statusByID.get(id) || {};
    const component = str(v.component) || str(st.component) || parts[2] || "?";
    entry(component).allocs.push({
      id,
      host: str(v.host) || str(st.host) || "unplaced",
      state: str(st.state) || "pending",
      reported: Boolean(statusByID.get(id)),
      exitCode: num(st.exit_code),
      reason: str(st.reason),
      container: str(st.container_id),
    });
  }
  for (const kv of compStatus) {
    entry(lastSegment(kv.key)).status = obj(kv.value);
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export class ComponentsView extends PolledView {
  constructor(app) {
    super(POLL_MS);
    this.app = app;
    this.root = $("#components");
    this.updated = $("#components-updated");
  }

  async load() {
    try {
      const lists = await Promise.all(
        ["/components/", "/allocations/", "/status/allocations/", "/status/components/"].map((p) => api.listAll(p, { max: 5000 })),
      );
      this.render(model(...lists.map((l) => l.items)));
      replace(this.updated, `Updated ${clock(new Date())} · revision ${lists[0].revision}`);
    } catch (err) {
      replace(this.updated, h("span", { class: "bad" }, `Cannot refresh: ${err.message}`));
    }
  }

  render(components) {
    if (components.length === 0) {
      replace(
        this.root,
        emptyState(
          "No components yet",
          "Declare one by writing a spec to ",
          h("code", {}, "/components/<name>"),
          " (name, image, replicas); the scheduler places its allocations on hosts and they show up here.",
        ),
      );
      return;
    }
    const head = ["Component", "Image", "Replicas", "Allocations by host"];
    replace(
      this.root,
      h("table", { class: "table responsive", id: "components-table" },
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, components.map((c) => this.row(c, head)))),
    );
  }

  row(c, head) {
    const spec = c.spec || {};
    const status = c.status || {};
    const desired = num(status.desired) ?? num(spec.replicas);
    const running = num(status.running) ?? c.allocs.filter((a) => a.state === "running").length;
    const unplaced = Array.isArray(status.unplaced) ? status.unplaced.map(str).filter(Boolean) : [];
    const cells = [
      h("div", { class: "name-cell" }, h("strong", {}, c.name), !c.spec && badge("no spec", "warn"),
        (spec.paused === true || status.paused === true) && badge("paused", "neutral"),
        num(status.outdated) > 0 && badge(`rolling out: ${num(status.outdated)} outdated`, "warn"),
        str(status.error) && badge("invalid spec", "bad")),
      str(spec.image) ? h("code", { class: "image" }, str(spec.image)) : h("span", { class: "muted" }, "–"),
      this.replicas(running, desired),
      h("div", {}, this.hosts(c.allocs),
        unplaced.length > 0 && h("p", { class: "unplaced" }, `Unplaced: ${unplaced.join("; ")}`),
        str(status.error) && h("p", { class: "unplaced" }, `Invalid spec: ${str(status.error)}`)),
    ];
    return h("tr", { dataset: { component: c.name } }, cells.map((cell, i) => h("td", { dataset: { label: head[i] } }, cell)));
  }

  replicas(running, desired) {
    const text = `${running} / ${desired ?? "?"}`;
    const pct = desired ? Math.min(100, Math.round((running / desired) * 100)) : 0;
    const kind = desired !== null && running >= desired ? "ok" : running > 0 ? "warn" : "bad";
    return h("div", { class: "replicas" },
      h("span", { class: "replicas-text" }, text, h("span", { class: "muted" }, " running")),
      h("span", { class: `meter meter-${kind}`, role: "img", "aria-label": `${text} running` }, h("span", { class: `meter-fill w-${Math.round(pct / 10) * 10}` })));
  }

  hosts(allocs) {
    if (allocs.length === 0) return h("span", { class: "muted" }, "no allocations");
    const byHost = new Map();
    for (const a of allocs) {
      if (!byHost.has(a.host)) byHost.set(a.host, []);
      byHost.get(a.host).push(a);
    }
    return h("div", { class: "hosts" },
      [...byHost.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([host, list]) =>
        h("div", { class: "host-group" },
          h("span", { class: "host-name" }, host),
          h("div", { class: "chips" }, list.map((a) => this.alloc(a))))));
  }

  alloc(a) {
    const detail = [
      `allocation ${a.id}`,
      a.reported ? `state ${a.state}` : "no status reported yet",
      a.exitCode !== null ? `exit code ${a.exitCode}` : "",
      a.reason ? `reason: ${a.reason}` : "",
      a.container ? `container ${a.container.slice(0, 12)}` : "",
    ].filter(Boolean).join("\n");
    return h("span", { class: `alloc alloc-${stateKind[a.state] || "neutral"}`, title: detail, dataset: { alloc: a.id } },
      h("span", { class: "alloc-id" }, a.id.length > 14 ? `${a.id.slice(0, 12)}…` : a.id),
      h("span", { class: "alloc-state" }, a.state),
      a.exitCode !== null && a.state !== "running" && h("span", { class: "alloc-exit" }, `exit ${a.exitCode}`));
  }
}
