// Server-Sent Events read with fetch (so the token travels in a header, not the URL), reconnecting with
// Last-Event-ID. One reader for the two streams: an asset's status, and the library's changes.
import { SESSION_EXPIRED } from "./errors.js";

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** Splits a buffer into complete event blocks and the rest: `{ events: [{name, data, id, retry}], rest }`. */
export function parseEventBlocks(buffer) {
  const events = [];
  let text = buffer.replace(/\r\n?/g, "\n");
  let boundary;
  while ((boundary = text.indexOf("\n\n")) >= 0) {
    const block = text.slice(0, boundary);
    text = text.slice(boundary + 2);
    const event = { name: "message", data: [], id: null, retry: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // keep-alive comments
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.name = value;
      else if (field === "data") event.data.push(value);
      else if (field === "id") event.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
    }
    events.push({ ...event, data: event.data.join("\n") });
  }
  return { events, rest: text };
}

/** Follows `url` until `onEvent` returns something other than undefined (resolved with it), the stream
 * answers 404 (resolved `{ gone: true }`) or `signal` aborts (resolved null). */
export async function followStream({ url, session, signal, onEvent }) {
  let lastId = null;
  let retryMs = 2000;
  while (!signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${session.token()}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(url, { headers, signal, cache: "no-store" });
      if (response.status === 401) {
        session.expire(SESSION_EXPIRED);
        return null;
      }
      if (response.status === 404) return { gone: true };
      if (!response.ok || !response.body) throw new Error(`events answered ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = parseEventBlocks(buffer + value);
        buffer = parsed.rest;
        for (const event of parsed.events) {
          if (event.id !== null) lastId = event.id;
          if (event.retry !== null) retryMs = event.retry;
          const result = onEvent(event.name, event.data ? JSON.parse(event.data) : null);
          if (result !== undefined) return result;
        }
      }
    } catch {
      if (signal.aborted) return null;
    }
    await sleep(retryMs, signal); // the stream dropped: reconnect, continuing from the last event id
  }
  return null;
}

/** An asset's status events until READY/FAILED: resolves with the last status, `{deleted: true}` or null. */
export async function watchAsset(app, assetId, onStatus) {
  const controller = new AbortController();
  app.watchers.add(controller);
  let last = null;
  try {
    const result = await followStream({
      url: `/api/assets/${encodeURIComponent(assetId)}/events`,
      session: app.session,
      signal: controller.signal,
      onEvent(name, data) {
        if (name === "status") {
          last = data;
          onStatus(data);
        } else if (name === "end") return last;
        else if (name === "deleted") return { deleted: true, ...(last || {}) };
        return undefined;
      },
    });
    return result && result.gone ? { deleted: true, ...(last || {}) } : result;
  } finally {
    app.watchers.delete(controller);
  }
}
