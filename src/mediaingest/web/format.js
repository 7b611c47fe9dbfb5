// Pure formatting: sizes, times, timecodes, picture geometry, storyboards, processing status, EXIF.
// No DOM and no state, so node's test runner checks every function here (tests/web/js/).

// Binary units, named as such: plans and limits are powers of 1024 (a "5 GiB" plan is 5 × 1024³ bytes),
// and the README, the API docs and this page all say GiB.
const BYTE_UNITS = Object.freeze(["B", "KiB", "MiB", "GiB", "TiB"]);

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "?";
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = value >= 100 || unit === 0 ? String(Math.round(value)) : value.toFixed(1).replace(/\.0$/, "");
  return `${shown} ${BYTE_UNITS[unit]}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const clock = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${clock.padStart(5, "0")}` : clock;
}

export function formatDate(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** The timeline rate as a number: "30000/1001" → 29.97…; 0 when unknown. */
export function frameRateOf(metadata) {
  const [num, den] = ((metadata && metadata.frameRate) || "").split("/").map(Number);
  return num ? num / (den || 1) : 0;
}

export function formatFrameRate(metadata) {
  // The proxies are at this constant rate even when the source was not.
  const fps = `${Math.round(frameRateOf(metadata) * 1000) / 1000} fps`;
  return metadata.isVariableFrameRate ? `${fps} (source variable)` : fps;
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
  const totalSeconds = Math.floor(frames / nominal);
  const sep = drop ? ";" : ":";
  return `${pad(Math.floor(totalSeconds / 3600) % 24)}:${pad(Math.floor(totalSeconds / 60) % 60)}:${pad(totalSeconds % 60)}${sep}${pad(frames % nominal)}`;
}

/** The picture as it plays: rotation and non-square pixels applied (the probe's displayWidth/Height),
 * falling back to the coded size. `null` for media without a picture. */
export function displayGeometry(metadata) {
  if (!metadata) return null;
  const width = metadata.displayWidth || metadata.width;
  const height = metadata.displayHeight || metadata.height;
  if (!width || !height) return null;
  const orientation = width < height ? "portrait" : width > height ? "landscape" : "square";
  return { width, height, aspect: width / height, orientation };
}

/** "1080×1920 · portrait": what a person expects to read for a phone clip held upright. */
export function describeGeometry(geometry) {
  if (!geometry) return "";
  const shape = geometry.orientation === "landscape" ? "" : ` · ${geometry.orientation}`;
  return `${geometry.width}×${geometry.height}${shape}`;
}

/** A rendition's label is its short side ("720p" for 1280×720 and for 720×1280), as proxies are named. */
export function rungLabel(width, height) {
  const short = Math.min(width || 0, height || 0) || width || height;
  return short ? `${short}p` : "";
}

/** The box a preview of `geometry` fits in, at most `maxWidth` × `maxHeight`, at the display aspect. */
export function fitPreview(geometry, maxWidth, maxHeight) {
  const aspect = geometry ? geometry.aspect : 16 / 9;
  const width = Math.min(maxWidth, maxHeight * aspect);
  return { width: Math.round(width), height: Math.round(width / aspect) };
}

function parseTimestamp(text) {
  return text.trim().split(":").map(Number).reduce((total, part) => total * 60 + part, 0);
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

/** The short word a library row shows; the same as the card's while the status stream is followed. */
export function statusLabel(asset) {
  if (asset.uploadStatus !== "UPLOADED") {
    return { PENDING: "Uploading", UPLOADING: "Verifying" }[asset.uploadStatus] || asset.uploadStatus.toLowerCase();
  }
  return { PENDING: "Queued", PROCESSING: "Processing", READY: "Ready", FAILED: "Failed" }[asset.processingStatus];
}

/** A status event (or GET …/status) as a sentence and a share of the whole ingestion done (0–100). */
export function describeProcessing(status) {
  if (status.processingStatus === "READY") return { text: "Ready", short: "Ready", progress: 100 };
  if (status.processingStatus === "FAILED") {
    return { text: `Failed: ${status.error || "processing failed"}`, short: "Failed", progress: 100 };
  }
  if (status.uploadStatus && status.uploadStatus !== "UPLOADED") {
    const short = statusLabel(status);
    return { text: short, short, progress: 0 };
  }
  const jobs = status.jobs || [];
  const current = status.currentJob;
  const finished = jobs.filter((job) => job.status === "COMPLETED").length;
  if (!current || current.status === "COMPLETED") return { text: "Waiting for a worker…", short: "Queued", progress: 0 };
  const stage = current.label || current.type;
  const progress = Math.round(current.progress || 0);
  const waiting = current.status === "RETRYING" ? " (retrying)" : current.status === "PENDING" ? " (queued)" : "";
  const steps = jobs.length > 1 ? ` · ${finished} of ${jobs.length} steps done` : "";
  // The whole ingestion's share: every job counts, so the bar never runs back between stages.
  const overall = jobs.reduce((sum, job) => sum + (job.status === "COMPLETED" ? 100 : job.progress || 0), 0) / jobs.length;
  return {
    text: `Processing: ${stage}${waiting}, ${progress}%${steps}`,
    short: `Processing ${Math.round(overall)}%`,
    progress: overall,
  };
}

/** EXIF's "2026:05:04 12:34:56" as a date people read: "2026-05-04 12:34:56". */
export function formatExifDate(value) {
  const match = /^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}:\d{2}(:\d{2})?)/.exec(String(value).trim());
  return match ? `${match[1]}-${match[2]}-${match[3]} ${match[4]}` : String(value);
}

/** What a photographer looks for first: the camera, when, and how it was exposed. */
export function exifFacts(exif) {
  const facts = [];
  const make = String(exif.Make || "").trim();
  const model = String(exif.Model || "").trim();
  // Many makers repeat their name in the model ("Canon" + "Canon EOS R5"): say it once.
  const camera = make && model.toLowerCase().startsWith(make.toLowerCase()) ? model : [make, model].filter(Boolean).join(" ");
  if (camera) facts.push(["Camera", camera]);
  const taken = exif.DateTimeOriginal || exif.DateTime;
  if (taken) facts.push(["Taken", formatExifDate(taken)]);
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
