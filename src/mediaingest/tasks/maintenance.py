"""The queue's own chores, as tasks: reaping the leases of dead runners, pruning finished tasks."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import timedelta

import structlog
from sqlalchemy.orm import Session

from mediaingest.db import session_scope, utcnow
from mediaingest.runtime import Runtime
from mediaingest.tasks import queue
from mediaingest.tasks.registry import DEFAULT_QUEUE, TaskRun, TaskSpec

log = structlog.stdlib.get_logger(__name__)

FINISHED_TASK_RETENTION = timedelta(days=7)


def reap(ctx: Runtime, run: TaskRun, *, catalog: Mapping[str, TaskSpec]) -> None:
    """Requeues (or fails, when out of attempts) the tasks of dead runners; each task's `on_reaped` hook,
    found in the runner's `catalog`, says so where users see it."""
    with session_scope(ctx.session_factory) as session:
        reaped = queue.reap_expired(session, now=utcnow())
        _run_reaped_hooks(session, reaped, catalog)
    if reaped.requeued or reaped.failed:
        log.warning("tasks.reaped", requeued=len(reaped.requeued), failed=len(reaped.failed))


def _run_reaped_hooks(session: Session, reaped: queue.Reaped, catalog: Mapping[str, TaskSpec]) -> None:
    for tasks, failed in ((reaped.requeued, False), (reaped.failed, True)):
        for task in tasks:
            spec = catalog.get(task.name)
            if spec is not None and spec.on_reaped is not None:
                spec.on_reaped(session, task, failed)


def prune(ctx: Runtime, run: TaskRun) -> None:
    with session_scope(ctx.session_factory) as session:
        removed = queue.prune_finished(session, before=utcnow() - FINISHED_TASK_RETENTION)
    if removed:
        log.info("tasks.pruned", count=removed)


REAP = "tasks.reap"


def reaper(catalog: Mapping[str, TaskSpec]) -> TaskSpec:
    """The reaping task of a runner whose tasks are `catalog`."""
    return TaskSpec(name=REAP, queue=DEFAULT_QUEUE, function=functools.partial(reap, catalog=catalog))


PRUNE = TaskSpec(name="tasks.prune", queue=DEFAULT_QUEUE, function=prune)
