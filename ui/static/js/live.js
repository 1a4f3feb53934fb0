// Server-sent event subscriptions on /v1/subscribe.
//
// The browser's EventSource reconnects by itself after a dropped
// connection and sends the id of the last event it got as Last-Event-ID;
// the API resumes exactly there (no gap, no duplicate). So a Stream only
// reports status and hands on parsed events.

import { parseJSON, probe, subscribeURL } from "./api.js";

export class Stream {
  /**
   * @param {string[]} channels  keys, or prefixes ending in "/"
   * @param {object} opts
   *   from: revision to follow from (events after it); state: current keys first;
   *   onEvent(ev): every event; onStatus("connecting"|"live"|"reconnecting"|"closed");
   *   onError(ApiError): the stream was refused or cut off, with the API's reason
   */
  constructor(channels, opts) {
    this.channels = channels;
    this.opts = opts;
    this.es = null;
    // from is the last revision whose events all arrived: where a new
    // EventSource resumes if the browser's own one gives up.
    this.from = opts.from || 0;
    this.state = Boolean(opts.state);
  }

  start() {
    const { onEvent, onStatus = () => {}, onError = () => {} } = this.opts;
    const url = subscribeURL(this.channels, { from: this.from || undefined, state: this.state ? "true" : undefined });
    const es = new EventSource(url);
    this.es = es;
    onStatus("connecting");
    es.onopen = () => onStatus("live");
    es.onmessage = (e) => {
      let ev;
      try {
        ev = parseJSON(e.data);
      } catch (err) {
        console.warn("dux: undecodable event", e.data, err);
        return;
      }
      // An id "R" closes revision R; "R.I" is an event inside it.
      if (e.lastEventId && !e.lastEventId.includes(".")) this.from = Number(e.lastEventId) || this.from;
      if (ev.type === "synced") this.state = false;
      onEvent(ev);
    };
    // "error" is both the connection's failure and the named event the API
    // sends (with a JSON body) before it ends a stream it cut off.
    es.addEventListener("error", async (e) => {
      if (this.es !== es) return;
      if (e.data) {
        try {
          const body = JSON.parse(e.data);
          onError(Object.assign(new Error(body.error.message), body.error));
        } catch {
          onError(new Error(String(e.data)));
        }
      }
      if (es.readyState === EventSource.CLOSED) {
        // Refused outright (a bad channel, say): no retry. Ask why.
        onStatus("closed");
        const err = await probe(url);
        if (this.es !== es) return;
        if (err) onError(err);
        // Retry later unless the request itself is at fault.
        if (!err || err.status !== 400) setTimeout(() => this.es === es && this.start(), 3000);
      } else {
        onStatus("reconnecting");
      }
    });
    return this;
  }

  close() {
    if (this.es) this.es.close();
    this.es = null;
  }
}
