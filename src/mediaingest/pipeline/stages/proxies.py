"""proxies: web renditions, sprite sheets and the WebVTT storyboard, all from ONE ffmpeg process.

The source is decoded once (and tone-mapped once, if HDR); a split filter feeds one branch per
rendition plus one for the sprite tiles. Measured on 2 cores for 60 s of 1080p: three separate
processes 71–81 s, one process 50–57 s. A rung the source already is, in a form browsers play, is a
stream copy (remux) in the same process, not an encode.

Rungs are chosen by the SHORT side of the displayed picture, not by its height: a portrait phone
clip of 1080×1920 gets a "720p" proxy of 720×1280, the same pixel budget as a landscape 720p, and is
never judged "1920p high" and denied its 1080p rung. Display dimensions are used throughout because
ffmpeg autorotates while decoding: what the scaler sees is the rotated, displayed picture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from math import ceil
from pathlib import Path
from typing import Any, Literal

from mediaingest.exceptions import PermanentProcessingError
from mediaingest.models.enums import ProxyType
from mediaingest.pipeline.ffmpeg import (
    FfmpegCommand,
    FfmpegInput,
    FfmpegOutput,
    FilterGraph,
    filter_spec,
    require_output,
)
from mediaingest.pipeline.filters import (
    INTERLACED,
    audio_stream_specifier,
    base_video_filters,
    field_order,
    video_stream_specifier,
)
from mediaingest.pipeline.hls import (
    HLS_DIR,
    INIT_SEGMENT,
    MASTER_NAME,
    MEDIA_PLAYLIST,
    PLAYLIST_TYPE,
    HlsPublisher,
    HlsRung,
)
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.sprites import STORYBOARD_NAME, SpriteGrid, SpriteSheetWriter, storyboard_vtt
from mediaingest.pipeline.timing import conforms_to_timeline
from mediaingest.pipeline.types import LiveOutputs, MediaMetadata, ProgressCallback, StageOutput, StageResult

SHOTS_LOG = "shots.log"
_REMUX_SHARE = 0.05  # of the stage's progress bar: copying packets is quick next to encoding
MAX_SHOTS = 10_000
_WEB_CONTAINERS = {"mov", "mp4"}
_WEB_H264_PROFILES = {None, "Constrained Baseline", "Baseline", "Main", "High"}  # None: not probed, taken as fine
# Bitrate cap for the CRF encode, in bits per pixel per frame: keeps grainy sources streamable.
_MAXRATE_BITS_PER_PIXEL = 0.12
_DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))  # the only rates ffmpeg takes a ";" timecode at


@dataclass(frozen=True)
class Rendition:
    rung: int  # the nominal "p" number: the short side
    width: int
    height: int
    codec: Literal["h264", "vp9"]
    remux: bool
    scrub: bool  # the lowest rung: a keyframe every second and no B-frames, so any frame is near a keyframe
    path: Path

    @property
    def resolution(self) -> str:
        return f"{self.rung}p"

    def maxrate(self, fps: float) -> int:
        """The encode's bitrate cap, in bits per second."""
        return int(self.width * self.height * fps * _MAXRATE_BITS_PER_PIXEL)


@dataclass(frozen=True)
class ProxyPlan:
    renditions: list[Rendition]
    sprites: SpriteGrid | None
    command: FfmpegCommand | None  # None when there is nothing to do (no video stream)
    hls_rungs: list[HlsRung] = field(default_factory=list)  # the H.264 rungs, as the master playlist lists them
    remux_command: FfmpegCommand | None = None  # the remuxed rungs, copied before the encoding pass


def rendition_sizes(display_width: int, display_height: int, heights: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(rung, width, height) for every configured rung the source can fill; never an upscale.

    A source smaller than the lowest rung gets a single rendition at its own (even) size.
    """
    short, long = sorted((display_width, display_height))
    rungs = [rung for rung in sorted(set(heights)) if rung <= short] or [short]
    sizes = []
    for rung in rungs:
        scaled_long = _even(long * rung / short, long)
        scaled_short = _even(rung, short)
        if display_width >= display_height:
            sizes.append((rung, scaled_long, scaled_short))
        else:
            sizes.append((rung, scaled_short, scaled_long))
    return sizes


def is_web_playable_at(metadata: MediaMetadata, width: int, height: int, options: PipelineOptions) -> bool:
    """True when a browser could play the source as-is at this size, so the rung is a remux."""
    return (
        all(rule(metadata) for rule in _WEB_PLAYABLE_SOURCE)
        and _is_rung_sized(metadata, width, height)
        and _is_proxy_bitrate(metadata, width, height, options)
        # A copied stream keeps the source's frame timing: only a constant rate that is the timeline's.
        and conforms_to_timeline(metadata.fps, metadata.frame_rate, metadata.is_variable_frame_rate)
    )


def _in_web_container(metadata: MediaMetadata) -> bool:
    return bool(set((metadata.format_name or "").split(",")) & _WEB_CONTAINERS)


def _has_web_codecs(metadata: MediaMetadata) -> bool:
    """H.264 4:2:0 in a profile browsers decode, and AAC sound if there is any."""
    return (
        metadata.video_codec == "h264"
        and metadata.pixel_format == "yuv420p"
        and metadata.video_profile in _WEB_H264_PROFILES
        and (not metadata.has_audio or metadata.audio_codec == "aac")
    )


def _plays_unfiltered(metadata: MediaMetadata) -> bool:
    """A picture shown as decoded: none of the rotation, tone mapping or deinterlacing an encode applies."""
    return metadata.rotation == 0 and not metadata.has_hdr and field_order(metadata) not in INTERLACED


_WEB_PLAYABLE_SOURCE = (_in_web_container, _has_web_codecs, _plays_unfiltered)


def _is_rung_sized(metadata: MediaMetadata, width: int, height: int) -> bool:
    # Coded size equal to displayed size also rules out anamorphic (non-square pixel) sources.
    return (metadata.width, metadata.height) == (metadata.display_width, metadata.display_height) == (width, height)


def _is_proxy_bitrate(metadata: MediaMetadata, width: int, height: int, options: PipelineOptions) -> bool:
    """At most remux_max_bits_per_pixel at this size (an unknown bitrate passes)."""
    if not metadata.video_bitrate or not metadata.fps:
        return True
    return metadata.video_bitrate / (width * height * metadata.fps) <= options.remux_max_bits_per_pixel


def build_proxy_plan(source: Path, metadata: MediaMetadata, out_dir: Path, options: PipelineOptions) -> ProxyPlan:
    """The whole proxies pass as one FfmpegCommand (pure: nothing runs, nothing is written)."""
    if not metadata.has_video or not metadata.display_width or not metadata.display_height:
        return ProxyPlan(renditions=[], sprites=None, command=None)
    size = (metadata.display_width, metadata.display_height)
    renditions = _renditions(metadata, size, out_dir, options)
    sprites = _sprite_grid(options, *size)
    encoded, remuxed = _rendition_outputs(renditions, metadata, options, out_dir)
    graph = _filter_graph(metadata, renditions, sprites, out_dir, options)
    return ProxyPlan(
        renditions=renditions,
        sprites=sprites,
        command=FfmpegCommand(
            inputs=[FfmpegInput(source)], outputs=encoded + _tiles_output(sprites), filter_graph=graph
        ),
        hls_rungs=[_hls_rung(r, metadata, options) for r in renditions if r.codec == "h264"],
        # Remuxed rungs go first, in a process of their own that only copies packets: it runs at the speed
        # of the disk, so a web-playable source plays within a second while the encodes are still starting.
        remux_command=FfmpegCommand(inputs=[FfmpegInput(source)], outputs=remuxed) if remuxed else None,
    )


def _rendition_outputs(
    renditions: list[Rendition], metadata: MediaMetadata, options: PipelineOptions, out_dir: Path
) -> tuple[list[FfmpegOutput], list[FfmpegOutput]]:
    """The renditions' outputs: those encoded, and those remuxed."""
    encoded: list[FfmpegOutput] = []
    remuxed: list[FfmpegOutput] = []
    for rendition in renditions:
        (remuxed if rendition.remux else encoded).append(rendition_output(rendition, metadata, options, out_dir))
    return encoded, remuxed


def _tiles_output(sprites: SpriteGrid | None) -> list[FfmpegOutput]:
    """Raw tiles to stdout, laid out into sheets by SpriteSheetWriter (see sprites.py for why)."""
    if sprites is None:
        return []
    return [
        FfmpegOutput("pipe:1", ["-map", "[tiles]", "-fps_mode", "passthrough", "-c:v", "rawvideo", "-f", "rawvideo"])
    ]


def _renditions(
    metadata: MediaMetadata, display_size: tuple[int, int], out_dir: Path, options: PipelineOptions
) -> list[Rendition]:
    renditions: list[Rendition] = []
    sizes = rendition_sizes(*display_size, options.proxy_heights)
    scrub_rung = sizes[0][0]
    for rung, width, height in sizes:
        # The lowest rung is the scrubbing rung: always encoded, for its short closed GOPs without B-frames.
        remux = rung != scrub_rung and is_web_playable_at(metadata, width, height, options)
        scrub = rung == scrub_rung
        renditions.append(Rendition(rung, width, height, "h264", remux, scrub, out_dir / f"proxy_{rung}p.mp4"))
        if options.proxy_vp9:
            renditions.append(Rendition(rung, width, height, "vp9", False, scrub, out_dir / f"proxy_{rung}p.webm"))
    return renditions


def _filter_graph(
    metadata: MediaMetadata,
    renditions: list[Rendition],
    sprites: SpriteGrid | None,
    out_dir: Path,
    options: PipelineOptions,
) -> FilterGraph:
    """One decode, split: a scaled branch per encoded rung (its H.264 and VP9 encoders share it), the sprite
    tiles, and the shot detector."""
    graph = FilterGraph()
    rungs = _encoded_rungs(renditions)
    branches = _branches(rungs, sprites)
    decode = [*base_video_filters(metadata), *_timeline_rate(metadata), *_split(len(branches))]
    graph.chain([video_stream_specifier(metadata)], decode or ["null"], [f"{b}_in" for b in branches])
    for rung in rungs:
        rung.add_chain(graph)
    if sprites is not None:
        _sprite_chain(graph, sprites)
    _shots_chain(graph, out_dir, options)
    return graph


@dataclass(frozen=True)
class _ScaledRung:
    """One encoded rung's branch of the graph: scaled once, then split between its encoders."""

    rung: int
    width: int
    height: int
    codecs: list[str]

    @property
    def branch(self) -> str:
        return f"scaled{self.rung}"

    def add_chain(self, graph: FilterGraph) -> None:
        filters = [
            filter_spec("scale", self.width, self.height, flags="bicubic"),
            filter_spec("setsar", 1),
            filter_spec("format", "yuv420p"),
            *_split(len(self.codecs)),
        ]
        graph.chain([f"{self.branch}_in"], filters, [f"{codec}_{self.rung}" for codec in self.codecs])


def _branches(rungs: list[_ScaledRung], sprites: SpriteGrid | None) -> list[str]:
    """The decoded picture's branches, in the split's order: the rungs, the sprite tiles, the shot detector."""
    branches = [rung.branch for rung in rungs]
    if sprites is not None:
        branches.append("sprite_src")
    return [*branches, "shots_src"]


def _encoded_rungs(renditions: list[Rendition]) -> list[_ScaledRung]:
    """The rungs that are encoded, lowest first, each with its codecs in the renditions' order."""
    codecs: dict[tuple[int, int, int], list[str]] = {}
    for r in renditions:
        if not r.remux:
            codecs.setdefault((r.rung, r.width, r.height), []).append(r.codec)
    return [_ScaledRung(*size, codecs=names) for size, names in sorted(codecs.items())]


def _timeline_rate(metadata: MediaMetadata) -> list[str]:
    """Every rung at the timeline's constant rate: frames of a variable-rate source are repeated or
    dropped once, before the split, so all rungs count the same frames."""
    return [filter_spec("fps", metadata.frame_rate)] if metadata.frame_rate else []


def _split(branches: int) -> list[str]:
    return [filter_spec("split", branches)] if branches > 1 else []


def _sprite_chain(graph: FilterGraph, sprites: SpriteGrid) -> None:
    tw, th = sprites.tile_width, sprites.tile_height
    graph.chain(
        ["sprite_src_in"],
        [
            filter_spec("fps", _rate(1 / sprites.interval_seconds)),
            filter_spec("scale", tw, th, force_original_aspect_ratio="decrease", flags="bicubic"),
            filter_spec("pad", tw, th, "(ow-iw)/2", "(oh-ih)/2", color="black"),
            filter_spec("setsar", 1),
            filter_spec("format", "rgb24"),
        ],
        ["tiles"],
    )


def _shots_chain(graph: FilterGraph, out_dir: Path, options: PipelineOptions) -> None:
    # Scene cuts, found where the picture is decoded anyway: scdet on a thumbnail-sized copy (the score
    # compares whole pictures; a small one costs almost nothing), the cut times printed to a file.
    graph.chain(
        ["shots_src_in"],
        [
            filter_spec("scale", 160, 90, flags="fast_bilinear"),
            filter_spec("scdet", threshold=options.shot_threshold),
            filter_spec("metadata", mode="print", key="lavfi.scd.time", file=str(out_dir / SHOTS_LOG)),
            "nullsink",
        ],
        [],
    )


def generate_proxies(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    *,
    options: PipelineOptions,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    live: LiveOutputs | None = None,
) -> StageResult:
    """The pass; with `live`, each HLS segment is published as soon as ffmpeg has finished it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_proxy_plan(source, metadata, out_dir, options)
    if plan.command is None:
        return StageResult(message="no video stream")
    _remove_stale_sheets(out_dir)
    writer = (
        SpriteSheetWriter(out_dir, plan.sprites, jpeg_quality=options.sprite_jpeg_quality) if plan.sprites else None
    )
    publisher = _hls_publisher(out_dir, plan.hls_rungs, metadata, live)
    publisher.prepare()
    _run_passes(
        plan.remux_command, plan.command, metadata, options, publisher, writer, on_progress=on_progress, cancel=cancel
    )
    outputs = [_rendition_result(r, options) for r in plan.renditions]
    check_renditions(plan.renditions, metadata, options)
    shots = read_shots(out_dir / SHOTS_LOG)
    if plan.hls_rungs:
        playlist = publisher.finish()
        outputs.append(_hls_result(out_dir, plan.hls_rungs, playlist.seconds, options))
    if writer is not None:
        outputs += _storyboard_outputs(writer, metadata.duration_seconds, out_dir)
    return StageResult(outputs=outputs, measurements={"shots": shots}, message=_summary(plan.renditions, shots))


def _remove_stale_sheets(out_dir: Path) -> None:
    for stale in out_dir.glob("sprite_*.jpg"):
        stale.unlink()  # a longer earlier attempt may have left more sheets than this run writes


def _hls_publisher(
    out_dir: Path, rungs: list[HlsRung], metadata: MediaMetadata, live: LiveOutputs | None
) -> HlsPublisher:
    if live is None:
        return HlsPublisher(out_dir, rungs, metadata.frame_rate, publish=_keep_local)
    return HlsPublisher(out_dir, rungs, metadata.frame_rate, publish=live.publish, on_playable=live.playable)


def _run_passes(
    remux: FfmpegCommand | None,
    encode: FfmpegCommand,
    metadata: MediaMetadata,
    options: PipelineOptions,
    publisher: HlsPublisher,
    writer: SpriteSheetWriter | None,
    *,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> None:
    """The remux pass, if any rung is a copy, then the encoding pass; the publisher scans at every report."""

    def progress_between(start: float, end: float) -> ProgressCallback:
        def progress(fraction: float, message: str) -> None:
            publisher.scan()
            if on_progress is not None:
                on_progress(start + (end - start) * fraction, message)

        return progress

    encode_from = 0.0
    if remux is not None:
        encode_from = _REMUX_SHARE
        options.tools.run(
            remux,
            duration_seconds=metadata.duration_seconds,
            on_progress=progress_between(0.0, _REMUX_SHARE),
            cancel=cancel,
            timeout=options.ffmpeg_deadline(metadata.duration_seconds),
            label="remux",
            progress_interval=options.progress_interval_seconds,
        )
        publisher.scan()
    options.tools.run(
        encode,
        duration_seconds=metadata.duration_seconds,
        on_progress=progress_between(encode_from, 1.0),
        cancel=cancel,
        timeout=options.ffmpeg_deadline(metadata.duration_seconds),
        stdout_sink=writer.feed if writer else None,
        label="proxies",
        progress_interval=options.progress_interval_seconds,
    )


def _summary(renditions: list[Rendition], shots: list[float]) -> str:
    remuxed = [r.resolution for r in renditions if r.remux]
    encoded = [f"{r.resolution} {r.codec}" for r in renditions if not r.remux]
    message = f"encoded {', '.join(encoded) or 'nothing'}"
    if remuxed:
        message += f"; remuxed {', '.join(remuxed)}"
    return message + f"; {len(shots)} cut(s)"


def _keep_local(path: Path, name: str) -> None:
    """Without a caller to publish to (tests, benchmarks), the files simply stay in out_dir."""


def _hls_rung(rendition: Rendition, metadata: MediaMetadata, options: PipelineOptions) -> HlsRung:
    audio = options.audio_bitrate_kbps * 1000 if metadata.has_audio else 0
    video = _peak_video_bitrate(rendition, metadata)
    return HlsRung(rendition.resolution, rendition.width, rendition.height, bandwidth=int((video + audio) * 1.1))


def _peak_video_bitrate(rendition: Rendition, metadata: MediaMetadata) -> int:
    """The source's bitrate for a copy; the encoder's cap otherwise."""
    if rendition.remux:
        return metadata.video_bitrate or metadata.bitrate or 0
    fps = float(Fraction(metadata.frame_rate)) if metadata.frame_rate else 30.0
    return rendition.maxrate(fps)


def _hls_result(out_dir: Path, rungs: list[HlsRung], seconds: float, options: PipelineOptions) -> StageOutput:
    master = out_dir / HLS_DIR / MASTER_NAME
    return StageOutput(
        kind=ProxyType.HLS,
        path=master,
        bucket="proxies",
        format="m3u8",
        content_type=PLAYLIST_TYPE,
        quality="cmaf",
        details={
            "rungs": [rung.name for rung in rungs],
            "segmentSeconds": options.hls_segment_seconds,
            "durationSeconds": round(seconds, 3),
        },
        name=f"{HLS_DIR}/{MASTER_NAME}",
    )


def read_shots(log: Path) -> list[float]:
    """The cut times scdet printed, in seconds; at most MAX_SHOTS (pure noise would cut at every frame)."""
    if not log.is_file():
        return []
    with log.open(encoding="utf-8", errors="replace") as lines:
        shots = list(islice(_cut_times(lines), MAX_SHOTS))
    log.unlink()
    return shots


def _cut_times(lines: Iterable[str]) -> Iterator[float]:
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key == "lavfi.scd.time":
            try:
                yield round(float(value), 3)
            except ValueError:
                continue


# --- command parts ------------------------------------------------------------------------------


def rendition_output(
    rendition: Rendition, metadata: MediaMetadata, options: PipelineOptions, out_dir: Path
) -> FfmpegOutput:
    """The rung's output; an H.264 rung also feeds its HLS playlist from the same encoder."""
    # Proxies are served to other people: drop container metadata (phones record GPS there).
    args = ["-map_metadata", "-1", "-map_chapters", "-1"]
    audio = ["-map", audio_stream_specifier(metadata)] if metadata.has_audio else []
    if rendition.remux:
        args += ["-map", video_stream_specifier(metadata), *audio, "-c", "copy", *_timecode_args(metadata)]
        return _mp4_output(rendition, args, options, out_dir)
    encoding = _ENCODINGS[rendition.codec](rendition, metadata, options)
    args += ["-map", f"[{rendition.codec}_{rendition.rung}]", *audio, *encoding.video, *_bt709_tags(metadata)]
    args += [*_audio_args(metadata, encoding.audio), *encoding.container]
    if rendition.codec == "h264":
        return _mp4_output(rendition, args, options, out_dir)
    return FfmpegOutput(rendition.path, args)


@dataclass(frozen=True)
class _Encoding:
    """A codec's encoder arguments: the picture's, the sound's (when there is any) and the container's."""

    video: list[str]
    audio: list[str]
    container: list[str]


def _x264_encoding(rendition: Rendition, metadata: MediaMetadata, options: PipelineOptions) -> _Encoding:
    fps = _encode_fps(metadata)
    maxrate = rendition.maxrate(fps)
    video = ["-c:v", "libx264", "-preset", options.x264_preset, "-crf", str(options.x264_crf)]
    video += ["-profile:v", "high", "-pix_fmt", "yuv420p", "-maxrate", str(maxrate)]
    video += ["-bufsize", str(2 * maxrate), *_forced_keyframes(rendition, options)]
    if rendition.scrub:
        # x264's GOPs are closed unless asked otherwise; no B-frames means decode order is display order.
        # A GOP of one second, the scrubbing rung's keyframe interval.
        video += ["-bf", "0", "-g", str(ceil(fps))]
    audio = ["-c:a", "aac", "-b:a", f"{options.audio_bitrate_kbps}k"]
    return _Encoding(video, audio, _timecode_args(metadata))


def _encode_fps(metadata: MediaMetadata) -> float:
    """The timeline's rate; without one, the container's average (at most 60)."""
    return float(Fraction(metadata.frame_rate)) if metadata.frame_rate else min(metadata.fps or 30.0, 60.0)


def _vp9_encoding(rendition: Rendition, metadata: MediaMetadata, options: PipelineOptions) -> _Encoding:
    video = ["-c:v", "libvpx-vp9", "-crf", str(options.vp9_crf), "-b:v", "0", "-deadline", "good"]
    video += ["-cpu-used", str(options.vp9_cpu_used), "-row-mt", "1", *_forced_keyframes(rendition, options)]
    audio = ["-c:a", "libopus", "-b:a", f"{max(64, options.audio_bitrate_kbps * 3 // 4)}k"]
    return _Encoding(video, audio, ["-f", "webm"])


_ENCODINGS = {"h264": _x264_encoding, "vp9": _vp9_encoding}


def _forced_keyframes(rendition: Rendition, options: PipelineOptions) -> list[str]:
    # A keyframe every 2 s keeps seeking in the browser snappy, whatever the frame rate; every second on
    # the scrubbing rung, so reaching any frame decodes at most a second of it.
    seconds = 1 if rendition.scrub else options.hls_segment_seconds
    return ["-force_key_frames", f"expr:gte(t,n_forced*{seconds})"]


def _bt709_tags(metadata: MediaMetadata) -> list[str]:
    """An HDR source was tone-mapped to BT.709 by the graph: the stream says so."""
    return ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"] if metadata.has_hdr else []


def _audio_args(metadata: MediaMetadata, encoder: list[str]) -> list[str]:
    """The sound for browsers and phones: stereo, at most 48 kHz."""
    if not metadata.has_audio:
        return []
    args = list(encoder)
    if (metadata.channels or 2) > 2:
        args += ["-ac", "2"]
    if (metadata.sample_rate or 48000) > 48000:
        args += ["-ar", "48000"]
    return args


def _mp4_output(rendition: Rendition, args: list[str], options: PipelineOptions, out_dir: Path) -> FfmpegOutput:
    """The faststart MP4, and through ffmpeg's tee muxer the rung's HLS from the very same packets."""
    hls_dir = out_dir / HLS_DIR / rendition.resolution
    hls = {
        "f": "hls",
        "hls_time": options.hls_segment_seconds,
        "hls_segment_type": "fmp4",
        "hls_playlist_type": "event",
        "hls_flags": "independent_segments",
        "hls_fmp4_init_filename": INIT_SEGMENT,
        "hls_segment_filename": str(hls_dir / "seg_%05d.m4s"),
    }
    slaves = [
        f"[f=mp4:movflags=+faststart]{rendition.path}",
        "[" + ":".join(f"{key}={value}" for key, value in hls.items()) + f"]{hls_dir / MEDIA_PLAYLIST}",
    ]
    return FfmpegOutput("|".join(slaves), [*args, "-f", "tee"])


def _timecode_args(metadata: MediaMetadata) -> list[str]:
    """The source's start timecode as the proxy's `tmcd` track, so an editor relinks proxy and original.

    ffmpeg refuses a drop-frame timecode at any rate but 29.97 and 59.94, and a frame number the rate
    never reaches; such a proxy goes without (the timecode stays in the metadata).
    """
    timecode, rate = metadata.timecode, metadata.frame_rate
    if timecode and rate and _ffmpeg_accepts_timecode(timecode, rate):
        return ["-timecode", timecode]
    return []


def _ffmpeg_accepts_timecode(timecode: str, rate: str) -> bool:
    frames = int(timecode.replace(";", ":").replace(".", ":").rsplit(":", 1)[1])
    drop_frame = ";" in timecode
    return frames < ceil(float(Fraction(rate))) and (not drop_frame or Fraction(rate) in _DROP_FRAME_RATES)


def _rendition_result(rendition: Rendition, options: PipelineOptions) -> StageOutput:
    require_output(rendition.path)
    if rendition.codec == "h264":
        kind, fmt, content_type = ProxyType.VIDEO, "mp4", "video/mp4"
        quality = "copy" if rendition.remux else f"crf{options.x264_crf}/{options.x264_preset}"
    else:
        kind, fmt, content_type = ProxyType.VIDEO_VP9, "webm", "video/webm"
        quality = f"crf{options.vp9_crf}/cpu{options.vp9_cpu_used}"
    return StageOutput(
        kind=kind,
        path=rendition.path,
        bucket="proxies",
        format=fmt,
        content_type=content_type,
        resolution=rendition.resolution,
        width=rendition.width,
        height=rendition.height,
        quality=quality,
        # `scrub`: the rung frames on demand are decoded from (`mediaingest.assets.timeline`).
        details={"remuxed": rendition.remux, "codec": rendition.codec, "scrub": rendition.scrub},
    )


# --- quality control ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RungCheck:
    rendition: Rendition
    frames: int
    duration_seconds: float

    def require_frames(self, frame_rate: str, rate: float) -> None:
        """Its duration × rate frames, within one."""
        expected = self.duration_seconds * rate
        if abs(self.frames - expected) > 1:
            raise PermanentProcessingError(
                f"the {self.rendition.path.name} proxy has {self.frames} frames where "
                f"{self.duration_seconds:.3f} s at {frame_rate} needs {expected:.0f}",
                details={"proxy": self.rendition.path.name, "frames": self.frames, "expected": round(expected)},
            )


def check_renditions(renditions: list[Rendition], metadata: MediaMetadata, options: PipelineOptions) -> list[RungCheck]:
    """Every rung holds duration × rate frames (within one), and the rungs' lengths agree with each other and
    with the source's picture within max(1.5 frames, 100 ms): a timeline may then cut any rung at any
    frame and land on the same picture. A rung that fails is a permanent stage error, not a silent row."""
    if not metadata.frame_rate or not renditions:
        return []
    rate = float(Fraction(metadata.frame_rate))
    tolerance = max(1.5 / rate, 0.1)
    checks = [_measure(rendition, options) for rendition in renditions]
    for check in checks:
        check.require_frames(metadata.frame_rate, rate)
    lengths = [(check.rendition.path.name, check.duration_seconds) for check in checks]
    _require_same_length(lengths, picture_duration(metadata), tolerance)
    return checks


def _require_same_length(lengths: list[tuple[str, float]], source_seconds: float | None, tolerance: float) -> None:
    """The rungs' lengths (name, seconds), and the source picture's if known, at most `tolerance` apart."""
    if source_seconds is not None:
        lengths = [*lengths, ("source", source_seconds)]
    shortest, longest = min(lengths, key=lambda item: item[1]), max(lengths, key=lambda item: item[1])
    if longest[1] - shortest[1] > tolerance:
        raise PermanentProcessingError(
            f"the proxies disagree in length: {shortest[0]} lasts {shortest[1]:.3f} s and {longest[0]} "
            f"{longest[1]:.3f} s (at most {tolerance:.3f} s apart)",
            details={"durations": {name: round(seconds, 3) for name, seconds in lengths}},
        )


def _measure(rendition: Rendition, options: PipelineOptions) -> RungCheck:
    found = options.tools.probe(
        rendition.path,
        extra_args=(
            "-select_streams", "v:0", "-count_packets",
            "-show_entries", "stream=nb_read_packets,duration:format=duration",
        ),
    )  # fmt: skip
    stream = (found.get("streams") or [{}])[0]
    # WebM keeps no per-stream duration; its container's is the picture's (the audio ends with it).
    duration = _seconds(stream.get("duration")) or _seconds((found.get("format") or {}).get("duration")) or 0.0
    return RungCheck(rendition, int(stream.get("nb_read_packets") or 0), duration)


def picture_duration(metadata: MediaMetadata) -> float | None:
    """How long the picture stream lasts (the container may run longer, with its audio)."""
    for stream in (metadata.raw or {}).get("streams", []):
        if f"0:{stream.get('index')}" == video_stream_specifier(metadata):
            seconds = _stream_seconds(stream)
            if seconds is not None:
                return seconds
    return metadata.duration_seconds


def _stream_seconds(stream: dict[str, Any]) -> float | None:
    """ffprobe's duration of the stream, or else its Matroska DURATION tag."""
    return _seconds(stream.get("duration")) or _seconds((stream.get("tags") or {}).get("DURATION"))


def _seconds(value: object) -> float | None:
    """ffprobe's "12.345000", or Matroska's "00:00:12.345000000" tag."""
    if not isinstance(value, str | int | float):
        return None
    text = str(value)
    try:
        if ":" in text:
            hours, minutes, seconds = text.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        return float(text)
    except ValueError:
        return None


def sprite_tile_size(box_width: int, box_height: int, display_width: int, display_height: int) -> tuple[int, int]:
    """A storyboard tile at the picture's display aspect, inside the configured box turned to match it:
    160×90 for 16:9, 90×160 for a portrait phone clip, 120×90 for 4:3 (no black bars to scrub past)."""
    long_side, short_side = max(box_width, box_height), min(box_width, box_height)
    box = (long_side, short_side) if display_width >= display_height else (short_side, long_side)
    scale = min(box[0] / display_width, box[1] / display_height)
    return max(2, round(display_width * scale / 2) * 2), max(2, round(display_height * scale / 2) * 2)


def _sprite_grid(options: PipelineOptions, display_width: int, display_height: int) -> SpriteGrid | None:
    if options.sprite_interval_seconds <= 0 or options.sprite_columns < 1 or options.sprite_rows < 1:
        return None
    tile_width, tile_height = sprite_tile_size(
        options.sprite_tile_width, options.sprite_tile_height, display_width, display_height
    )
    return SpriteGrid(
        interval_seconds=options.sprite_interval_seconds,
        tile_width=tile_width,
        tile_height=tile_height,
        columns=options.sprite_columns,
        rows=options.sprite_rows,
    )


def _storyboard_outputs(writer: SpriteSheetWriter, duration: float | None, out_dir: Path) -> list[StageOutput]:
    grid = writer.grid
    sheets = writer.finish()
    if not sheets:
        return []
    outputs = [
        StageOutput(
            kind=ProxyType.SPRITE_SHEET,
            path=sheet.path,
            bucket="processed",
            format="jpeg",
            content_type="image/jpeg",
            resolution=f"{sheet.width}x{sheet.height}",
            width=sheet.width,
            height=sheet.height,
            details={
                "index": sheet.index,
                "tiles": sheet.tiles,
                "columns": sheet.columns,
                "rows": sheet.rows,
                "tile_width": grid.tile_width,
                "tile_height": grid.tile_height,
                "interval_seconds": grid.interval_seconds,
            },
        )
        for sheet in sheets
    ]
    vtt = out_dir / STORYBOARD_NAME
    vtt.write_text(storyboard_vtt(writer.placements, grid, duration), encoding="utf-8")
    outputs.append(
        StageOutput(
            kind=ProxyType.STORYBOARD,
            path=vtt,
            bucket="processed",
            format="vtt",
            content_type="text/vtt",
            details={"cues": len(writer.placements), "sheets": len(sheets), "intervalSeconds": grid.interval_seconds},
        )
    )
    return outputs


def _even(value: float, limit: int) -> int:
    """Nearest even number (x264 needs even sizes for 4:2:0), never above `limit` rounded down to even."""
    return max(2, min(round(value / 2) * 2, limit // 2 * 2))


def _rate(value: float) -> str:
    fraction = Fraction(value).limit_denominator(1000)
    return f"{fraction.numerator}/{fraction.denominator}"
