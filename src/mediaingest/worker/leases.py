"""Leasing jobs from the database queue: claim in one statement, heartbeat, reap the dead.

PostgreSQL claims with `FOR UPDATE SKIP LOCKED` inside an `UPDATE … RETURNING`, so concurrent
workers never block on or double-claim a row; SQLite runs the same statement in one short
`BEGIN IMMEDIATE` transaction. A lease carries an expiry that the worker's heartbeat pushes forward;
a worker that dies stops heartbeating, and `reap_expired_leases` puts its jobs back on the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.models import IngestionJob
from mediaingest.models.enums import IngestionJobStatus, IngestionJobType

CLAIMABLE = (IngestionJobStatus.PENDING, IngestionJobStatus.RETRYING)


def claim_jobs(
    session: Session, *, worker_id: str, limit: int, lease_seconds: int, now: datetime
) -> Sequence[IngestionJob]:
    if limit <= 0:
        return []
    candidates = (
        sa.select(IngestionJob.id)
        .where(IngestionJob.status.in_(CLAIMABLE), IngestionJob.available_at <= now)
        .order_by(IngestionJob.priority_rank.desc(), IngestionJob.available_at, IngestionJob.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # ignored by SQLite, whose writers are already serialized
        .scalar_subquery()
    )
    statement = (
        sa.update(IngestionJob)
        .where(IngestionJob.id.in_(candidates), IngestionJob.status.in_(CLAIMABLE))
        .values(
            status=IngestionJobStatus.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            attempts=IngestionJob.attempts + 1,
            started_at=sa.func.coalesce(IngestionJob.started_at, now),
            progress=0.0,
            error=None,
        )
        .returning(IngestionJob)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(statement).all()


def heartbeat(session: Session, *, job_id: str, worker_id: str, lease_seconds: int, now: datetime) -> bool:
    """Extends the lease; False when the job is no longer ours (cancelled, deleted, or reaped)."""
    result = session.execute(
        sa.update(IngestionJob)
        .where(
            IngestionJob.id == job_id,
            IngestionJob.lease_owner == worker_id,
            IngestionJob.status == IngestionJobStatus.RUNNING,
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ReapResult:
    count: int
    failed: list[tuple[str, IngestionJobType, str]]  # (asset_id, job type, error) of jobs out of attempts


def reap_expired_leases(session: Session, *, now: datetime) -> ReapResult:
    """Jobs whose worker stopped heartbeating go back to the queue (or fail, out of attempts)."""
    expired = (
        IngestionJob.status == IngestionJobStatus.RUNNING,
        IngestionJob.lease_owner.is_not(None),  # Kubernetes-run jobs hold no lease; the operator watches them
        IngestionJob.lease_expires_at < now,
    )
    error = "worker lost during the last attempt; no attempts left"
    failed = session.execute(
        sa.update(IngestionJob)
        .where(*expired, IngestionJob.attempts >= IngestionJob.max_attempts)
        .values(
            status=IngestionJobStatus.FAILED,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            error=error,
            message="failed: worker lost",
        )
        .returning(IngestionJob.asset_id, IngestionJob.type)
        .execution_options(synchronize_session=False)
    ).all()
    requeued = session.execute(
        sa.update(IngestionJob)
        .where(*expired)
        .values(
            status=IngestionJobStatus.RETRYING,
            lease_owner=None,
            lease_expires_at=None,
            retries=IngestionJob.retries + 1,
            available_at=now,
            message="worker lost; retrying",
        )
        .execution_options(synchronize_session=False)
    )
    count = len(failed) + int(requeued.rowcount or 0)  # type: ignore[attr-defined]
    return ReapResult(count=count, failed=[(asset_id, job_type, error) for asset_id, job_type in failed])
