"""Every stage, once: what it is called, what it runs, which media go through it, what people read while
it works, what it measures and writes (its data: the API's schema and the page follow it), and how big its
Kubernetes Job is. The plan, the dispatch, the operator's defaults, the job labels of the API and page, and
(through `make stages`) the CRD's stage list and the chart's values all follow from the registered StageSpecs.

A stage is one module with its function plus one registry entry: a line in `BUILT_IN` below, or, for a
stage kept outside this package, its module in the `STAGE_MODULES` setting. Such a module calls
`register(StageSpec(...))` when imported, and every process that runs or plans stages (the API, the
worker and its stage processes, a stage pod, the operator) imports those modules as it starts, through
`load_stage_modules`, as procrastinate's workers import their tasks' modules.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from mediaingest.config import ConfigurationError, Settings
from mediaingest.models.enums import IngestionJobType, MediaType, ProxyType, Stage
from mediaingest.pipeline.measurements import AudioMeasurements, ProxyMeasurements, TranscriptMeasurements
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.audio_visuals import generate_audio_visuals
from mediaingest.pipeline.stages.probe import probe
from mediaingest.pipeline.stages.proxies import generate_proxies
from mediaingest.pipeline.stages.thumbnails import generate_thumbnails
from mediaingest.pipeline.stages.transcript import generate_transcript
from mediaingest.pipeline.types import LiveOutputs, Measurements, MediaMetadata, ProgressCallback, StageResult


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
    deadline_seconds: int  # activeDeadlineSeconds for media of unknown length (and the least for any)
    # The deadline grows with what the probe measured: deadline_seconds + this × the media's seconds.
    deadline_per_media_second: float = 0.0
    # After an out-of-memory kill the next attempt gets twice the memory, up to this.
    memory_cap: str = "8Gi"


# How the page shows an output kind when no view of its own takes it: a still ("image"), a picture along
# the media's time, full width ("strip": a waveform), a player ("video", "audio"), or a link to the file
# ("vtt", "json", "text", "playlist").
Presentation = Literal["image", "strip", "video", "audio", "vtt", "json", "text", "playlist"]


@dataclass(frozen=True)
class OutputKind:
    """One kind of file a stage writes (`StageOutput.kind`), and how people see it."""

    kind: str  # stored on the output's row and sent as its `type`: upper-case, like the seed's ProxyType
    shown_as: Presentation
    label: str  # what the page calls it ("Poster frame"); its picture's text is "<label> of <file>"
    note: str | None = None  # a hint the page adds to the label ("time across, frequency up")


Placement = Literal["job", "worker"]


class StageRole(StrEnum):
    """What the core needs of a stage besides running it; the core asks for a stage by its role, never by
    its name. No two stages share a role (checked as they register), and the built-in stages have each."""

    # Runs first, and its result is the asset's metadata, which every other stage reads.
    DESCRIBES_SOURCE = "describes_source"
    # Its outputs are the asset's playback: the HLS folder the player reads, complete once the stage is.
    PLAYBACK = "playback"


class UnknownStageError(ValueError):
    """A stage or job type that no registered StageSpec names (a typo, or a module not loaded)."""


# A stage is an item of the CRD's plan (32 characters) and a Kubernetes label value (`_` becomes `-` in
# Job names); a job type fills a 32-character column.
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_JOB_TYPE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_OUTPUT_KIND_NAME = _JOB_TYPE_NAME  # fills AssetProxy.type, a 32-character column


@dataclass(frozen=True)
class StageSpec:
    stage: Stage
    job_type: IngestionJobType  # the seed's name for the stage's IngestionJob
    label: str  # what people read while it runs
    media: frozenset[MediaType]
    run: Callable[[StageInput], StageResult]
    resources: JobResources
    needs_audio: bool = False  # left out of a video's plan once the probe finds no audio
    # Under EXECUTOR=kubernetes: a Job per attempt (the operator), or the worker Deployment's stage
    # processes (STAGE_PLACEMENT overrides it per stage). The local executor runs every stage on its worker.
    placement: Placement = "job"
    # Its data: what it measures (stored as JSON under its name; the probe's own record is MediaMetadata, in
    # columns) and each kind of file it writes.
    measurements: type[Measurements] | None = None
    outputs: tuple[OutputKind, ...] = ()
    role: StageRole | None = None
    # The media types for which the stage reads nothing the stage that describes the source records: it
    # starts beside that stage instead of after it (a still's thumbnails need only its pixels).
    needs_no_metadata: frozenset[MediaType] = frozenset()
    # True when the settings turn the stage off (TRANSCRIBE=off): it is left out of every plan made with
    # them, so it costs no job, process or pod (a stage that runs only to say "off" costs all three).
    turned_off: Callable[[Settings], bool] = lambda _settings: False

    def reads_metadata(self, media_type: MediaType) -> bool:
        """Whether the stage needs the metadata the stage that describes the source records, so it waits
        for it; the one rule the plan, the stage runner and the stage entry point all ask."""
        return self.role != StageRole.DESCRIBES_SOURCE and media_type not in self.needs_no_metadata

    @property
    def output_kind_names(self) -> frozenset[str]:
        return frozenset(output.kind for output in self.outputs)


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
BUILT_IN: tuple[StageSpec, ...] = (
    StageSpec(
        stage=Stage("probe"),
        job_type=IngestionJobType("METADATA_EXTRACTION"),
        label="Reading metadata",
        media=_ALL_MEDIA,
        run=_probe,
        resources=JobResources(("250m", "1"), ("256Mi", "1Gi"), "6Gi", "7Gi", 900, memory_cap="4Gi"),
        role=StageRole.DESCRIBES_SOURCE,
    ),
    StageSpec(
        stage=Stage("proxies"),
        job_type=IngestionJobType("PROXY_GENERATION"),
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
        # Three times real time on the pod's cores covers a 2160p HEVC master; 15 min for what starts slowly.
        resources=JobResources(("2", "4"), ("2Gi", "4Gi"), "20Gi", "22Gi", 900, 3.0, memory_cap="16Gi"),
        measurements=ProxyMeasurements,
        outputs=(
            OutputKind(ProxyType.VIDEO, "video", "Web proxy"),
            OutputKind(ProxyType.VIDEO_VP9, "video", "Web proxy (VP9)"),
            OutputKind(ProxyType.HLS, "playlist", "HLS master playlist"),
            OutputKind(ProxyType.SPRITE_SHEET, "image", "Sprite sheet"),
            OutputKind(ProxyType.STORYBOARD, "vtt", "Storyboard"),
        ),
        role=StageRole.PLAYBACK,
    ),
    StageSpec(
        stage=Stage("thumbnails"),
        job_type=IngestionJobType("THUMBNAIL_GENERATION"),
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
        resources=JobResources(("500m", "2"), ("512Mi", "2Gi"), "6Gi", "7Gi", 600, 0.5),
        # A still's thumbnails check its pixel budget and find a truncated file themselves.
        needs_no_metadata=frozenset({MediaType.IMAGE}),
        outputs=(
            OutputKind(ProxyType.POSTER, "image", "Poster frame"),
            OutputKind(ProxyType.THUMBNAIL, "image", "Thumbnail"),
        ),
    ),
    StageSpec(
        stage=Stage("audio_visuals"),
        job_type=IngestionJobType("AUDIO_ANALYSIS"),
        label="Drawing the waveform",
        media=frozenset({MediaType.VIDEO, MediaType.AUDIO}),
        run=lambda job: generate_audio_visuals(
            job.source, job.metadata, job.out_dir, options=job.options, on_progress=job.on_progress, cancel=job.cancel
        ),
        resources=JobResources(("500m", "2"), ("512Mi", "2Gi"), "6Gi", "7Gi", 600, 0.5),
        needs_audio=True,
        measurements=AudioMeasurements,
        outputs=(
            OutputKind(ProxyType.WAVEFORM, "strip", "Waveform"),
            OutputKind(ProxyType.SPECTROGRAM, "strip", "Spectrogram", "time across, frequency up"),
            OutputKind(ProxyType.WAVEFORM_PEAKS, "json", "Waveform peaks"),
            OutputKind(ProxyType.AUDIO, "audio", "Audio proxy"),
        ),
    ),
    # Last, so a worker takes it after the proxies: it never stands between an upload and first playable.
    StageSpec(
        stage=Stage("transcript"),
        job_type=IngestionJobType("TRANSCRIPTION"),
        label="Transcribing speech",
        media=frozenset({MediaType.VIDEO, MediaType.AUDIO}),
        run=lambda job: generate_transcript(
            job.source, job.metadata, job.out_dir, options=job.options, on_progress=job.on_progress, cancel=job.cancel
        ),
        # The packaged tiny.en needs ~0.1 CPU-s per media second and 300 MiB with an hour's samples; the
        # memory cap and the deadline leave room for a larger TRANSCRIBE_MODEL (large-v3 in int8: ~2 GiB,
        # about real time on 2 cores).
        resources=JobResources(("1", "2"), ("1Gi", "3Gi"), "6Gi", "7Gi", 900, 2.0, memory_cap="12Gi"),
        needs_audio=True,
        turned_off=lambda settings: settings.transcribe is False,
        measurements=TranscriptMeasurements,
        outputs=(
            OutputKind(ProxyType.TRANSCRIPT, "json", "Transcript"),
            OutputKind(ProxyType.CAPTIONS, "vtt", "Captions"),
            OutputKind(ProxyType.TRANSCRIPT_TEXT, "text", "Transcript text"),
        ),
    ),
)


_registered: dict[Stage, StageSpec] = {}  # in plan order: the built-in stages, then loaded modules


def register(spec: StageSpec) -> StageSpec:
    """Adds a stage to every plan from now on (in this process). Registering the same spec again is a
    no-op, so a module imported twice is harmless; another spec under a taken name or job type is not."""
    if _registered.get(spec.stage) is spec:
        return spec
    _check_names(spec)
    if spec.measurements is not None:
        _check_measurements(spec.stage, spec.measurements)
    _check_output_kinds(spec)
    _check_fits_registered(spec)
    _registered[spec.stage] = spec
    return spec


def _check_names(spec: StageSpec) -> None:
    if not _STAGE_NAME.match(spec.stage):
        raise ValueError(f"stage name {spec.stage!r}: lower-case letters, digits and _, at most 32")
    if not _JOB_TYPE_NAME.match(spec.job_type):
        raise ValueError(f"job type {spec.job_type!r}: upper-case letters, digits and _, at most 32")
    if not spec.media:
        raise ValueError(f"stage {spec.stage!r} applies to no media type")


def _check_measurements(stage: Stage, model: type[Measurements]) -> None:
    """What the stage says it measures can be stored and read back."""
    fields = model.model_fields
    if unknown := model.columns - fields.keys():
        raise ValueError(f"stage {stage!r}: columns {sorted(unknown)} are not fields of its measurements")
    if required := sorted(name for name, info in fields.items() if info.exclude and info.is_required()):
        raise ValueError(f"stage {stage!r}: unsent measurements {required} need a default")


def _check_output_kinds(spec: StageSpec) -> None:
    """Each kind of file the stage writes fills AssetProxy.type, once."""
    kinds = [output.kind for output in spec.outputs]
    if bad := [kind for kind in kinds if not _OUTPUT_KIND_NAME.match(kind)]:
        raise ValueError(f"output kinds {bad}: upper-case letters, digits and _, at most 32")
    if len(set(kinds)) < len(kinds):
        raise ValueError(f"stage {spec.stage!r} declares an output kind twice: {kinds}")


def _check_fits_registered(spec: StageSpec) -> None:
    """No name, job type, output kind or role another stage already has; the stage that describes the
    source first."""
    for other in _registered.values():
        _check_no_clash(spec, other)
    if not _registered and spec.role != StageRole.DESCRIBES_SOURCE:
        raise ValueError("the probe is registered first: every other stage reads its metadata")


def _check_no_clash(spec: StageSpec, other: StageSpec) -> None:
    if spec.stage == other.stage or spec.job_type == other.job_type:
        raise ValueError(f"stage {spec.stage!r} ({spec.job_type}) clashes with the registered {other.stage!r}")
    if taken := spec.output_kind_names & other.output_kind_names:
        raise ValueError(f"stage {spec.stage!r} declares {sorted(taken)}, written by {other.stage!r}")
    if spec.role is not None and spec.role == other.role:
        raise ValueError(f"stage {spec.stage!r} has the role {spec.role}, which {other.stage!r} has")


def load_stage_modules(modules: Iterable[str]) -> None:
    """Imports each module, which registers its stages (the `STAGE_MODULES` setting). Idempotent."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"STAGE_MODULES names {name!r}, which cannot be imported: {exc}") from exc


def stages() -> tuple[StageSpec, ...]:
    return tuple(_registered.values())


def stage_names() -> list[Stage]:
    return list(_registered)


def spec_for(stage: str) -> StageSpec:
    try:
        return _registered[Stage(stage)]
    except KeyError:
        raise UnknownStageError(f"unknown stage {stage!r}; one of {stage_names()}") from None


def stage_named(name: str) -> Stage:
    """The registered stage called `name`, for names from outside: a CLI flag, a CRD, a task, a token."""
    return spec_for(name).stage


def stage_with_role(role: StageRole) -> Stage:
    """The one stage that plays `role` for the core."""
    for spec in _registered.values():
        if spec.role == role:
            return spec.stage
    raise UnknownStageError(f"no stage has the role {role}")


def stage_for_job_type(job_type: str) -> Stage:
    for spec in _registered.values():
        if spec.job_type == job_type:
            return spec.stage
    raise UnknownStageError(f"no stage makes {job_type!r} jobs")


def job_type_for(stage: str) -> IngestionJobType:
    return spec_for(stage).job_type


def output_kinds() -> dict[str, OutputKind]:
    """Every registered output kind by its name, in plan order."""
    return {output.kind: output for spec in _registered.values() for output in spec.outputs}


def measured_by() -> dict[str, type[Measurements]]:
    """The stages that declare measurements, with their models, in plan order."""
    return {spec.stage: spec.measurements for spec in _registered.values() if spec.measurements is not None}


def label_for(job_type: str) -> str:
    return next((spec.label for spec in _registered.values() if spec.job_type == job_type), job_type)


for _spec in BUILT_IN:
    register(_spec)
