// Making a clip on the asset page: I and O (or the buttons) set in and out at the player's current frame
// (move there with the seek bar, or play), the range shows on the seek bar and as a filmstrip of its
// frames, and "Make clip" asks the service for a clip of its own (POST /api/assets/{id}/clips).
import { $, el } from "./dom.js";
import { describeError } from "./errors.js";
import { formatTimecode } from "./format.js";

/** The frame-start time of the frame showing at `seconds` (what I and O mark), at `rate` frames a second. */
export function frameStart(seconds, rate) {
  if (!rate) return seconds;
  return Math.floor(seconds * rate + 1e-6) / rate;
}

/** A clip request for [in, out), or the reason there is none yet. */
export function clipRequest(range, duration) {
  if (range.in === null || range.out === null) return { error: "Set both in (I) and out (O) first." };
  if (range.out <= range.in) return { error: "Out must come after in." };
  if (duration && range.in >= duration) return { error: "In is past the end." };
  return { body: { start: range.in, end: duration ? Math.min(range.out, duration) : range.out } };
}

/** Where the range sits on a bar of `duration` seconds, in percent. */
export function rangeSpan(range, duration) {
  if (!duration || range.in === null) return null;
  const end = range.out === null ? duration : range.out;
  const left = Math.max(0, Math.min(100, (range.in / duration) * 100));
  return { left, width: Math.max(0, Math.min(100, (end / duration) * 100) - left) };
}

/** A filmstrip (GET …/filmstrip) as tiles: each shows its picture and seeks the player when chosen. */
export async function loadFilmstrip({ api, assetId, start, end, count, height, video, metadata }) {
  const query = new URLSearchParams({ count: String(count), height: String(height) });
  if (start !== undefined && start !== null) query.set("start", String(start));
  if (end !== undefined && end !== null) query.set("end", String(end));
  const strip = await api(`/api/assets/${encodeURIComponent(assetId)}/filmstrip?${query}`);
  const tiles = strip.tiles.map((tile) => {
    const label = formatTimecode(tile.time, metadata);
    const button = el("button", {
      type: "button", className: "filmstrip-tile", "aria-label": `Go to ${label}`, title: label,
      "data-time": String(tile.time),
    });
    button.style.width = `${strip.tileWidth}px`;
    button.style.height = `${strip.tileHeight}px`;
    button.style.backgroundImage = `url("${strip.url}")`;
    button.style.backgroundPosition = `-${tile.x}px -${tile.y}px`;
    button.addEventListener("click", () => {
      if (video) video.currentTime = tile.time;
    });
    return button;
  });
  const row = el("div", { className: "filmstrip", role: "group", "aria-label": "Filmstrip" }, tiles);
  row.dataset.source = strip.decodedFrom;
  return row;
}

/** The clip panel under the player; `seekBar` is the storyboard scrubber once it has loaded (or null). */
export function buildClipper({ asset, video, api, figure }) {
  const metadata = asset.metadata || {};
  const rate = metadata.frameRate ? Number(metadata.frameRate.split("/")[0]) / Number(metadata.frameRate.split("/")[1] || 1) : 0;
  const duration = metadata.durationSeconds || 0;
  const range = { in: null, out: null };
  const inText = el("span", { className: "timecode clip-in", text: "–" });
  const outText = el("span", { className: "timecode clip-out", text: "–" });
  const status = el("p", { className: "hint clip-status", role: "status" });
  const make = el("button", { type: "button", className: "clip-make", text: "Make clip", disabled: true });
  const preview = el("div", { className: "clip-preview" });
  const mark = (which) => {
    range[which] = frameStart(video.currentTime, rate);
    refresh();
  };
  const setIn = el("button", { type: "button", className: "secondary", text: "Set in (I)", "aria-keyshortcuts": "I" });
  const setOut = el("button", { type: "button", className: "secondary", text: "Set out (O)", "aria-keyshortcuts": "O" });
  setIn.addEventListener("click", () => mark("in"));
  setOut.addEventListener("click", () => mark("out"));
  let stripLoad = 0;
  function refresh() {
    inText.textContent = range.in === null ? "–" : formatTimecode(range.in, metadata);
    outText.textContent = range.out === null ? "–" : formatTimecode(range.out, metadata);
    const request = clipRequest(range, duration);
    make.disabled = Boolean(request.error);
    status.textContent = request.error && range.in !== null && range.out !== null ? request.error : "";
    const span = rangeSpan(range, duration);
    const bar = figure && $(".scrub-bar", figure);
    if (bar) {
      let marker = $(".clip-range", bar);
      if (!marker) bar.prepend((marker = el("div", { className: "clip-range", "aria-hidden": "true" })));
      marker.hidden = !span;
      if (span) Object.assign(marker.style, { left: `${span.left}%`, width: `${span.width}%` });
    }
    if (!request.error) { // the clip's frames, as a filmstrip (the newest request wins)
      const load = ++stripLoad;
      loadFilmstrip({ api, assetId: asset.id, start: request.body.start, end: request.body.end, count: 8, height: 54, video, metadata })
        .then((strip) => { if (load === stripLoad) preview.replaceChildren(strip); })
        .catch(() => { if (load === stripLoad) preview.replaceChildren(); });
    }
  }
  make.addEventListener("click", async () => {
    const request = clipRequest(range, duration);
    if (request.error) return;
    make.disabled = true;
    status.textContent = "Making the clip…";
    try {
      const clip = await api(`/api/assets/${encodeURIComponent(asset.id)}/clips`, { method: "POST", body: request.body });
      status.replaceChildren(
        `Clip made: ${clip.frames} frames from ${formatTimecode(clip.inSeconds, metadata)}. `,
        el("a", { href: `/assets/${encodeURIComponent(clip.assetId)}`, text: clip.name, "data-asset-id": clip.assetId }),
        " is being cut frame-exactly and ingested.",
      );
    } catch (error) {
      status.textContent = `The clip could not be made: ${describeError(error)}`;
    } finally {
      make.disabled = Boolean(clipRequest(range, duration).error);
    }
  });
  // I and O anywhere in the player (the picture, its seek bar, this panel), unless typing in a field.
  const onKey = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName)) return;
    if (event.key === "i" || event.key === "I") mark("in");
    else if (event.key === "o" || event.key === "O") mark("out");
    else return;
    event.preventDefault();
  };
  const panel = el("div", { className: "clipper", role: "group", "aria-label": "Make a clip" },
    el("div", { className: "clip-controls" }, setIn, el("span", { text: "In " }), inText, setOut, el("span", { text: "Out " }), outText, make),
    status, preview);
  (figure || panel).addEventListener("keydown", onKey);
  if (figure) figure.setAttribute("data-clip-keys", "I O");
  panel.range = range;
  return panel;
}
