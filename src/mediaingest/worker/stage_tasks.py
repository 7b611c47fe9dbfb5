"""`stages.run`: one attempt at one stage of one asset, as a task on the `stages` queue.

The runner's thread shows the attempt started on the job row, hands it to a stage process (`isolation`),
and reads back its plain outcome. A success the stage process has recorded itself (it
finishes the task in the same transaction); a failure is raised here, and the runner decides it with the
stage retry policy and records it once (`TaskSpec.fail` → `stage_failed`).
"""

from __future__ import annotations

import contextlib
import time

import structlog
from sqlalchemy.orm import Session

from mediaingest import metrics
from mediaingest.db import session_scope
from mediaingest.dispatch import RUN_STAGE
from mediaingest.exceptions import PermanentProcessingError, TransientProcessingError
from mediaingest.models import IngestionJob, Task, TaskStatus
from mediaingest.models.job import log_entry
from mediaingest.pipeline.registry import job_type_for, stage_named
from mediaingest.retry import RetryDecision, RetryPolicy
from mediaingest.tasks.registry import STAGES_QUEUE, TaskCancelled, TaskRun, TaskSpec
from mediaingest.worker import isolation, progression
from mediaingest.worker.stage_runner import StageContext

log = structlog.stdlib.get_logger(__name__)


def run_stage(ctx: StageContext, run: TaskRun) -> None:
    stage = stage_named(run.payload["stage"])
    asset_id = str(run.payload["assetId"])
    job_type = job_type_for(stage)
    with session_scope(ctx.session_factory) as session:
        job = session.query(IngestionJob).filter_by(task_id=run.task_id).one_or_none()
        if job is None:  # the asset was deleted: its rows went with it
            raise TaskCancelled("the stage's job no longer exists")
        structlog.contextvars.bind_contextvars(asset_id=asset_id, stage=stage, job_id=job.id)
        handle = progression.stage_started(session, job=job, worker_id=run.worker_id, attempt=run.attempt)
    started = time.monotonic()
    try:
        report = isolation.run_attempt(ctx.settings, handle=handle, asset_id=asset_id, stage=stage, cancel=run.cancel)
    finally:
        metrics.ingestion_jobs_duration_seconds.labels(type=job_type).observe(time.monotonic() - started)
    if report.ended == TaskStatus.SUCCEEDED:
        run.wake()  # its successors are committed: claim them before the bookkeeping below
    _observe(ctx, handle.job_id, run.attempt, job_type, report)
    _raise_unless_succeeded(report)


def _raise_unless_succeeded(report: isolation.AttemptReport) -> None:
    """How the runner takes an attempt that did not succeed: cancelled, or failed with its retry class."""
    if report.ended == TaskStatus.CANCELLED:
        raise TaskCancelled(report.message)
    if report.ended == TaskStatus.FAILED:
        raise PermanentProcessingError(report.message) if report.permanent else TransientProcessingError(report.message)


def _observe(ctx: StageContext, job_id: str, attempt: int, job_type: str, report: isolation.AttemptReport) -> None:
    """Metrics and the job's log of the resources the stage process reported (failures are counted where
    they are decided: `stage_failed`)."""
    if report.ended != TaskStatus.FAILED:
        metrics.count_stage_attempt(job_type, report.ended)
    if not report.peak_rss_bytes:
        return
    metrics.ingestion_stage_peak_rss_bytes.labels(type=job_type, process="stage").observe(report.peak_rss_bytes)
    metrics.ingestion_stage_peak_rss_bytes.labels(type=job_type, process="tools").observe(report.tools_peak_rss_bytes)
    with session_scope(ctx.session_factory) as session:
        job = session.get(IngestionJob, job_id)
        if job is not None:
            job.append_log(log_entry("job.resources", attempt=attempt, peakRssBytes=report.peak_rss_bytes,
                                     startRssBytes=report.start_rss_bytes,
                                     toolsPeakRssBytes=report.tools_peak_rss_bytes, pid=report.pid))  # fmt: skip
    log.info(
        "asset.stage_resources",
        ended=report.ended,
        peak_rss_mb=round(report.peak_rss_bytes / 2**20, 1),
        start_rss_mb=round(report.start_rss_bytes / 2**20, 1),
        tools_peak_rss_mb=round(report.tools_peak_rss_bytes / 2**20, 1),
    )


def stage_failed(session: Session, task: Task, error: str, decision: RetryDecision) -> None:
    """A stage attempt failed and its task was retried or failed for good: recorded where users see it."""
    job_type = str(task.payload.get("stage", "")).upper() or task.name
    with contextlib.suppress(ValueError):  # a stage this version does not know keeps its own name
        job_type = job_type_for(stage_named(task.payload["stage"]))
    metrics.count_stage_attempt(job_type, TaskStatus.FAILED, retrying=decision.retry)
    metrics.ingestion_jobs_failed_total.labels(type=job_type, reason=decision.reason).inc()
    progression.stage_attempt_failed(session, task, error, decision)


def stage_reaped(session: Session, task: Task, failed: bool) -> None:
    decision = RetryDecision(retry=not failed, delay_seconds=0.0, reason="exhausted" if failed else "transient")
    progression.stage_attempt_failed(session, task, task.last_error or "its runner was lost", decision)


RUN = TaskSpec(name=RUN_STAGE, queue=STAGES_QUEUE, function=run_stage, retry=RetryPolicy.for_stages,
               on_failure=stage_failed, on_reaped=stage_reaped)  # fmt: skip
