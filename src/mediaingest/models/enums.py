"""Enumerations shared by the database models, the API schemas, the pipeline and the operator.

String values are stored as-is in the database (non-native enums), so adding a member needs no
schema migration, only code.

One status vocabulary per idea, each mapped to another spelling at one boundary only:

    TaskStatus (models.task)   a queued unit of work, the runners' word: QUEUED, RUNNING, SUCCEEDED, …;
                               also how one attempt ended (`worker.isolation.AttemptReport.ended`)
    IngestionJobStatus         a stage of an asset as users see it (the seed's wire values): its task's
                               status, read through `models.job.job_status` (COMPLETED, RETRYING)
    WebhookDeliveryStatus      a delivery as users see it: its task's status, read through `models.webhook`
    AssetProcessingStatus      an asset's processing, set by `assets.lifecycle` and `worker.progression`
    KubeJobState (operator)    a Kubernetes Job as observed, never stored

The MediaAsset's phases (Pending, Running, Ready, Succeeded, …) are Kubernetes' spelling of those two
words, mapped in `operator.projection` alone. "Job" alone means an IngestionJob row; a Kubernetes
Job is a "Kube Job" or a "stage Job", and a row on the queue is a task.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType


class IdentitySource(StrEnum):
    """Who vouches for a user: our own API tokens, or the main product's JWTs. Never both: a JWT whose
    subject names a token user is refused, so neither kind of credential can act as the other's user."""

    API_TOKEN = "API_TOKEN"  # noqa: S105  (a label, not a secret)
    JWT = "JWT"


class Plan(StrEnum):
    USER = "USER"
    PRO = "PRO"
    ENTERPRISE = "ENTERPRISE"


class MediaType(StrEnum):
    VIDEO = "VIDEO"
    AUDIO = "AUDIO"
    IMAGE = "IMAGE"


class UploadStatus(StrEnum):
    PENDING = "PENDING"  # URL issued, bytes not confirmed yet; its size is reserved against the quota
    UPLOADING = "UPLOADING"  # confirmation in progress (integrity checks running)
    UPLOADED = "UPLOADED"  # bytes verified and stored
    FAILED = "FAILED"  # a check failed; the object was deleted and the reservation released
    EXPIRED = "EXPIRED"  # abandoned: never confirmed before the URL expired; swept


class AssetProcessingStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


class ProxyType(StrEnum):
    """The built-in stages' output kinds, by name. Kinds are open: AssetProxy.type is a string checked against
    the kinds the registered stages declare (`StageSpec.outputs`), so a stage adds one without this enum."""

    VIDEO = "VIDEO"  # H.264/AAC MP4 rendition for the web
    VIDEO_VP9 = "VIDEO_VP9"  # optional VP9/Opus WebM rendition
    HLS = "HLS"  # CMAF HLS master playlist over the H.264 rungs (media playlists and segments beside it)
    AUDIO = "AUDIO"  # one audio track as AAC in MP4 (.m4a), at the track's own channel layout
    POSTER = "POSTER"  # one representative frame (JPEG)
    THUMBNAIL = "THUMBNAIL"  # a still image's downscaled copy (JPEG or WebP)
    SPRITE_SHEET = "SPRITE_SHEET"  # a grid of tiles sampled every N seconds
    STORYBOARD = "STORYBOARD"  # WebVTT mapping time ranges to sprite tiles
    WAVEFORM = "WAVEFORM"  # PNG
    WAVEFORM_PEAKS = "WAVEFORM_PEAKS"  # JSON min/max per bucket at several zoom levels
    SPECTROGRAM = "SPECTROGRAM"  # PNG
    TRANSCRIPT = "TRANSCRIPT"  # JSON: language, segments, words with start, end and probability
    CAPTIONS = "CAPTIONS"  # WebVTT captions made from the transcript
    TRANSCRIPT_TEXT = "TRANSCRIPT_TEXT"  # the transcript as plain text


class IngestionJobStatus(StrEnum):
    PENDING = "PENDING"  # waiting for a worker
    RUNNING = "RUNNING"  # leased by a worker (or a Kubernetes Job is running it)
    RETRYING = "RETRYING"  # a transient failure; waiting out its backoff before the next attempt
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # permanent failure, or retries exhausted
    CANCELLED = "CANCELLED"  # the asset was deleted while the job existed


class JobPriority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"

    @property
    def rank(self) -> int:
        """Higher runs first; stored next to the enum so the lease query can ORDER BY an integer."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {JobPriority.LOW: 0, JobPriority.NORMAL: 1, JobPriority.HIGH: 2, JobPriority.URGENT: 3}


# Stages are open: the registry (pipeline/registry.py) holds them, and a stage module adds one by
# registering its StageSpec. So a stage and its IngestionJob type are names, checked against the
# registry where they arrive from outside (`registry.stage_named`), not closed enums.
Stage = NewType("Stage", str)  # "probe", "proxies", …: a task's payload, a Job's label, the CRD's list
IngestionJobType = NewType("IngestionJobType", str)  # the seed's name for a stage's IngestionJob
