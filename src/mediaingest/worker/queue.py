"""Putting ingestion work on the task queue: one IngestionJob row (what users see) and one `stages.run`
task (what a runner claims) per (asset, stage), created together in the caller's transaction.

The task's queue says which runner takes it: `stages` for a worker's stage processes, `stage-jobs` for
the Kubernetes operator (a Job per attempt), by the stage's placement. Either way the same claim, retry
policy and transitions apply; only what runs the attempt differs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.config import ExecutorName, Settings
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import Stage
from mediaingest.pipeline.registry import Placement, job_type_for, spec_for, stage_names
from mediaingest.tasks import queue
from mediaingest.tasks.registry import KUBERNETES_QUEUE, STAGE_JOBS_QUEUE, STAGES_QUEUE
from mediaingest.worker.jobs import log_entry

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


def cancel_jobs(session: Session, *, asset_id: str) -> int:
    """Cancels the asset's unfinished tasks; a runner holding one notices at its next heartbeat."""
    return queue.cancel(
        session, dedupe_keys=[publish_key(asset_id), *(stage_task_key(asset_id, stage) for stage in stage_names())]
    )
