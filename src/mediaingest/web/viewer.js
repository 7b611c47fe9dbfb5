// The asset view at /assets/{id}: the player and its seek bar, the transcript, every other output as its
// stage says it is shown (results.js), the facts (display geometry first) and the original's download.
// Follows the status stream while processing.
import { $, el, focusHeading } from "./dom.js";
import { describeError, SessionEndedError } from "./errors.js";
import {
  describeGeometry, describeProcessing, displayGeometry, exifFacts, formatBytes, formatDuration, formatFrameRate,
} from "./format.js";
import { watchAsset } from "./events.js";
import { buildClipper, loadFilmstrip } from "./clipper.js";
import { buildPlayer, detachHls, loadScrubber, shapePlayer, showEarlyPlayback } from "./player.js";
import { measuredFacts, renderOutputs } from "./results.js";
import { loadTranscript } from "./transcript.js";

function facts(asset, geometry) {
  const metadata = asset.metadata || {};
  const list = [];
  if (metadata.durationSeconds) list.push(["Duration", formatDuration(metadata.durationSeconds)]);
  if (geometry) {
    const coded = metadata.width && (metadata.width !== geometry.width || metadata.height !== geometry.height)
      ? ` (stored ${metadata.width}×${metadata.height}${metadata.rotation ? `, turned ${metadata.rotation}°` : ""})` : "";
    list.push(["Picture", `${describeGeometry(geometry)}${coded}`]);
  }
  if (metadata.frameRate) list.push(["Frame rate", formatFrameRate(metadata)]);
  if (metadata.timecode) list.push(["Timecode", metadata.timecode]);
  if (metadata.videoCodec) list.push(["Video", metadata.videoCodec]);
  const tracks = metadata.audioTracks || [];
  if (metadata.audioCodec) {
    list.push(["Audio", `${metadata.audioCodec}${metadata.channels ? `, ${metadata.channels} ch` : ""}${tracks.length > 1 ? ` · ${tracks.length} tracks` : ""}`]);
  }
  if (metadata.loudness && metadata.loudness.integratedLufs !== null) {
    const peak = metadata.loudness.truePeakDbtp;
    list.push(["Loudness", `${metadata.loudness.integratedLufs.toFixed(1)} LUFS${peak !== null ? `, peak ${peak.toFixed(1)} dBTP` : ""}`]);
  }
  if (metadata.shots && metadata.shots.length) list.push(["Shots", String(metadata.shots.length + 1)]);
  list.push(...measuredFacts(metadata.measurements));
  if (metadata.exif) list.push(...exifFacts(metadata.exif));
  if (asset.projectId) list.push(["Project", asset.projectId]);
  list.push(["Size", formatBytes(asset.fileSize)]);
  return list;
}

const factList = (pairs) => el("dl", { className: "facts" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));

/** Download the original, or copy a link to it that says how long it works (it is signed). */
function downloadActions(asset) {
  const name = asset.originalName || asset.name;
  const until = asset.downloadExpiresAt ? new Date(asset.downloadExpiresAt) : null;
  const validity = until ? `works until ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : "works for a while";
  const note = el("span", { className: "hint", role: "status" });
  // The accessible name starts with the visible text ("Copy link"), as speech control users say it.
  const copy = el("button", { type: "button", className: "secondary", text: "Copy link", "aria-label": `Copy link to ${name}` });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(asset.downloadUrl);
      note.textContent = `Link copied; it ${validity}.`;
    } catch {
      note.textContent = `Copy this link (it ${validity}): ${asset.downloadUrl}`;
    }
  });
  return el("div", { className: "asset-actions" },
    el("a", { className: "button", href: asset.downloadUrl, download: asset.name, text: "Download original" }), copy, note);
}

export async function renderResults(container, asset, { at = null, app = null } = {}) {
  detachHls(container);
  container.replaceChildren();
  const name = asset.originalName || asset.name;
  const byType = (type) => asset.proxies.filter((proxy) => proxy.type === type);
  const geometry = displayGeometry(asset.metadata);
  const poster = byType("POSTER")[0] || byType("THUMBNAIL")[0];
  // The kinds the views below take (the player and its captions, the transcript panel, the storyboard as a
  // seek bar); every other output is shown as its stage declares (renderOutputs).
  const handled = new Set(["VIDEO", "VIDEO_VP9", "HLS", "CAPTIONS", "AUDIO", "TRANSCRIPT", "STORYBOARD", "SPRITE_SHEET"]);
  const videos = byType("VIDEO").concat(byType("VIDEO_VP9"))
    // The rendition closest to 720p first (by the short side): sharp enough, not the heaviest.
    .sort((a, b) => Math.abs(Math.min(a.width || 0, a.height || 0) - 720) - Math.abs(Math.min(b.width || 0, b.height || 0) - 720));
  const grid = el("div", { className: "results" });
  let video = null;
  // The player, and the transcript beside it once loaded (under it on a phone).
  const row = el("div", { className: "result wide player-row" });
  let media = null;
  if (videos.length) {
    const player = buildPlayer(asset, videos, poster, geometry);
    video = media = player.video;
    row.append(player.figure);
    if (app && asset.type === "VIDEO" && asset.metadata && asset.metadata.frameRate) {
      // The timeline: a filmstrip of the whole video (a tile seeks there), then in/out and "Make clip".
      const strip = el("div", { className: "timeline-strip" });
      player.figure.append(strip, buildClipper({ asset, video, api: app.api, figure: player.figure }));
      loadFilmstrip({ api: app.api, assetId: asset.id, count: 12, height: 54, video, metadata: asset.metadata })
        .then((row) => strip.replaceChildren(row))
        .catch((error) => strip.replaceChildren(el("p", { className: "hint", text: `No filmstrip (${describeError(error)}).` })));
    }
  } else if (asset.type === "AUDIO" && (byType("AUDIO").length || asset.downloadUrl)) {
    // The first track's AAC proxy plays in every browser; the original (FLAC, WAV…) may not.
    const track = byType("AUDIO").sort((a, b) => (a.details?.track ?? 0) - (b.details?.track ?? 0))[0];
    media = el("audio", { controls: true, preload: "metadata", src: track ? track.url : asset.downloadUrl, "aria-label": `Play ${name}` });
    row.append(el("figure", { className: "result wide" }, media, el("figcaption", { text: track ? "Audio proxy" : "Original audio" })));
  }
  if (media) grid.append(row);
  if (media && at !== null) media.addEventListener("loadedmetadata", () => { media.currentTime = at; }, { once: true });
  const transcript = byType("TRANSCRIPT")[0];
  if (transcript && media && transcript.details?.words) {
    loadTranscript({ output: transcript, media, metadata: asset.metadata, name, row })
      .catch((error) => row.append(el("p", { className: "hint", text: `The transcript could not be loaded (${error.message}).` })));
  }
  const files = renderOutputs(grid, asset, { handled, name });
  const storyboard = byType("STORYBOARD")[0];
  if (storyboard) {
    // With a player, the storyboard becomes its seek bar, under the picture; else a preview strip.
    const figure = video ? video.closest("figure") : el("figure", { className: "result" }, el("figcaption", { text: "Point at it to preview" }));
    if (!video) grid.append(figure);
    loadScrubber({ storyboard, sheets: byType("SPRITE_SHEET"), duration: asset.metadata?.durationSeconds, video, name, geometry })
      .then((scrubber) => {
        if (scrubber && video) video.after(scrubber);
        else if (scrubber) figure.prepend(scrubber);
      })
      .catch((error) => figure.append(el("p", { className: "hint", text: `The storyboard could not be loaded (${error.message}).` })));
  }
  container.append(grid, factList(facts(asset, geometry)));
  if (files) container.append(files);
  const exif = asset.metadata && asset.metadata.exif;
  if (exif) {
    const all = Object.entries(exif).map(([tag, value]) => [tag, typeof value === "object" ? JSON.stringify(value) : String(value)]);
    container.append(el("details", { className: "exif" }, el("summary", { text: `All EXIF fields (${all.length})` }), factList(all)));
  }
  if (asset.downloadUrl) container.append(downloadActions(asset));
}

/** The asset view's state lives in the returned object: which asset it shows, and which load is current. */
export function createViewer(app) {
  const view = { assetId: null, load: 0, startAt: null };
  const status = () => $("#viewer-status");
  async function open(assetId, { focus = true } = {}) {
    const load = ++view.load;
    view.assetId = assetId;
    const at = view.startAt;
    view.startAt = null;
    const viewer = $("#viewer");
    viewer.hidden = false;
    viewer.dataset.assetId = assetId;
    $("#viewer-title").textContent = "Asset";
    detachHls($("#viewer-body"));
    $("#viewer-body").replaceChildren();
    status().textContent = "Loading…";
    if (focus) focusHeading($("#viewer-title"));
    try {
      let asset = await app.api(`/api/assets/${encodeURIComponent(assetId)}`);
      if (load !== view.load) return;
      $("#viewer-title").textContent = asset.originalName || asset.name;
      document.title = `${asset.originalName || asset.name} · mediaingest`;
      if (asset.uploadStatus === "UPLOADED" && !["READY", "FAILED"].includes(asset.processingStatus)) {
        const final = await watchAsset(app, assetId, (event) => {
          if (load !== view.load) return;
          status().textContent = describeProcessing(event).text;
          if (event.playback && event.playback.ready && event.processingStatus !== "READY") {
            showEarlyPlayback($("#viewer-body"), { assetId, playback: event.playback, api: app.api })
              .then(() => shapePlayer($("#viewer-body video") || document.createElement("video"), displayGeometry(asset.metadata)))
              .catch((error) => console.warn("early playback unavailable", error));
          }
        });
        if (!final || final.deleted || load !== view.load) return;
        asset = await app.api(`/api/assets/${encodeURIComponent(assetId)}`);
      }
      if (load !== view.load) return;
      status().textContent = asset.processingStatus === "FAILED"
        ? `Failed: ${asset.error || "processing failed"}`
        : asset.uploadStatus !== "UPLOADED" ? `Upload ${asset.uploadStatus.toLowerCase()}${asset.error ? `: ${asset.error}` : ""}` : "Ready";
      await renderResults($("#viewer-body"), asset, { at, app });
    } catch (error) {
      if (!(error instanceof SessionEndedError) && load === view.load) status().textContent = describeError(error);
    }
  }
  function close() {
    view.load += 1;
    view.assetId = null;
    const viewer = $("#viewer");
    viewer.hidden = true;
    delete viewer.dataset.assetId;
    detachHls($("#viewer-body"));
    $("#viewer-body").replaceChildren();
    document.title = "mediaingest · Upload";
  }
  /** The next open starts playing at `seconds` (a search hit); undefined: from the start. */
  const startAt = (seconds) => { view.startAt = Number.isFinite(seconds) ? seconds : null; };
  return { open, close, startAt, current: () => view.assetId };
}
