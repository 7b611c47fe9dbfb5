"""One stage attempt in a Kubernetes Job's pod (`mediaingest run-stage`).

The attempt's task was claimed by the operator, which created the Job; the pod has STAGE_API_URL and
STAGE_TOKEN_FILE (its projected ServiceAccount token) and no other credentials, and reports to the API
(`stage_reports.client.ApiStageHost`), which records the outcome and finishes the task. The exit code
says what a pod that could not report meant: 3 for media no attempt can cure, else transient.
"""

from __future__ import annotations

import signal
import threading
import time

import structlog

from mediaingest import metrics
from mediaingest.config import Settings
from mediaingest.exceptions import MediaIngestError, Permanent, error_message
from mediaingest.models.enums import Stage
from mediaingest.pipeline.ffmpeg import StageCancelledError
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import job_type_for
from mediaingest.stage_reports.client import ApiStageHost
from mediaingest.stage_reports.identity import StageClaims
from mediaingest.worker.stage_runner import execute_stage

log = structlog.stdlib.get_logger(__name__)

EXIT_OK = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = 3


def run_one_stage(settings: Settings, *, asset_id: str, stage: Stage, attempt: int) -> int:
    structlog.contextvars.bind_contextvars(asset_id=asset_id, stage=stage, attempt=attempt)
    if not settings.stage_api_url or settings.stage_token_file is None:
        log.error("stage.not_a_stage_pod", reason="STAGE_API_URL and STAGE_TOKEN_FILE are set on stage pods")
        _leave_termination_message(settings, "run-stage needs STAGE_API_URL and STAGE_TOKEN_FILE (a stage pod's)")
        return EXIT_PERMANENT
    cancel = threading.Event()
    # Kubernetes sends SIGTERM before killing a pod (deletion, deadline): stop ffmpeg and exit transient.
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    claims = StageClaims(asset_id=asset_id, stage=stage, attempt=attempt)
    api_host = ApiStageHost(settings.stage_api_url, settings.stage_token_file, claims=claims)
    try:
        return _attempt(api_host, settings, stage=stage, cancel=cancel)
    finally:
        api_host.close()


def _attempt(host: ApiStageHost, settings: Settings, *, stage: Stage, cancel: threading.Event) -> int:
    started = time.monotonic()
    job_type = job_type_for(stage)
    try:
        outcome = execute_stage(
            host, stage=stage, cancel=cancel, settings=settings, options=PipelineOptions.from_settings(settings)
        )
        metrics.ingestion_jobs_total.labels(
            type=job_type, status="completed" if outcome.completed else "cancelled"
        ).inc()
        return EXIT_OK
    except StageCancelledError:
        return EXIT_TRANSIENT if cancel.is_set() else EXIT_OK
    except Exception as error:
        return _failed(host, settings, error)
    finally:
        metrics.ingestion_jobs_duration_seconds.labels(type=job_type).observe(time.monotonic() - started)


def _failed(host: ApiStageHost, settings: Settings, error: Exception) -> int:
    """A failed attempt, told to the API and left where Kubernetes keeps it; its exit code."""
    permanent = isinstance(error, Permanent)
    message = error_message(error)
    if not isinstance(error, MediaIngestError):
        log.exception("asset.stage_crashed")
    try:  # the API decides with the stage retry policy; the pod says only whether it is permanent
        host.fail(message, permanent=permanent)
    except MediaIngestError as report_error:  # the exit code still tells the operator
        log.warning("asset.stage_failure_unreported", error=report_error.message)
    log.warning("asset.stage_failed", error=message, permanent=permanent)
    _leave_termination_message(settings, message)
    return EXIT_PERMANENT if permanent else EXIT_TRANSIENT


def _leave_termination_message(settings: Settings, message: str) -> None:
    """The reason in one line where Kubernetes keeps it for the pod's status, instead of a log tail."""
    if settings.termination_message_path is None:
        return
    try:
        settings.termination_message_path.write_text(message[:4000])  # Kubernetes keeps 4 KiB at most
    except OSError as exc:
        log.info("asset.termination_message_unwritten", error=str(exc))
