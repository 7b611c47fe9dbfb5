// The Uppy instance of one account: its AwsS3 plugin driven by our endpoints (the room is reserved
// before a file reaches Uppy, so its tickets wait in `state.tickets`), and its events turned into what
// the cards show: bytes storage confirmed, pauses, retries on the same asset, success and refusal.
import { ApiError, isTransient, SessionEndedError } from "./errors.js";
import { dismiss, followProcessing, setState, showFailure } from "./cards.js";
import { chooseConcurrency, choosePartSize, RateMeter } from "./transfer.js";

export const usesParts = (size) => size > 5 * 1024 * 1024; // Uppy sends anything up to 5 MiB in one PUT
// The browser sets Content-Length itself and refuses it from scripts; the rest are signed and must go as given.
const browserHeaders = (headers) => Object.fromEntries(Object.entries(headers || {}).filter(([name]) => name.toLowerCase() !== "content-length"));
const sha256Hex = async (blob) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer())),
  (byte) => byte.toString(16).padStart(2, "0")).join("");
/** The bytes were already in storage and are now confirmed: not an upload to make. */
export class AlreadyConfirmed extends Error {}

export async function createUploader(userId, lane, ctx) {
  const { state, api, app, assetPath, confirm, abort, showStored, scheduleRetry, settle, retryNow, showRestored } = ctx;
  const { Uppy, AwsS3, GoldenRetriever } = await import("/ui/vendor/uppy.min.mjs");
  // One store of uploads per user and lane: another account signing in on this browser sees none of them.
  const id = lane === "bulk" ? `mediaingest-${userId}` : `mediaingest-${userId}-${lane}`;
  const uppy = new Uppy({ id, autoProceed: true, allowMultipleUploadBatches: true });
  uppy.use(AwsS3, {
    limit: 1, // raised by the measured link (chooseConcurrency)
    shouldUseMultipart: (file) => usesParts(file.size),
    // Uppy passes the bytes, not the file: find the file that holds them for the size it reserved.
    getChunkSize: (data) => uppy.getFiles().find((file) => file.data === data)?.meta.partSize || choosePartSize(data.size, null),
    async getUploadParameters(file) {
      const { assetId } = uppy.getFile(file.id).meta;
      const ticket = state.tickets.get(assetId);
      state.tickets.delete(assetId);
      if (ticket) return { method: "PUT", url: ticket.uploadUrl, headers: browserHeaders(ticket.headers) };
      // Again after a reload or a lost connection: the same asset, on a fresh URL; or, if the bytes had
      // landed, confirmed with what storage holds (upload-error then follows the processing).
      const upload = await api(assetPath(assetId, "/upload"));
      if (upload.uploadUrl) return { method: "PUT", url: upload.uploadUrl, headers: browserHeaders(upload.headers) };
      await confirm(uppy, file, { assetId, etag: upload.etag });
      throw new AlreadyConfirmed();
    },
    async createMultipartUpload(file) {
      const { assetId } = uppy.getFile(file.id).meta;
      const ticket = state.tickets.get(assetId);
      state.tickets.delete(assetId);
      if (ticket) return { uploadId: ticket.multipart.uploadId, key: assetId };
      const upload = await api(assetPath(assetId, "/upload")); // a retry before Uppy kept the upload id
      return { uploadId: upload.uploadId, key: assetId };
    },
    async listParts(file, { key }) {
      const upload = await api(assetPath(key, "/upload"));
      state.stored.set(file.id, new Set(upload.receivedParts.map((part) => part.partNumber)));
      showStored(uppy, uppy.getFile(file.id));
      return upload.receivedParts.map((part) => ({ PartNumber: part.partNumber, Size: part.size, ETag: part.etag }));
    },
    async signPart(file, { key, partNumber, body }) {
      // The part's SHA-256, signed into its URL: storage refuses other bytes and only this part is
      // sent again. (No WebCrypto on plain http to another host: then the part goes unhashed.)
      const sha256 = globalThis.crypto && crypto.subtle ? await sha256Hex(body) : undefined;
      const signed = await api(assetPath(key, "/upload/parts"), { method: "POST", body: { parts: [{ partNumber, sha256 }] } });
      return { method: "PUT", url: signed.parts[0].url, headers: browserHeaders(signed.parts[0].headers) };
    },
    async completeMultipartUpload(file, { key, parts }) {
      await confirm(uppy, file, { assetId: key, parts: parts.map((part) => ({ partNumber: part.PartNumber, etag: part.ETag })) });
      return {};
    },
    // Uppy calls this when a part fails for good too, which would delete the asset and make Retry start
    // a new one: only a cancel ends an upload, and the file-removed handler below does that.
    abortMultipartUpload: async () => ({}),
  });
  uppy.use(GoldenRetriever);
  const queue = uppy.getPlugin("AwsS3Multipart").requests;

  uppy.on("upload-progress", (file) => {
    const card = state.cards.get(file.id);
    if (!card || card.dataset.state !== "uploading") return;
    if (!state.meters.has(file.id)) state.meters.set(file.id, new RateMeter(file.size));
    showStored(uppy, file);
    const { speed } = state.meters.get(file.id).update(performance.now(), file.progress.bytesUploaded || 0);
    if (speed > 0) {
      state.throughput = speed;
      queue.limit = chooseConcurrency(speed, file.meta.partSize || choosePartSize(file.size, null)); // takes effect at the next part
    }
  });
  uppy.on("s3-multipart:part-uploaded", (file, part) => {
    const parts = state.stored.get(file.id) || new Set();
    parts.add(part.PartNumber);
    state.stored.set(file.id, parts);
    state.retries.get(file.id) && (state.retries.get(file.id).attempt = 0); // the link works again
    showStored(uppy, file);
  });
  uppy.on("upload-pause", (file, paused) => {
    const card = state.cards.get(file.id);
    if (!card) return;
    setState(card, paused ? "paused" : "uploading", paused ? "Paused. What storage holds is kept; the part on its way is sent again on Resume." : "Uploading…");
    showStored(uppy, file);
  });
  uppy.on("upload-success", async (file, response) => {
    const card = state.cards.get(file.id);
    try {
      // A single PUT is confirmed here; parts were confirmed when Uppy completed them.
      if (!file.meta.confirmed) await confirm(uppy, file, { assetId: file.meta.assetId, etag: response.body.ETag });
      settle(uppy, file);
      if (card) await followProcessing(app, card, file.meta.assetId, file.name, file.size);
    } catch (error) {
      if (card) showFailure(card, error, file.name);
    }
  });
  uppy.on("upload-error", async (file, error) => {
    const card = state.cards.get(file.id);
    const confirmed = error instanceof AlreadyConfirmed || (error instanceof ApiError && error.status === 409 &&
      file.meta.assetId && (await api(assetPath(file.meta.assetId, "/status")).catch(() => ({}))).uploadStatus === "UPLOADED");
    if (confirmed) { // confirmed just before a reload (whose answer the page never saw), or just now
      settle(uppy, file);
      if (card) await followProcessing(app, card, file.meta.assetId, file.name, file.size);
    } else if (error instanceof SessionEndedError) {
      // signed out: the upload waits, paused, for its owner
    } else if (isTransient(error) || (error.source && (error.source.status === 0 || error.source.status >= 500))) {
      scheduleRetry(uppy, file); // the same asset, from what storage holds: never a new upload
    } else {
      if (card) showFailure(card, error, file.name);
      settle(uppy, file); // refused by the server (quota, type, integrity): nothing to resume
    }
  });
  uppy.on("file-removed", (file) => {
    // Cancelled (not finished): the server forgets the upload too, and releases its quota.
    const card = state.cards.get(file.id);
    state.cards.delete(file.id);
    clearInterval(state.retries.get(file.id)?.timer);
    if (file.meta.assetId && !file.meta.confirmed && !file.meta.settled) {
      abort(file.meta.assetId).then(() => app.refreshAccount()).catch((error) => console.warn("abort failed", error));
    }
    if (card) dismiss(card);
  });
  uppy.on("restored", () => showRestored(uppy));
  window.addEventListener("online", () => { // back online: retry now rather than at the next tick
    for (const fileId of state.retries.keys()) if (uppy.getFile(fileId)) retryNow(uppy, fileId);
  });
  return uppy;
}

