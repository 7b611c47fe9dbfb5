// Playing a video: hls.js (pinned, served by this service) or the MP4 renditions, the timecode, the
// rendition switch, and the storyboard as the seek bar — all at the picture's display geometry.
import { $, el } from "./dom.js";
import { fitPreview, formatClock, formatTimecode, parseStoryboard, rungLabel } from "./format.js";

const PREVIEW_BOX = Object.freeze({ width: 160, height: 160 }); // a seek-bar preview fits here, at the display aspect

/** Plays `url` (a signed HLS master playlist) in `video`: with hls.js over Media Source Extensions where
 * the browser has them, else natively (Safari on iOS). Resolves false when neither is possible. hls.js
 * comes first because some browsers claim native HLS through canPlayType and then refuse the source. */
export async function attachHls(video, url) {
  const { default: Hls } = await import("/ui/vendor/hls.light.min.mjs");
  if (Hls.isSupported()) {
    // From the start, not the live edge: a growing (EVENT) playlist is a video being ingested, watched
    // from 0. No worker: the page's CSP allows scripts from this origin only, and proxies demux cheaply.
    const hls = new Hls({ enableWorker: false, startPosition: 0 });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.hls = hls;
    return true;
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    return true;
  }
  return false;
}

export function detachHls(root) {
  for (const video of root.querySelectorAll ? root.querySelectorAll("video") : [root]) {
    if (video.hls) {
      video.hls.destroy();
      video.hls = null;
    }
  }
}

/** The player's box takes the picture's shape: a portrait clip is shown tall, not pillarboxed in 16:9. */
export function shapePlayer(video, geometry) {
  if (!geometry) return;
  video.style.aspectRatio = `${geometry.width} / ${geometry.height}`;
  video.dataset.orientation = geometry.orientation;
  // As tall as the window allows, and never wider than the panel: the width follows from both.
  if (geometry.orientation !== "landscape") video.style.width = `min(100%, calc(min(70vh, 640px) * ${geometry.aspect.toFixed(4)}))`;
}

/** A player with its bar (timecode, rendition) for the asset's renditions; the caption names them. */
export function buildPlayer(asset, videos, poster, geometry) {
  const metadata = asset.metadata || {};
  const video = el("video", {
    className: "player", controls: true, preload: "metadata", playsinline: true,
    poster: poster ? poster.url : null, "aria-label": `Preview of ${asset.originalName || asset.name}`,
  });
  shapePlayer(video, geometry);
  const rungs = videos.map((p) => rungLabel(p.width, p.height) || p.resolution).filter(Boolean);
  const unique = [...new Set(rungs)].sort((a, b) => parseInt(a, 10) - parseInt(b, 10)).join(", "); // "360p, 720p"
  const caption = el("figcaption", { text: `Web proxy · ${unique}` });
  const rendition = el("select", { className: "rendition", "aria-label": "Rendition" }, el("option", { value: "auto", text: "Auto" }));
  // Not a live region: it changes several times a second while playing, and a screen reader would read each.
  const timecode = el("span", { className: "timecode", "aria-label": "Timecode" });
  const showTimecode = () => { timecode.textContent = formatTimecode(video.currentTime, metadata); };
  video.addEventListener("timeupdate", showTimecode);
  video.addEventListener("seeked", showTimecode);
  showTimecode();
  const captions = asset.proxies.find((proxy) => proxy.type === "CAPTIONS");
  const captionsToggle = captions ? buildCaptionsToggle(video) : null;
  const figure = el("figure", { className: "result wide player-figure" }, video,
    el("div", { className: "player-bar" }, timecode, el("span", { className: "player-controls" }, captionsToggle,
      el("label", { className: "rendition-label" }, "Quality ", rendition))), caption);
  const mp4s = () => {
    const files = videos.filter((proxy) => proxy.contentType === "video/mp4");
    video.append(...videos.map((proxy) => el("source", { src: proxy.url, type: proxy.contentType })));
    rendition.replaceChildren(...files.map((proxy) => el("option", { value: proxy.url, text: rungLabel(proxy.width, proxy.height) || proxy.resolution })));
    rendition.onchange = () => { // keep the place and the play state across the switch
      const [at, paused] = [video.currentTime, video.paused];
      video.src = rendition.value;
      video.addEventListener("loadedmetadata", () => {
        video.currentTime = at;
        if (!paused) video.play().catch(() => {});
      }, { once: true });
    };
  };
  // Adaptive HLS where it plays; the MP4 renditions otherwise. Not awaited: the rest of the view
  // (poster, storyboard, waveform) must not wait for hls.js to load.
  if (asset.playback && asset.playback.hlsUrl) {
    attachHls(video, asset.playback.hlsUrl).then((playing) => {
      // Native HLS (Safari) shows the master's SUBTITLES rendition itself; elsewhere the captions are a track.
      if (captions && (!playing || video.hls)) addCaptionsTrack(video, captions);
      if (!playing) return mp4s();
      caption.textContent = `Web proxy · HLS, ${unique}`;
      if (!video.hls) return; // native HLS chooses its own rendition
      video.hls.on("hlsManifestParsed", (_, data) => {
        rendition.append(...data.levels.map((level, index) => el("option", { value: String(index), text: rungLabel(level.width, level.height) })));
      });
      rendition.onchange = () => { video.hls.currentLevel = rendition.value === "auto" ? -1 : Number(rendition.value); };
    }, () => {
      if (captions) addCaptionsTrack(video, captions);
      mp4s();
    });
  } else {
    if (captions) addCaptionsTrack(video, captions);
    mp4s();
  }
  return { figure, video };
}

/** The transcript's WebVTT as the video's captions track (hidden until the toggle shows it). */
export function addCaptionsTrack(video, captions) {
  const language = (captions.details && captions.details.language) || "en";
  // A track from another origin (S3) loads only through CORS, which needs the element to ask for it.
  if (new URL(captions.url, location.href).origin !== location.origin) video.crossOrigin = "anonymous";
  video.append(el("track", { kind: "captions", src: captions.url, srclang: language, label: `Captions (${language})` }));
  video.dispatchEvent(new Event("captionsadded"));
}

/** The CC button: shows or hides every captions track of the video (ours, or the HLS rendition's). */
function buildCaptionsToggle(video) {
  const toggle = el("button", { type: "button", className: "captions-toggle", "aria-pressed": "false", text: "CC", title: "Captions" });
  toggle.setAttribute("aria-label", "CC (captions)");
  const apply = () => {
    const on = toggle.getAttribute("aria-pressed") === "true";
    for (const track of video.textTracks) {
      if (track.kind === "captions" || track.kind === "subtitles") track.mode = on ? "showing" : "hidden";
    }
  };
  toggle.addEventListener("click", () => {
    toggle.setAttribute("aria-pressed", String(toggle.getAttribute("aria-pressed") !== "true"));
    apply();
  });
  video.textTracks.addEventListener("addtrack", apply); // a track that arrives later follows the button
  return toggle;
}

/** The storyboard as a scrubber. With a video it is the player's seek bar: it shows what has played,
 * pointing at it (or dragging a finger along it) previews the frame above the pointer, and letting go
 * seeks there; without one it is a standalone preview strip. Previews keep the display aspect. */
export function buildScrubber({ cues, sprites, duration, video, name, geometry }) {
  const last = cues[cues.length - 1];
  const total = duration || (last ? last.end : 0);
  const frame = el("div", { className: "scrub-frame" });
  const time = el("span", { className: "scrub-time", text: "0:00" });
  const preview = el("div", { className: "scrub-preview" }, frame, time);
  const head = el("div", { className: "scrub-head" });
  const fill = el("div", { className: "scrub-fill" });
  const bar = el("div", { className: "scrub-bar" }, fill, head);
  const label = video
    ? `Seek bar of ${name}: point at it or use the arrow keys to preview a frame, click or Enter to go there`
    : `Storyboard of ${name}: point at or use the arrow keys to preview`;
  const scrub = el("div", {
    className: video ? "scrub timeline" : "scrub", tabindex: "0", role: "slider", "aria-label": label,
    "aria-valuemin": "0", "aria-valuemax": String(Math.round(total)), "aria-valuenow": "0", "aria-valuetext": "0:00",
  }, preview, bar);
  let position = 0;
  function show(seconds) {
    position = Math.max(0, Math.min(total, seconds));
    const cue = cues.find((c) => position >= c.start && position < c.end) || last;
    if (!cue) return;
    // Older storyboards pad every tile to 160×90: show only the picture inside, scaled up to the box.
    const picture = fitPreview(geometry, cue.w, cue.h);
    const shown = fitPreview(geometry, PREVIEW_BOX.width, PREVIEW_BOX.height);
    const scale = shown.width / picture.width;
    const sprite = sprites.get(cue.file);
    frame.style.width = `${shown.width}px`;
    frame.style.height = `${shown.height}px`;
    if (sprite) frame.style.backgroundImage = `url("${sprite}")`;
    const offsetX = cue.x + (cue.w - picture.width) / 2;
    const offsetY = cue.y + (cue.h - picture.height) / 2;
    frame.style.backgroundPosition = `-${offsetX * scale}px -${offsetY * scale}px`;
    frame.style.backgroundSize = sprite && frame.dataset.sheetWidth
      ? `${Number(frame.dataset.sheetWidth) * scale}px auto` : "";
    frame.dataset.scale = String(scale);
    time.textContent = formatClock(position);
    const share = total ? position / total : 0;
    head.style.left = `${share * 100}%`;
    if (video) { // above the pointer, kept inside the bar's width (in CSS, so it holds when the window resizes)
      preview.style.left = `clamp(0px, calc(${(share * 100).toFixed(3)}% - ${shown.width / 2}px), calc(100% - ${shown.width + 4}px))`;
    }
    scrub.setAttribute("aria-valuenow", String(Math.round(position)));
    scrub.setAttribute("aria-valuetext", formatClock(position));
    scrub.dataset.cue = `${cue.file}#xywh=${cue.x},${cue.y},${cue.w},${cue.h}`;
  }
  const atPointer = (event) => {
    const box = bar.getBoundingClientRect();
    return ((event.clientX - box.left) / box.width) * total;
  };
  const seek = () => {
    if (!video) return;
    video.currentTime = position;
    if (!video.paused) video.play().catch(() => {});
  };
  scrub.addEventListener("pointermove", (event) => show(atPointer(event)));
  if (video) {
    // Touch: press, slide to preview, lift to seek (touch-action: none keeps the page from scrolling).
    scrub.addEventListener("pointerdown", (event) => {
      scrub.setPointerCapture(event.pointerId);
      scrub.classList.add("active");
      show(atPointer(event));
    });
    scrub.addEventListener("pointerup", (event) => {
      scrub.classList.remove("active");
      show(atPointer(event));
      seek();
    });
    scrub.addEventListener("pointercancel", () => scrub.classList.remove("active"));
    video.addEventListener("timeupdate", () => {
      fill.style.width = `${total ? Math.min(1, video.currentTime / total) * 100 : 0}%`;
    });
  } else {
    scrub.addEventListener("click", seek);
  }
  scrub.addEventListener("keydown", (event) => {
    const step = cues.length ? cues[0].end - cues[0].start : 1;
    if (event.key === "ArrowRight" || event.key === "ArrowUp") show(position + step);
    else if (event.key === "ArrowLeft" || event.key === "ArrowDown") show(position - step);
    else if (event.key === "Home") show(0);
    else if (event.key === "End") show(total);
    else if (event.key === "Enter") seek();
    else return;
    event.preventDefault();
  });
  scrub.show = show;
  return scrub;
}

/** Fetches the storyboard and its sheets' URLs; the scrubber, or null when there are no cues. */
export async function loadScrubber({ storyboard, sheets, duration, video, name, geometry }) {
  const response = await fetch(storyboard.url);
  if (!response.ok) throw new Error(`storyboard answered ${response.status}`);
  const cues = parseStoryboard(await response.text());
  if (!cues.length) return null;
  const sprites = new Map();
  for (const sheet of sheets) {
    const file = decodeURIComponent(new URL(sheet.url, location.href).pathname.split("/").pop());
    sprites.set(file, sheet.url);
    const index = sheet.details && sheet.details.index;
    if (Number.isInteger(index)) sprites.set(`sprite_${String(index).padStart(3, "0")}.jpg`, sheet.url);
  }
  const scrubber = buildScrubber({ cues, sprites, duration, video, name, geometry });
  // Scaling the preview scales the sheet: it needs the sheet's width (all sheets share the column count).
  const widest = sheets.reduce((most, sheet) => Math.max(most, sheet.width || 0), 0);
  if (widest) $(".scrub-frame", scrubber).dataset.sheetWidth = String(widest);
  scrubber.show(0);
  return scrubber;
}

/** While ingesting: a player on the HLS published so far, and how much of the timeline is ready. */
export async function showEarlyPlayback(container, { assetId, playback, api }) {
  let figure = $(".early-playback", container);
  if (!figure) {
    const asset = await api(`/api/assets/${encodeURIComponent(assetId)}`).catch(() => null);
    if ($(".early-playback", container)) return; // another status event got here first
    const video = el("video", {
      className: "player early-player", controls: true, preload: "auto", playsinline: true, muted: true,
      "aria-label": `Preview of ${asset ? asset.originalName || asset.name : "the video"} while it is processed`,
    });
    figure = el("figure", { className: "result wide early-playback" }, video, el("figcaption", { className: "playable" }));
    figure.dataset.duration = String((asset && asset.metadata && asset.metadata.durationSeconds) || 0);
    container.replaceChildren(figure);
    if (!(await attachHls(video, playback.hlsUrl))) {
      figure.remove();
      return;
    }
  }
  const total = Number(figure.dataset.duration);
  const ready = total ? ` of ${formatClock(total)}` : "";
  $(".playable", figure).textContent = `Playable while processing: ${formatClock(playback.playableSeconds)}${ready} ready`;
}
