"""Each stage attempt in a process of its own, so media work never shares memory with the worker or API.

The embedded default runs the worker inside the API process; a stage there once took that process
from 153 MB to 2.1 GB on a 657 KB PNG. Here the worker's thread only starts a stage process, keeps the
job's lease (its heartbeat stays in the worker), and waits. The stage process runs `execute_stage`
and records its own success, exactly as a Kubernetes stage pod does, then reports back what happened —
completed, cancelled, or failed with the error's message and whether it is permanent — and how much
memory it and its ffmpeg children took at their peak. A failure is the worker's to decide and record.

Processes come from a forkserver that has imported the pipeline once, so starting one costs a fork,
not an interpreter start (a spawned interpreter takes about a second to import what a stage needs).
Each stage process leads its own process group: cancelling it (the asset was deleted, the lease was
lost) sends SIGTERM, which stops ffmpeg and ends the attempt as cancelled; one that died (the kernel's
OOM killer, a crash) has its group killed so no ffmpeg outlives it, and is reported as a failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import structlog

from mediaingest.config import Settings
from mediaingest.exceptions import MediaIngestError, Permanent, error_message
from mediaingest.logging import configure_logging
from mediaingest.models import TaskStatus
from mediaingest.models.enums import Stage
from mediaingest.pipeline.ffmpeg import StageCancelledError
from mediaingest.worker.jobs import IngestionJobHandle
from mediaingest.worker.stage_runner import StageContext, direct_host, execute_stage

log = structlog.stdlib.get_logger(__name__)

# Set-up only (no process starts until the first stage does).
_CONTEXT = multiprocessing.get_context("forkserver")
# Each stage process imports the parent's entry script again as it starts (multiprocessing's `prepare`);
# that script is the `mediaingest` console script (`serve`, `worker`), whose one import is the CLI and all it
# imports: paid per stage process (measured: 0.06 CPU-s and 0.15 s), unless the forkserver has imported it
# once already. (Preloading "__main__" would say so, but Python 3.11's forkserver never passes it the
# path.) stage_preload last: it finishes the set-up and freezes what the imports made (see there).
_PRELOAD = ["mediaingest.cli", "mediaingest.worker.isolation", "mediaingest.storage", "mediaingest.db"]
_PRELOAD_LAST = "mediaingest.worker.stage_preload"
_CONTEXT.set_forkserver_preload([*_PRELOAD, _PRELOAD_LAST])
_PR_SET_PDEATHSIG = 1
# After SIGTERM a stage stops ffmpeg and records the cancellation within a second or two; past this
# it is killed.
CANCEL_GRACE_SECONDS = 15.0


def preload(module: str) -> None:
    """Has stage processes import `module` too (before the forkserver starts): the composition root names
    itself, so the hooks it registers on import hold in every stage process."""
    if module not in _PRELOAD:
        _PRELOAD.append(module)
        _CONTEXT.set_forkserver_preload([*_PRELOAD, _PRELOAD_LAST])


def warm_up() -> None:
    """Starts the forkserver now and waits until it has imported the pipeline (seconds on a busy machine),
    so the first stage does not wait for it."""
    forkserver.ensure_running()
    ready = _CONTEXT.Process(target=_ready, name="stage-warm-up", daemon=True)
    ready.start()  # forked once the preloads are done
    ready.join(timeout=120)


def _ready() -> None:
    """What the warm-up's first process runs: nothing; that it started is the point."""


@dataclass(frozen=True)
class AttemptReport:
    """How one stage attempt ended, plainly: what the worker needs to decide on a retry."""

    ended: TaskStatus  # SUCCEEDED, CANCELLED or FAILED: what its task becomes, unless a failure is retried
    message: str = ""
    permanent: bool = False  # when failed: no attempt can cure it (PermanentProcessingError)
    peak_rss_bytes: int = 0  # the stage process itself (Python, Pillow)
    tools_peak_rss_bytes: int = 0  # the largest of its ffmpeg/ffprobe children
    pid: int | None = None  # the stage process


def run_attempt(
    settings: Settings, *, handle: IngestionJobHandle, asset_id: str, stage: Stage, cancel: threading.Event
) -> AttemptReport:
    """Runs one attempt in a stage process and waits for it; `cancel` stops it. Never raises for the
    stage's own failures: they are reported."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_stage_process_main,
        args=(settings, handle, asset_id, stage, sender),
        name=f"stage-{stage}",
        daemon=True,
    )
    process.start()
    sender.close()
    try:
        _wait_for(process, cancel)
        report = receiver.recv() if receiver.poll() else None
    finally:
        receiver.close()
        if process.exitcode != 0:
            _signal_group(process.pid, signal.SIGKILL)  # whatever is left of its group: an orphaned ffmpeg
    if isinstance(report, AttemptReport):
        return report
    if cancel.is_set():
        return AttemptReport(ended=TaskStatus.CANCELLED, message="stage process stopped")
    return _death_report(process, stage)


def _wait_for(process: BaseProcess, cancel: threading.Event) -> None:
    """Until the stage process ends; once `cancel` is set, SIGTERM to its group, SIGKILL after the grace."""
    terminated_at: float | None = None
    while process.exitcode is None:
        process.join(timeout=0.2)
        if cancel.is_set() and process.exitcode is None:
            if terminated_at is None:
                terminated_at = time.monotonic()
                _signal_group(process.pid, signal.SIGTERM)
            elif time.monotonic() - terminated_at > CANCEL_GRACE_SECONDS:
                _signal_group(process.pid, signal.SIGKILL)


def _death_report(process: BaseProcess, stage: Stage) -> AttemptReport:
    """A stage process that died without a report: killed by the OOM killer, a signal, or a crash in
    native code."""
    exitcode = process.exitcode or 0
    cause = signal.Signals(-exitcode).name if exitcode < 0 else f"exit code {exitcode}"
    return AttemptReport(ended=TaskStatus.FAILED, message=f"the {stage} stage process died ({cause})")


def _signal_group(pid: int | None, signum: signal.Signals) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _stage_process_main(
    settings: Settings, handle: IngestionJobHandle, asset_id: str, stage: Stage, sender: Connection
) -> None:
    os.setpgid(0, 0)  # lead a group of our own, which ffmpeg joins: the worker stops both at once
    with contextlib.suppress(OSError, AttributeError):  # Linux: end with the forkserver (and worker)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal; the worker decides
    configure_logging(settings.log_level, json=settings.log_json)
    structlog.contextvars.bind_contextvars(asset_id=asset_id, stage=stage, job_id=handle.job_id)
    ctx = StageContext.open(settings)
    report: AttemptReport
    try:
        host = direct_host(ctx, asset_id=asset_id, stage=stage, handle=handle)
        outcome = execute_stage(host, stage=stage, cancel=cancel, settings=settings, options=ctx.options)
        ended = TaskStatus.SUCCEEDED if outcome.completed else TaskStatus.CANCELLED
        report = AttemptReport(ended=ended, message=outcome.message)
    except StageCancelledError as cancelled:
        log.info("asset.stage_cancelled")
        report = AttemptReport(ended=TaskStatus.CANCELLED, message=cancelled.message)
    except Exception as error:
        report = _failure_report(error, handle)
    finally:
        ctx.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    tools = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    sender.send(dataclasses.replace(report, peak_rss_bytes=own, tools_peak_rss_bytes=tools, pid=os.getpid()))
    sender.close()


def _failure_report(error: Exception, handle: IngestionJobHandle) -> AttemptReport:
    """A failed attempt as the worker reads it: the error's message, and whether it is permanent."""
    if not isinstance(error, MediaIngestError):
        log.exception("asset.stage_crashed")
    permanent = isinstance(error, Permanent)
    log.warning("asset.stage_failed", error=error_message(error), attempt=handle.attempt, permanent=permanent)
    return AttemptReport(ended=TaskStatus.FAILED, message=error_message(error), permanent=permanent)
