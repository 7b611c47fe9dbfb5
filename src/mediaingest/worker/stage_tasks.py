"""`stages.run`: one attempt at one stage of one asset, as a task on the `stages` queue.

The runner's thread marks the job started (fenced by the runner's id), runs the attempt in a stage
process of its own (`isolation`), and reads back what it reported. The stage process records its own
outcome on the job row with the stage retry policy's decision; the runner then applies that same
decision to the task, so the row users see and the task that is retried always agree.
"""

from __future__ import annotations

import time

import structlog
from sqlalchemy.orm import Session

from mediaingest import metrics
from mediaingest.db import session_scope
from mediaingest.models import IngestionJob, Task
from mediaingest.models.enums import Stage
from mediaingest.pipeline.registry import job_type_for, stage_named
from mediaingest.retry import RetryDecision, RetryPolicy
from mediaingest.tasks.registry import STAGES_QUEUE, RecordedFailure, TaskCancelled, TaskRun, TaskSpec
from mediaingest.worker import isolation, progression
from mediaingest.worker.jobs import log_entry
from mediaingest.worker.queue import RUN_STAGE
from mediaingest.worker.stage_runner import StageContext

log = structlog.stdlib.get_logger(__name__)


def run_stage(ctx: StageContext, run: TaskRun) -> None:
    stage = stage_named(run.payload["stage"])
    asset_id = str(run.payload["assetId"])
    job_type = job_type_for(stage)
    structlog.contextvars.bind_contextvars(asset_id=asset_id, stage=stage, job_id=run.payload.get("jobId"))
    with session_scope(ctx.session_factory) as session:
        job = session.get(IngestionJob, run.payload.get("jobId"))
        if job is None:  # the asset was deleted: its rows went with it
            raise TaskCancelled("the stage's job no longer exists")
        handle = progression.stage_started(session, job=job, worker_id=run.worker_id, attempt=run.attempt)
    policy = RetryPolicy.for_stages(ctx.settings)
    started = time.monotonic()
    try:
        report = isolation.run_attempt(
            ctx, handle=handle, asset_id=asset_id, stage=stage, cancel=run.cancel, policy=policy
        )
    finally:
        metrics.ingestion_jobs_duration_seconds.labels(type=job_type).observe(time.monotonic() - started)
    _observe(ctx, handle.job_id, run.attempt, job_type, report)
    if report.status == "cancelled":
        raise TaskCancelled(report.message)
    if report.status == "failed":
        decision = RetryDecision(retry=report.retry, delay_seconds=report.delay_seconds, reason=report.reason or "")
        raise RecordedFailure(report.message, decision)


def _observe(ctx: StageContext, job_id: str, attempt: int, job_type: str, report: isolation.AttemptReport) -> None:
    """Metrics and the job's log from what the stage process reported (it recorded the outcome)."""
    if report.status == "failed":
        status = "retrying" if report.retry else "failed"
        metrics.ingestion_jobs_total.labels(type=job_type, status=status).inc()
        metrics.ingestion_jobs_failed_total.labels(type=job_type, reason=report.reason or "transient").inc()
    else:
        metrics.ingestion_jobs_total.labels(type=job_type, status=report.status).inc()
        if report.status == "cancelled":
            metrics.ingestion_jobs_failed_total.labels(type=job_type, reason="cancelled").inc()
    if not report.peak_rss_bytes:
        return
    metrics.ingestion_stage_peak_rss_bytes.labels(type=job_type, process="stage").observe(report.peak_rss_bytes)
    metrics.ingestion_stage_peak_rss_bytes.labels(type=job_type, process="tools").observe(report.tools_peak_rss_bytes)
    with session_scope(ctx.session_factory) as session:
        job = session.get(IngestionJob, job_id)
        if job is not None:
            entry = log_entry(
                "job.resources",
                attempt=attempt,
                peakRssBytes=report.peak_rss_bytes,
                toolsPeakRssBytes=report.tools_peak_rss_bytes,
                pid=report.pid,
            )
            job.logs = [*(job.logs or []), entry]
    log.info(
        "asset.stage_resources",
        status=report.status,
        peak_rss_mb=round(report.peak_rss_bytes / 2**20, 1),
        tools_peak_rss_mb=round(report.tools_peak_rss_bytes / 2**20, 1),
    )


def stage_reaped(session: Session, task: Task, failed: bool) -> None:
    _unrecorded(
        session, task, failed=failed, cause="its runner was lost (a worker or the operator stopped heartbeating)"
    )


def stage_crashed(session: Session, task: Task, error: str, decision: RetryDecision) -> None:
    """run_stage failed before its stage process recorded anything (those failures arrive recorded)."""
    _unrecorded(session, task, failed=not decision.retry, cause=error)


def _unrecorded(session: Session, task: Task, *, failed: bool, cause: str) -> None:
    job = session.get(IngestionJob, task.payload.get("jobId"))
    if job is not None:  # the payload's own name: it may be a stage this worker does not know
        progression.attempt_unrecorded(session, job=job, stage=Stage(task.payload["stage"]), failed=failed, cause=cause)


RUN = TaskSpec(name=RUN_STAGE, queue=STAGES_QUEUE, function=run_stage, retry=RetryPolicy.for_stages,
               on_failure=stage_crashed, on_reaped=stage_reaped)  # fmt: skip
