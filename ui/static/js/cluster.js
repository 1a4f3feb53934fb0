// The Cluster screen: members as gossip and Raft see them, polled every
// two seconds while the screen is open.

import * as api from "./api.js";
import { $, badge, clock, emptyState, formatBytes, h, PolledView, replace } from "./dom.js";

const POLL_MS = 2000;

const statusKind = { alive: "ok", suspect: "warn", failed: "bad", left: "neutral" };
const roleKind = { voter: "info", nonvoter: "neutral", staging: "warn", none: "neutral" };

export class ClusterView extends PolledView {
  constructor(app) {
    super(POLL_MS);
    this.app = app;
    this.summary = $("#cluster-summary");
    this.table = $("#members");
    this.raftTable = $("#raft-servers");
    this.updated = $("#cluster-updated");
  }

  async load() {
    try {
      const [members, leader, raft, revision] = await Promise.allSettled([api.members(), api.leader(), api.raft(), api.revision()]);
      if (members.status === "rejected") throw members.reason;
      const val = (r) => (r.status === "fulfilled" ? r.value : null);
      this.render(members.value, val(leader), val(raft), val(revision));
      replace(this.updated, `Updated ${clock(new Date())}`);
    } catch (err) {
      replace(this.updated, h("span", { class: "bad" }, `Cannot refresh: ${err.message}`));
    }
  }

  render(members, leader, raft, revision) {
    const alive = members.filter((m) => m.status === "alive").length;
    const voters = members.filter((m) => m.raft === "voter").length;
    const card = (label, value, id, sub) =>
      h("div", { class: "card" }, h("div", { class: "card-label" }, label), h("div", { class: "card-value", id }, value), sub && h("div", { class: "card-sub" }, sub));
    replace(
      this.summary,
      card("Leader", leader ? leader.id : "none", "cluster-leader", leader ? leader.http_address || leader.grpc_address : "no leader known"),
      card("Term", leader ? String(leader.term) : "–", "cluster-term"),
      card("Revision", revision ? String(revision) : "–", "cluster-revision", "last applied write"),
      card("Members", `${alive} / ${members.length}`, "cluster-members", "alive / known"),
      card("Voters", String(voters), "cluster-voters", raft ? `configuration index ${raft.index}` : ""),
    );
    if (members.length === 0) {
      replace(this.table, emptyState("No members", "This member does not know of any member yet."));
    } else {
      replace(this.table, this.membersTable(members, leader));
    }
    replace(this.raftTable, raft ? this.raftServers(raft) : "");
  }

  membersTable(members, leader) {
    const sorted = [...members].sort((a, b) => Number(b.leader) - Number(a.leader) || String(a.name).localeCompare(String(b.name)));
    const head = ["Member", "Status", "Raft", "Addresses", "Labels", "CPU", "Memory", "Docker", "Version"];
    return h("table", { class: "table responsive" },
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, sorted.map((m) => this.memberRow(m, head, leader))));
  }

  memberRow(m, head, leader) {
    const isLeader = m.leader || (leader && leader.id === m.name);
    const addr = m.addresses || {};
    const labels = Object.entries(m.labels || {});
    const res = m.resources || {};
    const cells = [
      h("div", { class: "name-cell" }, h("strong", {}, m.name || "?"), isLeader && badge("leader", "accent")),
      badge(m.status || "unknown", statusKind[m.status] || "neutral"),
      badge(m.raft || "none", roleKind[m.raft] || "neutral"),
      h("dl", { class: "addr" },
        ["http", "grpc", "raft", "gossip"].filter((k) => addr[k]).map((k) => [
          h("dt", {}, k),
          h("dd", {}, k === "http" ? h("a", { href: `http://${addr[k]}/ui/`, title: "Open this member's UI" }, addr[k]) : addr[k]),
        ])),
      labels.length ? h("div", { class: "chips" }, labels.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))) : h("span", { class: "muted" }, "–"),
      res.cpu ? `${Math.round(res.cpu * 100) / 100} cores` : "–",
      formatBytes(Number(res.memory)),
      m.docker ? badge("yes", "ok") : badge("no", "neutral"),
      m.version || "–",
    ];
    return h("tr", { dataset: { member: m.name || "" }, class: isLeader ? "is-leader" : "" },
      cells.map((c, i) => h("td", { dataset: { label: head[i] } }, c)));
  }

  raftServers(raft) {
    const servers = raft.servers || [];
    const head = ["Server", "Address", "Suffrage", "Leader"];
    return [
      h("h3", { class: "section-title" }, `Raft configuration`, h("span", { class: "muted" }, ` · index ${raft.index}`)),
      h("table", { class: "table responsive compact" },
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, servers.map((s) => h("tr", {},
          [s.id, s.address, badge(s.suffrage, roleKind[s.suffrage] || "neutral"), s.leader ? badge("leader", "accent") : ""]
            .map((c, i) => h("td", { dataset: { label: head[i] } }, c)))))),
    ];
  }
}
