// The HTTP API of the member that served this page (docs/API.md). Every
// call goes to the same origin under /v1/; nothing is fetched from
// anywhere else.

/** ORIGIN names the UI as the writer of every change it makes. */
export const ORIGIN = "web-ui";

/** ApiError is a refused request: the API's {"error":{...}} body, typed. */
export class ApiError extends Error {
  constructor(status, body, text) {
    const e = (body && body.error) || {};
    super(e.message || text || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 0 ? "network" : `http_${status}`);
    this.field = e.field || "";
    // revision is the key's current mod revision on a failed compare.
    this.revision = Number(e.revision || 0);
  }
}

// JSON.parse with number text preserved: a value such as 12345678901234567890
// or 1.50 would otherwise come back rounded or reformatted, and a user who
// saves it unchanged would write a different document. Where the browser
// has JSON.rawJSON (with source text in the reviver), numbers whose text
// differs from what JavaScript would print are kept as written.
const exactNumbers = typeof JSON.rawJSON === "function";

export function parseJSON(text) {
  if (!exactNumbers) return JSON.parse(text);
  return JSON.parse(text, (_key, value, ctx) =>
    typeof value === "number" && ctx && typeof ctx.source === "string" && String(value) !== ctx.source
      ? JSON.rawJSON(ctx.source)
      : value);
}

/** pretty renders a JSON value indented; undefined renders as "". */
export function pretty(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

/**
 * checkKey refuses what a URL cannot carry: a key must start with "/", and
 * "." or ".." segments would be resolved away by the browser before the
 * request left, writing another key. The API checks everything else.
 */
export function checkKey(key, field = "key") {
  if (!key.startsWith("/")) {
    return new ApiError(400, { error: { code: "invalid_argument", field, message: `"${key}" does not start with "/"` } });
  }
  if (key.split("/").some((s) => s === "." || s === "..")) {
    return new ApiError(400, { error: { code: "invalid_argument", field, message: `"${key}" has a "." or ".." segment` } });
  }
  return null;
}

// pathURL puts a key or channel under base, one escaped segment at a time,
// so that "?", "#" and "%" in a key stay part of the key.
function pathURL(base, key) {
  return base + key.split("/").map(encodeURIComponent).join("/");
}

/** call makes one request and returns {data, revision}; it throws ApiError. */
async function call(method, path, { query, body, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
  }
  let res;
  try {
    res = await fetch(url, {
      method,
      body,
      signal,
      cache: "no-store",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, null, `cannot reach the member: ${err.message}`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? parseJSON(text) : null;
  } catch {
    data = null; // not JSON: keep the text for the error message
  }
  if (!res.ok) throw new ApiError(res.status, data, text.trim());
  return { data, revision: Number(res.headers.get("X-Dux-Revision") || 0) };
}

/**
 * getKey reads key: {kv, revision}, where kv is null when there is no such
 * key and revision is the store revision the read reflects.
 */
export async function getKey(key) {
  const bad = checkKey(key);
  if (bad) throw bad;
  try {
    const { data, revision } = await call("GET", pathURL("/v1/state", key));
    return { kv: data, revision };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && err.code === "not_found") return { kv: null, revision: 0 };
    throw err;
  }
}

/**
 * listAll lists the keys under prefix, page by page, up to max keys. The
 * revision is the first page's: a caller that then follows events after it
 * sees every change made while the later pages were read, so replaying
 * them converges on the current state.
 */
export async function listAll(prefix, { keysOnly = false, max = 10000 } = {}) {
  const items = [];
  let after = "";
  let revision = 0;
  for (;;) {
    const query = { prefix: "true", limit: Math.min(1000, max - items.length) };
    if (keysOnly) query.keys_only = "true";
    if (after) query.after = after;
    const { data } = await call("GET", pathURL("/v1/state", prefix), { query });
    if (!revision) revision = data.revision;
    items.push(...(data.items || []));
    if (!data.next) return { items, revision, truncated: false };
    if (items.length >= max) return { items, revision, truncated: true };
    after = data.next;
  }
}

/**
 * putKey writes text (a JSON document) at key and returns the revision.
 * cas, when a number, makes it a compare-and-set on the key's mod revision
 * (0: only if the key does not exist); a failed compare throws an
 * ApiError with status 409. lease keeps the key attached to its lease: a
 * write without one would make a leased key permanent.
 */
export async function putKey(key, text, cas, lease) {
  const bad = checkKey(key);
  if (bad) throw bad;
  const query = { origin: ORIGIN };
  if (typeof cas === "number") query.cas = cas;
  if (lease) query.lease = lease;
  return (await call("PUT", pathURL("/v1/state", key), { query, body: text })).data.revision;
}

/** deleteKey deletes key if its mod revision is still cas. */
export async function deleteKey(key, cas) {
  const bad = checkKey(key);
  if (bad) throw bad;
  return (await call("DELETE", pathURL("/v1/state", key), { query: { origin: ORIGIN, cas } })).data;
}

/** publish sends text (a JSON document) to channel; returns the revision. */
export async function publish(channel, text) {
  const bad = checkKey(channel, "channel");
  if (bad) throw bad;
  return (await call("POST", pathURL("/v1/publish", channel), { query: { origin: ORIGIN }, body: text })).data.revision;
}

/** members, leader, raft: the cluster endpoints. leader is null without one. */
export async function members() {
  return (await call("GET", "/v1/cluster/members")).data.members || [];
}

export async function leader() {
  try {
    return (await call("GET", "/v1/cluster/leader")).data;
  } catch (err) {
    if (err instanceof ApiError && err.status === 503) return null;
    throw err;
  }
}

export async function raft() {
  return (await call("GET", "/v1/cluster/raft")).data;
}

/** graph is who reads and who writes which prefixes, with the cycles. */
export async function graph() {
  return (await call("GET", "/v1/graph")).data;
}

/** revision is the store's current revision, read through a one-key list. */
export async function revision() {
  const { data } = await call("GET", "/v1/state/", { query: { prefix: "true", limit: 1, keys_only: "true" } });
  return data.revision;
}

/** subscribeURL is the /v1/subscribe URL for channels (see live.js). */
export function subscribeURL(channels, params = {}) {
  const url = new URL("/v1/subscribe", location.origin);
  for (const c of channels) url.searchParams.append("channel", c);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== false) url.searchParams.set(k, String(v));
  }
  return url.toString();
}

/**
 * probe opens url with fetch to read why a stream was refused: an
 * EventSource only says that it failed. It returns the ApiError, or null
 * when the stream opens (and is closed again at once).
 */
export async function probe(url) {
  const ctl = new AbortController();
  try {
    const res = await fetch(url, { signal: ctl.signal, cache: "no-store" });
    if (res.ok) return null;
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    return new ApiError(res.status, body, text.trim());
  } catch (err) {
    return new ApiError(0, null, `cannot reach the member: ${err.message}`);
  } finally {
    ctl.abort();
  }
}
