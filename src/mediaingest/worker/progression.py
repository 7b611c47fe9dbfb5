"""What an asset's state becomes when one of its stages starts, succeeds or fails: the one owner of
the IngestionJob rows and of the asset's processing status, for every executor.

A runner starts an attempt (`stage_started`: a worker's thread, or the operator as it creates the
attempt's Job); the stage itself records how it ended (`stage_succeeded`/`stage_failed`: a worker's stage
process, or the API for a stage pod's report), which also enqueues what follows the probe and decides
READY or FAILED; a runner that saw an attempt end without a word from it says so
(`attempt_unrecorded`: a lost worker, a pod killed for memory, a Job that vanished).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from mediaingest import metrics
from mediaingest.assets.lifecycle import mark_failed, mark_ready
from mediaingest.config import Settings
from mediaingest.db import utcnow
from mediaingest.models import AssetProxy, IngestionJob, MediaAsset
from mediaingest.models.enums import (
    AssetProcessingStatus,
    IngestionJobStatus,
    ProxyType,
    Stage,
)
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import PROBE, job_type_for
from mediaingest.pipeline.types import MediaMetadata
from mediaingest.retry import RetryDecision
from mediaingest.tasks import queue
from mediaingest.worker.jobs import MAX_LOG_ENTRIES, JobHandle, log_entry
from mediaingest.worker.queue import enqueue_stage

log = structlog.stdlib.get_logger(__name__)

_VIDEO_KINDS = (ProxyType.VIDEO, ProxyType.VIDEO_VP9)
FINISHED_STATUSES = (IngestionJobStatus.COMPLETED, IngestionJobStatus.FAILED, IngestionJobStatus.CANCELLED)


def metadata_of(asset: MediaAsset) -> MediaMetadata | None:
    row = asset.metadata_record
    if row is None:
        return None
    return MediaMetadata.from_dict({attr.key: getattr(row, attr.key) for attr in sa.inspect(row).mapper.column_attrs})


def plan_for(asset: MediaAsset) -> list[Stage]:
    return stages_for(asset.type, metadata_of(asset))


def stage_started(session: Session, *, job: IngestionJob, worker_id: str, attempt: int, message: str = "") -> JobHandle:
    """A runner took the stage's task: the row shows the attempt and is fenced by the runner's id."""
    now = utcnow()
    job.status = IngestionJobStatus.RUNNING
    job.attempts = attempt
    job.lease_owner = worker_id
    job.heartbeat_at = now
    job.started_at = job.started_at or now
    job.finished_at = None
    job.progress = 0.0
    job.error = None
    job.message = message or f"attempt {attempt} running"
    job.logs = [*(job.logs or []), log_entry("job.started", attempt=attempt, runner=worker_id)][-MAX_LOG_ENTRIES:]
    asset = session.get(MediaAsset, job.asset_id)
    if asset is not None:
        mark_processing(session, asset)
    session.flush()
    return JobHandle(job_id=job.id, lease_owner=worker_id, attempt=attempt)


def attempt_unrecorded(session: Session, *, job: IngestionJob, stage: Stage, failed: bool, cause: str) -> None:
    """An attempt ended without its stage recording how: its runner was lost (the task was reaped), or it
    failed before the stage ran (a stage this worker does not know). Retried (the task is queued again),
    or out of attempts: the job and its asset fail, saying why."""
    if job.status in FINISHED_STATUSES:
        return
    now = utcnow()
    job.lease_owner = None
    job.lease_expires_at = None
    if failed:
        error = f"{cause} (no attempts left)"
        job.status, job.finished_at, job.error, job.message = (
            IngestionJobStatus.FAILED,
            now,
            error[:4000],
            f"failed: {cause[:200]}",
        )
        asset = session.get(MediaAsset, job.asset_id)
        if asset is not None:
            fail_asset(session, asset, stage=stage, error=error)
    else:
        job.status, job.retries, job.error, job.message = (
            IngestionJobStatus.RETRYING,
            (job.retries or 0) + 1,
            cause[:4000],
            f"{cause[:200]}; retrying",
        )
    entry = log_entry("job.attempt_unrecorded", attempt=job.attempts, failed=failed, cause=cause[:1000])
    job.logs = [*(job.logs or []), entry][-MAX_LOG_ENTRIES:]
    session.flush()


def record_playable(session: Session, *, asset_id: str, seconds: float) -> None:
    """More of the asset plays over HLS; the figure only grows (a retried pass starts again from 0 s, while
    the segments the last attempt published stay valid)."""
    session.execute(
        sa.update(MediaAsset)
        .where(
            MediaAsset.id == asset_id,
            sa.or_(MediaAsset.playable_seconds.is_(None), MediaAsset.playable_seconds < seconds),
        )
        .values(playable_seconds=seconds)
    )


def mark_processing(session: Session, asset: MediaAsset) -> None:
    if asset.processing_status == AssetProcessingStatus.PENDING:
        asset.processing_status = AssetProcessingStatus.PROCESSING


def stage_succeeded(
    session: Session, *, asset: MediaAsset, stage: Stage, handle: JobHandle, message: str, enqueue_next: bool,
    settings: Settings,
) -> bool:  # fmt: skip
    """Completes the job (and its task, when the attempt reports for itself); enqueues what follows the
    probe; READY when all are done.

    Returns False when the job was no longer ours to complete (the caller then discards its work).
    """
    now = utcnow()
    completed = handle.update(
        session,
        status=IngestionJobStatus.COMPLETED,
        progress=100.0,
        message=message or "completed",
        finished_at=now,
        lease_owner=None,
        lease_expires_at=None,
        error=None,
    )
    if not completed:
        return False
    if handle.task_id is not None and not queue.succeed(
        session, task_id=handle.task_id, attempt=handle.attempt, now=now
    ):
        return False  # the task moved on (cancelled, reaped): this attempt is no longer current
    handle.append_log(session, log_entry("job.completed", attempt=handle.attempt, message=message))
    session.refresh(asset)
    if stage == PROBE and enqueue_next:
        for next_stage in plan_for(asset)[1:]:
            enqueue_stage(session, asset=asset, stage=next_stage, settings=settings)
    session.flush()
    _ready_if_complete(session, asset)
    return True


def _ready_if_complete(session: Session, asset: MediaAsset) -> None:
    plan = plan_for(asset)
    done = set(
        session.scalars(
            sa.select(IngestionJob.type).where(
                IngestionJob.asset_id == asset.id, IngestionJob.status == IngestionJobStatus.COMPLETED
            )
        )
    )
    if not all(job_type_for(stage) in done for stage in plan):
        return
    if asset.checksum is None:  # never READY before the bytes are known to be the ones uploaded
        return
    mark_ready(session, asset)
    metrics.assets_finished_total.labels(status="READY").inc()
    proxies = session.scalars(sa.select(AssetProxy.type).where(AssetProxy.asset_id == asset.id)).all()
    took = (asset.processed_at - asset.uploaded_at) if asset.processed_at and asset.uploaded_at else timedelta()
    # One style in every log line: snake_case keys, a dotted event name, units in the names (the API's
    # camelCase is the wire's, not the logs'). The seed's completion event, in that style.
    log.info(
        "asset.ingestion_completed",
        asset_id=asset.id,
        user_id=asset.owner_id,
        duration_seconds=round(took.total_seconds(), 3),
        video_proxies=sum(1 for kind in proxies if kind in _VIDEO_KINDS),
        outputs=len(proxies),
        metadata_extracted=asset.metadata_record is not None,
    )


def stage_failed(
    session: Session,
    *,
    asset: MediaAsset | None,
    stage: Stage,
    handle: JobHandle,
    error: str,
    decision: RetryDecision,
) -> None:
    """Either schedules the retry (RETRYING, available after the backoff) or fails job and asset."""
    now = utcnow()
    if decision.retry:
        updated = handle.update(
            session,
            status=IngestionJobStatus.RETRYING,
            retries=IngestionJob.retries + 1,
            available_at=now + timedelta(seconds=decision.delay_seconds),
            lease_owner=None,
            lease_expires_at=None,
            error=error[:4000],
            message=f"attempt {handle.attempt} failed; retrying in {decision.delay_seconds:.0f} s",
        )
    else:
        updated = handle.update(
            session,
            status=IngestionJobStatus.FAILED,
            finished_at=now,
            lease_owner=None,
            lease_expires_at=None,
            error=error[:4000],
            message=f"failed: {error[:200]}",
        )
    if not updated:
        return
    if handle.task_id is not None:
        queue.fail(session, task_id=handle.task_id, attempt=handle.attempt, decision=decision, error=error, now=now)
    handle.append_log(
        session,
        log_entry(
            "job.attempt_failed",
            attempt=handle.attempt,
            error=error[:1000],
            retry=decision.retry,
            delay_seconds=round(decision.delay_seconds, 2),
            reason=decision.reason,
        ),
    )
    if not decision.retry and asset is not None:
        fail_asset(session, asset, stage=stage, error=error)


def fail_asset(session: Session, asset: MediaAsset, *, stage: Stage, error: str) -> None:
    mark_failed(session, asset, reason=f"{stage} stage failed: {error}")
    metrics.assets_finished_total.labels(status="FAILED").inc()
