// Entry point: a hash router over five screens, the header's live status
// and a small toast area. Each screen is a class with show(params) and
// hide(), created once.
//
//   #/state[?key=/a/b]   StateView       (state.js)
//   #/cluster            ClusterView     (cluster.js)
//   #/components         ComponentsView  (components.js)
//   #/graph              GraphView       (graph.js)
//   #/channels           ChannelsView    (channels.js)

import * as api from "./api.js";
import { ChannelsView } from "./channels.js";
import { ClusterView } from "./cluster.js";
import { ComponentsView } from "./components.js";
import { $, h, replace } from "./dom.js";
import { GraphView } from "./graph.js";
import { StateView } from "./state.js";

const liveText = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", closed: "Disconnected" };

const app = {
  views: {},
  current: "",

  /** navigate changes the hash; replace keeps the history entry. */
  navigate(hash, replaceEntry) {
    if (location.hash === hash) return;
    if (replaceEntry) {
      history.replaceState(null, "", hash);
      this.route();
    } else {
      location.hash = hash;
    }
  },

  /** route shows the screen the hash names. */
  route() {
    const [path, query] = (location.hash.replace(/^#/, "") || "/state").split("?");
    const name = path.replace(/^\//, "").split("/")[0] || "state";
    const view = this.views[name] ? name : "state";
    if (view !== this.current) {
      if (this.current) this.views[this.current].hide();
      for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
      for (const a of document.querySelectorAll("nav.tabs a")) {
        if (a.dataset.view === view) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
      this.current = view;
      document.title = `${view[0].toUpperCase()}${view.slice(1)} · Dux`;
    }
    this.views[view].show(new URLSearchParams(query || ""));
  },

  /** setLive shows the state subscription's health in the header. */
  setLive(status) {
    const el = $("#live");
    el.dataset.status = status;
    replace(el, h("span", { class: `dot dot-${status}` }), liveText[status] || status);
  },

  /** toast shows a short message for a few seconds. */
  toast(text, kind = "info") {
    const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
    $("#toasts").append(t);
    setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
  },
};

/** showLeader names the leader in the header, refreshed now and then. */
async function showLeader() {
  try {
    const l = await api.leader();
    replace($("#leader"), l ? ["Leader ", h("strong", {}, l.id), h("span", { class: "muted" }, ` · term ${l.term}`)] : h("span", { class: "bad" }, "No leader"));
  } catch {
    replace($("#leader"), h("span", { class: "bad" }, "Member unreachable"));
  }
}

function main() {
  app.views = {
    state: new StateView(app),
    cluster: new ClusterView(app),
    components: new ComponentsView(app),
    graph: new GraphView(app),
    channels: new ChannelsView(app),
  };
  window.addEventListener("hashchange", () => app.route());
  app.route();
  showLeader();
  setInterval(showLeader, 5000);
}

main();
