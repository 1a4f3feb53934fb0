// The Graph screen: who reads and who writes which prefixes (GET
// /v1/graph), drawn as an SVG of actors and prefixes in layers, with every
// cycle flagged: red for a user's, amber for the scheduler's own control
// loop. Polled every five seconds while shown; redrawn only when the graph
// changed.
//
// Layout: the edges that close cycles are found with a depth-first search
// and set aside; the rest is a DAG, layered by longest path (a node's
// layer is one more than its furthest predecessor's; a node that only
// feeds others sits just before the first of them), and each layer is
// ordered by the barycentre of its neighbours, a few sweeps each way.
// Layers are columns, left to right; edges set aside loop back under the
// nodes.
//
// Every name comes from the cluster: it reaches the page only as text
// (textContent, or an attribute set with setAttribute).

import * as api from "./api.js";
import { $, badge, clock, debounce, emptyState, h, PolledView, replace } from "./dom.js";

const POLL_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

// Geometry, in SVG pixels.
const PAD = 24;
const GAP_X = 76;
const GAP_Y = 16;
const ACTOR_H = 42;
const PREFIX_H = 28;
const MAX_LABEL = 26;
// A drawing wider than its box is shrunk to fit down to this scale; below
// it, it keeps its size and the box scrolls.
const MIN_SCALE = 0.7;

const FONT_ACTOR = '600 13px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const FONT_PREFIX = '12px ui-monospace, "SFMono-Regular", "JetBrains Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace';

/** s builds an SVG element, as h() builds an HTML one. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, String(value));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** arr is v when it is an array, else []. */
function arr(v) {
  return Array.isArray(v) ? v : [];
}

/** str is v when it is a string, else "". */
function str(v) {
  return typeof v === "string" ? v : "";
}

/** short cuts a label to MAX_LABEL characters. */
function short(name) {
  return name.length > MAX_LABEL ? `${name.slice(0, MAX_LABEL - 1)}…` : name;
}

let measureCtx = null;

/** textWidth measures text in a font, for sizing the boxes. */
function textWidth(text, font) {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  if (!measureCtx) return text.length * 7.5;
  measureCtx.font = font;
  return measureCtx.measureText(text).width;
}

/** actorKind names what an actor is, from how it is known. */
function actorKind(n) {
  const sources = arr(n.sources);
  if (sources.includes("builtin")) return "builtin";
  if (n.name.startsWith("component/") && sources.includes("declared")) return "component";
  return "observed";
}

/**
 * model reads the API's graph defensively into nodes (keyed "actor:NAME"
 * or "prefix:NAME") and edges between keys.
 */
export function model(g) {
  const nodes = new Map();
  for (const n of arr(g && g.nodes)) {
    const kind = n && n.kind === "actor" ? "actor" : "prefix";
    const name = str(n && n.name);
    if (!name) continue;
    const node = { key: `${kind}:${name}`, kind, name, cycle: Number(n.cycle) || 0, note: str(n.note), sources: arr(n.sources).map(str) };
    node.actorKind = kind === "actor" ? actorKind(node) : "";
    nodes.set(node.key, node);
  }
  const cycles = arr(g && g.cycles).map((c) => ({
    id: Number(c.id) || 0,
    actors: arr(c.actors).map(str),
    prefixes: arr(c.prefixes).map(str),
    expected: c.expected === true,
    note: str(c.note),
  }));
  const expected = new Set(cycles.filter((c) => c.expected).map((c) => c.id));
  const edges = [];
  for (const e of arr(g && g.edges)) {
    const write = e.access === "write";
    const from = write ? `actor:${str(e.from)}` : `prefix:${str(e.from)}`;
    const to = write ? `prefix:${str(e.to)}` : `actor:${str(e.to)}`;
    if (!nodes.has(from) || !nodes.has(to)) continue;
    const cycle = Number(e.cycle) || 0;
    edges.push({
      from, to, access: write ? "write" : "read", cycle, expected: expected.has(cycle),
      sources: arr(e.sources).map(str), lastSeen: str(e.last_seen),
    });
  }
  // An overlap joins a written prefix to a read one that shares keys with
  // it: the dependency no use shows.
  const overlaps = [];
  for (const o of arr(g && g.overlaps)) {
    const from = `prefix:${str(o.from)}`;
    const to = `prefix:${str(o.to)}`;
    if (!nodes.has(from) || !nodes.has(to)) continue;
    const cycle = Number(o.cycle) || 0;
    overlaps.push({ from, to, access: "overlap", cycle, expected: expected.has(cycle), sources: [], lastSeen: "" });
  }
  for (const n of nodes.values()) n.expected = expected.has(n.cycle);
  return {
    nodes: [...nodes.values()], edges, overlaps, links: [...edges, ...overlaps], cycles,
    member: str(g && g.member), revision: Number(g && g.revision) || 0,
  };
}

/**
 * layout places the nodes in layers (columns) and routes the links (uses
 * and overlaps); it returns the nodes with x, y, w, h, the links with an
 * SVG path, and the drawing's size.
 */
export function layout(m, measure = textWidth) {
  const nodes = m.nodes.map((n) => ({ ...n }));
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  for (const n of nodes) {
    n.label = short(n.name);
    n.h = n.kind === "actor" ? ACTOR_H : PREFIX_H;
    n.w = Math.ceil(Math.max(n.kind === "actor" ? 96 : 60, measure(n.label, n.kind === "actor" ? FONT_ACTOR : FONT_PREFIX) + 28));
  }
  const links = m.links;
  const out = new Map(nodes.map((n) => [n.key, []]));
  links.forEach((e, i) => out.get(e.from).push(i));

  // Set aside the links that close cycles: those to a node still on the
  // depth-first search's stack. Roots in order: nodes nothing points at,
  // then the rest; actors before prefixes, each by name.
  const indeg = new Map(nodes.map((n) => [n.key, 0]));
  for (const e of links) indeg.set(e.to, indeg.get(e.to) + 1);
  const rank = (n) => (indeg.get(n.key) === 0 ? 0 : 2) + (n.kind === "actor" ? 0 : 1);
  const order = [...nodes].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const back = new Set();
  const state = new Map(); // 1: on the stack, 2: done
  for (const root of order) {
    if (state.get(root.key)) continue;
    const stack = [{ key: root.key, i: 0 }];
    state.set(root.key, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const list = out.get(top.key);
      if (top.i < list.length) {
        const li = list[top.i++];
        const to = links[li].to;
        if (state.get(to) === 1) back.add(li);
        else if (!state.get(to)) {
          state.set(to, 1);
          stack.push({ key: to, i: 0 });
        }
      } else {
        state.set(top.key, 2);
        stack.pop();
      }
    }
  }

  // Longest-path layers over the rest, a DAG, in Kahn's order.
  const preds = new Map(nodes.map((n) => [n.key, []]));
  const succs = new Map(nodes.map((n) => [n.key, []]));
  links.forEach((e, i) => {
    if (back.has(i)) return;
    preds.get(e.to).push(e.from);
    succs.get(e.from).push(e.to);
  });
  const layer = new Map(nodes.map((n) => [n.key, 0]));
  const waiting = new Map(nodes.map((n) => [n.key, preds.get(n.key).length]));
  const queue = order.filter((n) => waiting.get(n.key) === 0).map((n) => n.key);
  const topo = [];
  while (queue.length) {
    const k = queue.shift();
    topo.push(k);
    for (const t of succs.get(k)) {
      layer.set(t, Math.max(layer.get(t), layer.get(k) + 1));
      waiting.set(t, waiting.get(t) - 1);
      if (waiting.get(t) === 0) queue.push(t);
    }
  }
  // A node that only feeds others sits just before the first of them.
  for (const k of [...topo].reverse()) {
    const next = succs.get(k);
    if (preds.get(k).length === 0 && next.length > 0) layer.set(k, Math.min(...next.map((t) => layer.get(t))) - 1);
  }
  for (const n of nodes) n.layer = layer.get(n.key);
  const nLayers = Math.max(0, ...layer.values()) + 1;
  const layers = Array.from({ length: nLayers }, () => []);
  for (const n of order) layers[n.layer].push(n);

  // A link that spans several layers passes through each layer between
  // on a point of its own, which the ordering places like a node.
  const via = new Map(); // link index -> its points, in order
  links.forEach((e, i) => {
    const a = byKey.get(e.from);
    const b = byKey.get(e.to);
    if (back.has(i) || b.layer - a.layer < 2) return;
    // The link's ends now neighbour its points instead of each other.
    const drop = (list, key) => list.splice(list.indexOf(key), 1);
    drop(succs.get(a.key), b.key);
    drop(preds.get(b.key), a.key);
    const points = [];
    let prev = a.key;
    for (let l = a.layer + 1; l < b.layer; l++) {
      const p = { key: `~${i}:${l}`, dummy: true, layer: l, w: 0, h: 4 };
      layers[l].push(p);
      preds.set(p.key, [prev]);
      succs.set(p.key, []);
      succs.get(prev).push(p.key);
      points.push(p);
      prev = p.key;
    }
    succs.get(prev).push(b.key);
    preds.get(b.key).push(prev);
    via.set(i, points);
  });

  // Order each layer by the barycentre of its neighbours in the layer
  // before (forward sweeps) and after (backward sweeps).
  const pos = new Map();
  layers.forEach((l) => l.forEach((n, i) => pos.set(n.key, i)));
  const sweep = (l, neighbours) => {
    const centre = new Map(l.map((n, i) => {
      const ps = neighbours(n.key).map((k) => pos.get(k));
      return [n.key, ps.length ? ps.reduce((x, y) => x + y, 0) / ps.length : i];
    }));
    l.sort((x, y) => centre.get(x.key) - centre.get(y.key));
    l.forEach((n, i) => pos.set(n.key, i));
  };
  for (let pass = 0; pass < 6; pass++) {
    for (let i = 1; i < nLayers; i++) sweep(layers[i], (k) => preds.get(k));
    for (let i = nLayers - 2; i >= 0; i--) sweep(layers[i], (k) => succs.get(k));
  }

  // Coordinates: columns left to right, each centred on the tallest.
  const gapAfter = (n) => (n.dummy ? GAP_Y / 2 : GAP_Y);
  const colHeight = layers.map((l) => l.reduce((sum, n, i) => sum + n.h + (i < l.length - 1 ? gapAfter(n) : 0), 0));
  const tallest = Math.max(0, ...colHeight);
  const colLeft = [];
  const colRight = [];
  const colBottom = [];
  let x = PAD;
  layers.forEach((l, li) => {
    const colWidth = Math.max(0, ...l.map((n) => n.w));
    let y = PAD + (tallest - colHeight[li]) / 2;
    for (const n of l) {
      n.x = x + (colWidth - n.w) / 2;
      n.y = y;
      y += n.h + gapAfter(n);
    }
    colLeft.push(x);
    colRight.push(x + colWidth);
    colBottom.push(l.length ? l[l.length - 1].y + l[l.length - 1].h : PAD);
    x += colWidth + GAP_X;
  });
  const width = Math.max(x - GAP_X + PAD, 200);

  // Forward links run from the right side of a node to the left side of
  // the next, straight through the columns they cross, curved between.
  // The links set aside go back: out of the node's left side, down the
  // gap before its column, under the columns in between, up the gap after
  // the target's column and into its right side. Nodes sit only in
  // columns, so no route crosses one.
  let bottom = PAD + tallest;
  let backs = 0;
  const curve = (x1, y1, x2, y2) => {
    const c = Math.max(24, (x2 - x1) / 2);
    return ` C${x1 + c},${y1} ${x2 - c},${y2} ${x2},${y2}`;
  };
  const routed = links.map((e, i) => {
    const a = byKey.get(e.from);
    const b = byKey.get(e.to);
    let d;
    if (!back.has(i)) {
      let px = a.x + a.w;
      let py = a.y + a.h / 2;
      d = `M${px},${py}`;
      for (const p of via.get(i) || []) {
        const cy = p.y + p.h / 2;
        d += curve(px, py, colLeft[p.layer], cy) + ` H${colRight[p.layer]}`;
        px = colRight[p.layer];
        py = cy;
      }
      d += curve(px, py, b.x - 3, b.y + b.h / 2);
    } else if (a.layer === b.layer + 1) {
      // Back to the column just before: a curve in the gap between them.
      const x1 = a.x;
      const y1 = a.y + a.h / 2 + 5;
      const x2 = b.x + b.w + 3;
      const y2 = b.y + b.h / 2 + 5;
      const c = Math.max(24, (x1 - x2) / 2);
      d = `M${x1},${y1} C${x1 - c},${y1 + 16} ${x2 + c},${y2 + 16} ${x2},${y2}`;
    } else {
      const k = backs++;
      const shift = ((k % 5) - 2) * 6;
      const ya = a.y + a.h / 2;
      const yb = b.y + b.h / 2;
      const r = 8;
      const gx1 = colLeft[a.layer] - GAP_X / 2 + shift;
      const gx2 = Math.min(colRight[b.layer] + GAP_X / 2 + shift - 12, gx1 - 2 * r - 4);
      let floor = Math.max(ya, yb) + 18;
      for (let li = b.layer + 1; li < a.layer; li++) floor = Math.max(floor, colBottom[li] + 18);
      const cy = floor + (k % 5) * 7;
      d = `M${a.x},${ya} H${gx1 + r} Q${gx1},${ya} ${gx1},${ya + r} V${cy - r} Q${gx1},${cy} ${gx1 - r},${cy} ` +
        `H${gx2 + r} Q${gx2},${cy} ${gx2},${cy - r} V${yb + r} Q${gx2},${yb} ${gx2 - r},${yb} H${b.x + b.w + 3}`;
      bottom = Math.max(bottom, cy);
    }
    return { ...e, i, d, back: back.has(i) };
  });
  return { nodes, edges: routed, width: Math.ceil(width), height: Math.ceil(bottom + PAD) };
}

export class GraphView extends PolledView {
  constructor(app) {
    super(POLL_MS);
    this.app = app;
    this.last = "";
    this.focus = 0; // the cycle the user picked, 0 for none
    this.el = {
      updated: $("#graph-updated"),
      summary: $("#graph-summary"),
      canvas: $("#graph-canvas"),
      panel: $(".graph-panel"),
      cycles: $("#graph-cycles"),
      uses: $("#graph-uses"),
      usesCount: $("#graph-uses-count"),
      hint: $("#graph-scroll-hint"),
    };
    window.addEventListener("resize", debounce(() => this.fit(), 100));
  }

  async load() {
    try {
      const g = await api.graph();
      const text = JSON.stringify(g);
      if (text !== this.last) {
        this.last = text;
        this.render(model(g));
      }
      replace(this.el.updated, `Updated ${clock(new Date())} · revision ${Number(g.revision) || 0}`,
        g.member ? ` · observed by ${g.member}` : "");
    } catch (err) {
      replace(this.el.updated, h("span", { class: "bad" }, `Cannot refresh: ${err.message}`));
    }
  }

  render(m) {
    this.model = m;
    if (!m.cycles.some((c) => c.id === this.focus)) this.focus = 0;
    const unexpected = m.cycles.filter((c) => !c.expected).length;
    const card = (label, value, id, sub, kind) =>
      h("div", { class: `card${kind ? ` card-${kind}` : ""}` }, h("div", { class: "card-label" }, label),
        h("div", { class: "card-value", id }, value), sub && h("div", { class: "card-sub" }, sub));
    replace(this.el.summary,
      card("Actors", String(m.nodes.filter((n) => n.kind === "actor").length), "graph-actors", "programs that read or write"),
      card("Prefixes", String(m.nodes.filter((n) => n.kind === "prefix").length), "graph-prefixes", "keys, prefixes and channels"),
      card("Uses", String(m.edges.length), "graph-edges", "declared, built in or observed"),
      card("Cycles", String(unexpected), "graph-cycle-count",
        `${m.cycles.length - unexpected} expected`, unexpected > 0 ? "bad" : "ok"));
    this.renderCanvas(m);
    this.renderCycles(m);
    this.renderUses(m);
    this.applyFocus();
  }

  renderCanvas(m) {
    const L = layout(m);
    const marker = (id) => s("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: `g-arrowhead ${id}` }));
    const edgeClass = (e) => {
      const c = ["g-edge"];
      if (e.access === "overlap") c.push("overlap");
      else if (e.sources.includes("declared")) c.push("declared");
      else if (e.sources.includes("builtin")) c.push("builtin");
      else c.push("observed-only");
      if (e.cycle) c.push(e.expected ? "expected" : "cycle");
      return c.join(" ");
    };
    const markerFor = (e) => (e.cycle ? (e.expected ? "arrow-expected" : "arrow-cycle") : "arrow");
    // Overlaps go under the uses.
    const order = L.edges.map((e, i) => i).sort((x, y) => Number(L.edges[y].access === "overlap") - Number(L.edges[x].access === "overlap"));
    this.edgeEls = L.edges.map((e) => {
      const how = e.sources.join(", ") + (e.lastSeen ? `; last seen ${e.lastSeen}` : "");
      let title = `${e.to.slice(6)} reads ${e.from.slice(7)} (${how})`;
      if (e.access === "write") title = `${e.from.slice(6)} writes ${e.to.slice(7)} (${how})`;
      if (e.access === "overlap") title = `what is written to ${e.from.slice(7)} is read through ${e.to.slice(7)}: they share keys`;
      return s("path", { d: e.d, class: edgeClass(e), "marker-end": `url(#${markerFor(e)})`, "data-from": e.from, "data-to": e.to,
        "data-access": e.access, "data-cycle": e.cycle || null },
      s("title", {}, title));
    });
    this.nodeEls = new Map();
    const nodes = L.nodes.map((n) => {
      const cls = ["g-node", `g-${n.kind}`];
      if (n.actorKind) cls.push(n.actorKind);
      if (n.cycle) cls.push(n.expected ? "expected" : "cycle");
      const kindLabel = n.kind === "actor" ? { builtin: "BUILT IN", component: "COMPONENT", observed: "OBSERVED" }[n.actorKind] : "";
      const title = [n.name, n.kind === "actor" ? `${n.actorKind} actor` : "prefix", n.note,
        n.cycle ? `in cycle ${n.cycle}${n.expected ? " (expected)" : ""}` : ""].filter(Boolean).join("\n");
      const g = s("g", { class: cls.join(" "), transform: `translate(${n.x},${n.y})`, "data-node": n.name, "data-kind": n.kind, "data-cycle": n.cycle || null, tabindex: 0 },
        s("title", {}, title),
        s("rect", { width: n.w, height: n.h, rx: n.kind === "actor" ? 7 : n.h / 2 }),
        n.kind === "actor"
          ? [s("text", { x: 14, y: 17, class: "g-kind" }, kindLabel), s("text", { x: 14, y: 33, class: "g-name" }, n.label)]
          : s("text", { x: n.w / 2, y: n.h / 2 + 4, class: "g-name", "text-anchor": "middle" }, n.label));
      g.addEventListener("mouseenter", () => this.hover(n.key));
      g.addEventListener("mouseleave", () => this.hover(""));
      g.addEventListener("focus", () => this.hover(n.key));
      g.addEventListener("blur", () => this.hover(""));
      this.nodeEls.set(n.key, g);
      return g;
    });
    const actors = m.nodes.filter((n) => n.kind === "actor").length;
    this.svg = s("svg", { class: "graph-svg", id: "graph-svg", width: L.width, height: L.height, viewBox: `0 0 ${L.width} ${L.height}`, role: "img",
      "aria-label": `${actors} actors and ${m.nodes.length - actors} prefixes; ${m.cycles.length} cycles` },
    s("defs", {}, marker("arrow"), marker("arrow-cycle"), marker("arrow-expected")),
    s("g", { class: "g-edges" }, order.map((i) => this.edgeEls[i])),
    s("g", { class: "g-nodes" }, nodes));
    this.size = { width: L.width, height: L.height };
    this.placed = new Map(L.nodes.map((n) => [n.key, n]));
    const first = !this.drawn;
    this.drawn = true;
    // Keep the scroll position across redraws; the first time, show the
    // first cycle that is not expected.
    const { scrollLeft, scrollTop } = this.el.canvas;
    replace(this.el.canvas, this.svg);
    this.fit();
    this.el.canvas.scrollLeft = scrollLeft;
    this.el.canvas.scrollTop = scrollTop;
    const flagged = m.cycles.find((c) => !c.expected);
    if (first && flagged) this.reveal(flagged.id);
  }

  /** reveal scrolls the drawing sideways to show a cycle's nodes. */
  reveal(id) {
    const keys = new Set(this.model.links.filter((e) => e.cycle === id).flatMap((e) => [e.from, e.to]));
    const boxes = [...keys].map((k) => this.placed.get(k)).filter(Boolean);
    if (!boxes.length) return;
    const scale = this.scale || 1;
    const left = Math.min(...boxes.map((n) => n.x)) * scale;
    const right = Math.max(...boxes.map((n) => n.x + n.w)) * scale;
    const view = this.el.canvas;
    if (left >= view.scrollLeft && right <= view.scrollLeft + view.clientWidth) return;
    const room = view.clientWidth;
    view.scrollLeft = right - left <= room ? (left + right - room) / 2 : left - 16;
  }

  /** fit shrinks a drawing a little wider than its box to the box. */
  fit() {
    if (!this.svg || !this.size) return;
    const room = this.el.canvas.clientWidth;
    const { width, height } = this.size;
    const scale = room > 0 && width > room && room / width >= MIN_SCALE ? room / width : 1;
    this.scale = scale;
    this.svg.setAttribute("width", String(Math.floor(width * scale)));
    this.svg.setAttribute("height", String(Math.ceil(height * scale)));
    this.el.hint.hidden = !(room > 0 && width * scale > room + 1);
  }

  renderCycles(m) {
    if (m.cycles.length === 0) {
      replace(this.el.cycles, emptyState("No cycles", "Every program reads only what others write: the graph is a DAG."));
      return;
    }
    const items = [...m.cycles].sort((a, b) => Number(a.expected) - Number(b.expected) || a.id - b.id).map((c) => {
      const kind = c.expected ? "expected" : "cycle";
      const chips = (list, cls) => h("div", { class: "chips" }, list.map((x) => h("span", { class: `chip ${cls}` }, x)));
      const selected = this.focus === c.id;
      return h("li", { class: `cycle-card cycle-${kind}`, dataset: { cycle: String(c.id), expected: String(c.expected) } },
        h("div", { class: "cycle-head" },
          h("span", { class: "cycle-title" }, `Cycle ${c.id}`),
          c.expected ? badge("expected", "warn") : badge("feedback loop", "bad"),
          h("span", { class: "muted" }, c.actors.length === 1 ? "reads what it writes" : `${c.actors.length} actors`),
          h("span", { class: "spacer" }),
          h("button", { type: "button", class: "btn btn-sm", "aria-pressed": String(selected), onclick: () => this.pick(c.id) },
            selected ? "Show all" : "Show in graph")),
        h("div", { class: "cycle-row" }, h("span", { class: "cycle-label" }, "Actors"), chips(c.actors, "chip-actor")),
        h("div", { class: "cycle-row" }, h("span", { class: "cycle-label" }, "Through"), chips(c.prefixes, "chip-prefix")),
        c.expected
          ? h("p", { class: "cycle-note" }, `Expected: ${c.note || "built in"}.`)
          : h("p", { class: "cycle-note" }, "Changes can chase each other round this loop. Make one of these programs stop reading what the loop writes, or split what it writes from what it reads."));
    });
    replace(this.el.cycles, h("ul", { class: "cycle-list", id: "graph-cycle-list" }, items));
  }

  renderUses(m) {
    replace(this.el.usesCount, `(${m.edges.length})`);
    const head = ["Actor", "Access", "Prefix", "Source", "Cycle"];
    const rows = m.edges.map((e) => {
      const actor = e.access === "write" ? e.from.slice(6) : e.to.slice(6);
      const prefix = e.access === "write" ? e.to.slice(7) : e.from.slice(7);
      const cells = [
        h("strong", {}, actor),
        e.access === "write" ? "writes" : "reads",
        h("code", {}, prefix),
        e.sources.join(", ") + (e.lastSeen ? ` · last ${clock(new Date(e.lastSeen))}` : ""),
        e.cycle ? badge(`${e.cycle}${e.expected ? " · expected" : ""}`, e.expected ? "warn" : "bad") : h("span", { class: "muted" }, "–"),
      ];
      const cls = ["u-actor", "u-access", "u-prefix", "u-source", "u-cycle"];
      return h("tr", {}, cells.map((c, i) => h("td", { class: cls[i], dataset: { label: head[i] } }, c)));
    });
    replace(this.el.uses, h("table", { class: "table compact uses", id: "graph-uses-table" },
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
  }

  /** pick shows one cycle in the graph, or everything again. */
  pick(id) {
    this.focus = this.focus === id ? 0 : id;
    this.renderCycles(this.model);
    this.applyFocus();
    if (this.focus) {
      this.reveal(this.focus);
      this.el.panel.scrollIntoView({ block: "start", behavior: "smooth" });
    }
  }

  /** hover shows a node with its edges and neighbours; "" ends it. */
  hover(key) {
    this.hovered = key;
    this.applyFocus();
  }

  applyFocus() {
    if (!this.svg) return;
    const keep = new Set();
    const keepEdges = new Set();
    let on = false;
    if (this.hovered) {
      on = true;
      keep.add(this.hovered);
      this.model.links.forEach((e, i) => {
        if (e.from === this.hovered || e.to === this.hovered) {
          keepEdges.add(i);
          keep.add(e.from);
          keep.add(e.to);
        }
      });
    } else if (this.focus) {
      on = true;
      this.model.links.forEach((e, i) => {
        if (e.cycle === this.focus) {
          keepEdges.add(i);
          keep.add(e.from);
          keep.add(e.to);
        }
      });
    }
    this.svg.classList.toggle("focused", on);
    for (const [key, el] of this.nodeEls) el.classList.toggle("focus", keep.has(key));
    this.edgeEls.forEach((el, i) => el.classList.toggle("focus", keepEdges.has(i)));
  }
}
