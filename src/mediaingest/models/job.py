"""Ingestion jobs: what users see of one stage of one asset — its progress, message, log and outputs.

Running it is its task's business (`models.task`, `tasks.queue`): status, attempts, the next run and the
lease live on the task alone and are read through it here, so the two can never disagree. The row keeps
only what the stage itself says while it works.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mediaingest.db import Base, JSONType, UTCDateTime, enum_column, new_id, utcnow
from mediaingest.models.enums import IngestionJobStatus, IngestionJobType, JobPriority
from mediaingest.models.task import Task, TaskStatus

MAX_LOG_ENTRIES = 200


def log_entry(event: str, **fields: Any) -> dict[str, Any]:
    """One line of a job's log (`IngestionJob.append_log`)."""
    return {"at": utcnow().isoformat(), "event": event, **fields}


class IngestionJob(Base):
    __tablename__ = "ingestion_jobs"
    # One row per stage of an asset: re-dispatching is idempotent.
    __table_args__ = (sa.UniqueConstraint("asset_id", "type"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    asset_id: Mapped[str] = mapped_column(sa.ForeignKey("media_assets.id", ondelete="CASCADE"), index=True)
    type: Mapped[IngestionJobType] = mapped_column(sa.String(32))  # a registered stage's job type
    # The task that runs it. A finished task is kept while its job is (the queue's pruning skips it).
    task_id: Mapped[str] = mapped_column(sa.ForeignKey("tasks.id", ondelete="RESTRICT"), unique=True)
    priority: Mapped[JobPriority] = mapped_column(enum_column(JobPriority), default=JobPriority.NORMAL)
    progress: Mapped[float] = mapped_column(sa.Float, default=0.0)  # percent, 0–100
    message: Mapped[str | None] = mapped_column(sa.String(1024))
    # Append-only list of {"at", "event", ...} entries (the last MAX_LOG_ENTRIES): what happened, attempt by attempt.
    logs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the first attempt's start
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)

    # --- read from the task: the seed's field names, one owner ---------------------------------------
    @property
    def status(self) -> IngestionJobStatus:
        return job_status(self.task.status, self.task.attempts)

    @property
    def attempts(self) -> int:
        return self.task.attempts

    @property
    def retries(self) -> int:
        """Attempts that failed and were retried."""
        task = self.task
        return task.attempts if task.status == TaskStatus.QUEUED else max(task.attempts - 1, 0)

    @property
    def max_attempts(self) -> int:
        return self.task.max_attempts

    @property
    def error(self) -> str | None:
        return self.task.last_error if self.task.status in (TaskStatus.QUEUED, TaskStatus.FAILED) else None

    @property
    def finished_at(self) -> datetime | None:
        return self.task.finished_at

    @property
    def next_attempt_at(self) -> datetime | None:
        return self.task.run_after if self.task.status == TaskStatus.QUEUED else None

    def append_log(self, entry: dict[str, Any]) -> None:
        self.logs = [*(self.logs or []), entry][-MAX_LOG_ENTRIES:]


def job_status(status: TaskStatus, attempts: int) -> IngestionJobStatus:
    """The seed's job status of a stage task: a queued task that has run before is waiting out a retry."""
    if status == TaskStatus.QUEUED:
        return IngestionJobStatus.RETRYING if attempts > 0 else IngestionJobStatus.PENDING
    return _JOB_STATUS[status]


_JOB_STATUS = {
    TaskStatus.RUNNING: IngestionJobStatus.RUNNING,
    TaskStatus.SUCCEEDED: IngestionJobStatus.COMPLETED,
    TaskStatus.FAILED: IngestionJobStatus.FAILED,
    TaskStatus.CANCELLED: IngestionJobStatus.CANCELLED,
}
