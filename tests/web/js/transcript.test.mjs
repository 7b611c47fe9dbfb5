// The interactive transcript's pure parts: which word is being said, and a selection's in and out points.
import { test } from "node:test";
import assert from "node:assert/strict";

import { flattenWords, spanTimes, wordAt } from "../../../src/mediaingest/web/transcript.js";

const transcript = {
  language: "en",
  segments: [
    { start: 0.5, end: 1.6, text: "Hello there.", words: [{ start: 0.5, end: 0.9, word: " Hello" }, { start: 1.0, end: 1.6, word: " there." }] },
    { start: 3.0, end: 3.9, text: "Good morning.", words: [{ start: 3.0, end: 3.3, word: " Good" }, { start: 3.4, end: 3.9, word: " morning." }] },
  ],
};

test("words are flattened in order, each with its paragraph", () => {
  const words = flattenWords(transcript);
  assert.deepEqual(words.map((w) => [w.word, w.segment]), [[" Hello", 0], [" there.", 0], [" Good", 1], [" morning.", 1]]);
  assert.deepEqual(flattenWords({ segments: [] }), []);
});

test("the word being said is the last one started", () => {
  const words = flattenWords(transcript);
  assert.equal(wordAt(words, 0.2), -1);
  assert.equal(wordAt(words, 0.5), 0);
  assert.equal(wordAt(words, 0.95), 0); // between words: the last one stays marked
  assert.equal(wordAt(words, 2.5), 1);
  assert.equal(wordAt(words, 3.4), 3);
  assert.equal(wordAt(words, 99), 3);
  assert.equal(wordAt([], 1), -1);
});

test("a selection runs from its first word's start to its last word's end, whichever way it was made", () => {
  const words = flattenWords(transcript);
  assert.deepEqual(spanTimes(words, 1, 2), { in: 1.0, out: 3.3 });
  assert.deepEqual(spanTimes(words, 3, 0), { in: 0.5, out: 3.9 });
});
