"""Frames on demand: the exact pictures at chosen places of the timeline, decoded in one ffmpeg run.

The timeline counts frames at the asset's timeline rate (`metadata.frame_rate`, see `timing`): frame n
starts at n / rate, and the frame at time t is floor(t · rate). Every proxy is encoded at that rate
through ffmpeg's `fps` filter, so decoding any input through the same filter at the same rate gives
the same frame n whether the input is the scrubbing rung or the source (a variable-rate one
included): the picture the proxies show at n / rate.

How the frames are reached, in one run (`build_frames_command`, pure):
- wanted frames close together (gaps up to a second) form a group decoded straight through: decoding
  a second costs less than seeking again (the scrubbing rung has a keyframe every second);
- each group is one input of its own, opened with an input seek a frame before its first frame (a
  second for a variable-rate source, whose frame showing at that time may have begun long before). The
  seek lands on the keyframe before it and ffmpeg drops what precedes the seek point, so the `fps`
  filter starts counting there. `-t` ends the input after its last wanted frame, so nothing after it
  is decoded;
- containers whose seeks are not frame-exact (MPEG program and transport streams: their timestamps
  after a seek are guessed, measured a frame or three off) are decoded from their start instead;
- the groups are concatenated and written as raw RGB to stdout, in the order asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image

from mediaingest.exceptions import ProcessingError
from mediaingest.pipeline.ffmpeg import (
    FfmpegCommand,
    FfmpegInput,
    FfmpegOutput,
    FfmpegTools,
    FilterGraph,
    filter_spec,
)
from mediaingest.pipeline.filters import base_video_filters, video_stream_specifier
from mediaingest.pipeline.timing import rate_text
from mediaingest.pipeline.types import MediaMetadata

# Containers whose input seek puts the right timestamps on the frames after it (sample tables, cues).
_SEEK_EXACT_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"})
# Half a frame: a time stored in a coarse timebase still falls inside its own frame.
_EPSILON_FRAMES = Fraction(1, 2000)


@dataclass(frozen=True)
class FrameSource:
    """How to decode a kind of file: which stream, how to seek in it, what it needs before the `fps` filter."""

    stream: str  # ffmpeg's stream specifier inside the input, "v:0" or the probed index "3"
    seek_exact: bool
    variable_rate: bool = False  # a frame may have begun long before the time it shows at
    filters: tuple[str, ...] = ()  # deinterlacing, tone mapping: what the proxies pass applies first

    @classmethod
    def of(cls, metadata: MediaMetadata) -> FrameSource:
        """The uploaded original, as probe described it."""
        return cls(
            stream=video_stream_specifier(metadata).split(":", 1)[1],
            seek_exact=seek_exact(metadata.format_name),
            variable_rate=bool(metadata.is_variable_frame_rate),
            filters=tuple(base_video_filters(metadata)),
        )


# The scrubbing rung: an MP4 at the timeline rate, already deinterlaced and tone-mapped.
SCRUB_RUNG = FrameSource(stream="v:0", seek_exact=True)


def seek_exact(format_name: str | None) -> bool:
    """True when an input seek into this container (ffprobe's format_name, "mov,mp4,…") lands exactly."""
    return bool(set((format_name or "").split(",")) & _SEEK_EXACT_FORMATS)


def frame_at(seconds: float, rate: Fraction) -> int:
    """The timeline frame showing at `seconds`: floor(t · rate), a time a hair short of a frame's start
    (one rounded on its way through a timebase) counted as that frame."""
    return max(0, math.floor(Fraction(seconds) * rate + _EPSILON_FRAMES))


def frame_time(frame: int, rate: Fraction) -> float:
    """When a timeline frame starts, in seconds."""
    return float(frame / rate)


def timeline_frames(picture_seconds: float, rate: Fraction) -> int:
    """How many frames the timeline holds: what every rung holds (`proxies.check_renditions`)."""
    return max(1, round(Fraction(picture_seconds) * rate))


def seek_frame(source: FrameSource, frame: int, rate: Fraction) -> int:
    """Where to enter the input to decode `frame`: a frame before it, so a time rounded down in a coarse
    timebase is not dropped by the seek; a second before it when frames of a variable-rate source may
    last that long; the start when the container's seeks are not exact."""
    if not source.seek_exact:
        return 0
    return max(0, frame - (math.ceil(rate) if source.variable_rate else 1))


def group_frames(frames: Sequence[int], rate: Fraction) -> list[list[int]]:
    """Sorted, distinct frames in groups decoded straight through: a gap of more than a second starts a new one."""
    gap = math.ceil(rate)
    groups: list[list[int]] = []
    for frame in sorted(set(frames)):
        if groups and frame - groups[-1][-1] <= gap:
            groups[-1].append(frame)
        else:
            groups.append([frame])
    return groups


def build_frames_command(
    location: Path | str, source: FrameSource, frames: Sequence[int], rate: Fraction, *, width: int, height: int
) -> FfmpegCommand:
    """One run that writes the distinct `frames` (sorted) as rgb24 pictures of width×height to stdout."""
    wanted = sorted(set(frames))
    if not wanted:
        raise ValueError("no frames asked for")
    groups = group_frames(wanted, rate) if source.seek_exact else [wanted]
    graph = FilterGraph()
    inputs: list[FfmpegInput] = []
    for number, group in enumerate(groups):
        first = seek_frame(source, group[0], rate)
        # The input ends one frame after the last one wanted (plus one of margin for rounding).
        length = Fraction(group[-1] - first + 2) / rate
        options = ["-t", f"{float(length):.6f}"]
        if first > 0:
            options = ["-ss", f"{float(first / rate):.6f}", *options]
        inputs.append(FfmpegInput(location, options))
        picks = "+".join(f"eq(n,{frame - first})" for frame in group)
        graph.chain(
            [f"{number}:{source.stream}"],
            [
                *source.filters,
                filter_spec("fps", rate_text(rate), start_time=0),
                filter_spec("select", picks),
                filter_spec("scale", width, height, flags="bicubic"),
                filter_spec("setsar", 1),
                filter_spec("format", "rgb24"),
            ],
            [f"g{number}"],
        )
    if len(groups) > 1:
        graph.chain([f"g{number}" for number in range(len(groups))], [filter_spec("concat", n=len(groups))], ["out"])
        out = "out"
    else:
        out = "g0"
    # passthrough: the muxer must not duplicate or drop frames to fill the gaps between the ones picked.
    raw = ["-fps_mode", "passthrough", "-c:v", "rawvideo", "-f", "rawvideo"]
    output = FfmpegOutput("pipe:1", ["-map", f"[{out}]", "-frames:v", str(len(wanted)), *raw])
    return FfmpegCommand(inputs=inputs, outputs=[output], filter_graph=graph)


def decode_frames(
    location: Path | str,
    source: FrameSource,
    frames: Sequence[int],
    rate: Fraction,
    *,
    width: int,
    height: int,
    tools: FfmpegTools,
    timeout: float,
) -> list[Image.Image]:
    """The distinct `frames`, sorted, as pictures of width×height, from one ffmpeg run."""
    collector = FrameCollector(width, height)
    command = build_frames_command(location, source, frames, rate, width=width, height=height)
    tools.run(command, duration_seconds=None, on_progress=None, timeout=timeout, stdout_sink=collector.feed,
              label="frames")  # fmt: skip
    return collector.finish(len(set(frames)))


class FrameCollector:
    """Receives the run's rgb24 bytes in arbitrary chunks (a stdout_sink) and cuts them into pictures."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.pictures: list[Image.Image] = []
        self._buffer = bytearray()

    @property
    def _size(self) -> int:
        return self.width * self.height * 3

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= self._size:
            data = bytes(self._buffer[: self._size])
            del self._buffer[: self._size]
            self.pictures.append(Image.frombytes("RGB", (self.width, self.height), data))

    def finish(self, expected: int) -> list[Image.Image]:
        if self._buffer or len(self.pictures) != expected:
            raise ProcessingError(
                f"ffmpeg decoded {len(self.pictures)} of the {expected} frames asked for",
                details={"decoded": len(self.pictures), "expected": expected},
            )
        return self.pictures


def fitted_size(
    display_width: int, display_height: int, *, width: int | None = None, height: int | None = None
) -> tuple[int, int]:
    """A picture of the displayed aspect at this width (or height), the other side rounded, at least 2."""
    if width is not None:
        return width, max(2, round(width * display_height / display_width))
    assert height is not None
    return max(2, round(height * display_width / display_height)), height
