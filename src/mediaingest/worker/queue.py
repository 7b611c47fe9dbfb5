"""Putting ingestion work on the database queue: one IngestionJob row per (asset, stage)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.db import utcnow
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import IngestionJobStatus, Stage

_FINISHED = (IngestionJobStatus.COMPLETED, IngestionJobStatus.FAILED, IngestionJobStatus.CANCELLED)


def enqueue_stage(session: Session, *, asset: MediaAsset, stage: Stage, max_attempts: int) -> IngestionJob:
    """Creates the stage's job, or returns the existing one: dispatching twice is harmless."""
    job = session.scalar(
        sa.select(IngestionJob).where(IngestionJob.asset_id == asset.id, IngestionJob.type == stage.job_type)
    )
    if job is not None:
        return job
    job = IngestionJob(
        asset_id=asset.id,
        type=stage.job_type,
        status=IngestionJobStatus.PENDING,
        priority=asset.priority,
        priority_rank=asset.priority.rank,
        max_attempts=max_attempts,
        available_at=utcnow(),
        logs=[{"at": utcnow().isoformat(), "event": "job.enqueued", "stage": stage.value}],
    )
    session.add(job)
    session.flush()
    return job


def cancel_jobs(session: Session, *, asset_id: str) -> int:
    """Marks the asset's unfinished jobs CANCELLED; a worker running one notices at its next heartbeat."""
    result = session.execute(
        sa.update(IngestionJob)
        .where(IngestionJob.asset_id == asset_id, IngestionJob.status.not_in(_FINISHED))
        .values(status=IngestionJobStatus.CANCELLED, finished_at=utcnow(), message="cancelled")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
