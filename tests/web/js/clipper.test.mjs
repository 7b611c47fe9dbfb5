// The clip panel's pure helpers, run by `node --test` from `make test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { clipRequest, frameStart, rangeSpan } from "../../../src/mediaingest/web/clipper.js";

test("I and O mark the start of the frame showing, at the asset's rate", () => {
  assert.equal(frameStart(12.219, 25), 12.2);
  assert.equal(frameStart(12.2, 25), 12.2); // a frame's own start stays there
  assert.equal(frameStart(1.0, 30000 / 1001), 29 / (30000 / 1001));
  assert.equal(frameStart(3.3, 0), 3.3); // no rate known: the time as it is
});

test("a clip needs in before out, inside the video", () => {
  assert.deepEqual(clipRequest({ in: null, out: 4 }, 10), { error: "Set both in (I) and out (O) first." });
  assert.deepEqual(clipRequest({ in: 5, out: 5 }, 10), { error: "Out must come after in." });
  assert.deepEqual(clipRequest({ in: 11, out: 12 }, 10), { error: "In is past the end." });
  assert.deepEqual(clipRequest({ in: 2, out: 12 }, 10), { body: { start: 2, end: 10 } });
});

test("the range shows on the seek bar in percent, open-ended until out is set", () => {
  assert.equal(rangeSpan({ in: null, out: null }, 10), null);
  assert.deepEqual(rangeSpan({ in: 2, out: 5 }, 10), { left: 20, width: 30 });
  assert.deepEqual(rangeSpan({ in: 2, out: null }, 10), { left: 20, width: 80 });
});
