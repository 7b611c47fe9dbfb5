"""What an asset's state becomes when one of its stages starts, succeeds or fails: the one owner of the
IngestionJob rows and of the asset's processing status, for every executor.

A runner starts an attempt (`stage_started`: a worker's thread, or the operator as it creates the
attempt's Job). The stage records its result (`stage_succeeded`: a worker's stage process, or the API
for a stage pod's report), which finishes its task in the same transaction, enqueues what follows the
probe and decides READY. A failure is decided once, by whoever runs the attempt, with the stage retry
policy (`TaskSpec.fail`); `stage_attempt_failed` is what users see of it, and FAILED when it was the last.

The job's status, attempts and error are its task's (`models.job`): nothing here writes them twice.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from mediaingest import metrics
from mediaingest.assets import repository
from mediaingest.assets.lifecycle import mark_failed, mark_ready
from mediaingest.assets.metadata import metadata_of
from mediaingest.config import Settings
from mediaingest.db import utcnow
from mediaingest.dispatch import enqueue_stage
from mediaingest.models import AssetProxy, IngestionJob, MediaAsset, Task, TaskStatus
from mediaingest.models.enums import AssetProcessingStatus, ProxyType, Stage
from mediaingest.models.job import log_entry
from mediaingest.pipeline.plan import stages_for
from mediaingest.pipeline.registry import StageRole, job_type_for, stage_with_role
from mediaingest.retry import RetryDecision
from mediaingest.tasks import queue
from mediaingest.worker.jobs import IngestionJobHandle

log = structlog.stdlib.get_logger(__name__)

_VIDEO_KINDS = (ProxyType.VIDEO, ProxyType.VIDEO_VP9)


def plan_for(asset: MediaAsset, settings: Settings) -> list[Stage]:
    return stages_for(asset.type, metadata_of(asset), settings)


def stage_started(
    session: Session, *, job: IngestionJob, attempt: int, worker_id: str | None = None, message: str = ""
) -> IngestionJobHandle:
    """A runner holds the stage's task at `attempt`: the row shows it. The handle is fenced by the runner
    (`worker_id`), or by the attempt's number when the attempt reports for itself (a stage pod)."""
    job.started_at = job.started_at or utcnow()
    job.progress = 0.0
    job.message = message or f"attempt {attempt} running"
    job.append_log(log_entry("job.started", attempt=attempt, **({"runner": worker_id} if worker_id else {})))
    asset = session.get(MediaAsset, job.asset_id)
    if asset is not None:
        mark_processing(session, asset)
    session.flush()
    return IngestionJobHandle(job_id=job.id, task_id=job.task_id, attempt=attempt, worker_id=worker_id)


def stage_attempt_failed(session: Session, task: Task, error: str, decision: RetryDecision) -> None:
    """Its runner has failed the stage's task (retried, or failed for good): what users see of it, and the
    asset FAILED when no attempt is left. Every way an attempt fails ends here: the stage's error, a stage
    process or pod that died without a word, a lost runner."""
    job = session.scalar(sa.select(IngestionJob).where(IngestionJob.task_id == task.id))
    if job is None:  # the asset was deleted: its rows went with it
        return
    job.append_log(log_entry("job.attempt_failed", attempt=task.attempts, error=error[:1000], retry=decision.retry,
                             delay_seconds=round(decision.delay_seconds, 2), reason=decision.reason))  # fmt: skip
    if decision.retry:
        job.message = f"attempt {task.attempts} failed; retrying in {decision.delay_seconds:.0f} s"
    else:
        job.message = f"failed: {error[:200]}"
        # Locked: a still's probe and thumbnails can fail at once, and the first to fail names the reason.
        asset = repository.get_for_update(session, job.asset_id)
        if asset is not None:
            fail_asset(session, asset, stage=Stage(task.payload.get("stage", job.type.lower())), error=error)
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
    session: Session, *, asset: MediaAsset, stage: Stage, handle: IngestionJobHandle, message: str,
    settings: Settings,
) -> bool:  # fmt: skip
    """Completes the stage's task (fenced by its attempt's handle) and its job; once the source is
    described, queues the rest of the plan; READY when all are done.

    Returns False when the attempt was no longer current (the caller then discards its work).
    """
    if not queue.succeed(session, task_id=handle.task_id, now=utcnow(), **handle.fence):
        return False  # the task moved on (cancelled, reaped, superseded)
    job = session.get(IngestionJob, handle.job_id)
    if job is not None:
        job.progress, job.message = 100.0, message or "completed"
        job.append_log(log_entry("job.completed", attempt=handle.attempt, message=message))
    session.refresh(asset)
    session.flush()
    _advance(session, asset, settings)
    return True


def _advance(session: Session, asset: MediaAsset, settings: Settings) -> None:
    """After any success: once the source is described, every stage of the plan has its job (queued now if
    missing: after the probe, or when the settings turned a stage on since), and the asset is READY when
    every job it has succeeded. Every job, planned or not: a stage the settings turned off since still
    finishes first, so nothing ends an asset that is already READY."""
    jobs = sa.select(IngestionJob.type, Task.status).join(Task, Task.id == IngestionJob.task_id)
    statuses = {job_type: status for job_type, status in session.execute(jobs.where(IngestionJob.asset_id == asset.id))}
    if statuses.get(job_type_for(stage_with_role(StageRole.DESCRIBES_SOURCE))) != TaskStatus.SUCCEEDED:
        return
    for stage in plan_for(asset, settings):
        if job_type_for(stage) not in statuses:
            statuses[enqueue_stage(session, asset=asset, stage=stage, settings=settings).type] = TaskStatus.QUEUED
    if any(status != TaskStatus.SUCCEEDED for status in statuses.values()):
        return
    # Never READY before the bytes are known to be the ones uploaded; and only once.
    if asset.checksum is None or asset.processing_status == AssetProcessingStatus.READY:
        return
    mark_ready(session, asset)
    metrics.assets_finished_total.labels(status="READY").inc()
    _log_ingestion_completed(session, asset)


def _log_ingestion_completed(session: Session, asset: MediaAsset) -> None:
    proxies = session.scalars(sa.select(AssetProxy.type).where(AssetProxy.asset_id == asset.id)).all()
    took = (asset.processed_at - asset.uploaded_at) if asset.processed_at and asset.uploaded_at else timedelta()
    # One style in every log line: snake_case keys, a dotted event name, units in the names (the API's
    # camelCase is the wire's, not the logs'). The seed's completion event, in that style.
    log.info(
        "asset.ingestion_completed",
        asset_id=asset.id,
        user_id=asset.owner_id,
        duration_seconds=round(took.total_seconds(), 3),
        video_proxies=sum(kind in _VIDEO_KINDS for kind in proxies),
        outputs=len(proxies),
        metadata_extracted=asset.metadata_record is not None,
    )


def fail_asset(session: Session, asset: MediaAsset, *, stage: Stage, error: str) -> None:
    """FAILED with the first stage's reason: stages run side by side, and a second failure neither
    replaces the reason people read nor counts the asset twice."""
    if asset.processing_status == AssetProcessingStatus.FAILED:
        return
    mark_failed(session, asset, reason=f"{stage} stage failed: {error}")
    metrics.assets_finished_total.labels(status="FAILED").inc()
