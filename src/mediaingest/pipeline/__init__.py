"""The processing pipeline: pure stage functions over local files, and one entry point to run them.

The local worker and the Kubernetes Jobs both call `run_stage_function`; neither the stages nor this
module touch the database or object storage. Modules:

    types.py      MediaMetadata, StageOutput, StageResult, ProgressCallback
    options.py    PipelineOptions (from Settings)
    ffmpeg.py     command building, running ffmpeg with progress and cancellation, ffprobe, errors
    filters.py    filter-graph pieces shared by the video stages (stream choice, tone mapping)
    plan.py       stages_for(media_type, metadata)
    stages/       probe, proxies (with sprites.py: sheets and storyboard), thumbnails, audio_visuals
"""

from __future__ import annotations

import threading
from pathlib import Path

from mediaingest.models.enums import MediaType, Stage
from mediaingest.pipeline.ffmpeg import FfmpegTools, StageCancelledError
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.stages.audio_visuals import generate_audio_visuals
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import generate_proxies
from mediaingest.pipeline.stages.thumbnails import generate_thumbnails
from mediaingest.pipeline.types import MediaMetadata, ProgressCallback, StageOutput, StageResult

__all__ = [
    "FfmpegTools",
    "MediaMetadata",
    "PipelineOptions",
    "ProgressCallback",
    "StageCancelledError",
    "StageOutput",
    "StageResult",
    "run_stage_function",
    "stages_for",
]


def run_stage_function(
    stage: Stage,
    source: Path,
    media_type: MediaType,
    metadata: MediaMetadata | None,
    out_dir: Path,
    *,
    options: PipelineOptions,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> StageResult:
    """Run one stage on a local file, writing its outputs into `out_dir`.

    Probe returns StageResult(metadata=…). The other stages need probe's metadata; when the caller has
    none (a Job started without it), the source is probed here first. A stage outside the media
    type's plan is a successful no-op, like audio visuals for a silent video.
    """
    if stage == Stage.PROBE:
        found = probe(source, media_type, options=options)
        if on_progress is not None:
            on_progress(1.0, "probed")
        return StageResult(metadata=found, message=_describe(found))
    if stage not in stages_for(media_type):
        return StageResult(message=f"{stage.value} does not apply to {media_type.value.lower()}")
    if metadata is None:
        metadata = probe(source, media_type, options=options)
    if stage == Stage.PROXIES:
        return generate_proxies(source, metadata, out_dir, options=options, on_progress=on_progress, cancel=cancel)
    if stage == Stage.THUMBNAILS:
        return generate_thumbnails(
            source, metadata, media_type, out_dir, options=options, on_progress=on_progress, cancel=cancel
        )
    if stage == Stage.AUDIO_VISUALS:
        return generate_audio_visuals(
            source, metadata, out_dir, options=options, on_progress=on_progress, cancel=cancel
        )
    raise ValueError(f"unknown stage {stage!r}")


def _describe(metadata: MediaMetadata) -> str:
    parts = []
    if metadata.has_video or metadata.image_format:
        parts.append(f"{metadata.display_width}x{metadata.display_height}")
    if metadata.video_codec:
        parts.append(metadata.video_codec)
    if metadata.has_audio:
        parts.append(f"{metadata.audio_codec} {metadata.channels}ch")
    if metadata.duration_seconds:
        parts.append(f"{metadata.duration_seconds:.1f} s")
    if metadata.has_hdr:
        parts.append(str(metadata.hdr_format))
    return ", ".join(parts) or "probed"
