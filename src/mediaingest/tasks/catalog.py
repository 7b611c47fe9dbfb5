"""Every task the runners know, by name. Adding a task is one module with its `TaskSpec`, listed here."""

from __future__ import annotations

from mediaingest.assets.tasks import SWEEP
from mediaingest.tasks.maintenance import PRUNE, REAP
from mediaingest.tasks.registry import TaskSpec
from mediaingest.webhooks.delivery import DELIVER_TASK
from mediaingest.worker.stage_tasks import RUN

REGISTRY: dict[str, TaskSpec] = {spec.name: spec for spec in (RUN, DELIVER_TASK, SWEEP, REAP, PRUNE)}
