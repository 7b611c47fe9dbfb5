"""State changes of one IngestionJob row, fenced by whoever runs the attempt.

A worker's stage process writes as its runner (`lease_owner`, set when the attempt started), so a
worker whose task was reaped or cancelled can no longer write: every update matches zero rows and the
worker stops. A Kubernetes stage pod's reports are written by the API as the attempt itself (its
number), so a later attempt fences out an earlier one; they also finish the attempt's task (`task_id`).
The lease itself is the task's (`mediaingest.tasks.queue`); the row only names who runs the attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.db import SessionFactory, session_scope, utcnow
from mediaingest.models import IngestionJob
from mediaingest.models.enums import IngestionJobStatus

MAX_LOG_ENTRIES = 200


def log_entry(event: str, **fields: Any) -> dict[str, Any]:
    return {"at": utcnow().isoformat(), "event": event, **fields}


@dataclass
class JobHandle:
    """One attempt at one job, as seen by whoever runs it."""

    job_id: str
    lease_owner: str | None
    attempt: int
    # Set when the attempt reports for itself (a stage pod, through the API): its outcome finishes the task.
    task_id: str | None = None
    _last_progress_write: float = field(default=0.0, repr=False)

    def _where(self) -> list[sa.ColumnElement[bool]]:
        conditions = [IngestionJob.id == self.job_id, IngestionJob.status == IngestionJobStatus.RUNNING]
        if self.lease_owner is not None:
            conditions.append(IngestionJob.lease_owner == self.lease_owner)
        else:  # a stage pod's report: a later attempt's start fences this one out
            conditions.append(IngestionJob.attempts == self.attempt)
        return conditions

    def update(self, session: Session, **values: Any) -> bool:
        """Fenced update; False when the job is no longer this attempt's to write."""
        result = session.execute(
            sa.update(IngestionJob).where(*self._where()).values(**values).execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def append_log(self, session: Session, entry: dict[str, Any]) -> None:
        job = session.get(IngestionJob, self.job_id)
        if job is not None:
            job.logs = [*(job.logs or []), entry][-MAX_LOG_ENTRIES:]

    def write_progress(
        self, session_factory: SessionFactory, fraction: float, message: str, *, min_interval: float
    ) -> bool:
        """Rate-limited progress write; returns False when the job was taken from us."""
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress_write < min_interval:
            return True
        self._last_progress_write = now
        with session_scope(session_factory) as session:
            return self.update(session, progress=round(max(0.0, min(1.0, fraction)) * 100, 1), message=message[:1024])
