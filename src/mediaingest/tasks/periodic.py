"""Periodic tasks: declared once, deferred once per period across every runner.

Each runner calls `defer_due` as it ticks; the period's task has a dedupe key of its own
(`periodic:{name}:{period number}`), so however many runners get there, one task per period exists,
and whichever runner claims it runs it. No runner is special, on one machine or in a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mediaingest.config import Settings
from mediaingest.tasks import queue
from mediaingest.tasks.registry import DEFAULT_QUEUE


@dataclass(frozen=True)
class Periodic:
    task: str
    every_seconds: Callable[[Settings], float]


PERIODIC: tuple[Periodic, ...] = (
    # Expire abandoned uploads, remove stray objects.
    Periodic("uploads.sweep", lambda settings: float(settings.sweep_interval_seconds)),
    # Put the tasks of dead runners back in the queue: twice per lease, so one lapses by at most 1.5×.
    Periodic("tasks.reap", lambda settings: max(1.0, settings.worker_lease_seconds / 2)),
    # Fold the listing's per-group asset counts (PostgreSQL), which triggers append to on every change.
    Periodic("assets.compact_counts", lambda _settings: 60.0),
    # Finished tasks are bookkeeping; the records users see live elsewhere.
    Periodic("tasks.prune", lambda _settings: 3600.0),
)


def defer_due(session: Session, settings: Settings, *, now: datetime) -> None:
    for periodic in PERIODIC:
        every = periodic.every_seconds(settings)
        period = int(now.timestamp() // every)
        queue.defer(
            session,
            name=periodic.task,
            queue=DEFAULT_QUEUE,
            dedupe_key=f"periodic:{periodic.task}:{period}",
            max_attempts=1,  # the next period's task is the retry
        )
