"""The task queue's one table: every background job — stage runs, webhook deliveries, sweeps — is a row.

Claimed with a lease (owner and expiry, pushed forward by the runner's heartbeat), retried by the
task's retry policy, deduplicated by `dedupe_key` (one live task per stage of an asset, one per
webhook delivery, one per period of a periodic task). The records users see (IngestionJob, the
webhook deliveries) stay where they are; claiming and retrying are the queue's alone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from mediaingest.db import Base, JSONType, UTCDateTime, enum_column, new_id, utcnow


class TaskStatus(StrEnum):
    QUEUED = "QUEUED"  # waiting for `run_after` and a runner
    RUNNING = "RUNNING"  # leased by a runner
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # a permanent error, or out of attempts
    CANCELLED = "CANCELLED"  # what it was for went away (an asset deleted, a webhook cleared)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.Index("ix_tasks_lease_expiry", "status", "lease_expires_at"),
        sa.Index("ix_tasks_finished", "status", "finished_at"),
        # The claim reads queued rows only, in its order: by priority (no tenant cap), or by tenant (the cap
        # ranks each tenant's tasks), whatever the number of finished tasks.
        sa.Index(
            "ix_tasks_queued",
            "queue",
            sa.text("priority DESC"),
            "run_after",
            "created_at",
            postgresql_where=sa.text("status = 'QUEUED'"),
            sqlite_where=sa.text("status = 'QUEUED'"),
        ),
        sa.Index(
            "ix_tasks_queued_by_tenant",
            "queue",
            "tenant",
            sa.text("priority DESC"),
            "run_after",
            "created_at",
            postgresql_include=["id"],
            postgresql_where=sa.text("status = 'QUEUED'"),
            sqlite_where=sa.text("status = 'QUEUED'"),
        ),
        # The claim's fairness rule counts each tenant's running tasks.
        sa.Index("ix_tasks_tenant_running", "status", "queue", "tenant"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100))  # the registered task, e.g. "webhooks.deliver"
    queue: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # One task per key, ever: deferring again returns the existing one.
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    priority: Mapped[int] = mapped_column(sa.Integer, default=0)  # higher runs first
    # Whose work it is (an asset's owner): the claim runs at most `tenant_cap` of one tenant's tasks at once.
    tenant: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[TaskStatus] = mapped_column(enum_column(TaskStatus), default=TaskStatus.QUEUED)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)  # started, counted at claim
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=5)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
