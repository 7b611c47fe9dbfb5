import assert from "node:assert/strict";
import { test } from "node:test";

import {
  chooseConcurrency, choosePartSize, confirmedBytes, MIB, partBytes, RateMeter, retryDelaySeconds,
} from "../../../src/mediaingest/web/transfer.js";

test("parts are small on a slow or unknown link and grow with a fast one", () => {
  assert.equal(choosePartSize(151 * MIB, null), 5 * MIB);
  assert.equal(choosePartSize(151 * MIB, 512 * 1024), 5 * MIB); // 0.5 MiB/s: the 5 MiB floor
  assert.equal(choosePartSize(3 * 1024 * MIB, 8 * MIB), 32 * MIB); // about 4 s a part
  assert.equal(choosePartSize(3 * 1024 * MIB, 500 * MIB), 64 * MIB); // capped
  assert.equal(choosePartSize(100 * 1024 * MIB, null), Math.ceil((100 * 1024 * MIB) / 10000)); // within 10,000 parts
});

test("one part at a time until measured, and on a slow link", () => {
  assert.equal(chooseConcurrency(null, 5 * MIB), 1);
  assert.equal(chooseConcurrency(2 * MIB, 5 * MIB), 1); // 2.5 s a part
  assert.equal(chooseConcurrency(7 * MIB, 5 * MIB), 2);
  assert.equal(chooseConcurrency(50 * MIB, 5 * MIB), 4);
});

test("retries back off from 2 s to 30 s", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 9].map(retryDelaySeconds), [2, 4, 8, 16, 30, 30, 30]);
});

test("confirmed bytes count whole parts storage holds, the last one short", () => {
  const size = 11 * MIB + 123;
  assert.equal(partBytes(size, 5 * MIB, 3), MIB + 123);
  assert.equal(confirmedBytes(size, 5 * MIB, new Set([1, 3])), 6 * MIB + 123);
  assert.equal(confirmedBytes(size, 5 * MIB, []), 0);
});

test("the rate is measured over a sliding window", () => {
  const meter = new RateMeter(10 * MIB, 4000);
  meter.update(0, 0);
  const { speed, left } = meter.update(2000, 2 * MIB);
  assert.equal(speed, MIB);
  assert.equal(left, 8);
  meter.update(10_000, 4 * MIB); // older samples fall out
  assert.equal(meter.update(12_000, 6 * MIB).speed, MIB);
});
