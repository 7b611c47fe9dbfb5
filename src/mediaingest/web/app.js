// The mediaingest upload page: sign in with a token, send files straight to their signed storage URLs,
// follow ingestion over Server-Sent Events, show the results. Plain ES modules; hls.js (pinned, served by
// this service) is loaded only when a video is played over HLS.

const TOKEN_KEY = "mediaingest.token";
const UPLOAD_SHARE = 50; // of a card's bar: sending the bytes; processing fills the rest

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// --- formatting -------------------------------------------------------------------------------------
function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The source's timecode at `seconds` into the proxy: its start timecode plus the frames since, at the
 * timeline rate (drop-frame counted as SMPTE does at 29.97 and 59.94). Without a start timecode, from 0. */
export function formatTimecode(seconds, metadata) {
  const rate = frameRateOf(metadata);
  if (!rate) return formatClock(seconds);
  const nominal = Math.round(rate);
  const start = metadata.timecode || "00:00:00:00";
  const drop = start.includes(";") && (nominal === 30 || nominal === 60);
  const [hh, mm, ss, ff] = start.split(/[:;.]/).map(Number);
  const dropPerMinute = drop ? nominal / 15 : 0; // 2 frame numbers at 29.97, 4 at 59.94
  const startMinutes = hh * 60 + mm;
  let frames = (startMinutes * 60 + ss) * nominal + ff
    - dropPerMinute * (startMinutes - Math.floor(startMinutes / 10)) + Math.floor(seconds * rate + 1e-6);
  if (drop) { // frame count → frame number: put back the numbers skipped each minute but every tenth
    const perTen = 600 * nominal - 9 * dropPerMinute;
    const perMinute = 60 * nominal - dropPerMinute;
    const tens = Math.floor(frames / perTen);
    const rest = frames % perTen;
    frames += 9 * dropPerMinute * tens + (rest > dropPerMinute ? dropPerMinute * Math.floor((rest - dropPerMinute) / perMinute) : 0);
  }
  const pad = (n) => String(n).padStart(2, "0");
  const f = frames % nominal;
  const totalSeconds = Math.floor(frames / nominal);
  const sep = drop ? ";" : ":";
  return `${pad(Math.floor(totalSeconds / 3600) % 24)}:${pad(Math.floor(totalSeconds / 60) % 60)}:${pad(totalSeconds % 60)}${sep}${pad(f)}`;
}

function formatClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function formatDate(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// --- errors a person understands ---------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = (error && error.code) || "http_error";
    this.details = (error && error.details) || {};
  }
}

class SessionEndedError extends Error {}

// What people call the files a renamed upload turns out to be.
const KIND_NAMES = {
  "application/pdf": "a PDF", "application/zip": "a ZIP archive", "text/html": "a web page",
  "application/x-msdownload": "a Windows program", "text/plain": "a text file",
};

function describeKind(mimeType) {
  const kind = (mimeType || "").split("/")[0];
  return { video: "a video", audio: "an audio file", image: "an image" }[kind] || `a ${mimeType || "media file"}`;
}

function describeError(error, fileName) {
  const quoted = fileName ? `“${fileName}”` : "This file";
  if (!(error instanceof ApiError)) return error.message || String(error);
  const d = error.details;
  switch (error.code) {
    case "mime_type_not_allowed":
      return `${quoted} can't be uploaded: only video, audio and image files are accepted ` +
        `(this file is ${d.mimeType && d.mimeType !== "application/octet-stream" ? d.mimeType : "of an unknown type"}).`;
    case "quota_exceeded":
      return `Not enough storage for ${quoted}: it needs ${formatBytes(d.requested)}, but only ` +
        `${formatBytes(d.available)} of your ${d.plan} plan's ${formatBytes(d.limit)} is free ` +
        `(${formatBytes(d.stored)} stored, ${formatBytes(d.reserved)} reserved by uploads in progress).`;
    case "file_too_large":
      return `${quoted} is ${formatBytes(d.fileSize)}; the largest file you can upload is ${formatBytes(d.maxFileSize)}.`;
    case "integrity_check_failed":
      if (d.check === "type") {
        const kind = KIND_NAMES[d.found] || (d.found ? `a ${d.found} file` : "not a file we recognise");
        return `${quoted} is ${kind}, not ${describeKind(d.declared)}: upload a video, audio or image file.`;
      }
      if (d.check === "size") {
        return `${quoted} arrived incomplete (${formatBytes(d.found)} of ${formatBytes(d.declared)}): upload it again.`;
      }
      return `${quoted} arrived changed on the way (${error.message}): upload it again.`;
    case "conflict":
      // An upload left idle past its deadline (a day by default) was swept; its parts are gone.
      if (/expired/.test(error.message)) return `${quoted} waited too long and expired; upload it again.`;
      return error.message;
    default:
      return error.message;
  }
}

// --- session ------------------------------------------------------------------------------------------
let token = sessionStorage.getItem(TOKEN_KEY);
const watchers = new Set(); // AbortControllers of open event streams, closed on sign-out

function showSignIn(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const controller of watchers) controller.abort();
  watchers.clear();
  retireUploader();
  $("#workspace").hidden = true;
  $("#account").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message || "";
  $("#token-input").value = "";
  $("#token-input").focus();
}

function showWorkspace() {
  $("#sign-in").hidden = true;
  $("#workspace").hidden = false;
  $("#account").hidden = false;
  $("#account-label").textContent = "Signed in";
  refreshAssets();
  // Golden Retriever brings back this user's uploads from before a reload or a sign-out.
  getUploader().catch((error) => console.warn("the uploader could not start", error));
}

/** The header: who is signed in, their plan, and how much of its quota is used. */
async function refreshAccount() {
  const me = await api("/api/me");
  const used = me.quota.storedBytes + me.quota.reservedBytes;
  const who = me.email || `user ${me.userId.slice(0, 8)}`;
  $("#account-label").textContent =
    `${who} · ${me.plan.charAt(0)}${me.plan.slice(1).toLowerCase()} plan · ${formatBytes(used)} of ${formatBytes(me.quota.limitBytes)} used`;
  $("#account-label").title = `${formatBytes(me.quota.availableBytes)} free for new uploads`;
}

async function api(path, { method = "GET", body, signal } = {}) {
  if (!token) throw new SessionEndedError("signed out");
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.status === 401) {
    showSignIn("Your session has expired or your token is no longer valid. Please sign in again.");
    throw new SessionEndedError("unauthorized");
  }
  if (!response.ok || !payload || payload.success === false) {
    throw new ApiError(response.status, payload && payload.error);
  }
  return payload.data;
}

async function signIn(event) {
  event.preventDefault();
  const candidate = $("#token-input").value.trim();
  const errorBox = $("#sign-in-error");
  if (!candidate) {
    errorBox.textContent = "Enter your API token.";
    return;
  }
  errorBox.textContent = "";
  const response = await fetch("/api/assets?pageSize=1", { headers: { Authorization: `Bearer ${candidate}` } })
    .catch(() => null);
  if (!response) {
    errorBox.textContent = "The service could not be reached. Check your connection and try again.";
    return;
  }
  if (response.status === 401) {
    errorBox.textContent = "That token was not accepted: it is invalid, revoked or expired.";
    $("#token-input").select();
    return;
  }
  if (!response.ok) {
    errorBox.textContent = `The service answered ${response.status}; please try again later.`;
    return;
  }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  showWorkspace();
}

// --- bytes to storage -----------------------------------------------------------------------------
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Bytes per second over the last few seconds, and the time left at that rate. */
class RateMeter {
  constructor(total) {
    this.total = total;
    this.samples = [];
  }

  update(sent) {
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 4000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const speed = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
    return { speed, left: speed > 0 ? (this.total - sent) / speed : Infinity };
  }
}

// --- live status over Server-Sent Events ------------------------------------------------------------
/** Reads the event stream with fetch (so the token travels in a header, not the URL), reconnecting
 *  with Last-Event-ID; resolves with the last status once the stream says `end` (or the asset is gone). */
async function watchAsset(assetId, onStatus) {
  const controller = new AbortController();
  watchers.add(controller);
  let lastId = null;
  let retryMs = 2000;
  let last = null;
  try {
    for (;;) {
      try {
        const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(`/api/assets/${encodeURIComponent(assetId)}/events`, {
          headers, signal: controller.signal, cache: "no-store",
        });
        if (response.status === 401) {
          showSignIn("Your session has expired or your token is no longer valid. Please sign in again.");
          return null;
        }
        if (response.status === 404) return { deleted: true, ...(last || {}) };
        if (!response.ok || !response.body) throw new Error(`events answered ${response.status}`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let boundary;
          while ((boundary = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, boundary);
            buffer = buffer.slice(boundary + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (!line || line.startsWith(":")) continue; // keep-alive comments
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const fieldValue = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "event") name = fieldValue;
              else if (field === "data") data.push(fieldValue);
              else if (field === "id") lastId = fieldValue;
              else if (field === "retry" && /^\d+$/.test(fieldValue)) retryMs = Number(fieldValue);
            }
            if (name === "status" && data.length) {
              last = JSON.parse(data.join("\n"));
              onStatus(last);
            } else if (name === "end") {
              return last;
            } else if (name === "deleted") {
              return { deleted: true, ...(last || {}) };
            }
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return null;
      }
      await sleep(retryMs); // the stream dropped: reconnect, continuing from the last event id
    }
  } finally {
    watchers.delete(controller);
  }
}

function describeProcessing(status) {
  if (status.processingStatus === "READY") return { text: "Ready", progress: 100 };
  if (status.processingStatus === "FAILED") return { text: `Failed: ${status.error || "processing failed"}`, progress: 100 };
  const jobs = status.jobs || [];
  const current = status.currentJob;
  const finished = jobs.filter((job) => job.status === "COMPLETED").length;
  if (!current || current.status === "COMPLETED") {
    return { text: "Waiting for a worker…", progress: 0 };
  }
  const stage = current.label || current.type;
  const progress = Math.round(current.progress || 0);
  const waiting = current.status === "RETRYING" ? " (retrying)" : current.status === "PENDING" ? " (queued)" : "";
  const steps = jobs.length > 1 ? ` · ${finished} of ${jobs.length} steps done` : "";
  // The whole ingestion's share done: every job counts, so the bar never runs back between stages.
  const overall = jobs.reduce((sum, job) => sum + (job.status === "COMPLETED" ? 100 : job.progress || 0), 0) / jobs.length;
  return { text: `Processing: ${stage}${waiting}, ${progress}%${steps}`, progress: overall };
}

// --- results ------------------------------------------------------------------------------------------
function fileNameOf(url) {
  try {
    return decodeURIComponent(new URL(url, location.href).pathname.split("/").pop());
  } catch {
    return "";
  }
}

function parseTimestamp(text) {
  const parts = text.trim().split(":").map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

/** WebVTT thumbnail cues: `start --> end` then `sprite_000.jpg#xywh=x,y,w,h`. */
export function parseStoryboard(text) {
  const cues = [];
  for (const block of text.replace(/\r\n?/g, "\n").split(/\n{2,}/)) {
    const lines = block.split("\n").map((line) => line.trim()).filter(Boolean);
    const timing = lines.findIndex((line) => line.includes("-->"));
    if (timing < 0 || timing + 1 >= lines.length) continue;
    const [start, end] = lines[timing].split("-->").map((side) => parseTimestamp(side.trim().split(/\s+/)[0]));
    const match = /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(lines[timing + 1]);
    if (!match) continue;
    cues.push({ start, end, file: match[1], x: +match[2], y: +match[3], w: +match[4], h: +match[5] });
  }
  return cues;
}

/** The storyboard as a scrubber. With a video it is the player's seek bar: it shows what has played,
 * pointing at it (or dragging a finger along it) previews the frame above the pointer, and letting go
 * seeks there; without one it is a standalone preview strip. */
function buildScrubber(cues, sprites, duration, video, name) {
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
    className: video ? "scrub timeline" : "scrub",
    tabindex: "0",
    role: "slider",
    "aria-label": label,
    "aria-valuemin": "0",
    "aria-valuemax": String(Math.round(total)),
    "aria-valuenow": "0",
    "aria-valuetext": "0:00",
  }, preview, bar);
  let position = 0;
  function show(seconds) {
    position = Math.max(0, Math.min(total, seconds));
    const cue = cues.find((c) => position >= c.start && position < c.end) || last;
    if (!cue) return;
    const sprite = sprites.get(cue.file);
    frame.style.width = `${cue.w}px`;
    frame.style.height = `${cue.h}px`;
    if (sprite) frame.style.backgroundImage = `url("${sprite}")`;
    frame.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    time.textContent = formatClock(position);
    const share = total ? position / total : 0;
    head.style.left = `${share * 100}%`;
    if (video) {
      // Above the pointer, kept inside the bar's width.
      const width = bar.clientWidth;
      const left = Math.max(0, Math.min(width - cue.w, share * width - cue.w / 2));
      preview.style.left = `${left}px`;
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
  show(0);
  return scrub;
}

// --- HLS playback ------------------------------------------------------------------------------------
let hlsModule = null;

/** Plays `url` (a signed HLS master playlist) in `video`: with hls.js over Media Source Extensions where
 * the browser has them, else natively (Safari on iOS). Resolves false when neither is possible. hls.js
 * comes first because some browsers claim native HLS through canPlayType and then refuse the source. */
async function attachHls(video, url) {
  hlsModule = hlsModule || import("/ui/hls.light.min.mjs");
  const { default: Hls } = await hlsModule;
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

function detachHls(video) {
  if (video && video.hls) {
    video.hls.destroy();
    video.hls = null;
  }
}

/** While ingesting: a player on the HLS published so far, and how much of the timeline is ready. */
async function showEarlyPlayback(container, assetId, playback) {
  let figure = $(".early-playback", container);
  if (!figure) {
    const asset = await api(`/api/assets/${encodeURIComponent(assetId)}`).catch(() => null);
    if ($(".early-playback", container)) return; // another status event got here first
    const video = el("video", {
      className: "player early-player", controls: true, preload: "auto", playsinline: true, muted: true,
      "aria-label": `Preview of ${asset ? asset.name : "the video"} while it is processed`,
    });
    figure = el("figure", { className: "result wide early-playback" }, video,
      el("figcaption", { className: "playable" }));
    figure.dataset.duration = String((asset && asset.metadata && asset.metadata.durationSeconds) || 0);
    container.replaceChildren(figure);
    if (!(await attachHls(video, playback.hlsUrl))) {
      figure.remove();
      return;
    }
  }
  const total = Number(figure.dataset.duration);
  const ready = total ? ` of ${formatClock(total)}` : "";
  $(".playable", figure).textContent =
    `Playable while processing: ${formatClock(playback.playableSeconds)}${ready} ready`;
}

/** The timeline rate as a number: "30000/1001" → 29.97…; 0 when unknown. */
function frameRateOf(metadata) {
  const [num, den] = (metadata.frameRate || "").split("/").map(Number);
  return num ? num / (den || 1) : 0;
}

function formatFrameRate(metadata) {
  // "30000/1001" → "29.97 fps"; the proxies are at this constant rate even when the source was not.
  const fps = `${Math.round(frameRateOf(metadata) * 1000) / 1000} fps`;
  return metadata.isVariableFrameRate ? `${fps} (source variable)` : fps;
}

async function renderResults(container, asset) {
  for (const old of container.querySelectorAll("video")) detachHls(old);
  container.replaceChildren();
  const byType = (type) => asset.proxies.filter((proxy) => proxy.type === type);
  const poster = byType("POSTER")[0] || byType("THUMBNAIL")[0];
  const videos = byType("VIDEO").concat(byType("VIDEO_VP9"))
    // The rendition closest to 720p first: sharp enough, not the heaviest.
    .sort((a, b) => Math.abs((a.height || 0) - 720) - Math.abs((b.height || 0) - 720));
  const waveform = byType("WAVEFORM")[0];
  const storyboard = byType("STORYBOARD")[0];
  const metadata = asset.metadata || {};
  const grid = el("div", { className: "results" });
  let video = null;

  if (videos.length) {
    video = el("video", {
      className: "player", controls: true, preload: "metadata", playsinline: true,
      poster: poster ? poster.url : null, "aria-label": `Preview of ${asset.name}`,
    });
    const rungs = videos.map((p) => p.resolution).filter(Boolean).join(", ");
    const caption = el("figcaption", { text: `Web proxy · ${rungs}` });
    const rendition = el("select", { className: "rendition", "aria-label": "Rendition" },
      el("option", { value: "auto", text: "Auto" }));
    const timecode = el("output", { className: "timecode", "aria-label": "Timecode" });
    const showTimecode = () => { timecode.textContent = formatTimecode(video.currentTime, metadata); };
    video.addEventListener("timeupdate", showTimecode);
    video.addEventListener("seeked", showTimecode);
    showTimecode();
    grid.append(el("figure", { className: "result wide" }, video,
      el("div", { className: "player-bar" }, timecode, rendition), caption));
    // Adaptive HLS where it plays; the MP4 renditions otherwise. Not awaited: the rest of the results
    // (poster, storyboard, waveform) must not wait for hls.js to load.
    const mp4s = () => {
      const files = videos.filter((proxy) => proxy.contentType === "video/mp4");
      video.append(...videos.map((proxy) => el("source", { src: proxy.url, type: proxy.contentType })));
      rendition.replaceChildren(...files.map((proxy) => el("option", { value: proxy.url, text: proxy.resolution })));
      rendition.onchange = () => { // keep the place and the play state across the switch
        const [at, paused] = [video.currentTime, video.paused];
        video.src = rendition.value;
        video.addEventListener("loadedmetadata", () => {
          video.currentTime = at;
          if (!paused) video.play().catch(() => {});
        }, { once: true });
      };
    };
    if (asset.playback && asset.playback.hlsUrl) {
      attachHls(video, asset.playback.hlsUrl).then((playing) => {
        if (!playing) return mp4s();
        caption.textContent = `Web proxy · HLS, ${rungs}`;
        if (!video.hls) return; // native HLS chooses its own rendition
        video.hls.on("hlsManifestParsed", (_, data) => {
          rendition.append(...data.levels.map((level, index) =>
            el("option", { value: String(index), text: `${level.height}p` })));
        });
        rendition.onchange = () => { video.hls.currentLevel = rendition.value === "auto" ? -1 : Number(rendition.value); };
      }, () => mp4s());
    } else {
      mp4s();
    }
  } else if (asset.type === "AUDIO" && (byType("AUDIO").length || asset.downloadUrl)) {
    // The first track's AAC proxy plays in every browser; the original (FLAC, WAV…) may not.
    const track = byType("AUDIO").sort((a, b) => (a.details?.track ?? 0) - (b.details?.track ?? 0))[0];
    grid.append(el("figure", { className: "result wide" },
      el("audio", { controls: true, preload: "metadata", src: track ? track.url : asset.downloadUrl, "aria-label": `Play ${asset.name}` }),
      el("figcaption", { text: track ? "Audio proxy" : "Original audio" })));
  }
  if (poster) {
    grid.append(el("figure", { className: "result" },
      el("img", { className: "poster", src: poster.url, alt: `Poster frame of ${asset.name}` }),
      el("figcaption", { text: poster.type === "POSTER" ? "Poster" : "Thumbnail" })));
  }
  if (storyboard) {
    // With a player, the storyboard becomes its seek bar, under the picture; else a preview strip.
    const playerFigure = video ? video.closest("figure") : null;
    const figure = playerFigure || el("figure", { className: "result" }, el("figcaption", { text: "Point at it to preview" }));
    if (!playerFigure) grid.append(figure);
    try {
      const response = await fetch(storyboard.url);
      if (!response.ok) throw new Error(`storyboard answered ${response.status}`);
      const cues = parseStoryboard(await response.text());
      const sprites = new Map();
      for (const sheet of byType("SPRITE_SHEET")) {
        sprites.set(fileNameOf(sheet.url), sheet.url);
        const index = sheet.details && sheet.details.index;
        if (Number.isInteger(index)) sprites.set(`sprite_${String(index).padStart(3, "0")}.jpg`, sheet.url);
      }
      const scrubber = cues.length ? buildScrubber(cues, sprites, metadata.durationSeconds, video, asset.name) : null;
      if (scrubber && video) video.after(scrubber);
      else if (scrubber) figure.prepend(scrubber);
    } catch (error) {
      figure.append(el("p", { className: "hint", text: `The storyboard could not be loaded (${error.message}).` }));
    }
  }
  if (waveform) {
    grid.append(el("figure", { className: "result wide" },
      el("img", { className: "waveform", src: waveform.url, alt: `Waveform of ${asset.name}` }),
      el("figcaption", { text: "Waveform" })));
  }
  const spectrogram = byType("SPECTROGRAM")[0];
  if (spectrogram) {
    grid.append(el("figure", { className: "result wide" },
      el("img", { className: "spectrogram", src: spectrogram.url, alt: `Spectrogram of ${asset.name}` }),
      el("figcaption", { text: "Spectrogram (time across, frequency up)" })));
  }
  const facts = [];
  if (metadata.durationSeconds) facts.push(["Duration", formatDuration(metadata.durationSeconds)]);
  if (metadata.width) facts.push(["Picture", `${metadata.width}×${metadata.height}`]);
  if (metadata.frameRate) facts.push(["Frame rate", formatFrameRate(metadata)]);
  if (metadata.timecode) facts.push(["Timecode", metadata.timecode]);
  if (metadata.videoCodec) facts.push(["Video", metadata.videoCodec]);
  const tracks = metadata.audioTracks || [];
  if (metadata.audioCodec) facts.push(["Audio", `${metadata.audioCodec}${metadata.channels ? `, ${metadata.channels} ch` : ""}${tracks.length > 1 ? ` · ${tracks.length} tracks` : ""}`]);
  if (metadata.loudness && metadata.loudness.integratedLufs !== null) {
    const peak = metadata.loudness.truePeakDbtp;
    facts.push(["Loudness", `${metadata.loudness.integratedLufs.toFixed(1)} LUFS${peak !== null ? `, peak ${peak.toFixed(1)} dBTP` : ""}`]);
  }
  if (metadata.shots && metadata.shots.length) facts.push(["Shots", String(metadata.shots.length + 1)]);
  const exif = metadata.exif || null;
  if (exif) facts.push(...exifFacts(exif));
  facts.push(["Size", formatBytes(asset.fileSize)]);
  const factList = (pairs) => el("dl", { className: "facts" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  container.append(grid, factList(facts));
  if (exif) {
    const all = Object.entries(exif).map(([tag, value]) => [tag, typeof value === "object" ? JSON.stringify(value) : String(value)]);
    container.append(el("details", { className: "exif" }, el("summary", { text: `All EXIF fields (${all.length})` }), factList(all)));
  }
  if (asset.downloadUrl) container.append(downloadActions(asset));
}

/** What a photographer looks for first: the camera, when, and how it was exposed. */
function exifFacts(exif) {
  const facts = [];
  const camera = [exif.Make, exif.Model].filter(Boolean).join(" ").trim();
  if (camera) facts.push(["Camera", camera]);
  const taken = exif.DateTimeOriginal || exif.DateTime;
  if (taken) facts.push(["Taken", String(taken)]);
  const shutter = Number(exif.ExposureTime);
  const exposure = [
    shutter > 0 ? `${shutter < 1 ? `1/${Math.round(1 / shutter)}` : shutter} s` : null,
    exif.FNumber ? `f/${exif.FNumber}` : null,
    exif.ISOSpeedRatings ? `ISO ${exif.ISOSpeedRatings}` : null,
    exif.FocalLength ? `${exif.FocalLength} mm` : null,
  ].filter(Boolean);
  if (exposure.length) facts.push(["Exposure", exposure.join(" · ")]);
  return facts;
}

/** Download the original, or copy a link to it that says how long it works (it is signed). */
function downloadActions(asset) {
  const name = asset.originalName || asset.name;
  const until = asset.downloadExpiresAt ? new Date(asset.downloadExpiresAt) : null;
  const validity = until ? `works until ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : "works for a while";
  const note = el("span", { className: "hint", role: "status" });
  const copy = el("button", { type: "button", className: "secondary", text: "Copy link", "aria-label": `Copy a download link for ${name}` });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(asset.downloadUrl);
      note.textContent = `Link copied; it ${validity}.`;
    } catch {
      note.textContent = `Copy this link (it ${validity}): ${asset.downloadUrl}`;
    }
  });
  return el("div", { className: "asset-actions" },
    el("a", { className: "button", href: asset.downloadUrl, download: asset.name, text: "Download original" }),
    copy, note);
}

// --- uploads --------------------------------------------------------------------------------------
// Uppy (pinned, served by this service) sends the bytes: its AwsS3 plugin cuts big files into parts and
// asks our endpoints for each part's URL, for the parts storage already holds and to complete; Golden
// Retriever keeps every upload across a reload (small files whole, big ones until chosen again). The
// cards, the confirmation and everything after it are this page's.
const MIB = 1024 * 1024;
const UPPY_MIN_PART = 5 * MIB; // Uppy's AwsS3 never cuts a part smaller, nor a file this small
const ACTIVE_STATES = new Set(["requesting", "uploading", "paused", "confirming"]);
const cards = new Map(); // Uppy file id → card
const uploaders = new Map(); // user id → Promise<Uppy>: one per account, kept across a sign-out
let uploaderReady = null; // the signed-in user's
let limits = null;

function getUploader() {
  uploaderReady = uploaderReady || (async () => {
    const me = await api("/api/me");
    limits = me.uploads;
    if (!uploaders.has(me.userId)) uploaders.set(me.userId, createUploader(me.userId));
    const uppy = await uploaders.get(me.userId);
    uppy.resumeAll(); // paused by a sign-out
    showRestoredUploads(uppy);
    return uppy;
  })();
  return uploaderReady;
}

/** Signing out pauses this user's uploads (what reached storage stays) and clears their cards. */
function retireUploader() {
  if (uploaderReady) uploaderReady.then((uppy) => uppy.pauseAll()).catch(() => {});
  uploaderReady = null;
  for (const card of document.querySelectorAll("#uploads .upload")) dismiss(card);
}

// The browser sets Content-Length itself and refuses it from scripts; the rest are signed and must go as given.
const browserHeaders = (headers) =>
  Object.fromEntries(Object.entries(headers || {}).filter(([name]) => name.toLowerCase() !== "content-length"));

// Which files go in parts, and how big: Uppy and the server must cut them alike.
const usesParts = (file) => file.size > Math.max(limits.multipartThreshold, UPPY_MIN_PART);
const partSizeFor = (size) => Math.max(limits.partSize, UPPY_MIN_PART, Math.ceil(size / 10000));

async function requestTicket(uppy, file) {
  const card = cards.get(file.id);
  if (card) setState(card, "requesting", "Preparing the upload…");
  const multipart = usesParts(file);
  const ticket = await api("/api/assets/upload-url", {
    method: "POST",
    body: {
      fileName: file.name, fileSize: file.size, mimeType: file.type || "application/octet-stream",
      projectId: file.meta.project || null, multipart, partSize: multipart ? partSizeFor(file.size) : undefined,
    },
  });
  uppy.setFileMeta(file.id, { assetId: ticket.assetId }); // kept by Golden Retriever across a reload
  refreshAccount().catch(() => {}); // the header's quota counts the reservation from now on
  if (card) {
    card.dataset.assetId = ticket.assetId;
    card.dataset.multipart = ticket.multipart ? String(ticket.multipart.parts.length) : "";
    const parts = ticket.multipart ? ` in ${ticket.multipart.parts.length} parts` : "";
    setState(card, "uploading", `Uploading${parts}…`);
  }
  return ticket;
}

async function createUploader(userId) {
  const { Uppy, AwsS3, GoldenRetriever } = await import("/ui/uppy.min.mjs");
  // One store of uploads per user: another account signing in on this browser sees none of them.
  const uppy = new Uppy({ id: `mediaingest-${userId}`, autoProceed: true, allowMultipleUploadBatches: true });
  uppy.use(AwsS3, {
    limit: 6,
    shouldUseMultipart: usesParts,
    getChunkSize: (data) => partSizeFor(data.size),
    async getUploadParameters(file) {
      const assetId = uppy.getFile(file.id)?.meta.assetId;
      if (assetId) {
        // Restarted after a reload: the same asset, on a fresh URL; or, if the bytes had landed,
        // confirmed with what storage holds (the upload-error handler then follows the processing).
        const state = await api(`/api/assets/${encodeURIComponent(assetId)}/upload`);
        if (state.uploadUrl) return { method: "PUT", url: state.uploadUrl, headers: browserHeaders(state.headers) };
        await confirmUpload(uppy, file, { assetId, etag: state.etag });
        throw new AlreadyConfirmed();
      }
      const ticket = await requestTicket(uppy, file);
      return { method: "PUT", url: ticket.uploadUrl, headers: browserHeaders(ticket.headers) };
    },
    async createMultipartUpload(file) {
      const ticket = await requestTicket(uppy, file);
      return { uploadId: ticket.multipart.uploadId, key: ticket.assetId };
    },
    async listParts(file, { key }) {
      const state = await api(`/api/assets/${encodeURIComponent(key)}/upload`);
      return state.receivedParts.map((part) => ({ PartNumber: part.partNumber, Size: part.size, ETag: part.etag }));
    },
    async signPart(file, { key, partNumber, body }) {
      // The part's SHA-256, signed into its URL: storage refuses other bytes and only this part is
      // sent again. (No WebCrypto on plain http to another host: then the part goes unhashed.)
      const sha256 = globalThis.crypto && crypto.subtle ? await sha256Hex(body) : undefined;
      const signed = await api(`/api/assets/${encodeURIComponent(key)}/upload/parts`, {
        method: "POST", body: { parts: [{ partNumber, sha256 }] },
      });
      const [part] = signed.parts;
      return { method: "PUT", url: part.url, headers: browserHeaders(part.headers) };
    },
    async completeMultipartUpload(file, { key, parts }) {
      const body = { assetId: key, parts: parts.map((part) => ({ partNumber: part.PartNumber, etag: part.ETag })) };
      await confirmUpload(uppy, file, body);
      return {};
    },
    async abortMultipartUpload(file, { key }) {
      await abortUpload(key);
    },
  });
  uppy.use(GoldenRetriever);

  uppy.on("upload-progress", (file, progress) => {
    const card = cards.get(file.id);
    if (card && card.dataset.state === "uploading") card.onProgress?.(progress.bytesUploaded);
  });
  uppy.on("upload-pause", (file, paused) => {
    const card = cards.get(file.id);
    if (!card) return;
    setState(card, paused ? "paused" : "uploading", paused ? "Paused. What reached storage is kept." : "Uploading…");
    if (paused) { // no speed or time left while nothing moves
      const sent = Number(card.dataset.sent || 0);
      $(".upload-progress", card).value = (sent / file.size) * UPLOAD_SHARE;
      $(".upload-meta", card).textContent = `${formatBytes(sent)} of ${formatBytes(file.size)} sent`;
    }
  });
  uppy.on("upload-success", async (file, response) => {
    const card = cards.get(file.id);
    try {
      // A single PUT is confirmed here; parts were confirmed when Uppy completed them.
      if (!file.meta.confirmed) await confirmUpload(uppy, file, { assetId: file.meta.assetId, etag: response.body.ETag });
      const assetId = file.meta.assetId;
      cards.delete(file.id);
      uppy.removeFile(file.id); // done with the bytes: Golden Retriever forgets it
      if (card) await followProcessing(card, assetId, file.name, file.size);
    } catch (error) {
      if (card) showFailure(card, error, file.name);
    }
  });
  uppy.on("upload-error", async (file, error) => {
    const card = cards.get(file.id);
    const confirmed = error instanceof AlreadyConfirmed ||
      (error instanceof ApiError && error.status === 409 && file.meta.assetId && (await wasConfirmed(file.meta.assetId)));
    if (confirmed) {
      // Confirmed just before a reload (whose answer the page never saw), or just now: nothing was wrong.
      cards.delete(file.id);
      uppy.setFileMeta(file.id, { settled: true });
      uppy.removeFile(file.id);
      if (card) await followProcessing(card, file.meta.assetId, file.name, file.size);
      return;
    }
    if (card) showFailure(card, error, file.name);
    if (error instanceof ApiError && error.status < 500) {
      // Refused by the server (quota, type, integrity): settled there, nothing to resume.
      cards.delete(file.id);
      uppy.setFileMeta(file.id, { settled: true });
      uppy.removeFile(file.id);
    } else if (card) {
      // Storage or the network failed for good: what landed is kept, and Retry sends the rest.
      const retry = $(".resume", card);
      retry.textContent = "Retry";
      retry.setAttribute("aria-label", `Retry ${file.name}`);
      retry.hidden = false;
      retry.onclick = () => {
        retry.textContent = "Resume";
        retry.setAttribute("aria-label", `Resume ${file.name}`);
        retry.onclick = () => uppy.pauseResume(file.id);
        setState(card, "uploading", "Retrying…");
        uppy.retryUpload(file.id);
      };
    }
  });
  uppy.on("file-removed", (file) => {
    // Cancelled (not finished): the server forgets the upload too, and releases its quota.
    const card = cards.get(file.id);
    cards.delete(file.id);
    if (file.meta.assetId && !file.meta.confirmed && !file.meta.settled) {
      abortUpload(file.meta.assetId).then(() => refreshAccount()).catch((error) => console.warn("abort failed", error));
    }
    if (card) dismiss(card);
  });
  uppy.on("restored", () => showRestoredUploads(uppy));
  return uppy;
}

async function confirmUpload(uppy, file, body) {
  const card = cards.get(file.id);
  if (card) {
    $(".upload-progress", card).value = UPLOAD_SHARE;
    setState(card, "confirming", "Verifying the upload…");
  }
  await api("/api/assets/confirm-upload", { method: "POST", body });
  uppy.setFileMeta(file.id, { confirmed: true });
}

/** The bytes were already in storage and are now confirmed: not an upload to make. */
class AlreadyConfirmed extends Error {}

async function wasConfirmed(assetId) {
  try {
    return (await api(`/api/assets/${encodeURIComponent(assetId)}/status`)).uploadStatus === "UPLOADED";
  } catch {
    return false;
  }
}

async function abortUpload(assetId) {
  try {
    await api(`/api/assets/${encodeURIComponent(assetId)}/upload/abort`, { method: "POST" });
  } catch (error) {
    if (!(error instanceof ApiError && (error.status === 404 || error.status === 409))) throw error;
  }
}

/** After a reload: a card per upload Golden Retriever kept. Files it could keep whole carry on at
 * once; for bigger ones the card asks for the file again and then resumes where storage stopped. */
function showRestoredUploads(uppy) {
  for (const file of uppy.getFiles()) {
    if (cards.has(file.id)) continue;
    const card = newCard(file.name, file.size, file.id);
    if (file.meta.assetId) card.dataset.assetId = file.meta.assetId;
    card.dataset.multipart = usesParts(file) ? String(Math.ceil(file.size / partSizeFor(file.size))) : "";
    const done = file.progress.bytesUploaded || 0;
    $(".upload-progress", card).value = file.size ? (done / file.size) * UPLOAD_SHARE : 0;
    if (file.isGhost) {
      $(".upload-meta", card).textContent = `${formatBytes(done)} of ${formatBytes(file.size)} sent before the page was left`;
      setState(card, "interrupted", `Interrupted. Choose “${file.name}” again to resume where it stopped.`);
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

// Signatures of files that are certainly not media, from their first bytes: refused before anything is
// sent. Anything else goes to the server, whose own check (and ffprobe) decide.
const NOT_MEDIA = [
  ["application/pdf", [0x25, 0x50, 0x44, 0x46, 0x2d]], // %PDF-
  ["application/zip", [0x50, 0x4b, 0x03, 0x04]],
  ["application/x-msdownload", [0x4d, 0x5a]], // MZ
];

async function notMediaReason(file) {
  // A declared non-media type is the server's to refuse (415, with the type named).
  if (!/^(video|audio|image)\//.test(file.type)) return null;
  const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
  let found = NOT_MEDIA.find(([, magic]) => magic.every((byte, i) => head[i] === byte));
  if (!found) {
    const text = new TextDecoder().decode(head).trimStart().toLowerCase();
    if (text.startsWith("<!doctype html") || text.startsWith("<html")) found = ["text/html"];
  }
  if (!found) return null;
  return `“${file.name}” is ${KIND_NAMES[found[0]]}, not ${describeKind(file.type)}: upload a video, audio or image file.`;
}

function newCard(name, size, fileId) {
  const item = $("#upload-template").content.firstElementChild.cloneNode(true);
  $(".upload-name", item).textContent = name;
  $(".upload-size", item).textContent = formatBytes(size);
  $(".upload-progress", item).setAttribute("aria-label", `Upload of ${name}`);
  for (const [selector, verb] of [[".dismiss", "Dismiss"], [".pause", "Pause"], [".resume", "Resume"], [".cancel", "Cancel"]]) {
    $(selector, item).setAttribute("aria-label", `${verb} ${name}`);
  }
  $(".dismiss", item).addEventListener("click", () => discard(item));
  $(".choose", item).addEventListener("click", () => $("#file-input").click());
  if (fileId) attachToUploader(item, fileId, size);
  $("#uploads").prepend(item);
  updateQueueBar();
  return item;
}

function attachToUploader(item, fileId, size) {
  cards.set(fileId, item);
  item.dataset.fileId = fileId;
  const withUploader = (action) => getUploader().then(action);
  $(".pause", item).onclick = () => withUploader((uppy) => uppy.pauseResume(fileId));
  $(".resume", item).onclick = () => withUploader((uppy) => uppy.pauseResume(fileId));
  $(".cancel", item).onclick = () => withUploader((uppy) => uppy.removeFile(fileId));
  const meter = new RateMeter(size);
  let lastPaint = 0;
  item.onProgress = (sent) => {
    item.dataset.sent = String(sent);
    const now = performance.now();
    if (now - lastPaint < 150 && sent < size) return;
    lastPaint = now;
    const { speed, left } = meter.update(sent);
    $(".upload-progress", item).value = (sent / size) * UPLOAD_SHARE; // one bar: upload, then processing
    const eta = Number.isFinite(left) ? ` · ${formatDuration(left)} left` : "";
    $(".upload-meta", item).textContent = `${formatBytes(sent)} of ${formatBytes(size)} · ${formatBytes(speed)}/s${eta}`;
  };
}

async function addFiles(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length) return;
  $("#notice").textContent = "";
  const project = $("#project-input").value.trim() || null;
  let uppy;
  try {
    uppy = await getUploader();
  } catch (error) {
    if (!(error instanceof SessionEndedError)) $("#notice").textContent = `Uploads are unavailable: ${describeError(error)}`;
    return;
  }
  for (const file of files) {
    const reason = file.size === 0 ? `“${file.name}” is empty; there is nothing to upload.` : await notMediaReason(file);
    if (reason) {
      showFailure(newCard(file.name, file.size), new Error(reason), file.name, "rejected");
      continue;
    }
    try {
      const fileId = uppy.addFile({ name: file.name, type: file.type, data: file, source: "page", meta: { project } });
      const card = cards.get(fileId); // a card from before a reload takes its file back
      if (card) setState(card, "uploading", "Resuming…");
      else setState(newCard(file.name, file.size, fileId), "requesting", "Waiting to upload…");
    } catch (error) {
      $("#notice").textContent = `“${file.name}”: ${error.message}`; // already in the queue
    }
  }
  resumeWhenWhole(uppy);
}

function showFailure(card, error, name, state) {
  $(".upload-progress", card).value = 0;
  $(".upload-meta", card).textContent = "";
  setState(card, state || (error instanceof ApiError && error.status < 500 ? "rejected" : "failed"), describeError(error, name));
  $(".upload-status", card).classList.add("error");
}

const FINISHED = new Set(["ready", "failed", "rejected", "deleted"]);

function setState(item, state, text) {
  item.dataset.state = state;
  if (text !== undefined) $(".upload-status", item).textContent = text;
  $(".upload-status", item).classList.remove("error");
  $(".dismiss", item).hidden = !FINISHED.has(state);
  // Only parts can pause: a single PUT can only start again.
  $(".pause", item).hidden = !(state === "uploading" && item.dataset.multipart);
  $(".resume", item).hidden = state !== "paused";
  $(".cancel", item).hidden = !["requesting", "uploading", "paused", "interrupted"].includes(state);
  $(".choose", item).hidden = state !== "interrupted";
  updateQueueBar();
}

/** Above the cards: how many are in flight, ready or failed, and one button to clear the finished ones. */
function updateQueueBar() {
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

/** Dismiss: a card whose upload Uppy still holds (failed, resumable) cancels that upload too. */
function discard(item) {
  const fileId = item.dataset.fileId;
  if (fileId && cards.has(fileId) && uploaderReady) uploaderReady.then((uppy) => uppy.removeFile(fileId));
  else dismiss(item);
}

function dismiss(item) {
  for (const video of item.querySelectorAll("video")) detachHls(video);
  if (item.dataset.fileId) cards.delete(item.dataset.fileId);
  item.remove();
  updateQueueBar();
}

async function followProcessing(item, assetId, name, size) {
  const bar = $(".upload-progress", item);
  $(".upload-meta", item).textContent = `${formatBytes(size)} uploaded`;
  setState(item, "processing", "Uploaded; waiting for processing…");
  bar.setAttribute("aria-label", `Upload and processing of ${name}`);
  refreshAssets();
  try {
    const final = await watchAsset(assetId, (status) => {
      const { text, progress } = describeProcessing(status);
      bar.value = Math.max(bar.value, UPLOAD_SHARE + (progress * (100 - UPLOAD_SHARE)) / 100);
      setState(item, "processing", text);
      if (status.playback && status.playback.ready && status.processingStatus !== "READY") {
        showEarlyPlayback($(".upload-results", item), assetId, status.playback)
          .catch((error) => console.warn("early playback unavailable", error));
      }
    });
    await finish(item, assetId, final, name);
  } catch (error) {
    if (!(error instanceof SessionEndedError)) showFailure(item, error, name);
  }
}

// Leaving while bytes are on their way loses nothing (Golden Retriever resumes), but it stops the upload: ask.
window.addEventListener("beforeunload", (event) => {
  const sending = [...document.querySelectorAll("#uploads .upload")].some((card) => ACTIVE_STATES.has(card.dataset.state));
  if (sending) {
    event.preventDefault();
    event.returnValue = "";
  }
});

async function finish(item, assetId, final, name) {
  if (!final) return; // signed out
  refreshAssets();
  if (final.deleted) {
    setState(item, "deleted", `“${name}” was deleted.`);
    return;
  }
  if (final.processingStatus === "FAILED") {
    setState(item, "failed", `Processing failed: ${final.error || "unknown error"}`);
    $(".upload-status", item).classList.add("error");
    return;
  }
  setState(item, "ready", "Ready");
  $(".upload-progress", item).value = 100;
  const asset = await api(`/api/assets/${encodeURIComponent(assetId)}`);
  const results = $(".upload-results", item);
  const watching = [...results.querySelectorAll("video")].some((video) => !video.paused);
  if (!watching) { // the queue stays compact: the whole asset opens in the asset view
    for (const video of results.querySelectorAll("video")) detachHls(video);
    results.replaceChildren();
  }
  results.append(readySummary(asset));
}

/** A finished card's one line: poster, duration and picture size, and Open for the asset view. */
function readySummary(asset) {
  const poster = asset.proxies.find((proxy) => proxy.type === "POSTER") || asset.proxies.find((proxy) => proxy.type === "THUMBNAIL");
  const metadata = asset.metadata || {};
  const facts = [
    metadata.durationSeconds ? formatClock(metadata.durationSeconds) : null,
    metadata.width && metadata.height ? `${metadata.width}×${metadata.height}` : null,
    asset.type.toLowerCase(),
  ].filter(Boolean);
  const name = asset.originalName || asset.name;
  return el("div", { className: "ready-summary" },
    poster ? el("img", { className: "ready-thumb", src: poster.url, alt: `Poster frame of ${asset.name}` }) : null,
    el("span", { className: "hint", text: facts.join(" · ") }),
    el("button", { type: "button", className: "secondary", text: "Open", "aria-label": `Open ${name}`, onclick: () => openViewer(asset) }));
}

// --- the asset list -------------------------------------------------------------------------------
let refreshing = null;

function refreshAssets() {
  if (!token) return Promise.resolve();
  // Coalesce bursts (several uploads finishing together) into one request after the current one.
  if (refreshing) {
    refreshing.again = true;
    return refreshing.promise;
  }
  const state = { again: false };
  state.promise = (async () => {
    do {
      state.again = false;
      try {
        const [page] = await Promise.all([api(`/api/assets?${libraryQuery()}`), refreshAccount()]);
        renderAssets(page.items, page);
      } catch (error) {
        if (!(error instanceof SessionEndedError)) $("#notice").textContent = `Could not load your assets: ${describeError(error)}`;
      }
    } while (state.again);
    refreshing = null;
  })();
  refreshing = state;
  return state.promise;
}

function statusLabel(asset) {
  if (asset.uploadStatus !== "UPLOADED") return { PENDING: "Uploading", UPLOADING: "Verifying" }[asset.uploadStatus] || asset.uploadStatus.toLowerCase();
  return { PENDING: "Queued", PROCESSING: "Processing", READY: "Ready", FAILED: "Failed" }[asset.processingStatus];
}

// The library's view: search, filters, order and page, as the API takes them.
const library = { page: 1, pageSize: 20 };

function libraryQuery() {
  const params = new URLSearchParams({ page: String(library.page), pageSize: String(library.pageSize) });
  const search = $("#library-search").value.trim();
  if (search) params.set("q", search);
  if ($("#library-type").value) params.set("type", $("#library-type").value);
  if ($("#library-status").value) params.set("processingStatus", $("#library-status").value);
  params.set("sort", $("#library-sort").value);
  return params.toString();
}

function renderAssets(items, page = { total: items.length, page: 1, pageSize: items.length || 1 }) {
  const body = $("#assets-body");
  body.replaceChildren(...items.map((asset) => el("tr", { "data-asset-id": asset.id },
    el("td", { className: "thumb-cell" }, asset.posterUrl
      ? el("img", { className: "row-poster", src: asset.posterUrl, alt: "", loading: "lazy" })
      : el("span", { className: "row-poster placeholder", "aria-hidden": "true", text: asset.type.slice(0, 1) })),
    el("th", { scope: "row", className: "name-cell", text: asset.originalName || asset.name, title: asset.originalName }),
    el("td", { text: asset.durationSeconds ? formatClock(asset.durationSeconds) : "—" }),
    el("td", { text: asset.type.toLowerCase() }),
    el("td", { text: formatBytes(asset.fileSize) }),
    el("td", {}, el("span", { className: `badge ${(asset.processingStatus || "").toLowerCase()}`, text: statusLabel(asset) })),
    el("td", { text: formatDate(asset.uploadedAt || asset.createdAt) }),
    el("td", { className: "actions" },
      el("button", { type: "button", className: "secondary", "aria-label": `View ${asset.name}`, onclick: () => openViewer(asset) }, "View"),
      el("button", { type: "button", className: "danger", "aria-label": `Delete ${asset.name}`, onclick: () => deleteAsset(asset) }, "Delete")),
  )));
  const filtered = Boolean($("#library-search").value.trim() || $("#library-type").value || $("#library-status").value);
  $("#assets-table").hidden = items.length === 0;
  $("#assets-empty").hidden = items.length !== 0;
  $("#assets-empty").textContent = filtered ? "No asset matches." : "No assets yet: upload something above.";
  const pages = Math.max(1, Math.ceil(page.total / page.pageSize));
  $("#library-pager").hidden = pages <= 1;
  $("#page-info").textContent = `Page ${page.page} of ${pages} · ${page.total} assets`;
  $("#page-prev").disabled = page.page <= 1;
  $("#page-next").disabled = page.page >= pages;
}

function wireLibrary() {
  let typing = null;
  $("#library-search").addEventListener("input", () => { // search as people type, once they pause
    clearTimeout(typing);
    typing = setTimeout(() => { library.page = 1; refreshAssets(); }, 250);
  });
  $("#library-filters").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["#library-type", "#library-status", "#library-sort"]) {
    $(id).addEventListener("change", () => { library.page = 1; refreshAssets(); });
  }
  $("#page-prev").addEventListener("click", () => { library.page = Math.max(1, library.page - 1); refreshAssets(); });
  $("#page-next").addEventListener("click", () => { library.page += 1; refreshAssets(); });
}

async function deleteAsset(asset) {
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Delete “${asset.name}”? The file and everything made from it will be removed.`)) return;
  try {
    await api(`/api/assets/${encodeURIComponent(asset.id)}`, { method: "DELETE" });
    const row = $(`#assets-body tr[data-asset-id="${CSS.escape(asset.id)}"]`);
    if (row) row.remove();
    for (const card of document.querySelectorAll(`.upload[data-asset-id="${CSS.escape(asset.id)}"]`)) {
      setState(card, "deleted", `“${asset.name}” was deleted.`);
      $(".upload-results", card).replaceChildren();
    }
    if ($("#viewer").dataset.assetId === asset.id) closeViewer();
    $("#announcer").textContent = `Deleted ${asset.name}.`;
    refreshAssets();
  } catch (error) {
    if (!(error instanceof SessionEndedError)) $("#notice").textContent = `Could not delete “${asset.name}”: ${describeError(error)}`;
  }
}

let viewerWatch = 0;

async function openViewer(summary) {
  const viewer = $("#viewer");
  const watch = ++viewerWatch;
  viewer.hidden = false;
  viewer.dataset.assetId = summary.id;
  $("#viewer-title").textContent = summary.originalName || summary.name;
  $("#viewer-body").replaceChildren();
  $("#viewer-status").textContent = "Loading…";
  viewer.scrollIntoView({ behavior: "smooth", block: "start" });
  try {
    let asset = await api(`/api/assets/${encodeURIComponent(summary.id)}`);
    if (asset.uploadStatus === "UPLOADED" && !["READY", "FAILED"].includes(asset.processingStatus)) {
      const final = await watchAsset(summary.id, (status) => {
        if (watch !== viewerWatch) return;
        $("#viewer-status").textContent = describeProcessing(status).text;
        if (status.playback && status.playback.ready && status.processingStatus !== "READY") {
          showEarlyPlayback($("#viewer-body"), summary.id, status.playback)
            .catch((error) => console.warn("early playback unavailable", error));
        }
      });
      if (!final || final.deleted || watch !== viewerWatch) return;
      asset = await api(`/api/assets/${encodeURIComponent(summary.id)}`);
    }
    if (watch !== viewerWatch) return;
    $("#viewer-status").textContent = asset.processingStatus === "FAILED"
      ? `Failed: ${asset.error || "processing failed"}`
      : asset.uploadStatus !== "UPLOADED" ? `Upload ${asset.uploadStatus.toLowerCase()}${asset.error ? `: ${asset.error}` : ""}` : "Ready";
    await renderResults($("#viewer-body"), asset);
  } catch (error) {
    if (!(error instanceof SessionEndedError)) $("#viewer-status").textContent = describeError(error);
  }
}

function closeViewer() {
  viewerWatch += 1;
  const viewer = $("#viewer");
  viewer.hidden = true;
  delete viewer.dataset.assetId;
  $("#viewer-body").replaceChildren();
}

// --- wiring ----------------------------------------------------------------------------------------
function wire() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => showSignIn("You are signed out."));
  $("#refresh").addEventListener("click", () => refreshAssets());
  wireLibrary();
  $("#clear-finished").addEventListener("click", () => {
    for (const card of document.querySelectorAll("#uploads .upload")) if (FINISHED.has(card.dataset.state)) discard(card);
  });
  $("#viewer-close").addEventListener("click", closeViewer);
  const input = $("#file-input");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = ""; // choosing the same file again still fires `change`
  });
  const zone = $("#dropzone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles(event.dataTransfer && event.dataTransfer.files);
  });
  // A file dropped beside the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  if (token) showWorkspace();
  else showSignIn("");
}

wire();
