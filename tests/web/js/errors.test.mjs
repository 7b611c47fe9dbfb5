import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, ConnectionLostError, describeError, isTransient, notMediaReason } from "../../../src/mediaingest/web/errors.js";
import { parseEventBlocks } from "../../../src/mediaingest/web/events.js";

test("a quota refusal names the numbers in binary units and where reservations are", () => {
  const error = new ApiError(413, {
    code: "quota_exceeded", message: "over quota",
    details: { requested: 3 * 1024 ** 3, available: 1024 ** 3, plan: "USER", limit: 5 * 1024 ** 3, stored: 1024 ** 3, reserved: 3 * 1024 ** 3 },
  });
  assert.equal(describeError(error, "big.mov"),
    "Not enough storage for “big.mov”: it needs 3 GiB, but only 1 GiB of your USER plan's 5 GiB is free " +
    "(1 GiB stored, 3 GiB reserved by unfinished uploads, listed under “Unfinished uploads”, where you can release them).");
});

test("a lost connection is retried by itself; a refusal is not", () => {
  assert.equal(isTransient(new ConnectionLostError(new TypeError("Failed to fetch"))), true);
  assert.equal(isTransient(new ApiError(503, null)), true);
  assert.equal(isTransient(new ApiError(413, { code: "quota_exceeded" })), false);
  assert.equal(describeError(new ConnectionLostError(null)), "Connection lost: the service could not be reached.");
});

test("a PDF named like a video is caught from its first bytes", () => {
  const pdf = new TextEncoder().encode("%PDF-1.7\n");
  assert.equal(notMediaReason("notes.mp4", "video/mp4", pdf), "“notes.mp4” is a PDF, not a video: upload a video, audio or image file.");
  assert.equal(notMediaReason("notes.pdf", "application/pdf", pdf), null); // the server names the type
  assert.equal(notMediaReason("clip.mp4", "video/mp4", new Uint8Array([0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70])), null);
});

test("event stream blocks parse across chunk boundaries", () => {
  const first = parseEventBlocks("retry: 2000\n\nid: 7\nevent: asset\ndata: {\"a\":1}\n\nid: 8\nevent: co");
  assert.deepEqual(first.events.map((e) => [e.name, e.id, e.data, e.retry]), [["message", null, "", 2000], ["asset", "7", "{\"a\":1}", null]]);
  const second = parseEventBlocks(`${first.rest}unt\r\ndata: {"total":3}\r\n\r\n: keep-alive\n\n`);
  assert.deepEqual(second.events.map((e) => [e.name, e.data]), [["count", "{\"total\":3}"], ["message", ""]]);
  assert.equal(second.rest, "");
});
