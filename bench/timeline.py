"""Timeline pictures and clips: a frame on demand (uncached and cached), a filmstrip of 100 frames and a
10 s frame-exact clip, through the
production `TimelineService` on the local backend, against baselines measured in the same run:

- ffmpeg's floor: starting ffmpeg and writing one frame of a null source (no file, no decoding);
- the obvious way to get a frame: ffmpeg with an input seek into the 1080p source, scaling to 640 wide
  and writing a JPEG (one process per frame, as the service does);
- for the filmstrip, one such process per tile;
- for the clip, ffmpeg encoding the whole range with the encoder settings the smart cut uses at its edges.

The source is ingested first by the production proxies pass (its scrubbing rung and sprite sheets), and
the asset's rows are built in memory around the stored files, as the API reads them.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.sources import Source
from mediaingest.assets.timeline import TimelineService, timeline_of
from mediaingest.config import Settings
from mediaingest.models import AssetMetadata, AssetProxy, MediaAsset
from mediaingest.models.enums import AssetProcessingStatus, MediaType, ProxyType, UploadStatus
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.smartcut import ClipRender, render_clip
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import generate_proxies
from mediaingest.storage.local import LocalStorage

FRAMES = 40
STRIP = 100
CLIP_SECONDS = 10.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 1)


def _ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _asset(
    source: Source, storage: LocalStorage, settings: Settings, scratch: Path, options: PipelineOptions
) -> MediaAsset:
    metadata = probe(source.path, MediaType.VIDEO, options=options)
    result = generate_proxies(source.path, metadata, scratch / "proxies", options=options)
    asset = MediaAsset(
        id="bench-asset", owner_id="bench-user", name=source.path.name, original_name=source.path.name,
        type=MediaType.VIDEO, file_size=source.path.stat().st_size, mime_type=source.mime_type,
        upload_status=UploadStatus.UPLOADED, processing_status=AssetProcessingStatus.READY,
        storage_bucket=settings.bucket_incoming, storage_key=f"uploads/bench/{source.path.name}",
    )  # fmt: skip
    storage.upload_file(asset.storage_bucket, asset.storage_key, source.path, content_type=source.mime_type)
    columns = {f.name for f in fields(type(metadata))} & set(AssetMetadata.__table__.columns.keys())
    asset.metadata_record = AssetMetadata(**{name: getattr(metadata, name) for name in columns})
    for output in result.outputs:
        if output.kind not in (ProxyType.VIDEO, ProxyType.SPRITE_SHEET):
            continue
        bucket = settings.bucket_proxies if output.bucket == "proxies" else settings.bucket_processed
        key = f"assets/bench-user/bench-asset/proxies/{output.key_name}"
        storage.upload_file(bucket, key, output.path, content_type=output.content_type)
        asset.proxies.append(
            AssetProxy(type=output.kind, format=output.format, content_type=output.content_type, size_bytes=0,
                       width=output.width, height=output.height, storage_bucket=bucket, storage_key=key,
                       details=output.details)
        )  # fmt: skip
    return asset


def run(sources: list[Source], log: Callable[[str], None]) -> list[dict[str, Any]]:
    results = []
    for source in (s for s in sources if s.kind == "video" and s.name.startswith("h264_1080p30")):
        with tempfile.TemporaryDirectory(prefix="bench-timeline-") as folder:
            row = _measure(source, Path(folder))
        results.append(row)
        log(
            f"  {source.name}: frame p50/p95 {row['uncached_p50_ms']}/{row['uncached_p95_ms']} ms uncached, "
            f"{row['cached_p50_ms']}/{row['cached_p95_ms']} ms cached (ffmpeg floor {row['ffmpeg_floor_p50_ms']}, "
            f"naive seek into the source {row['naive_source_p50_ms']}); filmstrip of {STRIP} "
            f"{row['filmstrip_100_ms']} ms (naive {row['naive_filmstrip_100_ms']:.0f}), "
            f"{row['sprites_count']} from sprites {row['filmstrip_sprites_ms']} ms; a {row['clip_seconds']} s clip "
            f"{row['clip_ms']} ms (copied: {row['clip_copied']}) against {row['clip_full_encode_ms']} ms encoded whole"
        )
    return results


def _measure(source: Source, scratch: Path) -> dict[str, Any]:
    settings = Settings(DATA_DIR=str(scratch / "data"))
    options = PipelineOptions.from_settings(settings, proxy_heights=(360,))
    storage = LocalStorage(scratch / "storage", secret=b"bench-secret", public_url="http://bench")
    storage.ensure_buckets([settings.bucket_incoming, settings.bucket_processed, settings.bucket_proxies])
    service = TimelineService(settings=settings, storage=storage, options=options, asset_exists=lambda _id: True)
    timeline = timeline_of(_asset(source, storage, settings, scratch, options))
    chooser = random.Random(29)
    times = [chooser.uniform(0, timeline.seconds) for _ in range(FRAMES)]

    def frame(t: float) -> None:
        service.frame(timeline, t=t, width=None, fmt="jpg")

    def naive_frame(t: float) -> None:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-ss", f"{t:.3f}", "-i", str(source.path), "-frames:v", "1",
             "-vf", "scale=640:-2", str(scratch / "naive.jpg")], check=True,
        )  # fmt: skip

    def floor_run() -> None:
        null = ["-f", "lavfi", "-i", "nullsrc=s=640x360", "-frames:v", "1", "-f", "null", "-"]
        subprocess.run(["ffmpeg", "-v", "error", *null], check=True)

    uncached = [_ms(lambda t=t: frame(t)) for t in times]
    cached = [_ms(lambda t=t: frame(t)) for t in times]
    floor = [_ms(floor_run) for _ in range(10)]
    naive = [_ms(lambda t=t: naive_frame(t)) for t in times[:10]]
    strips = [_ms(lambda: service.filmstrip(timeline, start=None, end=None, count=STRIP, height=180)) for _ in range(2)]
    # One tile per sprite interval at the sprites' own height: what a zoomed-out timeline asks.
    sprites = timeline.sprites
    sprite_count = max(1, int(timeline.seconds // sprites.interval_seconds)) if sprites else 1
    sprite_ms = _ms(lambda: service.filmstrip(timeline, start=None, end=None, count=sprite_count, height=90))
    clip_seconds, clip_ms, encode_ms, copied = _clip(source, timeline.seconds, scratch, options)
    return {
        "source": source.name,
        "rung": f"{timeline.scrub_rung.height if timeline.scrub_rung else '?'}p",
        "frames": FRAMES,
        "uncached_p50_ms": _percentile(uncached, 0.5),
        "uncached_p95_ms": _percentile(uncached, 0.95),
        "cached_p50_ms": _percentile(cached, 0.5),
        "cached_p95_ms": _percentile(cached, 0.95),
        "ffmpeg_floor_p50_ms": _percentile(floor, 0.5),
        "naive_source_p50_ms": _percentile(naive, 0.5),
        "filmstrip_100_ms": round(strips[0], 1),
        "filmstrip_100_cached_ms": round(strips[1], 1),
        "sprites_count": sprite_count,
        "filmstrip_sprites_ms": round(sprite_ms, 1),
        "naive_filmstrip_100_ms": round(statistics.median(naive) * STRIP, 1),
        "clip_seconds": round(clip_seconds, 2),
        "clip_ms": round(clip_ms, 1),
        "clip_copied": copied,
        "clip_full_encode_ms": round(encode_ms, 1),
    }


def _clip(source: Source, seconds: float, scratch: Path, options: PipelineOptions) -> tuple[float, float, float, bool]:
    """A clip of CLIP_SECONDS (or a third of a short source) from 7 frames past a third of the way in, by
    the smart cut, against ffmpeg encoding the same range whole with the same encoder settings."""
    metadata = probe(source.path, MediaType.VIDEO, options=options)
    rate = Fraction(metadata.frame_rate or "30")
    length = min(CLIP_SECONDS, seconds / 3)
    in_frame = round(seconds / 3 * rate) + 7
    out_frame = in_frame + round(length * rate)
    rendered: list[ClipRender] = []
    clip_ms = _ms(lambda: rendered.append(render_clip(
        source.path, metadata, in_frame=in_frame, out_frame=out_frame, work_dir=scratch / "clip", options=options
    )))  # fmt: skip
    encode = [
        "ffmpeg", "-v", "error", "-y", "-ss", f"{float(in_frame / rate):.6f}", "-i", str(source.path),
        "-t", f"{float((out_frame - in_frame) / rate):.6f}", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16",
        "-x264-params", "bframes=3:b-pyramid=normal", "-c:a", "aac", str(scratch / "whole.mp4"),
    ]  # fmt: skip
    encode_ms = _ms(lambda: subprocess.run(encode, check=True))
    return float((out_frame - in_frame) / rate), clip_ms, encode_ms, rendered[0].copied
