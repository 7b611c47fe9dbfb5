"""The assets' periodic tasks: the upload sweep (expire abandoned uploads, remove stray objects), and folding
the listing's per-group counts."""

from __future__ import annotations

import structlog

from mediaingest.assets import repository
from mediaingest.assets.service import AssetService
from mediaingest.db import session_scope
from mediaingest.dispatch import build_dispatcher
from mediaingest.runtime import Runtime
from mediaingest.tasks.registry import DEFAULT_QUEUE, TaskRun, TaskSpec

log = structlog.stdlib.get_logger(__name__)


def sweep_uploads(ctx: Runtime, run: TaskRun) -> None:
    service = AssetService(settings=ctx.settings, storage=ctx.storage, dispatcher=build_dispatcher(ctx.settings))
    with session_scope(ctx.session_factory) as session:
        expired = service.sweep_expired_uploads(session)
    with session_scope(ctx.session_factory) as session:
        strays = service.reap_stray_uploads(session)
    if expired or strays:
        log.info("uploads.swept", expired=expired, strays_removed=strays)


SWEEP = TaskSpec(name="uploads.sweep", queue=DEFAULT_QUEUE, function=sweep_uploads)


def compact_counts(ctx: Runtime, run: TaskRun) -> None:
    with session_scope(ctx.session_factory) as session:
        repository.compact_counts(session)


COMPACT_COUNTS = TaskSpec(name="assets.compact_counts", queue=DEFAULT_QUEUE, function=compact_counts)
