"""Every stage, once: what it is called, what it runs, which media go through it, what people read while
it works, and how big its Kubernetes Job is. The plan, the dispatch, the operator's defaults, the job
labels of the API and page, and (through tests) the CRD's stage enum and the chart's values all follow
from `STAGES`; a stage is one module with its function plus one entry here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mediaingest.models.enums import IngestionJobType, MediaType, Stage
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.audio_visuals import generate_audio_visuals
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import generate_proxies
from mediaingest.pipeline.stages.thumbnails import generate_thumbnails
from mediaingest.pipeline.types import LiveOutputs, MediaMetadata, ProgressCallback, StageResult


@dataclass(frozen=True)
class StageInput:
    """What every stage function gets: the source on local disk and where to write its outputs."""

    source: Path
    media_type: MediaType
    metadata: MediaMetadata  # the probe's; the probe itself gets an empty one
    out_dir: Path
    options: PipelineOptions
    on_progress: ProgressCallback | None
    cancel: threading.Event | None
    live: LiveOutputs | None = None


@dataclass(frozen=True)
class JobResources:
    """The stage's Kubernetes Job: (request, limit) pairs, its scratch volume and its deadline."""

    cpu: tuple[str, str]
    memory: tuple[str, str]
    scratch: str  # emptyDir sizeLimit and ephemeral-storage request: the source is downloaded into it
    scratch_limit: str  # ephemeral-storage limit
    deadline_seconds: int


@dataclass(frozen=True)
class StageSpec:
    stage: Stage
    job_type: IngestionJobType  # the seed's name for the stage's IngestionJob
    label: str  # what people read while it runs
    media: frozenset[MediaType]
    run: Callable[[StageInput], StageResult]
    resources: JobResources
    needs_audio: bool = False  # left out of a video's plan once the probe finds no audio


def _probe(job: StageInput) -> StageResult:
    found = probe(job.source, job.media_type, options=job.options)
    if job.on_progress is not None:
        job.on_progress(1.0, "probed")
    return StageResult(metadata=found, message=describe(found))


def describe(metadata: MediaMetadata) -> str:
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


_ALL_MEDIA = frozenset(MediaType)

# Order matters: the probe first (every other stage needs its metadata), then the rest side by side.
# Every stage downloads the source into its scratch volume (uploads go up to MAX_FILE_SIZE, 5 GiB by
# default), so each Job has room for it; proxies also hold their renditions until they are uploaded.
STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        stage=Stage.PROBE,
        job_type=IngestionJobType.METADATA_EXTRACTION,
        label="Reading metadata",
        media=_ALL_MEDIA,
        run=_probe,
        resources=JobResources(("250m", "1"), ("256Mi", "1Gi"), "6Gi", "7Gi", 900),
    ),
    StageSpec(
        stage=Stage.PROXIES,
        job_type=IngestionJobType.PROXY_GENERATION,
        label="Making web proxies",
        media=frozenset({MediaType.VIDEO}),
        run=lambda job: generate_proxies(
            job.source,
            job.metadata,
            job.out_dir,
            options=job.options,
            on_progress=job.on_progress,
            cancel=job.cancel,
            live=job.live,
        ),
        resources=JobResources(("2", "4"), ("2Gi", "4Gi"), "20Gi", "22Gi", 3 * 3600),
    ),
    StageSpec(
        stage=Stage.THUMBNAILS,
        job_type=IngestionJobType.THUMBNAIL_GENERATION,
        label="Making the poster and thumbnails",
        media=frozenset({MediaType.VIDEO, MediaType.IMAGE}),
        run=lambda job: generate_thumbnails(
            job.source,
            job.metadata,
            job.media_type,
            job.out_dir,
            options=job.options,
            on_progress=job.on_progress,
            cancel=job.cancel,
        ),
        resources=JobResources(("500m", "2"), ("512Mi", "2Gi"), "6Gi", "7Gi", 3600),
    ),
    StageSpec(
        stage=Stage.AUDIO_VISUALS,
        job_type=IngestionJobType.AUDIO_ANALYSIS,
        label="Drawing the waveform",
        media=frozenset({MediaType.VIDEO, MediaType.AUDIO}),
        run=lambda job: generate_audio_visuals(
            job.source, job.metadata, job.out_dir, options=job.options, on_progress=job.on_progress, cancel=job.cancel
        ),
        resources=JobResources(("500m", "2"), ("512Mi", "2Gi"), "6Gi", "7Gi", 3600),
        needs_audio=True,
    ),
)


def spec_for(stage: Stage) -> StageSpec:
    return next(spec for spec in STAGES if spec.stage == stage)


def stage_for_job_type(job_type: IngestionJobType | str) -> Stage:
    return next(spec.stage for spec in STAGES if spec.job_type == job_type)


def label_for(job_type: IngestionJobType | str) -> str:
    return next((spec.label for spec in STAGES if spec.job_type == job_type), str(job_type))
