"""Frame timing: is the picture variable-rate, how many frames does it hold, and at which standard rate
does an editing timeline show it.

Phones record variable frame rate (frames dropped in low light, timestamps that wander), while a
timeline counts frames at one constant rate. So the probe reads every video packet's timestamp (a
demux, no decode: seconds for an hour of footage) and the proxies are encoded at the `timeline_rate`,
the standard rate nearest to the source's regular frame interval. Only the timestamps' statistics are
kept, never the list, so memory stays flat whatever the length.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from math import log
from pathlib import Path

from mediaingest.pipeline.options import PipelineOptions

STANDARD_RATES = (
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(48),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
)
# Decoders reorder B-frames by at most 16 frames (H.264/HEVC DPB size), so a heap of this many
# packets turns decode order back into presentation order.
_REORDER_WINDOW = 32
# Container timebases round timestamps (Matroska to the millisecond): intervals within this of the
# usual one are the same interval, rounded.
_ROUNDING_SECONDS = 0.0015
_ROUNDING_SHARE = 0.02
# A source rate this close to a standard rate is that rate (29.97 written as 2997/100, say).
_SAME_RATE_SHARE = 0.001


@dataclass(frozen=True)
class FrameTiming:
    frames: int
    variable: bool  # some frame intervals differ from the usual one beyond timestamp rounding
    source_rate: Fraction  # frames per second over the regular intervals
    timeline_rate: Fraction  # the standard rate every proxy is encoded at


def nearest_standard_rate(rate: Fraction | float) -> Fraction:
    """The standard rate closest in ratio (so 59.94 → 60000/1001, 15 → 24000/1001, 120 → 60)."""
    return min(STANDARD_RATES, key=lambda standard: abs(log(float(rate) / float(standard))))


def conforms_to_timeline(fps: float | None, frame_rate: str | None, variable: bool | None) -> bool:
    """A constant-rate source already at its timeline rate: its frames can be copied one to one."""
    if variable or not fps or not frame_rate:
        return False
    return abs(fps / float(Fraction(frame_rate)) - 1) <= _SAME_RATE_SHARE


def rate_text(rate: Fraction) -> str:
    """ "30000/1001", "25/1": ffmpeg's and the API's spelling of an exact rate."""
    return f"{rate.numerator}/{rate.denominator}"


def analyse_timestamps(timestamps: Iterable[float]) -> FrameTiming | None:
    """FrameTiming from packet presentation times in decode order; None when there are too few to tell."""
    frames, intervals = _intervals(_presentation_order(timestamps))
    if not intervals:
        return None
    regular = _regular_intervals(intervals)
    variable = len(regular) < len(intervals)
    regular_sum = sum(interval * count for interval, count in regular.items())
    source_rate = Fraction(sum(regular.values()) * 1_000_000, regular_sum).limit_denominator(1001)
    timeline_rate = nearest_standard_rate(source_rate)
    if not variable and abs(source_rate / timeline_rate - 1) <= _SAME_RATE_SHARE:
        source_rate = timeline_rate  # the exact rate, rather than one rebuilt from rounded timestamps
    return FrameTiming(
        frames=frames,
        variable=variable,
        source_rate=source_rate,
        timeline_rate=timeline_rate,
    )


def _presentation_order(timestamps: Iterable[float]) -> Iterator[float]:
    """Decode-order times in presentation order, through a heap no bigger than the reorder window."""
    pending: list[float] = []
    for timestamp in timestamps:
        heapq.heappush(pending, timestamp)
        if len(pending) > _REORDER_WINDOW:
            yield heapq.heappop(pending)
    while pending:
        yield heapq.heappop(pending)


def _intervals(times: Iterable[float]) -> tuple[int, Counter[int]]:
    """How many frames, and how often each interval between consecutive ones occurs (in microseconds)."""
    frames = 0
    previous: float | None = None
    intervals: Counter[int] = Counter()
    for timestamp in times:
        frames += 1
        if previous is not None and timestamp > previous:
            intervals[round((timestamp - previous) * 1_000_000)] += 1
        previous = timestamp
    return frames, intervals


def _regular_intervals(intervals: Counter[int]) -> dict[int, int]:
    """The intervals within timestamp rounding of the usual one."""
    usual = intervals.most_common(1)[0][0]
    tolerance = max(_ROUNDING_SECONDS * 1_000_000, usual * _ROUNDING_SHARE)
    return {interval: count for interval, count in intervals.items() if abs(interval - usual) <= tolerance}


def read_frame_timing(
    source: Path, stream: int | str, *, options: PipelineOptions, timeout: float | Callable[[], float]
) -> FrameTiming | None:
    """Every packet time of one video stream (an index, or a specifier such as "V:0"), read by ffprobe
    without decoding, analysed as it streams. `timeout` as ffprobe_lines takes it."""
    lines = options.tools.probe_lines(
        source,
        args=("-select_streams", str(stream), "-show_entries", "packet=pts_time", "-of", "csv=p=0"),
        timeout=timeout,
    )
    return analyse_timestamps(_times(lines))


def _times(lines: Iterable[str]) -> Iterator[float]:
    for line in lines:
        try:
            yield float(line.rstrip(","))
        except ValueError:
            continue  # "N/A": a packet without a time (some AVI and raw streams) says nothing about rate
