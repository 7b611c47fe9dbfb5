"""What a task is: its name, its queue, the function that runs it, its retry policy, and the hooks that
record its failures where users see them. One `TaskSpec` per task; `catalog` lists them all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from mediaingest.config import Settings
from mediaingest.models import Task
from mediaingest.retry import RetryDecision, RetryPolicy

STAGES_QUEUE = "stages"  # media work in a worker: heavy, one stage process per task
DEFAULT_QUEUE = "default"  # chores and deliveries: light, many at once
QUEUES = (STAGES_QUEUE, DEFAULT_QUEUE)  # what a worker runs
# What the Kubernetes operator runs (EXECUTOR=kubernetes): a stage attempt as a Job, a MediaAsset to create.
STAGE_JOBS_QUEUE = "stage-jobs"
KUBERNETES_QUEUE = "kubernetes"
OPERATOR_QUEUES = (STAGE_JOBS_QUEUE, KUBERNETES_QUEUE)


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


class RecordedFailure(Exception):
    """A failed attempt the task has already recorded (with its policy's decision) where users see it:
    the runner only applies the decision to the task."""

    def __init__(self, message: str, decision: RetryDecision) -> None:
        super().__init__(message)
        self.message = message
        self.decision = decision


class TaskCancelled(Exception):
    """The task was cancelled, or its lease taken, while it ran: nothing more to record."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str
    # Runs the attempt; returns on success, raises on failure (RecordedFailure when already recorded).
    function: Callable[[Any, TaskRun], None]
    retry: Callable[[Settings], RetryPolicy] = lambda _settings: RetryPolicy()
    # In the unit of work that fails (or retries) the task: what users see of the failure.
    on_failure: Callable[[Session, Task, str, RetryDecision], None] | None = None
    # The task's runner was lost: requeued, or failed when it had no attempts left.
    on_reaped: Callable[[Session, Task, bool], None] | None = None
