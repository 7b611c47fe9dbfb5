"""Handing a confirmed asset to an executor: the local worker queue or the Kubernetes operator.

`EXECUTOR=local` (default) writes IngestionJob rows and their `stages.run` tasks, which
`mediaingest worker` claims from the task queue;
`EXECUTOR=kubernetes` creates a MediaAsset custom resource that the operator reconciles into one
Kubernetes Job per stage. Both run the same stage code (`mediaingest.worker.stage_runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.config import ExecutorName, Settings
from mediaingest.models import MediaAsset
from mediaingest.pipeline.registry import PROBE
from mediaingest.worker.queue import cancel_jobs, enqueue_stage


class Dispatcher(Protocol):
    def dispatch(self, session: Session, asset: MediaAsset) -> None:
        """Starts ingestion of an UPLOADED asset. Idempotent."""

    def cancel(self, session: Session, asset: MediaAsset) -> None:
        """Stops any work on the asset (it is being deleted). Idempotent."""


class LocalDispatcher:
    """Probe first; the worker enqueues the rest of the plan once the probe says what the media is."""

    def __init__(self, settings: Settings, *, on_work: Callable[[], None] | None = None) -> None:
        self.max_attempts = settings.job_max_attempts
        self.on_work = on_work

    def dispatch(self, session: Session, asset: MediaAsset) -> None:
        enqueue_stage(session, asset=asset, stage=PROBE, max_attempts=self.max_attempts)
        if self.on_work is not None:
            # After the commit, not now: a worker woken before it would find the job not yet visible.
            notify = self.on_work
            sa.event.listen(session, "after_commit", lambda _session: notify(), once=True)

    def cancel(self, session: Session, asset: MediaAsset) -> None:
        cancel_jobs(session, asset_id=asset.id)


class KubernetesDispatcher:
    """Creates and deletes the asset's MediaAsset custom resource (the operator does the rest)."""

    def __init__(self, settings: Settings) -> None:
        # Imported lazily: the kubernetes client is only needed, and only configured, in this mode.
        from mediaingest.operator.dispatcher import KubernetesDispatcher as ResourceClient

        self._resources = ResourceClient(namespace=settings.k8s_namespace, release=settings.k8s_release)

    def dispatch(self, session: Session, asset: MediaAsset) -> None:
        from mediaingest.pipeline.plan import stages_for

        self._resources.dispatch(
            asset_id=asset.id,
            owner_id=asset.owner_id,
            media_type=asset.type,
            bucket=asset.storage_bucket,
            key=asset.storage_key,
            size=asset.file_size,
            priority=asset.priority,
            stages=stages_for(asset.type),
        )

    def cancel(self, session: Session, asset: MediaAsset) -> None:
        cancel_jobs(session, asset_id=asset.id)
        self._resources.cancel(asset_id=asset.id)


def build_dispatcher(settings: Settings, *, on_work: Callable[[], None] | None = None) -> Dispatcher:
    """`on_work` is called after a commit that queued local work (an in-process worker's wake-up)."""
    if settings.executor == ExecutorName.KUBERNETES:
        return KubernetesDispatcher(settings)
    return LocalDispatcher(settings, on_work=on_work)
