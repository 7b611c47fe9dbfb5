"""What a task is: its name, its queue, the function that runs it, its retry policy, and the hooks that
record its failures where users see them. One `TaskSpec` per task; `mediaingest.catalog` lists them all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from mediaingest.config import Settings
from mediaingest.db import utcnow
from mediaingest.exceptions import error_message
from mediaingest.models import Task
from mediaingest.retry import RetryDecision, RetryPolicy
from mediaingest.tasks import queue

STAGES_QUEUE = "stages"  # media work in a worker: heavy, one stage process per task
DEFAULT_QUEUE = "default"  # chores and deliveries: light, many at once
QUEUES = (STAGES_QUEUE, DEFAULT_QUEUE)  # what a worker runs
# What the Kubernetes operator runs (EXECUTOR=kubernetes): a stage attempt as a Job, a MediaAsset to create.
STAGE_JOBS_QUEUE = "stage-jobs"
KUBERNETES_QUEUE = "kubernetes"


@dataclass(frozen=True)
class TaskRun:
    """One attempt at one task, as its function sees it."""

    task_id: str
    name: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)
    # Called by a task that has committed new work before it is done itself (a stage's successors): its
    # runner claims at once instead of at its next poll or after this task's own bookkeeping.
    wake: Callable[[], None] = field(default=lambda: None, compare=False)


class TaskCancelled(Exception):
    """The task was cancelled, or its lease taken, while it ran: nothing more to record."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str
    # Runs the attempt; returns on success, raises on failure (TaskCancelled when there is nothing to do).
    function: Callable[[Any, TaskRun], None]
    retry: Callable[[Settings], RetryPolicy] = lambda _settings: RetryPolicy()
    # In the unit of work that fails (or retries) the task: what users see of the failure.
    on_failure: Callable[[Session, Task, str, RetryDecision], None] | None = None
    # The task's runner was lost: requeued, or failed when it had no attempts left.
    on_reaped: Callable[[Session, Task, bool], None] | None = None

    def fail(
        self,
        session: Session,
        *,
        task_id: str,
        attempt: int,
        error: BaseException,
        settings: Settings,
        worker_id: str | None = None,
        decision: RetryDecision | None = None,
        payload: dict[str, Any] | None = None,
    ) -> RetryDecision | None:
        """A failed attempt, decided once by whoever ran it: the task's retry policy (or the runner's own
        `decision`) is applied to the task — fenced by the runner's `worker_id`, else by the attempt's number —
        and `on_failure` records it where users see it, in the same unit of work. None when the attempt was
        no longer current (nothing is recorded)."""
        task = session.get(Task, task_id)
        if task is None:
            return None
        message = error_message(error)
        decision = decision or self.retry(settings).decide(error, attempts=attempt, max_attempts=task.max_attempts)
        fence: dict[str, Any] = {"worker_id": worker_id} if worker_id is not None else {"attempt": attempt}
        if not queue.fail(session, task_id=task_id, decision=decision, error=message, now=utcnow(), payload=payload,
                          **fence):  # fmt: skip
            return None
        if self.on_failure is not None:
            session.refresh(task)
            self.on_failure(session, task, message, decision)
        return decision
