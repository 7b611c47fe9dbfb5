"""The composition root of background work: every task a worker runs, by name, and the hooks between
domains. Adding a task is one module with its `TaskSpec`, listed here; the generic `tasks` package and the
worker loop know none of them.

`wire()` registers the hooks; the API, the CLI's worker and the operator call it at start-up. It runs on
import too, for the worker's stage processes, which end assets as well: they preload this module
(`isolation.preload`), so each has the hooks without a start-up of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mediaingest.assets import lifecycle
from mediaingest.assets.clips import CLIP_RENDER_TASK
from mediaingest.assets.tasks import COMPACT_COUNTS, SWEEP
from mediaingest.config import Settings
from mediaingest.tasks.maintenance import PRUNE, reaper
from mediaingest.tasks.registry import TaskSpec
from mediaingest.webhooks.delivery import DELIVER_TASK
from mediaingest.webhooks.service import announce_finished_asset
from mediaingest.worker import isolation, loop
from mediaingest.worker.stage_tasks import RUN

REGISTRY: dict[str, TaskSpec] = {
    spec.name: spec for spec in (RUN, DELIVER_TASK, SWEEP, COMPACT_COUNTS, PRUNE, CLIP_RENDER_TASK)
}
REAPER = reaper(REGISTRY)  # calls the others' on_reaped hooks
REGISTRY[REAPER.name] = REAPER


def wire() -> None:
    """Registers the hooks between domains in this process; idempotent."""
    lifecycle.on_asset_finished(announce_finished_asset)  # READY and FAILED assets announced by webhook
    isolation.preload(__name__)


wire()


@contextmanager
def embedded_worker(settings: Settings) -> Iterator[loop.Worker]:
    """A worker running every task, in a thread of the current process (the embedded default)."""
    with loop.embedded_worker(settings, tasks=REGISTRY) as worker:
        yield worker
