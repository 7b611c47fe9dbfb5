"""Putting an asset's stages on the task queue, whichever executor runs them.

Every stage of an asset is one IngestionJob row (what users see) and one `stages.run` task (what a runner
claims), created together in the caller's transaction. The task's queue says which runner takes it:
`stages` for a worker's stage processes, `stage-jobs` for the Kubernetes operator (a Job per attempt), by
the stage's placement (`stage_queue`). Either way the same claim, retry policy and transitions apply; only
what runs the attempt differs.

An upload starts the same way under both executors, in the confirm transaction (`Dispatcher.dispatch`):
the probe's row and task. Under `EXECUTOR=kubernetes` one more task asks the operator to create the
asset's MediaAsset, the record `kubectl get mediaassets` shows; nothing talks to Kubernetes inside the
transaction. The worker enqueues the rest of the plan once the probe says what the media is, as it does
on one machine.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.config import ExecutorName, Settings
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import Stage
from mediaingest.models.job import log_entry
from mediaingest.pipeline.plan import first_stages
from mediaingest.pipeline.registry import Placement, job_type_for, spec_for, stage_names
from mediaingest.tasks import queue
from mediaingest.tasks.registry import KUBERNETES_QUEUE, STAGE_JOBS_QUEUE, STAGES_QUEUE

RUN_STAGE = "stages.run"
PUBLISH_ASSET = "mediaassets.publish"  # the operator creates the asset's MediaAsset (EXECUTOR=kubernetes)


def stage_task_key(asset_id: str, stage: Stage) -> str:
    return f"stage:{asset_id}:{stage}"


def placement(settings: Settings, stage: Stage) -> Placement:
    """Where the stage runs: always the worker on one machine; under Kubernetes, its placement."""
    if settings.executor != ExecutorName.KUBERNETES:
        return "worker"
    return settings.stage_placement.get(stage, spec_for(stage).placement)


def stage_queue(settings: Settings, stage: Stage) -> str:
    return STAGE_JOBS_QUEUE if placement(settings, stage) == "job" else STAGES_QUEUE


def enqueue_stage(session: Session, *, asset: MediaAsset, stage: Stage, settings: Settings) -> IngestionJob:
    """The stage's task and its job row, together; doing it twice is harmless (both are found by their keys,
    and a stage that ran keeps its one task, finished or not)."""
    job = session.scalar(
        sa.select(IngestionJob).where(IngestionJob.asset_id == asset.id, IngestionJob.type == job_type_for(stage))
    )
    if job is not None:
        return job
    task = queue.defer(
        session,
        name=RUN_STAGE,
        queue=stage_queue(settings, stage),
        payload={"assetId": asset.id, "stage": stage},
        dedupe_key=stage_task_key(asset.id, stage),
        priority=asset.priority.rank,
        max_attempts=settings.job_max_attempts,
        tenant=asset.owner_id,
    )
    job = IngestionJob(
        asset_id=asset.id,
        type=job_type_for(stage),
        task_id=task.id,
        priority=asset.priority,
        logs=[log_entry("job.enqueued", stage=stage)],
    )
    session.add(job)
    session.flush()
    return job


def publish_key(asset_id: str) -> str:
    return f"publish:{asset_id}"


def enqueue_publish(session: Session, *, asset: MediaAsset) -> None:
    """The operator's task to create the asset's MediaAsset: in the confirm transaction, like its stages."""
    queue.defer(
        session,
        name=PUBLISH_ASSET,
        queue=KUBERNETES_QUEUE,
        payload={"assetId": asset.id},
        dedupe_key=publish_key(asset.id),
        priority=asset.priority.rank,
    )


def cancel_asset_tasks(session: Session, *, asset_id: str) -> int:
    """Cancels the asset's unfinished tasks; a runner holding one notices at its next heartbeat."""
    return queue.cancel(
        session, dedupe_keys=[publish_key(asset_id), *(stage_task_key(asset_id, stage) for stage in stage_names())]
    )


class Dispatcher:
    def __init__(self, settings: Settings, *, on_work: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_work = on_work

    def dispatch(self, session: Session, asset: MediaAsset) -> None:
        """Starts ingestion of an UPLOADED asset. Idempotent."""
        for stage in first_stages(asset.type, self.settings):
            enqueue_stage(session, asset=asset, stage=stage, settings=self.settings)
        if self.settings.executor == ExecutorName.KUBERNETES:
            enqueue_publish(session, asset=asset)
        if self.on_work is not None:
            # After the commit, not now: a worker woken before it would find the job not yet visible.
            notify = self.on_work
            sa.event.listen(session, "after_commit", lambda _session: notify(), once=True)

    def cancel(self, session: Session, asset: MediaAsset) -> None:
        """Stops any work on the asset (it is being deleted). Idempotent. A runner holding one of its tasks
        notices at its next heartbeat; the operator then deletes the Job and the MediaAsset."""
        cancel_asset_tasks(session, asset_id=asset.id)


def build_dispatcher(settings: Settings, *, on_work: Callable[[], None] | None = None) -> Dispatcher:
    """`on_work` is called after a commit that queued local work (an in-process worker's wake-up)."""
    return Dispatcher(settings, on_work=on_work)
