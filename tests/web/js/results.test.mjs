// The asset view's generic results: laid out from what each proxy says of itself, not from a list of kinds.
import assert from "node:assert/strict";
import { test } from "node:test";

import { captionOf, measuredFacts, planOutputs } from "../../../src/mediaingest/web/results.js";

const proxy = (type, shownAs, extra = {}) => ({ type, shownAs, label: type.toLowerCase(), url: `/${type}`, ...extra });

test("one picture or player per kind, stills first; every other output is a file; handled kinds are left alone", () => {
  const proxies = [
    proxy("WAVEFORM", "strip"), proxy("NEW_KIND", "image", { id: "first" }), proxy("NEW_KIND", "image", { id: "second" }),
    proxy("PEAKS", "json"), proxy("PEAKS", "json"), proxy("VIDEO", "video"), proxy("CLIP_MP4", "video"),
    proxy("UNKNOWN", null), proxy("CAPTIONS", "vtt"),
  ];
  const { pictures, files } = planOutputs(proxies, new Set(["VIDEO", "CAPTIONS"]));
  assert.deepEqual(pictures.map((p) => p.id || p.type), ["first", "WAVEFORM", "CLIP_MP4"]);
  assert.deepEqual(files.map((p) => p.type), ["PEAKS", "PEAKS", "UNKNOWN"]);
});

test("the caption is the declared label, with its note in brackets", () => {
  assert.equal(captionOf({ type: "SPECTROGRAM", label: "Spectrogram", note: "time across, frequency up" }),
    "Spectrogram (time across, frequency up)");
  assert.equal(captionOf({ type: "MIDDLE_FRAME", label: "Middle frame", note: null }), "Middle frame");
  assert.equal(captionOf({ type: "UNDECLARED", label: "", note: null }), "UNDECLARED");
});

test("what the stages measured reads as facts, named for people; lists and objects are left to their views", () => {
  const measurements = {
    proxies: { shots: [1.5, 3] },
    audio_visuals: { loudness: { integratedLufs: -23 } },
    transcript: { transcriptLanguage: "en" },
    midpoint_still: { positionSeconds: 1, meanLuma: 0.41234, isHdr: false, noteURL: "" },
  };
  assert.deepEqual(measuredFacts(measurements), [
    ["Transcript language", "en"], ["Position seconds", "1"], ["Mean luma", "0.412"], ["Is hdr", "no"],
  ]);
  assert.deepEqual(measuredFacts(undefined), []);
});
