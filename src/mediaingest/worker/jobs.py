"""Writes to one IngestionJob row on behalf of one attempt, fenced by the attempt's task.

Whoever runs the attempt holds its task: a worker by its runner id (the task's lease), a Kubernetes stage
pod's reports by the attempt's number. Every write here checks that in the same statement, so an attempt
whose task was cancelled, reaped or superseded can no longer write: it matches zero rows and stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.db import SessionFactory, session_scope
from mediaingest.models import IngestionJob, Task, TaskStatus


@dataclass
class IngestionJobHandle:
    """One IngestionJob row as one attempt of its task may write it: the task, and the runner or the
    attempt number that fences the writes (exactly one of the two)."""

    job_id: str
    task_id: str
    attempt: int
    worker_id: str | None = None  # a worker's attempt; None: the attempt reports for itself (a stage pod)
    _last_progress_write: float = field(default=0.0, repr=False)

    @property
    def fence(self) -> dict[str, Any]:
        """The `tasks.queue` fence of this attempt: by its runner, or by its number."""
        return {"worker_id": self.worker_id} if self.worker_id is not None else {"attempt": self.attempt}

    def _current(self) -> sa.Exists:
        held = Task.lease_owner == self.worker_id if self.worker_id is not None else Task.attempts == self.attempt
        return sa.exists().where(Task.id == self.task_id, Task.status == TaskStatus.RUNNING, held)

    def write_progress(
        self, session_factory: SessionFactory, fraction: float, message: str, *, min_interval: float
    ) -> bool:
        """Rate-limited progress write; returns False when the attempt is no longer current."""
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress_write < min_interval:
            return True
        self._last_progress_write = now
        with session_scope(session_factory) as session:
            result = session.execute(
                sa.update(IngestionJob)
                .where(IngestionJob.id == self.job_id, self._current())
                .values(progress=round(max(0.0, min(1.0, fraction)) * 100, 1), message=message[:1024])
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def log(self, session: Session, entry: dict[str, Any]) -> None:
        """Appends to the job's log in the caller's unit of work (which has fenced the attempt)."""
        job = session.get(IngestionJob, self.job_id)
        if job is not None:
            job.append_log(entry)
