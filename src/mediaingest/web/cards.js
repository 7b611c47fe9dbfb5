// An upload's card: its name, one bar (sending, then processing), what is stored, its state and actions.
// After the bytes: the status stream, early playback, and a one-line summary once READY.
import { $, el } from "./dom.js";
import { ApiError, describeError, SessionEndedError } from "./errors.js";
import { watchAsset } from "./events.js";
import {
  describeGeometry, describeProcessing, displayGeometry, formatBytes, formatClock, formatDuration,
} from "./format.js";
import { detachHls, showEarlyPlayback } from "./player.js";

export const UPLOAD_SHARE = 50; // of a card's bar: sending the bytes; processing fills the rest
const FINISHED = Object.freeze(["ready", "failed", "rejected", "deleted"]);

/** Above the cards: how many are in flight, ready or failed, and one button to clear the finished ones. */
export function updateQueueBar() {
  const all = [...document.querySelectorAll("#uploads .upload")];
  const count = (states) => all.filter((card) => states.includes(card.dataset.state)).length;
  const ready = count(["ready"]);
  const failed = count(["failed", "rejected", "deleted"]);
  const interrupted = count(["interrupted"]);
  const active = all.length - ready - failed - interrupted;
  const parts = [active && `${active} in progress`, interrupted && `${interrupted} to resume`, ready && `${ready} ready`, failed && `${failed} failed`];
  $("#uploads-summary").textContent = parts.filter(Boolean).join(" · ");
  $("#uploads-bar").hidden = all.length === 0;
  $("#clear-finished").disabled = ready + failed === 0;
}

export function setState(card, state, text) {
  card.dataset.state = state;
  if (text !== undefined) $(".upload-status", card).textContent = text;
  $(".upload-status", card).classList.remove("error");
  $(".dismiss", card).hidden = !FINISHED.includes(state);
  // Only parts can pause: a single PUT can only start again.
  $(".pause", card).hidden = !(state === "uploading" && card.dataset.multipart);
  $(".resume", card).hidden = !["paused", "retrying"].includes(state);
  $(".resume", card).textContent = state === "retrying" ? "Retry now" : "Resume";
  $(".cancel", card).hidden = !["requesting", "uploading", "paused", "interrupted", "retrying"].includes(state);
  $(".choose", card).hidden = state !== "interrupted";
  updateQueueBar();
}

/** A new card at the top of the queue; `actions` are the Pause/Resume/Cancel/Dismiss handlers. */
export function newCard(name, size, actions = {}) {
  const card = $("#upload-template").content.firstElementChild.cloneNode(true);
  $(".upload-name", card).textContent = name;
  $(".upload-name", card).title = name;
  $(".upload-size", card).textContent = formatBytes(size);
  $(".upload-progress", card).setAttribute("aria-label", `Upload of ${name}`);
  for (const [selector, verb] of [[".dismiss", "Dismiss"], [".pause", "Pause"], [".resume", "Resume"], [".cancel", "Cancel"], [".choose", "Choose again"]]) {
    $(selector, card).setAttribute("aria-label", `${verb} ${name}`);
  }
  $(".choose", card).addEventListener("click", () => $("#file-input").click());
  $(".dismiss", card).addEventListener("click", () => (actions.dismiss || dismiss)(card));
  for (const action of ["pause", "resume", "cancel"]) {
    if (actions[action]) $(`.${action}`, card).addEventListener("click", () => actions[action](card));
  }
  $("#uploads").prepend(card);
  updateQueueBar();
  return card;
}

/** The bar and the line under it: only bytes storage confirmed count as sent. */
export function showTransfer(card, { stored, size, speed, left, note }) {
  $(".upload-progress", card).value = size ? (stored / size) * UPLOAD_SHARE : 0;
  card.dataset.stored = String(stored);
  const rate = speed ? ` · ${formatBytes(speed)}/s` : "";
  const eta = speed && Number.isFinite(left) ? ` · ${formatDuration(left)} left` : "";
  $(".upload-meta", card).textContent = `${formatBytes(stored)} of ${formatBytes(size)} stored${rate}${eta}${note ? ` · ${note}` : ""}`;
}

export function showFailure(card, error, name, state) {
  $(".upload-progress", card).value = 0;
  $(".upload-meta", card).textContent = "";
  setState(card, state || (error instanceof ApiError && error.status < 500 ? "rejected" : "failed"), describeError(error, name));
  $(".upload-status", card).classList.add("error");
}

export function dismiss(card) {
  detachHls(card);
  card.remove();
  updateQueueBar();
}

/** A finished card's one line: poster, duration, picture as displayed, and Open for the asset's page. */
function readySummary(asset, openAsset) {
  const poster = asset.proxies.find((proxy) => proxy.type === "POSTER") || asset.proxies.find((proxy) => proxy.type === "THUMBNAIL");
  const metadata = asset.metadata || {};
  const geometry = displayGeometry(metadata);
  const facts = [metadata.durationSeconds ? formatClock(metadata.durationSeconds) : null, describeGeometry(geometry) || null, asset.type.toLowerCase()];
  const name = asset.originalName || asset.name;
  const open = el("a", { className: "button secondary", href: `/assets/${encodeURIComponent(asset.id)}`, text: "Open", "aria-label": `Open ${name}` });
  open.addEventListener("click", (event) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    openAsset(asset.id);
  });
  const thumb = poster ? el("img", { className: "ready-thumb", src: poster.url, alt: `Poster frame of ${name}` }) : null;
  if (thumb && geometry) thumb.dataset.orientation = geometry.orientation;
  return el("div", { className: "ready-summary" }, thumb, el("span", { className: "hint", text: facts.filter(Boolean).join(" · ") }), open);
}

async function finish(app, card, assetId, final, name) {
  if (!final) return; // signed out
  if (final.deleted) {
    setState(card, "deleted", `“${name}” was deleted.`);
    return;
  }
  if (final.processingStatus === "FAILED") {
    setState(card, "failed", `Processing failed: ${final.error || "unknown error"}`);
    $(".upload-status", card).classList.add("error");
    return;
  }
  setState(card, "ready", "Ready");
  $(".upload-progress", card).value = 100;
  const asset = await app.api(`/api/assets/${encodeURIComponent(assetId)}`);
  const results = $(".upload-results", card);
  const watching = [...results.querySelectorAll("video")].some((video) => !video.paused);
  if (!watching) { // the queue stays compact: the whole asset opens on its own page
    detachHls(results);
    results.replaceChildren();
  }
  results.append(readySummary(asset, app.openAsset));
}

/** From confirmed bytes to READY: the status stream drives the second half of the bar. */
export async function followProcessing(app, card, assetId, name, size) {
  const bar = $(".upload-progress", card);
  card.dataset.assetId = assetId;
  $(".upload-meta", card).textContent = `${formatBytes(size)} uploaded`;
  setState(card, "processing", "Uploaded; waiting for processing…");
  bar.setAttribute("aria-label", `Upload and processing of ${name}`);
  try {
    const final = await watchAsset(app, assetId, (status) => {
      const { text, progress } = describeProcessing(status);
      bar.value = Math.max(bar.value, UPLOAD_SHARE + (progress * (100 - UPLOAD_SHARE)) / 100);
      setState(card, "processing", text);
      if (status.playback && status.playback.ready && status.processingStatus !== "READY") {
        showEarlyPlayback($(".upload-results", card), { assetId, playback: status.playback, api: app.api })
          .catch((error) => console.warn("early playback unavailable", error));
      }
    });
    await finish(app, card, assetId, final, name);
  } catch (error) {
    if (!(error instanceof SessionEndedError)) showFailure(card, error, name);
  }
}
