"""The processing pipeline: pure stage functions over local files, and one entry point to run them.

The local worker and the Kubernetes Jobs both call `run_stage_function`; neither the stages nor this
module touch the database or object storage. Modules:

    types.py      MediaMetadata, StageOutput, StageResult, ProgressCallback
    options.py    PipelineOptions (from Settings)
    ffmpeg.py     command building, running ffmpeg with progress and cancellation, ffprobe, errors
    filters.py    filter-graph pieces shared by the video stages (stream choice, tone mapping)
    registry.py   every stage once (StageSpec: function, media, label, Job resources), STAGE_MODULES
    plan.py       stages_for(media_type, metadata), from the registry
    stages/       probe, proxies (with sprites.py: sheets and storyboard), thumbnails, audio_visuals
"""

from __future__ import annotations

import threading
from pathlib import Path

from mediaingest.models.enums import MediaType, Stage
from mediaingest.pipeline.ffmpeg import FfmpegTools, StageCancelledError
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import StageInput, StageRole, spec_for, stage_with_role
from mediaingest.pipeline.types import LiveOutputs, MediaMetadata, ProgressCallback, StageOutput, StageResult

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
    live: LiveOutputs | None = None,
) -> StageResult:
    """Run one stage on a local file, writing its outputs into `out_dir`.

    The stage that describes the source (the probe) returns StageResult(metadata=…). The other stages
    need that metadata (unless they declare `needs_no_metadata` for the media type); when the caller has
    none (a Job started without it), the source is described here first. A stage outside the media type's
    plan is a successful no-op, like audio visuals for a silent video.
    """
    spec = spec_for(stage)
    if spec.role != StageRole.DESCRIBES_SOURCE:
        if stage not in stages_for(media_type):
            return StageResult(message=f"{stage} does not apply to {media_type.value.lower()}")
        if metadata is None and spec.reads_metadata(media_type):
            metadata = _described(source, media_type, out_dir, options=options, cancel=cancel)
    job = StageInput(source, media_type, metadata or MediaMetadata(), out_dir, options, on_progress, cancel, live)
    return spec.run(job)


def _described(
    source: Path, media_type: MediaType, out_dir: Path, *, options: PipelineOptions, cancel: threading.Event | None
) -> MediaMetadata | None:
    """What the stage that describes the source finds, for a stage started without its metadata."""
    describer = spec_for(stage_with_role(StageRole.DESCRIBES_SOURCE))
    return describer.run(StageInput(source, media_type, MediaMetadata(), out_dir, options, None, cancel)).metadata
