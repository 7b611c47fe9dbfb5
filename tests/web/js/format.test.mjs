// The page's pure helpers, run by `node --test` from `make test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  describeGeometry, describeProcessing, displayGeometry, exifFacts, fitPreview, formatBytes, formatClock,
  formatExifDate, formatTimecode, parseStoryboard, rungLabel, statusLabel,
} from "../../../src/mediaingest/web/format.js";

test("sizes are binary and say so: a 5 GiB plan reads 5 GiB", () => {
  assert.equal(formatBytes(5 * 1024 ** 3), "5 GiB");
  assert.equal(formatBytes(50 * 1024 ** 3), "50 GiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(100_000), "97.7 KiB");
  assert.equal(formatBytes(151 * 1000 ** 2), "144 MiB");
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(Number.NaN), "?");
});

test("the clock has hours only when needed", () => {
  assert.equal(formatClock(6.4), "0:06");
  assert.equal(formatClock(75), "1:15");
  assert.equal(formatClock(3725), "1:02:05");
});

test("timecodes count drop-frame as SMPTE does", () => {
  const ntsc = { frameRate: "30000/1001", timecode: "01:00:00;00" };
  assert.equal(formatTimecode(0, ntsc), "01:00:00;00");
  assert.equal(formatTimecode(1799 / (30000 / 1001), ntsc), "01:00:59;29");
  assert.equal(formatTimecode(1800 / (30000 / 1001), ntsc), "01:01:00;02"); // 00 and 01 are skipped
  assert.equal(formatTimecode(17982 / (30000 / 1001), { frameRate: "30000/1001", timecode: "00:00:00;00" }), "00:10:00;00");
  assert.equal(formatTimecode(10.5, { frameRate: "25/1", timecode: "10:00:00:00" }), "10:00:10:12");
  assert.equal(formatTimecode(2, { frameRate: "24000/1001" }), "00:00:01:23");
  assert.equal(formatTimecode(75, {}), "1:15");
});

test("a rotated phone clip is portrait: its display size, not its coded size", () => {
  const phone = displayGeometry({ width: 1920, height: 1080, displayWidth: 1080, displayHeight: 1920, rotation: 90 });
  assert.deepEqual(phone, { width: 1080, height: 1920, aspect: 1080 / 1920, orientation: "portrait" });
  assert.equal(describeGeometry(phone), "1080×1920 · portrait");
  const anamorphic = displayGeometry({ width: 1440, height: 1080, displayWidth: 1920, displayHeight: 1080 });
  assert.equal(describeGeometry(anamorphic), "1920×1080");
  assert.equal(displayGeometry({ width: 640, height: 480 }).orientation, "landscape");
  assert.equal(displayGeometry({}), null);
});

test("rungs are named by their short side, as the proxies are", () => {
  assert.equal(rungLabel(360, 640), "360p");
  assert.equal(rungLabel(1280, 720), "720p");
  assert.equal(rungLabel(0, 0), "");
});

test("previews keep the display aspect inside their box", () => {
  const portrait = displayGeometry({ displayWidth: 1080, displayHeight: 1920 });
  assert.deepEqual(fitPreview(portrait, 160, 160), { width: 90, height: 160 });
  assert.deepEqual(fitPreview(portrait, 160, 90), { width: 51, height: 90 }); // inside an old padded tile
  assert.deepEqual(fitPreview(null, 160, 160), { width: 160, height: 90 });
});

test("storyboard cues parse with their sprite rectangles", () => {
  const vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprite_000.jpg#xywh=0,0,90,160\n\n00:00:02.000 --> 00:00:04.000\nsprite_000.jpg#xywh=90,0,90,160\n";
  assert.deepEqual(parseStoryboard(vtt), [
    { start: 0, end: 2, file: "sprite_000.jpg", x: 0, y: 0, w: 90, h: 160 },
    { start: 2, end: 4, file: "sprite_000.jpg", x: 90, y: 0, w: 90, h: 160 },
  ]);
});

test("the library's word and the card's agree while processing", () => {
  const status = {
    uploadStatus: "UPLOADED", processingStatus: "PENDING",
    currentJob: { status: "RUNNING", label: "Making web proxies", progress: 27 },
    jobs: [{ status: "COMPLETED" }, { status: "RUNNING", progress: 27 }],
  };
  const described = describeProcessing(status);
  assert.equal(described.text, "Processing: Making web proxies, 27% · 1 of 2 steps done");
  assert.equal(described.short, "Processing 64%");
  assert.equal(statusLabel({ uploadStatus: "PENDING" }), "Uploading");
  assert.equal(describeProcessing({ uploadStatus: "PENDING", processingStatus: "PENDING" }).short, "Uploading");
});

test("EXIF reads as people write it", () => {
  assert.equal(formatExifDate("2026:05:04 12:34:56"), "2026-05-04 12:34:56");
  const facts = Object.fromEntries(exifFacts({ Make: "Canon", Model: "Canon EOS R5", DateTimeOriginal: "2026:05:04 12:34:56", ExposureTime: 0.004, FNumber: 5.6, ISOSpeedRatings: 400 }));
  assert.equal(facts.Camera, "Canon EOS R5");
  assert.equal(facts.Taken, "2026-05-04 12:34:56");
  assert.equal(facts.Exposure, "1/250 s · f/5.6 · ISO 400");
  assert.equal(Object.fromEntries(exifFacts({ Make: "Fujifilm", Model: "X-T4" })).Camera, "Fujifilm X-T4");
});
