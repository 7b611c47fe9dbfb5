"""Frame-exact clips rendered in seconds: a "smart cut" that re-encodes only the frames at each boundary.

A clip [in, out) of an H.264 source at a constant rate is three segments joined end to end:

    head  frames [in, k1)   encoded   from the in point to the first keyframe inside the clip
    copy  frames [k1, t0)   copied    the source's own packets, untouched (most of a long clip)
    tail  frames [t0, out)  encoded   from the last keyframe inside the clip (or its leading frames) to out

Open GOPs are why the copy is chosen by packets, not by time: a keyframe that is not an IDR frame has
"leading" B-frames, shown before it but decoded after it, which refer to the GOP before. So the copy
starts at k1's packet and drops k1's leading frames (the head encodes them from a full decode), and it
ends before the last keyframe k2's packet, whose leading frames (t0 ≤ k2) go to the tail. Packets are
picked by their decode-order number (`noise` bitstream filter), so no timestamp is ever reinterpreted.
The plan is a pure function of the packet list (`plan_cut`) and is checked to cover every frame once.

Audio is never copied: every track is decoded and trimmed to the sample at in and out, then encoded
(AAC), so it stays in sync with the picture to the sample whatever its frame size. The source's start
timecode is shifted to the in point (drop-frame counted as SMPTE 12M counts it).

A source that cannot be copied (another codec, a variable rate, a rate other than its timeline's) is
encoded whole over [in, out): still frame-exact, only slower.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mediaingest.exceptions import PermanentProcessingError, ProcessingError
from mediaingest.pipeline.ffmpeg import FfmpegCommand, FfmpegInput, FfmpegOutput, FilterGraph, filter_spec
from mediaingest.pipeline.filters import audio_tracks, base_video_filters, video_stream_specifier
from mediaingest.pipeline.frames import FrameSource, seek_exact, seek_frame
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.timing import conforms_to_timeline, rate_text
from mediaingest.pipeline.types import MediaMetadata

# Boundary segments are at most a GOP each, next to copied frames: encoded well above proxy quality, with
# x264's fastest preset (measured on 53 frames of 1080p: 0.9 s against veryfast's 1.5 s, SSIM to the source
# 0.9996 against 0.9984, for twice the bytes of a segment that lasts two seconds at most).
_BOUNDARY_CRF = 16
_ENCODED_REORDER_DEPTH = 2  # x264 with B-frames in a pyramid
# An input format (the images keep every demuxer), named apart from the output formats the image check reads.
_CONCAT_DEMUXER = "concat"


@dataclass(frozen=True)
class Packet:
    """One video packet in decode order, timestamps in the stream's time base."""

    pts: int
    dts: int
    key: bool


@dataclass(frozen=True)
class CutPlan:
    in_frame: int
    out_frame: int  # exclusive
    head: tuple[int, int] | None  # frames [a, b) encoded
    copy_packets: tuple[int, ...]  # decode-order numbers of the packets copied
    copy_frames: tuple[int, int] | None  # the frames they show, [a, b)
    tail: tuple[int, int] | None  # frames [a, b) encoded

    @classmethod
    def encoded_whole(cls, in_frame: int, out_frame: int) -> CutPlan:
        return cls(in_frame, out_frame, (in_frame, out_frame), (), None, None)

    @classmethod
    def around(cls, in_frame: int, out_frame: int, packets: tuple[int, ...], copied: tuple[int, int]) -> CutPlan:
        """The packets copied for frames `copied`, and the frames of [in, out) before and after them encoded."""
        head = (in_frame, copied[0]) if copied[0] > in_frame else None
        tail = (copied[1], out_frame) if out_frame > copied[1] else None
        return cls(in_frame, out_frame, head, packets, copied, tail)

    @property
    def frames(self) -> int:
        return self.out_frame - self.in_frame

    @property
    def encoded_frames(self) -> int:
        return sum(segment[1] - segment[0] for segment in (self.head, self.tail) if segment is not None)


def plan_cut(packets: list[Packet], time_base: Fraction, rate: Fraction, in_frame: int, out_frame: int) -> CutPlan:
    """Which frames of [in, out) are encoded and which packets are copied (see the module's docstring)."""
    if not 0 <= in_frame < out_frame:
        raise ValueError(f"empty or negative range [{in_frame}, {out_frame})")
    frames = _frame_numbers(packets, time_base, rate)
    copy = _whole_gops(packets, frames, in_frame, out_frame)
    if copy is None:
        return CutPlan.encoded_whole(in_frame, out_frame)
    return CutPlan.around(in_frame, out_frame, *copy)


def _frame_numbers(packets: list[Packet], time_base: Fraction, rate: Fraction) -> list[int]:
    """The timeline frame each packet shows, counted from the first one shown."""
    origin = min(packet.pts for packet in packets)
    return [round((packet.pts - origin) * time_base * rate) for packet in packets]


def _whole_gops(
    packets: list[Packet], frames: list[int], in_frame: int, out_frame: int
) -> tuple[tuple[int, ...], tuple[int, int]] | None:
    """The packets from the first keyframe inside [in, out] to the last one's, less the first one's leading
    frames, and the frames [k1, t0) they show; None when there is nothing to copy or it would not be exact.
    `frames` is each packet's frame number."""
    keys = _keyframes(packets, frames, in_frame, out_frame)
    if len(keys) < 2:
        return None  # no whole GOP inside the clip: nothing to copy
    first, last = keys[0], keys[-1]
    k1 = frames[first]
    copied = tuple(i for i in range(first, last) if packets[i].pts >= packets[first].pts)
    t0 = _copy_end(sorted(frames[i] for i in copied), k1, frames[last:])
    return None if t0 is None else (copied, (k1, t0))


def _copy_end(shown: list[int], k1: int, after: list[int]) -> int | None:
    """The frame after those the copied packets show (`shown`, sorted), when they are every frame from k1
    on and no packet decoded `after` them shows one before its end; else None."""
    if not shown or shown != list(range(k1, k1 + len(shown))):
        return None  # an unusual reference structure: encode rather than guess
    t0 = k1 + len(shown)
    # Everything decoded from k2 on shows at t0 or later; otherwise the copy would miss a frame.
    if any(frame < t0 for frame in after):
        return None
    return t0


def _keyframes(packets: list[Packet], frames: list[int], in_frame: int, out_frame: int) -> list[int]:
    """The keyframe packets showing a frame in [in, out], in presentation order."""
    keys = [i for i, p in enumerate(packets) if p.key and in_frame <= frames[i] <= out_frame]
    return sorted(keys, key=lambda i: packets[i].pts)


def copyable(metadata: MediaMetadata) -> bool:
    """An H.264 source at a constant rate that is its timeline rate, in a container with packet tables,
    reordering by at most the 2 frames the encoded segments declare (see `build_encode_command`)."""
    return (
        metadata.video_codec == "h264"
        and seek_exact(metadata.format_name)
        and conforms_to_timeline(metadata.fps, metadata.frame_rate, metadata.is_variable_frame_rate)
        and _reorder_depth(metadata) <= _ENCODED_REORDER_DEPTH
    )


def _reorder_depth(metadata: MediaMetadata) -> int:
    specifier = video_stream_specifier(metadata)
    for stream in (metadata.raw or {}).get("streams", []):
        if f"0:{stream.get('index')}" == specifier:
            return int(stream.get("has_b_frames") or 0)
    return _ENCODED_REORDER_DEPTH + 1  # unknown: do not copy


def read_packets(source: Path, metadata: MediaMetadata, options: PipelineOptions) -> tuple[list[Packet], Fraction]:
    """The video stream's packets in decode order and its time base (ffprobe, no decoding)."""
    index = video_stream_specifier(metadata).split(":", 1)[1]
    found = options.tools.probe(
        source, extra_args=("-select_streams", index, "-show_entries", "stream=time_base:packet=pts,dts,flags")
    )
    time_base = Fraction((found.get("streams") or [{}])[0].get("time_base") or "1/90000")
    packets = [
        Packet(int(p["pts"]), int(p.get("dts", p["pts"])), "K" in p.get("flags", ""))
        for p in found.get("packets", [])
        if "pts" in p
    ]
    return packets, time_base


# --- timecode -------------------------------------------------------------------------------------------


def _dropped_per_minute(timecode: str, rate: Fraction) -> int:
    """Frame numbers drop-frame skips each minute: 2 at 29.97, 4 at 59.94; none without ";"."""
    return 2 * round(rate / Fraction(30000, 1001)) if ";" in timecode else 0


def timecode_frames(timecode: str, rate: Fraction) -> int:
    """The frames from 00:00:00:00 to `timecode` ("HH:MM:SS:FF", ";" before FF for drop-frame) at `rate`."""
    hours, minutes, seconds, frame = _timecode_fields(timecode)
    nominal = round(rate)
    if minutes > 59 or seconds > 59 or frame >= nominal:
        raise ValueError(f"not a timecode at {float(rate):.3f} fps: {timecode!r}")
    dropped = _dropped_per_minute(timecode, rate)
    total_minutes = 60 * hours + minutes
    return (total_minutes * 60 + seconds) * nominal + frame - dropped * (total_minutes - total_minutes // 10)


def _timecode_fields(timecode: str) -> list[int]:
    """The four numbers of "HH:MM:SS:FF" (any of ":", ";" and "." between them)."""
    parts = timecode.replace(";", ":").replace(".", ":").split(":")
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a timecode: {timecode!r} (HH:MM:SS:FF)")
    return [int(part) for part in parts]


def shift_timecode(timecode: str, frames: int, rate: Fraction) -> str:
    """`timecode` moved on by `frames` at `rate` ("01:00:59;28" + 2 at 29.97 → "01:01:00;02": drop-frame
    skips frame numbers 0 and 1 of every minute but every tenth)."""
    drop = ";" in timecode
    nominal = round(rate)
    dropped = _dropped_per_minute(timecode, rate)
    number = timecode_frames(timecode, rate) + frames
    if drop:
        per_ten = 10 * 60 * nominal - 9 * dropped
        per_minute = 60 * nominal - dropped
        tens, rest = divmod(number, per_ten)
        extra = 0 if rest < dropped else dropped * ((rest - dropped) // per_minute)
        number += 9 * dropped * tens + extra
    frame = number % nominal
    seconds = number // nominal % 60
    minutes = number // (nominal * 60) % 60
    hours = number // (nominal * 3600) % 24
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{';' if drop else ':'}{frame:02d}"


def start_timecode(timecode: str | None, in_frame: int, rate: Fraction) -> str | None:
    """A clip's start timecode: the source's, when it has one, moved on to the in point."""
    return shift_timecode(timecode, in_frame, rate) if timecode else None


# --- commands -------------------------------------------------------------------------------------------


def build_encode_command(
    source: Path, metadata: MediaMetadata, frames: tuple[int, int], rate: Fraction, out: Path
) -> FfmpegCommand:
    """Frames [a, b) of the timeline, decoded through the `fps` filter as `frames.py` decodes them, encoded
    as H.264 in MPEG-TS (parameter sets in band, so segments with different ones join)."""
    first, end = frames
    start = seek_frame(FrameSource.of(metadata), first, rate)
    options = ["-ss", f"{float(start / rate):.6f}"] if start else []
    options += ["-t", f"{float(Fraction(end - start + 2) / rate):.6f}"]
    graph = FilterGraph()
    graph.chain(
        [video_stream_specifier(metadata)],
        [
            *base_video_filters(metadata),
            filter_spec("fps", rate_text(rate), start_time=0),
            filter_spec("select", f"between(n,{first - start},{end - start - 1})"),
            filter_spec("setpts", "N/FRAME_RATE/TB"),
            filter_spec("format", "yuv420p"),
        ],
        ["v"],
    )
    encode = ["-map", "[v]", "-frames:v", str(end - first), "-r", rate_text(rate), "-c:v", "libx264"]
    encode += ["-preset", "ultrafast", "-crf", str(_BOUNDARY_CRF), "-profile:v", "high"]
    # B-frames in a pyramid: the segment's parameter sets then declare a reorder depth of 2, which the decoder
    # keeps for the whole joined stream (the first segment's sets are the MP4's); a copied source that reorders
    # by up to 2 frames then decodes whole. A shallower first segment makes the decoder drop frames.
    encode += ["-x264-params", "bframes=3:b-pyramid=normal", "-f", "mpegts"]
    return FfmpegCommand([FfmpegInput(source, options)], [FfmpegOutput(out, encode)], graph)


def build_copy_command(source: Path, metadata: MediaMetadata, packets: tuple[int, ...], out: Path) -> FfmpegCommand:
    """The source's own packets, picked by decode-order number, as Annex B in MPEG-TS with the parameter
    sets repeated at every keyframe (an open GOP's first kept keyframe is not an IDR frame, which would
    otherwise get none)."""
    first, last = packets[0], packets[-1]
    gaps = sorted(set(range(first, last + 1)) - set(packets))
    drop = f"not(between(n,{first},{last}))" + "".join(f"+eq(n,{n})" for n in gaps)
    # Commas inside an option are escaped: the bitstream filter list is comma-separated.
    bsf = f"noise=drop={drop.replace(',', chr(92) + ',')},h264_mp4toannexb,dump_extra=freq=keyframe"
    args = ["-map", video_stream_specifier(metadata), "-c", "copy", "-bsf:v", bsf, "-f", "mpegts"]
    return FfmpegCommand([FfmpegInput(source)], [FfmpegOutput(out, args)])


def build_join_command(
    source: Path,
    metadata: MediaMetadata,
    playlist: Path,
    *,
    in_seconds: float,
    out_seconds: float,
    timecode: str | None,
    out: Path,
    options: PipelineOptions,
) -> FfmpegCommand:
    """The segments (an ffconcat playlist) with every audio track trimmed to the sample, into one MP4."""
    graph = FilterGraph()
    # The audio is read from a second before the in point (an input seek decodes from there and trims to the
    # sample), so a clip near the end of a long source does not decode all that comes before it.
    seek = max(0.0, in_seconds - 1.0)
    maps = ["-map", "0:v:0", *_trimmed_audio(graph, metadata, in_seconds - seek, out_seconds - seek)]
    args = [*maps, "-c", "copy", "-c:a", "aac", "-b:a", f"{max(options.audio_bitrate_kbps, 192)}k"]
    if timecode:
        args += ["-timecode", timecode]
    args += ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4"]
    audio_input = ["-ss", f"{seek:.6f}", "-t", f"{out_seconds - seek + 1:.6f}"] if seek else []
    inputs = [FfmpegInput(playlist, ["-f", _CONCAT_DEMUXER, "-safe", "0"]), FfmpegInput(source, audio_input)]
    return FfmpegCommand(inputs, [FfmpegOutput(out, args)], graph if graph.chains else None)


def _trimmed_audio(graph: FilterGraph, metadata: MediaMetadata, start: float, end: float) -> list[str]:
    """Chains in `graph` trimming each audio track of the second input to [start, end); their -map options."""
    maps = []
    for number, track in enumerate(audio_tracks(metadata)):
        trim = filter_spec("atrim", start=f"{start:.6f}", end=f"{end:.6f}")
        graph.chain(
            [track.specifier.replace("0:", "1:", 1)], [trim, filter_spec("asetpts", "PTS-STARTPTS")], [f"a{number}"]
        )
        maps += ["-map", f"[a{number}]"]
    return maps


# --- rendering ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipRender:
    path: Path
    plan: CutPlan
    copied: bool  # some packets were copied (False: the range was encoded whole)
    timecode: str | None


@dataclass(frozen=True)
class _Segment:
    command: FfmpegCommand
    label: str
    path: Path
    frames: int


def _segments(source: Path, metadata: MediaMetadata, plan: CutPlan, rate: Fraction, work_dir: Path) -> list[_Segment]:
    """The commands that make the plan's segments, in the clip's order."""
    segments = []
    if plan.head is not None:
        head = build_encode_command(source, metadata, plan.head, rate, work_dir / "head.ts")
        segments.append(_Segment(head, "clip head", work_dir / "head.ts", plan.head[1] - plan.head[0]))
    if plan.copy_frames is not None:
        copy = build_copy_command(source, metadata, plan.copy_packets, work_dir / "copy.ts")
        segments.append(_Segment(copy, "clip copy", work_dir / "copy.ts", plan.copy_frames[1] - plan.copy_frames[0]))
    if plan.tail is not None:
        tail = build_encode_command(source, metadata, plan.tail, rate, work_dir / "tail.ts")
        segments.append(_Segment(tail, "clip tail", work_dir / "tail.ts", plan.tail[1] - plan.tail[0]))
    return segments


def _run_at_once(segments: list[_Segment], run: Callable[[FfmpegCommand, str], None]) -> None:
    """The segments are independent: the boundary encodes and the copy run at once (a 2-core pod encodes
    head and tail side by side while the copy streams from disk)."""
    with ThreadPoolExecutor(len(segments)) as pool:
        for done in [pool.submit(run, segment.command, segment.label) for segment in segments]:
            done.result()


def _ffconcat(segments: list[_Segment], rate: Fraction) -> str:
    """The playlist the join reads the segments from."""
    lines = ["ffconcat version 1.0"]
    for segment in segments:
        # The exact length of each segment: the join then places the next one at its first frame.
        lines += [f"file '{segment.path.name}'", f"duration {float(Fraction(segment.frames) / rate):.6f}"]
    return "\n".join(lines) + "\n"


def _plan(
    source: Path, metadata: MediaMetadata, options: PipelineOptions, rate: Fraction, in_frame: int, out_frame: int
) -> CutPlan:
    """A smart cut's plan where the source's packets can be copied; else the range encoded whole."""
    if not copyable(metadata):
        return CutPlan.encoded_whole(in_frame, out_frame)
    packets, time_base = read_packets(source, metadata, options)
    return plan_cut(packets, time_base, rate, in_frame, out_frame)


def render_clip(
    source: Path,
    metadata: MediaMetadata,
    *,
    in_frame: int,
    out_frame: int,
    work_dir: Path,
    options: PipelineOptions,
    cancel: threading.Event | None = None,
) -> ClipRender:
    """Frames [in, out) of the timeline as an MP4 in `work_dir` (see the module's docstring)."""
    if not metadata.frame_rate:
        raise PermanentProcessingError("the source's frame rate is unknown: it cannot be cut by frame")
    rate = Fraction(metadata.frame_rate)
    work_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan(source, metadata, options, rate, in_frame, out_frame)

    def run(command: FfmpegCommand, label: str) -> None:
        options.tools.run(command, duration_seconds=None, on_progress=None, cancel=cancel,
                          timeout=options.ffmpeg_deadline(plan.frames / float(rate)), label=label)  # fmt: skip

    segments = _segments(source, metadata, plan, rate, work_dir)
    _run_at_once(segments, run)
    playlist = work_dir / "segments.ffconcat"
    playlist.write_text(_ffconcat(segments, rate), encoding="utf-8")
    timecode = start_timecode(metadata.timecode, in_frame, rate)
    out = work_dir / "clip.mp4"
    join = build_join_command(
        source, metadata, playlist, in_seconds=float(in_frame / rate), out_seconds=float(out_frame / rate),
        timecode=timecode, out=out, options=options,
    )  # fmt: skip
    run(join, "clip join")
    if not out.is_file() or out.stat().st_size == 0:
        raise ProcessingError("the clip's join wrote nothing")
    return ClipRender(out, plan, copied=plan.copy_frames is not None, timecode=timecode)


def clip_frames(in_seconds: float, out_seconds: float, rate: Fraction) -> tuple[int, int]:
    """[in, out) in frames: the frame showing at `in`, up to (not including) the one showing at `out`."""
    first = math.floor(Fraction(in_seconds) * rate + Fraction(1, 2000))
    end = math.floor(Fraction(out_seconds) * rate + Fraction(1, 2000))
    return first, end
