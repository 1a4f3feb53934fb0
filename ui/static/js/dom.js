// Small DOM helpers. Every piece of text reaches the page through
// textContent or a text node, never through innerHTML, so keys, values and
// messages from the cluster cannot inject markup.

/**
 * h builds an element: h("a", {href: "#", class: "x"}, "text", child, ...).
 * Attributes starting with "on" are event listeners; `dataset` sets data-*;
 * null, undefined and false children are skipped; arrays are flattened.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** replace empties el and puts children in it. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** $ finds one element by CSS selector, failing loudly if it is missing. */
export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`ui: no element ${selector}`);
  return el;
}

/** formatBytes renders a byte count as 512 MiB, 7.8 GiB, ... */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n <= 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** clock renders a Date as HH:MM:SS in local time. */
export function clock(d) {
  return d.toLocaleTimeString([], { hour12: false });
}

/** badge is a small coloured label; kind picks the colour (see style.css). */
export function badge(text, kind) {
  return h("span", { class: `badge badge-${kind || "neutral"}` }, text);
}

/** emptyState is the message shown where a list has nothing to show. */
export function emptyState(title, ...detail) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), h("p", {}, ...detail));
}

/** debounce returns fn delayed until calls stop for ms milliseconds. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * PolledView is a view that reloads every intervalMs while it is shown,
 * never two loads at once. A subclass implements load().
 */
export class PolledView {
  constructor(intervalMs) {
    this.intervalMs = intervalMs;
    this.timer = 0;
    this.busy = false;
  }

  show() {
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), this.intervalMs);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  async refresh() {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.load();
    } finally {
      this.busy = false;
    }
  }
}
