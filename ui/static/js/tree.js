// The key tree: keys split into their path segments, "/config/app/db" under
// config, then app. A key can also be a folder ("/a" and "/a/b" may both
// exist). The tree keeps the set of keys and redraws itself, batched, when
// it changes.

import { h, replace } from "./dom.js";

/** How long a key that arrived through a live event stays highlighted. */
const FRESH_MS = 2500;

export class KeyTree {
  /**
   * @param {HTMLElement} root       where the tree is drawn
   * @param {(key: string) => void} onSelect  a key was clicked
   */
  constructor(root, onSelect) {
    this.root = root;
    this.onSelect = onSelect;
    this.keys = new Set();
    this.collapsed = new Set(); // folder paths the user closed
    this.fresh = new Map(); // key -> time it arrived live
    this.selected = "";
    this.prefix = "/";
    this.note = "";
    this.pending = 0;
  }

  /** reset replaces every key, as after a (re)load. */
  reset(keys, prefix) {
    this.keys = new Set(keys);
    this.prefix = prefix;
    this.fresh.clear();
    this.redraw();
  }

  add(key, live) {
    if (!this.keys.has(key) && live) {
      this.fresh.set(key, Date.now());
      setTimeout(() => this.redraw(), FRESH_MS + 50);
    }
    this.keys.add(key);
    this.redraw();
  }

  remove(key) {
    if (this.keys.delete(key)) this.redraw();
  }

  select(key) {
    this.selected = key;
    // Open every folder on the way to the selected key.
    let i = key.indexOf("/", 1);
    while (i > 0) {
      this.collapsed.delete(key.slice(0, i));
      i = key.indexOf("/", i + 1);
    }
    this.redraw();
  }

  /** redraw draws at most every 150 ms, however many changes arrive. */
  redraw() {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = 0;
      this.draw();
    }, 150);
  }

  /** build turns the sorted keys into nested folder nodes. */
  build() {
    const root = { path: "", children: new Map(), isKey: false, count: 0 };
    for (const key of [...this.keys].sort()) {
      let node = root;
      const segments = key.split("/").slice(1);
      segments.forEach((seg, i) => {
        node.count++;
        let child = node.children.get(seg);
        if (!child) {
          child = { name: seg, path: `${node.path}/${seg}`, children: new Map(), isKey: false, count: 0 };
          node.children.set(seg, child);
        }
        node = child;
        if (i === segments.length - 1) child.isKey = true;
      });
    }
    return root;
  }

  draw() {
    const now = Date.now();
    for (const [key, t] of this.fresh) if (now - t > FRESH_MS) this.fresh.delete(key);
    const root = this.build();
    if (root.children.size === 0) {
      replace(this.root, h("p", { class: "tree-empty" }, `No keys under ${this.prefix}`));
      return;
    }
    replace(this.root, h("ul", { class: "tree", role: "tree" }, this.items(root)), this.note && h("p", { class: "tree-note" }, this.note));
  }

  items(node) {
    return [...node.children.values()].map((child) => this.item(child));
  }

  item(node) {
    const folder = node.children.size > 0;
    const open = folder && !this.collapsed.has(node.path);
    const classes = ["tree-row"];
    if (node.isKey && node.path === this.selected) classes.push("selected");
    if (this.fresh.has(node.path)) classes.push("fresh");
    const toggle = folder
      ? h("button", {
          class: `tree-toggle${open ? " open" : ""}`,
          type: "button",
          "aria-label": `${open ? "Collapse" : "Expand"} ${node.path}/`,
          onclick: () => {
            if (open) this.collapsed.add(node.path);
            else this.collapsed.delete(node.path);
            this.draw();
          },
        })
      : h("span", { class: "tree-spacer" });
    const label = h(
      "button",
      {
        class: `tree-label ${node.isKey ? "is-key" : "is-folder"}`,
        type: "button",
        title: node.path,
        dataset: { key: node.path },
        onclick: () => {
          if (node.isKey) this.onSelect(node.path);
          else toggle.click();
        },
      },
      h("span", { class: node.isKey ? "icon icon-key" : "icon icon-folder" }),
      h("span", { class: "tree-name" }, node.name),
      folder && h("span", { class: "tree-count" }, String(node.count)),
    );
    return h(
      "li",
      { role: "treeitem", "aria-expanded": folder ? String(open) : null },
      h("div", { class: classes.join(" ") }, toggle, label),
      open && h("ul", { role: "group" }, this.items(node)),
    );
  }
}
