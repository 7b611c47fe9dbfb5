"""The MediaAsset as a projection of the database: what `kubectl get mediaassets` shows, written by the
operator alone, decided by nothing but the rows `progression` keeps.

    build_media_asset   the manifest created for a confirmed upload (pure)
    asset_status        the status an asset's rows say it has (pure): the one mapping of the database's
                        words (PROCESSING, COMPLETED, …) to Kubernetes' (Running, Succeeded, …)
    Projector           keeps the unfinished MediaAssets current, labels and then deletes finished ones

etcd stays small: a MediaAsset that reaches Ready or Failed is labelled `mediaingest.io/finished=true`,
which drops it from the operator's watch (its selector leaves finished ones out on the server), and it
is deleted `retention_seconds` later (at once with 0). Writes are few: a status patch at once when the
phase changes, and for anything else (the stages running, progress, a retry) only when it changed and at
most every `progress_interval_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from mediaingest.config import Settings
from mediaingest.db import SessionFactory
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus
from mediaingest.operator import metrics, naming
from mediaingest.operator.kube import KubeApi, KubeApiError
from mediaingest.operator.model import lookup
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import stage_for_job_type

log = structlog.stdlib.get_logger(__name__)

PHASES = {
    AssetProcessingStatus.PENDING: "Pending",
    AssetProcessingStatus.PROCESSING: "Running",
    AssetProcessingStatus.READY: "Ready",
    AssetProcessingStatus.FAILED: "Failed",
}
STAGE_PHASES = {
    IngestionJobStatus.PENDING: "Pending",
    IngestionJobStatus.RUNNING: "Running",
    IngestionJobStatus.RETRYING: "Retrying",
    IngestionJobStatus.COMPLETED: "Succeeded",
    IngestionJobStatus.FAILED: "Failed",
    IngestionJobStatus.CANCELLED: "Cancelled",
}
FINISHED_PHASES = ("Ready", "Failed")
MESSAGE_LIMIT = 2048  # the CRD's maxLength for a stage message


def format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _truncate(text: str | None, limit: int = MESSAGE_LIMIT) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def build_media_asset(asset: MediaAsset, *, namespace: str, release: str | None, settings: Settings) -> dict[str, Any]:
    """The MediaAsset of a confirmed upload. Its spec is what was uploaded and the plan as it stood at
    confirmation (without the stages `settings` turn off); the probe may drop a stage (a silent video has
    no audio visuals): status.stages tells."""
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {
            "name": naming.asset_resource_name(asset.id),
            "namespace": namespace,
            "labels": {
                naming.LABEL_NAME: "mediaingest",
                naming.LABEL_COMPONENT: "media-asset",
                naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
                naming.LABEL_ASSET_ID: naming.label_value(asset.id),
                naming.LABEL_TENANT: naming.label_value(asset.owner_id),
                naming.LABEL_MEDIA_TYPE: asset.type.value,
                **({naming.LABEL_RELEASE: naming.label_value(release)} if release else {}),
            },
            "annotations": {naming.ANNOTATION_OWNER: asset.owner_id},
        },
        "spec": {
            "assetId": asset.id,
            "owner": asset.owner_id,
            "mediaType": asset.type.value,
            "source": {"bucket": asset.storage_bucket, "key": asset.storage_key},
            "size": asset.file_size,
            "priority": asset.priority.value,
            "stages": list(stages_for(asset.type, settings=settings)),
        },
    }


@dataclass(frozen=True)
class JobView:
    stage: str
    status: IngestionJobStatus
    attempts: int
    progress: float
    message: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class AssetView:
    """What the database says of one asset, as much as its MediaAsset shows."""

    asset_id: str
    status: AssetProcessingStatus
    error: str | None
    uploaded_at: datetime | None
    processed_at: datetime | None
    jobs: tuple[JobView, ...]


def load_views(session: sa.orm.Session, asset_ids: Sequence[str]) -> dict[str, AssetView]:
    """Two queries for any number of assets: the assets, then their jobs."""
    if not asset_ids:
        return {}
    columns = (MediaAsset.id, MediaAsset.processing_status, MediaAsset.error, MediaAsset.uploaded_at)
    assets = session.execute(sa.select(*columns, MediaAsset.processed_at).where(MediaAsset.id.in_(asset_ids))).all()
    jobs: dict[str, list[JobView]] = {row.id: [] for row in assets}
    for job in session.scalars(sa.select(IngestionJob).where(IngestionJob.asset_id.in_(list(jobs)))):
        jobs[job.asset_id].append(_job_view(job))
    return {
        row.id: AssetView(
            row.id, row.processing_status, row.error, row.uploaded_at, row.processed_at, tuple(jobs[row.id])
        )
        for row in assets
    }


def _job_view(job: IngestionJob) -> JobView:
    try:
        stage: str = stage_for_job_type(job.type)
    except ValueError:
        stage = job.type.lower()
    return JobView(
        stage, job.status, job.attempts, job.progress or 0.0, job.message, job.error, job.started_at, job.finished_at
    )


def asset_status(view: AssetView) -> dict[str, Any]:
    """The MediaAsset status the rows say: the whole of it (a merge patch is made against the old one)."""
    phase = PHASES[view.status]
    started = _started_at(view)
    finished = _finished_at(view, phase, started)
    message = _message(view, phase)
    return _present(
        {
            "phase": phase,
            "stage": _current_stage(view, phase)[:128],
            "progress": 100 if phase == "Ready" else _mean_progress(view.jobs),
            "stages": {job.stage: _stage_status(job) for job in view.jobs},
            "conditions": [_ready_condition(phase, message, finished or started or view.uploaded_at)],
            "message": _truncate(message, 4096),
            "startedAt": format_time(started),
            "finishedAt": format_time(finished),
            "tookSeconds": _took_seconds(started, finished),
        }
    )


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that have a value: a status leaves the others out."""
    return {name: value for name, value in fields.items() if value is not None}


def _jobs_in(view: AssetView, *statuses: IngestionJobStatus) -> list[JobView]:
    return [job for job in view.jobs if job.status in statuses]


def _current_stage(view: AssetView, phase: str) -> str:
    """The failed stage of a failed asset, else the stages running or waiting out a retry."""
    failed = _jobs_in(view, IngestionJobStatus.FAILED)
    if phase == "Failed" and failed:
        return failed[0].stage
    active = _jobs_in(view, IngestionJobStatus.RUNNING, IngestionJobStatus.RETRYING)
    return ",".join(sorted(job.stage for job in active))


def _mean_progress(jobs: Sequence[JobView]) -> int:
    """The stages' mean progress, 0 to 100 (0 without any)."""
    return max(0, min(100, int(sum(job.progress for job in jobs) / len(jobs)))) if jobs else 0


def _started_at(view: AssetView) -> datetime | None:
    """When its first stage started."""
    return min((job.started_at for job in view.jobs if job.started_at), default=None)


def _finished_at(view: AssetView, phase: str, started: datetime | None) -> datetime | None:
    """When the asset finished (only once it has): processed, else its last stage's end, else its start."""
    if phase not in FINISHED_PHASES:
        return None
    last_job_end = max((job.finished_at for job in view.jobs if job.finished_at), default=None)
    return view.processed_at or last_job_end or started


def _took_seconds(started: datetime | None, finished: datetime | None) -> int | None:
    return max(0, int((finished - started).total_seconds())) if finished and started else None


def _message(view: AssetView, phase: str) -> str | None:
    if phase == "Ready":
        return "ready"
    if phase == "Failed" and view.error:
        return view.error
    running = (job.message for job in _jobs_in(view, IngestionJobStatus.RUNNING) if job.message)
    return next(running, None)


_ENDED = (IngestionJobStatus.COMPLETED, IngestionJobStatus.FAILED)
_FAILING = (IngestionJobStatus.FAILED, IngestionJobStatus.RETRYING)


def _stage_status(job: JobView) -> dict[str, Any]:
    return _present(
        {
            "phase": STAGE_PHASES[job.status],
            "attempts": job.attempts,
            "startedAt": format_time(job.started_at),
            "finishedAt": format_time(job.finished_at) if job.status in _ENDED else None,
            "message": _truncate(job.error) if job.status in _FAILING and job.error else None,
        }
    )


def _ready_condition(phase: str, message: str | None, since: datetime | None) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": {"Ready": "True", "Failed": "False"}.get(phase, "Unknown"),
        "reason": {"Ready": "Ingested", "Failed": "StageFailed"}.get(phase, phase),
        "message": _truncate(message or phase.lower(), 1024),
        "lastTransitionTime": format_time(since) or format_time(datetime.now(UTC)),
    }


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into `new` (None deletes a key)."""
    patch: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        change = _change(old.get(key, _ABSENT), value)
        if change is not _UNCHANGED:
            patch[key] = change
    return patch


_ABSENT = object()  # a key `old` does not have
_UNCHANGED = object()  # a key the patch leaves out


def _change(before: Any, value: Any) -> Any:
    """What the merge patch says of one key: its new value, the patch of a nested object, or _UNCHANGED."""
    if isinstance(value, Mapping) and isinstance(before, Mapping):
        return merge_patch(before, value) or _UNCHANGED
    return _UNCHANGED if value == before else value


@dataclass(frozen=True)
class LiveAsset:
    """An unfinished MediaAsset as the watch last showed it (kopf's index: asset id → this)."""

    name: str
    namespace: str
    status: Mapping[str, Any]


def index_live_assets(
    name: str, namespace: str | None, spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any
) -> dict[str, LiveAsset]:
    asset_id = spec.get("assetId")
    if not isinstance(asset_id, str) or namespace is None or status.get("phase") in FINISHED_PHASES:
        return {}
    return {asset_id: LiveAsset(name=name, namespace=namespace, status=dict(status))}


def _live_by_asset(live: Mapping[str, Any]) -> dict[str, LiveAsset]:
    """The unfinished MediaAssets by asset id, as the watch last showed them (kopf's index holds a
    collection for each key)."""
    return {asset_id: next(iter(items)) for asset_id, items in list(live.items()) if items}


@dataclass
class Projector:
    settings: OperatorSettings
    kube: KubeApi
    session_factory: SessionFactory
    _written: dict[str, float] = field(default_factory=dict)  # asset id → when its status was last patched
    _last_sweep: float = 0.0

    async def project(self, live: Mapping[str, Any]) -> int:
        """Brings every unfinished MediaAsset up to date; returns how many were written."""
        current = _live_by_asset(live)
        if not current:
            self._written.clear()
            return 0

        def read() -> dict[str, AssetView]:
            with self.session_factory() as session:
                return load_views(session, list(current))

        views = await asyncio.to_thread(read)
        written = 0
        now = time.monotonic()
        for asset_id, asset in current.items():
            try:
                written += await self._project_one(asset_id, asset, views.get(asset_id), now)
            except KubeApiError as exc:  # the next round tries again
                log.warning("operator.projection_failed", asset=asset.name, status=exc.status)
        for gone in set(self._written) - set(current):
            del self._written[gone]
        return written

    async def _project_one(self, asset_id: str, asset: LiveAsset, view: AssetView | None, now: float) -> int:
        """Writes the asset's MediaAsset if its rows say something new; returns how many writes it made."""
        if view is None:  # deleted through the API: its record goes too
            if await self.kube.delete_media_asset(asset.namespace, asset.name):
                log.info("operator.media_asset_deleted", asset=asset.name, reason="asset deleted")
            return 1
        status = asset_status(view)
        patch = merge_patch(asset.status, status)
        if not patch or self._held_back(asset_id, asset.status.get("phase"), status["phase"], now):
            return 0
        if status["phase"] in FINISHED_PHASES:
            return await self._finish(asset_id, asset, patch, status["phase"], now)
        return int(await self._write(asset_id, asset, patch, now))

    def _held_back(self, asset_id: str, old_phase: str | None, phase: str, now: float) -> bool:
        """A new phase is written at once (Running, Ready, Failed: what people and `kubectl wait` watch for);
        anything else — the stages running, progress, a retry — at most every progress interval."""
        return old_phase == phase and now - self._written.get(asset_id, 0.0) < self.settings.progress_interval_seconds

    async def _finish(self, asset_id: str, asset: LiveAsset, patch: Mapping[str, Any], phase: str, now: float) -> int:
        """A Ready or Failed MediaAsset: deleted at once without a retention, else written and taken out of the
        watch (its selector leaves finished ones out) until the sweep deletes it."""
        if not self.settings.retention_seconds:
            await self.kube.delete_media_asset(asset.namespace, asset.name)
            return 1
        if not await self._write(asset_id, asset, patch, now):
            return 0
        await self.kube.label_media_asset(asset.namespace, asset.name, {naming.LABEL_FINISHED: "true"})
        log.info("operator.asset_finished", asset=asset.name, phase=phase)
        return 2

    async def _write(self, asset_id: str, asset: LiveAsset, patch: Mapping[str, Any], now: float) -> bool:
        """Patches the MediaAsset's status; False when it is gone."""
        if not await self.kube.patch_media_asset_status(asset.namespace, asset.name, patch):
            return False
        self._written[asset_id] = now
        return True

    async def sweep(self, *, now: datetime | None = None) -> int:
        """Deletes the finished MediaAssets older than the retention, a page at a time; returns how many."""
        if not self.settings.retention_seconds:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.settings.retention_seconds)
        deleted = 0
        async for item in self._finished_assets():
            if _finished_by(item, cutoff):
                name = item["metadata"]["name"]
                if await self.kube.delete_media_asset(self.settings.namespace, name):
                    deleted += 1
                    metrics.assets_expired_total.inc()
        if deleted:
            log.info("operator.assets_expired", count=deleted)
        return deleted

    async def _finished_assets(self) -> AsyncIterator[dict[str, Any]]:
        """The release's finished MediaAssets, listed a page at a time."""
        selector, chunk = finished_selector(self.settings), self.settings.list_chunk_size
        async for page in self.kube.media_asset_pages(self.settings.namespace, label_selector=selector, limit=chunk):
            for item in page:
                yield item

    def sweep_due(self) -> bool:
        every = max(10.0, min(300.0, self.settings.retention_seconds / 4))
        if time.monotonic() - self._last_sweep < every:
            return False
        self._last_sweep = time.monotonic()
        return True


def _finished_by(item: Mapping[str, Any], cutoff: datetime) -> bool:
    """Whether the MediaAsset finished at or before `cutoff`."""
    stamp = lookup(item, "status", "finishedAt")
    return bool(stamp) and parse_time(stamp) <= cutoff


def _release_selector(settings: OperatorSettings) -> list[str]:
    selector = [f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"]
    if settings.release:
        selector.append(f"{naming.LABEL_RELEASE}={naming.label_value(settings.release)}")
    return selector


def live_selector(settings: OperatorSettings) -> str:
    """The MediaAssets the operator watches: its release's, not finished (filtered by the API server)."""
    return ",".join([*_release_selector(settings), f"{naming.LABEL_FINISHED}!=true"])


def finished_selector(settings: OperatorSettings) -> str:
    return ",".join([*_release_selector(settings), f"{naming.LABEL_FINISHED}=true"])


def jobs_selector(settings: OperatorSettings) -> str:
    """The Jobs the operator watches: its release's stage Jobs."""
    return ",".join([*_release_selector(settings), f"{naming.LABEL_COMPONENT}=stage-job"])
