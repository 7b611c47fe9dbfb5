// Sending files: Uppy (pinned, served by this service) cuts them into parts sized for the measured link,
// asks our endpoints for each part's URL, for the parts storage holds and to complete; Golden Retriever
// keeps them across a reload. The room is reserved before Uppy queues a file, so a quota verdict never
// waits behind another upload; a lost connection is retried with backoff on the same asset. Big files go
// in a lane of their own (their own Uppy, so their own request queue): they never hold up smaller ones.
import { $ } from "./dom.js";
import { ApiError, ConnectionLostError, notMediaReason, SessionEndedError } from "./errors.js";
import { formatBytes } from "./format.js";
import { dismiss, newCard, setState, showFailure, showTransfer, UPLOAD_SHARE } from "./cards.js";
import { choosePartSize, confirmedBytes, retryDelaySeconds } from "./transfer.js";
import { createUploader, usesParts } from "./uploader.js";

const BULK_SIZE = 64 * 1024 * 1024; // above this a file takes the bulk lane
const laneFor = (lanes, size) => (size > BULK_SIZE ? lanes.bulk : lanes.quick);


export function createUploads(app) {
  const state = {
    uploaders: new Map(), // user id → Promise<[quick, bulk] Uppy>: one pair per account, kept across a sign-out
    current: null, // the signed-in user's lanes, once asked for
    lanes: null, // …and once they are ready
    cards: new Map(), // Uppy file id → card
    tickets: new Map(), // asset id → the upload-url answer, until Uppy starts that file
    stored: new Map(), // Uppy file id → Set of part numbers storage holds
    meters: new Map(), // Uppy file id → RateMeter of bytes sent
    retries: new Map(), // Uppy file id → { attempt, timer }
    throughput: null, // bytes/s the link carried lately (null: not measured yet)
  };
  const api = app.api;
  const assetPath = (id, rest = "") => `/api/assets/${encodeURIComponent(id)}${rest}`;

  function uploader() {
    state.current = state.current || (async () => {
      const me = await api("/api/me");
      if (!state.uploaders.has(me.userId)) {
        state.uploaders.set(me.userId, Promise.all(["quick", "bulk"].map((lane) => createUploader(me.userId, lane, ctx))));
      }
      const [quick, bulk] = await state.uploaders.get(me.userId);
      for (const uppy of [quick, bulk]) {
        uppy.resumeAll(); // paused by a sign-out
        showRestored(uppy);
      }
      state.lanes = { quick, bulk, all: [quick, bulk] };
      // What Golden Retriever brought back is this page's: listed as unfinished elsewhere until now.
      if (!$("#reservations").hidden) app.reservations.refresh();
      return state.lanes;
    })();
    return state.current;
  }

  /** Signing out pauses this user's uploads (what reached storage stays) and clears their cards. */
  function retire() {
    if (state.current) state.current.then((lanes) => lanes.all.forEach((uppy) => uppy.pauseAll())).catch(() => {});
    state.current = null;
    state.lanes = null;
    for (const entry of state.retries.values()) clearInterval(entry.timer);
    state.retries.clear();
    for (const card of document.querySelectorAll("#uploads .upload")) dismiss(card);
    state.cards.clear();
  }

  function partSizeOf(uppy, file) {
    return file.meta.partSize || choosePartSize(file.size, null);
  }

  function showStored(uppy, file, note) {
    const card = state.cards.get(file.id);
    if (!card) return;
    const meter = state.meters.get(file.id);
    const stored = usesParts(file.size)
      ? confirmedBytes(file.size, partSizeOf(uppy, file), state.stored.get(file.id) || [])
      : file.progress.bytesUploaded || 0;
    const rate = meter && card.dataset.state === "uploading" ? meter.update(performance.now(), file.progress.bytesUploaded || 0, stored) : {};
    showTransfer(card, { stored, size: file.size, speed: rate.speed, left: rate.left, note });
  }

  function scheduleRetry(uppy, file) {
    const entry = state.retries.get(file.id) || { attempt: 0, timer: null };
    entry.attempt += 1;
    let left = retryDelaySeconds(entry.attempt);
    const card = state.cards.get(file.id);
    const say = () => card && setState(card, "retrying", `Connection lost — retrying in ${left} s. What storage holds is kept.`);
    say();
    clearInterval(entry.timer);
    entry.timer = setInterval(() => {
      left -= 1;
      if (left <= 0) retryNow(uppy, file.id);
      else say();
    }, 1000);
    state.retries.set(file.id, entry);
    if (card) showStored(uppy, file);
  }

  function retryNow(uppy, fileId) {
    const entry = state.retries.get(fileId);
    if (entry) clearInterval(entry.timer);
    const card = state.cards.get(fileId);
    if (card) setState(card, "uploading", "Reconnecting…");
    state.meters.get(fileId)?.reset();
    uppy.retryUpload(fileId).catch(() => {}); // a failure arrives as upload-error
  }

  async function confirm(uppy, file, body) {
    const card = state.cards.get(file.id);
    if (card) {
      $(".upload-progress", card).value = UPLOAD_SHARE;
      setState(card, "confirming", "Verifying the upload…");
    }
    await api("/api/assets/confirm-upload", { method: "POST", body });
    uppy.setFileMeta(file.id, { confirmed: true });
  }

  async function abort(assetId) {
    try {
      await api(assetPath(assetId, "/upload/abort"), { method: "POST" });
    } catch (error) {
      if (!(error instanceof ApiError && (error.status === 404 || error.status === 409))) throw error;
    }
  }

  function settle(uppy, file) { // nothing more to send: Golden Retriever forgets it
    state.cards.delete(file.id);
    clearInterval(state.retries.get(file.id)?.timer);
    state.retries.delete(file.id);
    uppy.setFileMeta(file.id, { settled: true });
    uppy.removeFile(file.id);
  }

  function attach(uppy, card, file) {
    state.cards.set(file.id, card);
    card.dataset.fileId = file.id;
    if (file.meta.assetId) {
      card.dataset.assetId = file.meta.assetId;
      app.reservations?.forget(file.meta.assetId);
    }
    card.dataset.multipart = usesParts(file.size) ? String(Math.ceil(file.size / partSizeOf(uppy, file))) : "";
    const act = (action) => () => (action === "retry" ? retryNow(uppy, file.id) : action === "cancel" ? uppy.removeFile(file.id) : uppy.pauseResume(file.id));
    $(".pause", card).onclick = act("pause");
    $(".resume", card).onclick = () => (card.dataset.state === "retrying" ? act("retry")() : act("resume")());
    $(".cancel", card).onclick = act("cancel");
  }

  /** After a reload: a card per upload Golden Retriever kept, showing what storage holds. Files it kept
   * whole carry on at once; for bigger ones the card asks for the file again and resumes from there. */
  function showRestored(uppy) {
    for (const file of uppy.getFiles()) {
      if (state.cards.has(file.id)) continue;
      const card = newCard(file.name, file.size, { dismiss: () => uppy.removeFile(file.id) });
      attach(uppy, card, file);
      if (file.isGhost) {
        setState(card, "interrupted", `Interrupted. Choose “${file.name}” again to resume where it stopped.`);
        api(assetPath(file.meta.assetId, "/upload")).then((upload) => {
          state.stored.set(file.id, new Set(upload.receivedParts.map((part) => part.partNumber)));
          showStored(uppy, file, "the rest is sent when the file is chosen again");
        }).catch(() => {});
      } else {
        setState(card, "uploading", "Resuming…");
      }
    }
    resumeWhenWhole(uppy);
  }

  function resumeWhenWhole(uppy) {
    const { recoveredState } = uppy.getState();
    if (recoveredState && !uppy.getFiles().some((file) => file.isGhost)) uppy.emit("restore-confirmed");
  }

  /** Files chosen or dropped: checked here, their room reserved, then handed to Uppy. */
  async function add(fileList, project) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    let lanes;
    try {
      lanes = await uploader();
    } catch (error) {
      if (!(error instanceof SessionEndedError)) app.notice(`Uploads are unavailable: ${error.message}`);
      return;
    }
    await Promise.all(files.map((file) => addOne(laneFor(lanes, file.size), file, project)));
    lanes.all.forEach(resumeWhenWhole);
  }

  async function addOne(uppy, file, project) {
    const ghost = uppy.getFiles().find((held) => held.isGhost && held.name === file.name && held.size === file.size);
    if (ghost) { // a card from before a reload takes its file back
      uppy.addFile({ name: file.name, type: file.type, data: file, source: "page", meta: ghost.meta });
      setState(state.cards.get(ghost.id), "uploading", "Resuming…");
      return;
    }
    const reason = file.size === 0 ? `“${file.name}” is empty; there is nothing to upload.`
      : notMediaReason(file.name, file.type, new Uint8Array(await file.slice(0, 512).arrayBuffer()));
    const card = newCard(file.name, file.size);
    if (reason) return showFailure(card, new Error(reason), file.name, "rejected");
    setState(card, "requesting", "Reserving room…");
    const multipart = usesParts(file.size);
    const partSize = multipart ? choosePartSize(file.size, state.throughput) : undefined;
    let ticket;
    try {
      ticket = await api("/api/assets/upload-url", {
        method: "POST",
        body: { fileName: file.name, fileSize: file.size, mimeType: file.type || "application/octet-stream", projectId: project, multipart, partSize },
      });
    } catch (error) {
      if (!(error instanceof SessionEndedError)) showFailure(card, error, file.name, error instanceof ConnectionLostError ? "failed" : undefined);
      return;
    }
    app.refreshAccount().catch(() => {}); // the header's quota counts the reservation from now on
    state.tickets.set(ticket.assetId, ticket);
    let fileId;
    try {
      fileId = uppy.addFile({ name: file.name, type: file.type, data: file, source: "page", meta: { project, assetId: ticket.assetId, partSize } });
    } catch (error) { // already in the queue
      state.tickets.delete(ticket.assetId);
      await abort(ticket.assetId).catch(() => {});
      return showFailure(card, error, file.name, "rejected");
    }
    attach(uppy, card, uppy.getFile(fileId));
    const parts = multipart ? ` in ${card.dataset.multipart} parts of ${formatBytes(partSize)}` : "";
    setState(card, "uploading", `Uploading${parts}…`);
  }

  const ctx = { state, api, app, assetPath, confirm, abort, showStored, scheduleRetry, settle, retryNow, showRestored };
  /** The assets this page is sending (cards, and what Golden Retriever kept across a reload). */
  const heldAssetIds = () => new Set([
    ...[...state.cards.values()].map((card) => card.dataset.assetId),
    ...(state.lanes ? state.lanes.all.flatMap((uppy) => uppy.getFiles()).map((file) => file.meta.assetId) : []),
  ].filter(Boolean));
  return { add, uploader, retire, heldAssetIds, sending: () => [...state.cards.values()].some((card) => ["uploading", "confirming", "retrying", "requesting"].includes(card.dataset.state)) };
}
