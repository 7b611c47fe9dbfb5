"""Every task a worker runs, by name: the composition root of the task system. Adding a task is one
module with its `TaskSpec`, listed here; the generic `tasks` package knows none of them."""

from __future__ import annotations

from mediaingest.assets.clips import CLIP_RENDER_TASK
from mediaingest.assets.tasks import SWEEP
from mediaingest.tasks.maintenance import PRUNE, reaper
from mediaingest.tasks.registry import TaskSpec
from mediaingest.webhooks.delivery import DELIVER_TASK
from mediaingest.worker.stage_tasks import RUN

REGISTRY: dict[str, TaskSpec] = {spec.name: spec for spec in (RUN, DELIVER_TASK, SWEEP, PRUNE, CLIP_RENDER_TASK)}
REAPER = reaper(REGISTRY)  # calls the others' on_reaped hooks
REGISTRY[REAPER.name] = REAPER
