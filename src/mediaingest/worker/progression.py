"""What an asset's state becomes when one of its stages starts, succeeds or fails: the one owner of
the IngestionJob rows and of the asset's processing status.

Shared by the local worker (which also enqueues the stages that follow the probe), by the `run-stage`
entry point that Kubernetes Jobs run, and by the operator, which reports what it observes of those
Jobs (`observed_*` below, through `operator.mirror`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from mediaingest.assets.lifecycle import mark_failed, mark_ready
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
from mediaingest.worker.jobs import MAX_LOG_ENTRIES, JobHandle, log_entry
from mediaingest.worker.queue import enqueue_stage, ensure_job

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


def stage_started(session: Session, *, job: IngestionJob, worker_id: str, attempt: int) -> JobHandle:
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
    job.message = f"attempt {attempt} running"
    job.logs = [*(job.logs or []), log_entry("job.started", attempt=attempt)][-MAX_LOG_ENTRIES:]
    session.flush()
    return JobHandle(job_id=job.id, lease_owner=worker_id, attempt=attempt)


def stage_started_unleased(session: Session, *, job: IngestionJob, attempt: int) -> JobHandle:
    """A Kubernetes Job's attempt: the operator counts attempts, the row mirrors them (no lease)."""
    now = utcnow()
    job.status = IngestionJobStatus.RUNNING
    job.attempts = attempt
    job.retries = max(0, attempt - 1)
    job.started_at = job.started_at or now
    job.finished_at = None
    job.progress = 0.0
    job.error = None
    job.message = f"attempt {attempt} running"
    job.lease_owner = None
    job.logs = [*(job.logs or []), log_entry("job.started", attempt=attempt)][-MAX_LOG_ENTRIES:]
    session.flush()
    return JobHandle(job_id=job.id, lease_owner=None, attempt=attempt)


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
    max_attempts: int,
) -> bool:  # fmt: skip
    """Completes the job; enqueues what follows the probe (local executor); READY when all are done.

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
    handle.append_log(session, log_entry("job.completed", attempt=handle.attempt, message=message))
    session.refresh(asset)
    if stage == PROBE and enqueue_next:
        for next_stage in plan_for(asset)[1:]:
            enqueue_stage(session, asset=asset, stage=next_stage, max_attempts=max_attempts)
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


# --- observed from Kubernetes Jobs ------------------------------------------------------------------
# The operator watches the Jobs and reports each transition, possibly more than once (a level-based
# reconciler sees a state again before its own status patch is visible) and possibly late: every
# function is idempotent and ignores a report about an attempt older than the one recorded.


def _observed_job(session: Session, asset_id: str, stage: Stage) -> IngestionJob | None:
    """The stage's row (one per asset and stage), locked; created on the first report."""
    job = session.scalar(
        sa.select(IngestionJob)
        .where(IngestionJob.asset_id == asset_id, IngestionJob.type == job_type_for(stage))
        .with_for_update()
    )
    if job is not None:
        return job
    asset = session.get(MediaAsset, asset_id)
    if asset is None:
        # Deleted from the database while its resource still exists: nothing to record.
        log.info("operator.mirror_asset_missing", asset_id=asset_id, stage=stage)
        return None
    return ensure_job(session, asset=asset, stage=stage)


def _observed_log(job: IngestionJob, at: datetime, event: str, **fields: Any) -> None:
    entry = {**log_entry(event, **fields), "at": at.isoformat()}  # when Kubernetes saw it, not now
    job.logs = [*(job.logs or []), entry][-MAX_LOG_ENTRIES:]


def observed_stage_started(
    session: Session, *, asset_id: str, stage: Stage, attempt: int, job_name: str, at: datetime
) -> None:
    job = _observed_job(session, asset_id, stage)
    if job is None or job.attempts > attempt:
        return
    if job.attempts == attempt and job.status in (*FINISHED_STATUSES, IngestionJobStatus.RUNNING):
        return
    job.status = IngestionJobStatus.RUNNING
    if job.attempts < attempt:
        job.progress = 0.0
    job.attempts = attempt
    job.started_at = at
    job.finished_at = None
    job.message = f"attempt {attempt}: Kubernetes Job {job_name}"
    _observed_log(job, at, "job.started", stage=stage, attempt=attempt, kubernetes_job=job_name)
    session.execute(
        sa.update(MediaAsset)
        .where(MediaAsset.id == asset_id, MediaAsset.processing_status == AssetProcessingStatus.PENDING)
        .values(processing_status=AssetProcessingStatus.PROCESSING)
    )


def observed_stage_failed(
    session: Session, *, asset_id: str, stage: Stage, attempt: int, will_retry: bool, message: str, at: datetime
) -> None:
    status = IngestionJobStatus.RETRYING if will_retry else IngestionJobStatus.FAILED
    job = _observed_job(session, asset_id, stage)
    if job is None or job.attempts > attempt:
        return
    if job.attempts == attempt and job.status == status and job.error == message:
        return
    job.status = status
    job.attempts = attempt
    job.error = message
    if will_retry:
        job.retries = max(job.retries or 0, attempt)
        job.message = f"attempt {attempt} failed; retrying"
    else:
        job.message = f"failed after {attempt} attempt{'s' if attempt > 1 else ''}"
        job.finished_at = at
    _observed_log(job, at, "job.failed", stage=stage, attempt=attempt, will_retry=will_retry, error=message)


def observed_stage_succeeded(session: Session, *, asset_id: str, stage: Stage, attempt: int, at: datetime) -> None:
    job = _observed_job(session, asset_id, stage)
    if job is None or job.attempts > attempt:
        return
    if job.status == IngestionJobStatus.COMPLETED and job.attempts == attempt:
        return
    job.status = IngestionJobStatus.COMPLETED
    job.attempts = attempt
    job.progress = 100.0
    job.finished_at = at
    job.message = "completed"
    _observed_log(job, at, "job.completed", stage=stage, attempt=attempt)


def observed_asset_finished(session: Session, *, asset_id: str, ready: bool, message: str | None, at: datetime) -> None:
    """The operator's verdict on the whole asset: READY, or FAILED with its unfinished stages cancelled."""
    asset = session.get(MediaAsset, asset_id, with_for_update=True)
    if asset is None:
        return
    if ready:
        mark_ready(session, asset, at=at)
        return
    mark_failed(session, asset, reason=message or "failed")
    session.execute(
        sa.update(IngestionJob)
        .where(IngestionJob.asset_id == asset_id, IngestionJob.status.not_in(FINISHED_STATUSES))
        .values(status=IngestionJobStatus.CANCELLED, finished_at=at, message="cancelled: asset failed")
    )
