// How bytes go up, decided from what the link measurably does: part size, parallel parts, retry delays,
// and the count of bytes storage has confirmed. Pure (no DOM, no clock of its own): node's test runner
// checks it (tests/web/js/transfer.test.mjs).

export const MIB = 1024 * 1024;
export const MIN_PART = 5 * MIB; // S3's (and Uppy's) smallest part but the last
const MAX_PART = 64 * MIB;
const MAX_PARTS = 10000;
const PART_SECONDS = 4; // a part should take about this long, so a pause or a drop loses seconds, not minutes

/** The part size for a file on a link of `throughput` bytes/s (null when not measured yet): small parts
 * on a slow or unknown link, bigger ones where a part would otherwise take under a second. */
export function choosePartSize(fileSize, throughput) {
  const wanted = throughput ? Math.ceil((throughput * PART_SECONDS) / MIB) * MIB : MIN_PART;
  const fitting = Math.ceil(fileSize / MAX_PARTS); // S3 takes at most 10,000 parts
  return Math.max(MIN_PART, fitting, Math.min(MAX_PART, wanted));
}

/** Parts in flight at once: one until the link is measured, and on a slow link (parallel parts would
 * only share it, and each one in flight is work a pause or an outage can lose); more where a part
 * goes up in a second or two, to fill the link past one connection's round trips. */
export function chooseConcurrency(throughput, partSize) {
  if (!throughput) return 1;
  const secondsPerPart = partSize / throughput;
  if (secondsPerPart > 1) return 1;
  if (secondsPerPart > 0.25) return 2;
  return 4;
}

/** The delay before automatic retry number `attempt` (1, 2, …) after a lost connection: 2 s doubling to 30 s. */
export function retryDelaySeconds(attempt) {
  return Math.min(30, 2 ** Math.max(1, attempt));
}

/** The size of part `partNumber` (from 1) of a file cut in `partSize` parts. */
export function partBytes(fileSize, partSize, partNumber) {
  return Math.max(0, Math.min(partSize, fileSize - (partNumber - 1) * partSize));
}

/** Bytes storage confirmed: the parts it holds (a Set of part numbers), each at its size. */
export function confirmedBytes(fileSize, partSize, partNumbers) {
  let total = 0;
  for (const number of partNumbers) total += partBytes(fileSize, partSize, number);
  return total;
}

/** Bytes per second over the last few seconds of (time in ms, bytes) samples, and the time left. */
export class RateMeter {
  constructor(total, windowMs = 4000) {
    this.total = total;
    this.windowMs = windowMs;
    this.samples = [];
  }

  update(now, sent, done = sent) {
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > this.windowMs) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const speed = now > t0 && sent >= b0 ? ((sent - b0) * 1000) / (now - t0) : 0;
    return { speed, left: speed > 0 ? (this.total - done) / speed : Infinity };
  }

  reset() {
    this.samples = [];
  }
}
