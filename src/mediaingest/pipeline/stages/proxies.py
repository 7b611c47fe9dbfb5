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
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil
from pathlib import Path
from typing import Literal

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
_WEB_H264_PROFILES = {"Constrained Baseline", "Baseline", "Main", "High"}
# Bitrate cap for the CRF encode, in bits per pixel per frame: keeps grainy sources streamable.
_MAXRATE_BITS_PER_PIXEL = 0.12


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
    containers = set((metadata.format_name or "").split(","))
    bits_per_pixel = None
    if metadata.video_bitrate and metadata.fps:
        bits_per_pixel = metadata.video_bitrate / (width * height * metadata.fps)
    return (
        bool(containers & _WEB_CONTAINERS)
        and metadata.video_codec == "h264"
        and metadata.pixel_format == "yuv420p"
        and (metadata.video_profile is None or metadata.video_profile in _WEB_H264_PROFILES)
        and (not metadata.has_audio or metadata.audio_codec == "aac")
        and metadata.rotation == 0
        and not metadata.has_hdr
        # Coded size equal to displayed size also rules out anamorphic (non-square pixel) sources.
        and (metadata.width, metadata.height) == (width, height)
        and (metadata.display_width, metadata.display_height) == (width, height)
        and field_order(metadata) not in INTERLACED
        and (bits_per_pixel is None or bits_per_pixel <= options.remux_max_bits_per_pixel)
        # A copied stream keeps the source's frame timing: only a constant rate that is the timeline's.
        and conforms_to_timeline(metadata.fps, metadata.frame_rate, metadata.is_variable_frame_rate)
    )


def build_proxy_plan(source: Path, metadata: MediaMetadata, out_dir: Path, options: PipelineOptions) -> ProxyPlan:
    """The whole proxies pass as one FfmpegCommand (pure: nothing runs, nothing is written)."""
    if not metadata.has_video or not metadata.display_width or not metadata.display_height:
        return ProxyPlan(renditions=[], sprites=None, command=None)
    size = (metadata.display_width, metadata.display_height)
    renditions = _renditions(metadata, size, out_dir, options)
    sprites = _sprite_grid(options, *size)
    graph = _filter_graph(metadata, renditions, sprites, out_dir, options)
    hls_rungs = [_hls_rung(r, metadata, options) for r in renditions if r.codec == "h264"]

    def output(rendition: Rendition) -> FfmpegOutput:
        hls_dir = out_dir / HLS_DIR / rendition.resolution if rendition.codec == "h264" else None
        return rendition_output(rendition, metadata, options, hls_dir=hls_dir)

    outputs = [output(r) for r in renditions if not r.remux]
    # Remuxed rungs go first, in a process of their own that only copies packets: it runs at the speed
    # of the disk, so a web-playable source plays within a second while the encodes are still starting.
    remuxes = [output(r) for r in renditions if r.remux]
    remux_command = FfmpegCommand(inputs=[FfmpegInput(source)], outputs=remuxes) if remuxes else None
    if sprites is not None:
        # Raw tiles to stdout, laid out into sheets by SpriteSheetWriter (see sprites.py for why).
        tiles = ["-map", "[tiles]", "-fps_mode", "passthrough", "-c:v", "rawvideo", "-f", "rawvideo"]
        outputs.append(FfmpegOutput("pipe:1", tiles))
    command = FfmpegCommand(inputs=[FfmpegInput(source)], outputs=outputs, filter_graph=graph)
    return ProxyPlan(
        renditions=renditions, sprites=sprites, command=command, hls_rungs=hls_rungs, remux_command=remux_command
    )


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
    encoded_rungs = sorted({(r.rung, r.width, r.height) for r in renditions if not r.remux})
    branches = [f"scaled{rung}" for rung, _, _ in encoded_rungs]
    if sprites is not None:
        branches.append("sprite_src")
    branches.append("shots_src")
    base = base_video_filters(metadata)
    if metadata.frame_rate:
        # Every rung at the timeline's constant rate: frames of a variable-rate source are repeated or
        # dropped once, here, so all rungs count the same frames.
        base.append(filter_spec("fps", metadata.frame_rate))
    if len(branches) > 1:
        base.append(filter_spec("split", len(branches)))
    graph.chain([video_stream_specifier(metadata)], base or ["null"], [f"{b}_in" for b in branches])
    for rung, width, height in encoded_rungs:
        codecs = [r.codec for r in renditions if r.rung == rung and not r.remux]
        filters = [
            filter_spec("scale", width, height, flags="bicubic"),
            filter_spec("setsar", 1),
            filter_spec("format", "yuv420p"),
        ]
        if len(codecs) > 1:
            filters.append(filter_spec("split", len(codecs)))
        graph.chain([f"scaled{rung}_in"], filters, [f"{codec}_{rung}" for codec in codecs])
    if sprites is not None:
        _sprite_chain(graph, sprites)
    _shots_chain(graph, out_dir, options)
    return graph


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
    for stale in out_dir.glob("sprite_*.jpg"):
        stale.unlink()  # a longer earlier attempt may have left more sheets than this run writes
    writer = (
        SpriteSheetWriter(out_dir, plan.sprites, jpeg_quality=options.sprite_jpeg_quality) if plan.sprites else None
    )
    publisher = HlsPublisher(
        out_dir,
        plan.hls_rungs,
        metadata.frame_rate,
        publish=live.publish if live else _keep_local,
        on_playable=live.playable if live else None,
    )
    publisher.prepare()

    def progress_between(start: float, end: float) -> ProgressCallback:
        def progress(fraction: float, message: str) -> None:
            publisher.scan()
            if on_progress is not None:
                on_progress(start + (end - start) * fraction, message)

        return progress

    encode_from = 0.0
    if plan.remux_command is not None:
        encode_from = _REMUX_SHARE
        options.tools.run(
            plan.remux_command,
            duration_seconds=metadata.duration_seconds,
            on_progress=progress_between(0.0, _REMUX_SHARE),
            cancel=cancel,
            timeout=options.ffmpeg_deadline(metadata.duration_seconds),
            label="remux",
            progress_interval=options.progress_interval_seconds,
        )
        publisher.scan()
    options.tools.run(
        plan.command,
        duration_seconds=metadata.duration_seconds,
        on_progress=progress_between(encode_from, 1.0),
        cancel=cancel,
        timeout=options.ffmpeg_deadline(metadata.duration_seconds),
        stdout_sink=writer.feed if writer else None,
        label="proxies",
        progress_interval=options.progress_interval_seconds,
    )

    outputs = [_rendition_result(r, options) for r in plan.renditions]
    check_renditions(plan.renditions, metadata, options)
    shots = read_shots(out_dir / SHOTS_LOG)
    if plan.hls_rungs:
        playlist = publisher.finish()
        outputs.append(_hls_result(out_dir, plan.hls_rungs, playlist.seconds, options))
    if writer is not None and plan.sprites is not None:
        outputs += _storyboard_outputs(writer, plan.sprites, metadata.duration_seconds, out_dir)
    remuxed = [r.resolution for r in plan.renditions if r.remux]
    encoded = [f"{r.resolution} {r.codec}" for r in plan.renditions if not r.remux]
    message = f"encoded {', '.join(encoded) or 'nothing'}"
    if remuxed:
        message += f"; remuxed {', '.join(remuxed)}"
    message += f"; {len(shots)} cut(s)"
    return StageResult(outputs=outputs, measurements={"shots": shots}, message=message)


def _keep_local(path: Path, name: str) -> None:
    """Without a caller to publish to (tests, benchmarks), the files simply stay in out_dir."""


def _hls_rung(rendition: Rendition, metadata: MediaMetadata, options: PipelineOptions) -> HlsRung:
    audio = options.audio_bitrate_kbps * 1000 if metadata.has_audio else 0
    if rendition.remux:
        video = metadata.video_bitrate or metadata.bitrate or 0
    else:
        fps = float(Fraction(metadata.frame_rate)) if metadata.frame_rate else 30.0
        video = int(rendition.width * rendition.height * fps * _MAXRATE_BITS_PER_PIXEL)
    return HlsRung(rendition.resolution, rendition.width, rendition.height, bandwidth=int((video + audio) * 1.1))


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
    shots: list[float] = []
    if not log.is_file():
        return shots
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            key, _, value = line.strip().partition("=")
            if key == "lavfi.scd.time" and len(shots) < MAX_SHOTS:
                try:
                    shots.append(round(float(value), 3))
                except ValueError:
                    continue
    log.unlink()
    return shots


# --- command parts ------------------------------------------------------------------------------


def rendition_output(
    rendition: Rendition, metadata: MediaMetadata, options: PipelineOptions, *, hls_dir: Path | None = None
) -> FfmpegOutput:
    """The rung's output; an H.264 rung with `hls_dir` also feeds its HLS playlist from the same encoder."""
    # Proxies are served to other people: drop container metadata (phones record GPS there).
    args = ["-map_metadata", "-1", "-map_chapters", "-1"]
    audio = ["-map", audio_stream_specifier(metadata)] if metadata.has_audio else []
    if rendition.remux:
        args += ["-map", video_stream_specifier(metadata), *audio, "-c", "copy", *_timecode_args(metadata)]
        return _mp4_output(rendition, args, options, hls_dir)

    args += ["-map", f"[{rendition.codec}_{rendition.rung}]", *audio]
    fps = float(Fraction(metadata.frame_rate)) if metadata.frame_rate else min(metadata.fps or 30.0, 60.0)
    # A keyframe every 2 s keeps seeking in the browser snappy, whatever the frame rate; every second on
    # the scrubbing rung, so reaching any frame decodes at most a second of it.
    keyframe_seconds = 1 if rendition.scrub else options.hls_segment_seconds
    keyframes = ["-force_key_frames", f"expr:gte(t,n_forced*{keyframe_seconds})"]
    if rendition.codec == "h264":
        maxrate = int(rendition.width * rendition.height * fps * _MAXRATE_BITS_PER_PIXEL)
        args += ["-c:v", "libx264", "-preset", options.x264_preset, "-crf", str(options.x264_crf)]
        args += ["-profile:v", "high", "-pix_fmt", "yuv420p", "-maxrate", str(maxrate)]
        args += ["-bufsize", str(2 * maxrate), *keyframes]
        if rendition.scrub:
            # x264's GOPs are closed unless asked otherwise; no B-frames means decode order is display order.
            args += ["-bf", "0", "-g", str(ceil(fps) * keyframe_seconds)]
        audio_codec = ["-c:a", "aac", "-b:a", f"{options.audio_bitrate_kbps}k"]
        container = _timecode_args(metadata)
    else:
        args += ["-c:v", "libvpx-vp9", "-crf", str(options.vp9_crf), "-b:v", "0", "-deadline", "good"]
        args += ["-cpu-used", str(options.vp9_cpu_used), "-row-mt", "1", *keyframes]
        audio_codec = ["-c:a", "libopus", "-b:a", f"{max(64, options.audio_bitrate_kbps * 3 // 4)}k"]
        container = ["-f", "webm"]
    if metadata.has_hdr:
        args += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]
    if metadata.has_audio:
        args += audio_codec
        if (metadata.channels or 2) > 2:
            args += ["-ac", "2"]  # browsers and phones: stereo
        if (metadata.sample_rate or 48000) > 48000:
            args += ["-ar", "48000"]
    if rendition.codec == "h264":
        return _mp4_output(rendition, args + container, options, hls_dir)
    return FfmpegOutput(rendition.path, args + container)


def _mp4_output(rendition: Rendition, args: list[str], options: PipelineOptions, hls_dir: Path | None) -> FfmpegOutput:
    """The faststart MP4, and through ffmpeg's tee muxer the rung's HLS from the very same packets."""
    if hls_dir is None:
        return FfmpegOutput(rendition.path, [*args, "-movflags", "+faststart", "-f", "mp4"])
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
    if not timecode or not rate:
        return []
    frames = int(timecode.replace(";", ":").replace(".", ":").rsplit(":", 1)[1])
    if frames >= ceil(float(Fraction(rate))):
        return []
    if ";" in timecode and Fraction(rate) not in (Fraction(30000, 1001), Fraction(60000, 1001)):
        return []
    return ["-timecode", timecode]


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
        expected = check.duration_seconds * rate
        if abs(check.frames - expected) > 1:
            raise PermanentProcessingError(
                f"the {check.rendition.path.name} proxy has {check.frames} frames where "
                f"{check.duration_seconds:.3f} s at {metadata.frame_rate} needs {expected:.0f}",
                details={"proxy": check.rendition.path.name, "frames": check.frames, "expected": round(expected)},
            )
    source_seconds = picture_duration(metadata)
    lengths = [(check.rendition.path.name, check.duration_seconds) for check in checks]
    if source_seconds is not None:
        lengths.append(("source", source_seconds))
    shortest, longest = min(lengths, key=lambda item: item[1]), max(lengths, key=lambda item: item[1])
    if longest[1] - shortest[1] > tolerance:
        raise PermanentProcessingError(
            f"the proxies disagree in length: {shortest[0]} lasts {shortest[1]:.3f} s and {longest[0]} "
            f"{longest[1]:.3f} s (at most {tolerance:.3f} s apart)",
            details={"durations": {name: round(seconds, 3) for name, seconds in lengths}},
        )
    return checks


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
            seconds = _seconds(stream.get("duration")) or _seconds((stream.get("tags") or {}).get("DURATION"))
            if seconds is not None:
                return seconds
    return metadata.duration_seconds


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


def _storyboard_outputs(
    writer: SpriteSheetWriter, grid: SpriteGrid, duration: float | None, out_dir: Path
) -> list[StageOutput]:
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
