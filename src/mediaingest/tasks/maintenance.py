"""The queue's own chores, as tasks: reaping the leases of dead runners, pruning finished tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from mediaingest.db import session_scope, utcnow
from mediaingest.tasks import queue
from mediaingest.tasks.registry import DEFAULT_QUEUE, TaskRun, TaskSpec

if TYPE_CHECKING:
    from mediaingest.worker.stage_runner import StageContext

log = structlog.stdlib.get_logger(__name__)

FINISHED_TASK_RETENTION = timedelta(days=7)


def reap(ctx: StageContext, run: TaskRun) -> None:
    from mediaingest.tasks.catalog import REGISTRY  # the catalog lists this module's tasks too

    with session_scope(ctx.session_factory) as session:
        reaped = queue.reap_expired(session, now=utcnow())
        for task, failed in [*((t, False) for t in reaped.requeued), *((t, True) for t in reaped.failed)]:
            spec = REGISTRY.get(task.name)
            if spec is not None and spec.on_reaped is not None:
                spec.on_reaped(session, task, failed)
    if reaped.requeued or reaped.failed:
        log.warning("tasks.reaped", requeued=len(reaped.requeued), failed=len(reaped.failed))


def prune(ctx: StageContext, run: TaskRun) -> None:
    with session_scope(ctx.session_factory) as session:
        removed = queue.prune_finished(session, before=utcnow() - FINISHED_TASK_RETENTION)
    if removed:
        log.info("tasks.pruned", count=removed)


REAP = TaskSpec(name="tasks.reap", queue=DEFAULT_QUEUE, function=reap)
PRUNE = TaskSpec(name="tasks.prune", queue=DEFAULT_QUEUE, function=prune)
