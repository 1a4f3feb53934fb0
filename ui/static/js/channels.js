// The Channels screen: a console that subscribes to channels (keys, or
// prefixes ending in "/"), shows what arrives, newest first, and publishes
// messages. All channels share one EventSource; changing the set opens a
// new one that resumes where the old one stopped.

import * as api from "./api.js";
import { $, badge, clock, h, replace } from "./dom.js";
import { Stream } from "./live.js";

/** How many events the list keeps; older ones drop off the bottom. */
const MAX_EVENTS = 200;

const typeKind = { message: "accent", put: "ok", delete: "bad", expire: "warn", resync: "warn" };

export class ChannelsView {
  constructor(app) {
    this.app = app;
    this.channels = [];
    this.stream = null;
    this.count = 0;
    this.el = {
      subForm: $("#subscribe-form"),
      input: $("#channel-input"),
      chips: $("#channel-chips"),
      subError: $("#subscribe-error"),
      status: $("#channel-status"),
      list: $("#channel-events"),
      clear: $("#clear-events"),
      pubForm: $("#publish-form"),
      pubChannel: $("#publish-channel"),
      pubBody: $("#publish-body"),
      pubResult: $("#publish-result"),
    };
    this.wire();
    this.renderChips();
    this.renderList();
  }

  wire() {
    const { el } = this;
    el.subForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.subscribe(el.input.value.trim());
    });
    el.clear.addEventListener("click", () => {
      this.count = 0;
      this.renderList();
    });
    el.pubForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.publish();
    });
  }

  show() {}

  hide() {} // the subscription goes on: events keep arriving in the list

  subscribe(channel) {
    const { el } = this;
    replace(el.subError);
    el.subError.hidden = true;
    const bad = channel ? api.checkKey(channel, "channel") : new Error("Name a channel, such as /chat/ or /deploy/web.");
    if (bad) {
      this.fieldError(el.subError, bad);
      return;
    }
    if (!this.channels.includes(channel)) this.channels.push(channel);
    el.input.value = "";
    if (!el.pubChannel.value && !channel.endsWith("/")) el.pubChannel.value = channel;
    this.restart();
  }

  unsubscribe(channel) {
    this.channels = this.channels.filter((c) => c !== channel);
    this.restart();
  }

  restart() {
    const from = this.stream ? this.stream.from : 0;
    if (this.stream) this.stream.close();
    this.stream = null;
    this.renderChips();
    if (this.channels.length === 0) {
      this.setStatus("idle", "Not subscribed");
      return;
    }
    this.stream = new Stream([...this.channels], {
      from,
      onEvent: (ev) => this.onEvent(ev),
      onStatus: (s) => this.setStatus(s, { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", closed: "Closed" }[s]),
      onError: (err) => this.fieldError(this.el.subError, err),
    }).start();
  }

  onEvent(ev) {
    if (ev.type === "progress" || ev.type === "synced") return;
    const row = this.eventRow(ev);
    const list = this.el.list;
    if (this.count === 0) replace(list);
    list.prepend(row);
    this.count++;
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }

  eventRow(ev) {
    const payload = ev.value === undefined ? "" : JSON.stringify(ev.value);
    const long = payload.length > 160;
    return h("li", { class: "event", dataset: { type: ev.type, key: ev.key || "", revision: String(ev.revision) } },
      h("div", { class: "event-head" },
        badge(ev.type, typeKind[ev.type] || "neutral"),
        h("code", { class: "event-key" }, ev.key || ""),
        h("span", { class: "event-meta" },
          `rev ${ev.revision}`,
          ev.origin ? ` · ${ev.origin}` : "",
          ` · ${clock(new Date())}`)),
      payload && (long
        ? h("details", { class: "event-body" }, h("summary", {}, h("code", {}, `${payload.slice(0, 160)}…`)), h("pre", { class: "code" }, api.pretty(ev.value)))
        : h("code", { class: "event-body" }, payload)));
  }

  async publish() {
    const { el } = this;
    const channel = el.pubChannel.value.trim();
    const text = el.pubBody.value;
    replace(el.pubResult);
    el.pubChannel.classList.remove("invalid");
    el.pubBody.classList.remove("invalid");
    try {
      const rev = await api.publish(channel, text);
      replace(el.pubResult, h("span", { class: "ok" }, `Published to ${channel} at revision ${rev}.`));
    } catch (err) {
      if (err.field === "channel") el.pubChannel.classList.add("invalid");
      if (err.field === "value" || err.field === "payload") el.pubBody.classList.add("invalid");
      this.fieldError(el.pubResult, err);
    }
  }

  fieldError(target, err) {
    target.hidden = false;
    replace(target, h("span", { class: "bad" }, err.field ? `${err.field}: ` : "", err.message, err.code && !String(err.code).startsWith("http") && err.code !== "network" ? ` (${err.code})` : ""));
  }

  setStatus(kind, text) {
    replace(this.el.status, h("span", { class: `dot dot-${kind}` }), text);
  }

  renderChips() {
    const { chips } = this.el;
    if (this.channels.length === 0) {
      replace(chips, h("span", { class: "muted" }, "No channels yet. A channel is a key (/deploy/web) or a prefix ending in / (/chat/)."));
      this.setStatus("idle", "Not subscribed");
      return;
    }
    replace(chips, this.channels.map((c) =>
      h("span", { class: "chip chip-removable", dataset: { channel: c } },
        h("code", {}, c),
        h("button", { type: "button", class: "chip-x", "aria-label": `Unsubscribe from ${c}`, onclick: () => this.unsubscribe(c) }, "×"))));
  }

  renderList() {
    replace(this.el.list, h("li", { class: "events-empty muted" }, "Events on the channels you subscribe to appear here, newest first."));
  }
}
