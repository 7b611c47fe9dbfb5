"""Each stage attempt in a stage process, so media work never shares memory with the worker or API.

The embedded default runs the worker inside the API process; a stage there once took that process
from 153 MB to 2.1 GB on a 657 KB PNG. Here the worker's thread only hands the attempt to a stage process,
keeps the job's lease (its heartbeat stays in the worker), and waits. The stage process runs
`execute_stage` and records its own success, exactly as a Kubernetes stage pod does, then reports back
what happened — completed, cancelled, or failed with the error's message and whether it is permanent —
and how much memory it and its ffmpeg children took at their peak in that attempt. A failure is the
worker's to decide and record.

A stage process runs one attempt at a time and is kept warm for the next, as a prefork server keeps its
workers: its database engine (with the statements it has compiled), its storage client and its stage
modules are made once, not per attempt (measured: 0.06–0.1 CPU-s per attempt, a tenth of a still's or a
voice note's whole work). It is retired, and the next attempt gets a fresh one, after anything that may
have left it unlike a fresh one: a cancellation, an unexpected error, a resident size above
RETIRE_ABOVE_RSS_BYTES, or MAX_ATTEMPTS_PER_PROCESS attempts. Between attempts it holds no database
connection, and at most MAX_IDLE_PROCESSES wait idle in all.

Processes come from a forkserver that has imported the pipeline once, so starting one costs a fork,
not an interpreter start (a spawned interpreter takes about a second to import what a stage needs).
Each stage process leads its own process group: cancelling an attempt (the asset was deleted, the lease
was lost) sends SIGTERM, which stops ffmpeg and ends the attempt as cancelled; one that died (the kernel's
OOM killer, a crash) has its group killed so no ffmpeg outlives it, and is reported as a failure.
"""

from __future__ import annotations

import atexit
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

from mediaingest import resident
from mediaingest.config import Settings
from mediaingest.exceptions import MediaIngestError, Permanent, error_message
from mediaingest.logging import configure_logging
from mediaingest.models import TaskStatus
from mediaingest.models.enums import Stage
from mediaingest.pipeline.ffmpeg import TOOLS_PEAK, StageCancelledError
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
# When a stage process is retired rather than kept for the next attempt (see the module's docstring).
RETIRE_ABOVE_RSS_BYTES = 512 * 2**20  # what Pillow or a malloc arena kept after a large still
MAX_ATTEMPTS_PER_PROCESS = 200  # a slow leak anywhere (a library's cache) stays bounded
MAX_IDLE_PROCESSES = max(2, os.cpu_count() or 1)  # a worker's stage slots are about half the cores


def preload(module: str) -> None:
    """Has stage processes import `module` too (before the forkserver starts): the composition root names
    itself, so the hooks it registers on import hold in every stage process."""
    if module not in _PRELOAD:
        _PRELOAD.append(module)
        _CONTEXT.set_forkserver_preload([*_PRELOAD, _PRELOAD_LAST])


def warm_up(settings: Settings, *, processes: int) -> None:
    """Starts the forkserver now, waits until it has imported the pipeline (seconds on a busy machine), and
    starts `processes` stage processes to wait for the first attempts, so the first stages wait for none
    of it."""
    forkserver.ensure_running()
    started = [_StageProcess(settings) for _ in range(max(0, min(processes, MAX_IDLE_PROCESSES)))]
    for stage_process in started:
        _IDLE.give_back(stage_process)


@dataclass(frozen=True)
class AttemptReport:
    """How one stage attempt ended, plainly: what the worker needs to decide on a retry."""

    ended: TaskStatus  # SUCCEEDED, CANCELLED or FAILED: what its task becomes, unless a failure is retried
    message: str = ""
    permanent: bool = False  # when failed: no attempt can cure it (PermanentProcessingError)
    peak_rss_bytes: int = 0  # the stage process itself (Python, Pillow), in this attempt
    start_rss_bytes: int = 0  # its resident size as the attempt began: what earlier attempts left, in the peak
    tools_peak_rss_bytes: int = 0  # the largest of its ffmpeg/ffprobe children in this attempt
    pid: int | None = None  # the stage process
    reusable: bool = False  # the stage process may run another attempt (it is as good as a fresh one)


_TAKEN = "taken"  # what a stage process answers first to an attempt: it is running it


@dataclass(frozen=True)
class _Attempt:
    """What the worker's thread sends a stage process: one attempt to run."""

    handle: IngestionJobHandle
    asset_id: str
    stage: Stage


class _StageProcess:
    """A stage process and the worker's end of its pipe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # held, so `is` tells which worker's settings it was made with
        self.conn, child_end = _CONTEXT.Pipe(duplex=True)
        self.process = _CONTEXT.Process(target=_stage_process_main, args=(settings, child_end), name="stage",
                                        daemon=True)  # fmt: skip
        self.process.start()
        child_end.close()

    def retire(self) -> None:
        """Ends it: an idle one leaves its loop when the pipe closes; whatever is left of its group (an
        orphaned ffmpeg after a death or a stop) is killed."""
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.exitcode != 0:
            _signal_group(self.process.pid, signal.SIGKILL)
        if self.process.exitcode is None:
            self.process.join(timeout=5)


class _IdleProcesses:
    """Stage processes waiting for their next attempt, newest last; shared by every worker in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_StageProcess] = []

    def take(self, settings: Settings) -> _StageProcess:
        """The newest idle process made with these settings, else a new one; any of them found dead (the OOM
        killer may pick an idle one) is retired on the way."""
        with self._lock:
            mine = [process for process in self._idle if process.settings is settings]
            dead = [process for process in mine if not process.process.is_alive()]
            alive = [process for process in mine if process not in dead]
            chosen = alive[-1] if alive else None
            self._idle = [process for process in self._idle if process is not chosen and process not in dead]
        for process in dead:
            process.retire()
        return chosen or _StageProcess(settings)

    def give_back(self, stage_process: _StageProcess) -> None:
        with self._lock:
            self._idle.append(stage_process)
            surplus = self._idle[: max(0, len(self._idle) - MAX_IDLE_PROCESSES)]
            del self._idle[: len(surplus)]
        for process in surplus:
            process.retire()

    def retire(self, settings: Settings | None = None) -> None:
        """The idle processes made with these settings (their worker stops), or all of them (at exit)."""
        with self._lock:
            leaving = [process for process in self._idle if settings is None or process.settings is settings]
            self._idle = [process for process in self._idle if process not in leaving]
        for process in leaving:
            process.retire()


_IDLE = _IdleProcesses()
# Before multiprocessing's own exit handler (atexit runs the last registered first), which would wait
# without end for a daemon child that never sees its pipe close.
atexit.register(_IDLE.retire)


def retire_idle(settings: Settings) -> None:
    """A stopping worker's idle stage processes end with it."""
    _IDLE.retire(settings)


def run_attempt(
    settings: Settings, *, handle: IngestionJobHandle, asset_id: str, stage: Stage, cancel: threading.Event
) -> AttemptReport:
    """Runs one attempt in a stage process and waits for it; `cancel` stops it. Never raises for the
    stage's own failures: they are reported."""
    for _ in range(2):  # an idle process that died before it took the attempt: once more, on another
        stage_process = _IDLE.take(settings)
        taken, report = _hand_over(stage_process, _Attempt(handle, asset_id, stage), cancel)
        if report is not None and report.reusable and not cancel.is_set():
            _IDLE.give_back(stage_process)
        else:
            stage_process.retire()
        if taken or cancel.is_set():
            break
    if report is not None:
        return report
    if cancel.is_set():
        return AttemptReport(ended=TaskStatus.CANCELLED, message="stage process stopped")
    return _death_report(stage_process.process, stage)


def _hand_over(
    stage_process: _StageProcess, attempt: _Attempt, cancel: threading.Event
) -> tuple[bool, AttemptReport | None]:
    """Sends the attempt and waits for its report: whether the process took it, and the report (None when
    the process ended without one). Once `cancel` is set, SIGTERM to its group, SIGKILL after the grace."""
    conn, process = stage_process.conn, stage_process.process
    taken, terminated_at = False, None
    try:
        conn.send(attempt)
        while True:
            if conn.poll(0.2):
                message = conn.recv()
                if message == _TAKEN:
                    taken = True
                    continue
                return taken, message if isinstance(message, AttemptReport) else None
            if not process.is_alive():
                if conn.poll(0):
                    continue  # it sent its report, then ended
                break
            if cancel.is_set():
                if terminated_at is None:
                    terminated_at = time.monotonic()
                    _signal_group(process.pid, signal.SIGTERM)
                elif time.monotonic() - terminated_at > CANCEL_GRACE_SECONDS:
                    _signal_group(process.pid, signal.SIGKILL)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # it died before or while taking the attempt
    process.join(timeout=5)
    return taken, None


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


# --- in the stage process ----------------------------------------------------------------------------


class _Signals:
    """What SIGTERM means to a stage process: while an attempt runs, stop it (it ends as cancelled, and the
    process is retired); while idle, leave at once (the forkserver, the worker or the machine is stopping),
    so no stale signal ever cancels a later attempt."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.busy = False

    def __call__(self, *_: object) -> None:
        if not self.busy:
            raise SystemExit(0)  # out of the blocking recv()
        self.cancel.set()


def _stage_process_main(settings: Settings, conn: Connection) -> None:
    """Set up once, then one attempt after another until the worker closes the pipe or an attempt leaves
    this process unfit for the next."""
    os.setpgid(0, 0)  # lead a group of our own, which ffmpeg joins: the worker stops both at once
    with contextlib.suppress(OSError, AttributeError):  # Linux: end with the forkserver (and worker)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signals = _Signals()
    signal.signal(signal.SIGTERM, signals)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal; the worker decides
    configure_logging(settings.log_level, json=settings.log_json)
    ctx = StageContext.open(settings)
    try:
        for attempts in range(1, MAX_ATTEMPTS_PER_PROCESS + 1):
            try:
                attempt = conn.recv()
            except EOFError:
                return  # retired while idle
            signals.busy = True
            conn.send(_TAKEN)  # from here the attempt is this process's: its end is reported, or a death
            report = _run_one(ctx, attempt, signals.cancel)
            reusable = report.reusable and attempts < MAX_ATTEMPTS_PER_PROCESS and not signals.cancel.is_set()
            reusable = reusable and _resident_bytes("VmRSS") <= RETIRE_ABOVE_RSS_BYTES
            conn.send(dataclasses.replace(report, reusable=reusable))
            if not reusable:
                return
            signals.busy = False
            if signals.cancel.is_set():
                return  # SIGTERM came as the attempt ended: the worker finds this process gone and takes another
    finally:
        ctx.close()
        conn.close()


def _run_one(ctx: StageContext, attempt: _Attempt, cancel: threading.Event) -> AttemptReport:
    """One attempt, its peaks measured from its own start; `reusable` unless it ended in the unexpected."""
    handle, stage = attempt.handle, attempt.stage
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(asset_id=attempt.asset_id, stage=stage, job_id=handle.job_id)
    _reset_peak_rss()
    start = _resident_bytes("VmRSS")  # after the reset: the high-water mark is never below it
    TOOLS_PEAK.reset()
    report: AttemptReport
    try:
        host = direct_host(ctx, asset_id=attempt.asset_id, stage=stage, handle=handle)
        outcome = execute_stage(host, stage=stage, cancel=cancel, settings=ctx.settings, options=ctx.options)
        ended = TaskStatus.SUCCEEDED if outcome.completed else TaskStatus.CANCELLED
        report = AttemptReport(ended=ended, message=outcome.message, reusable=True)
    except StageCancelledError as cancelled:
        log.info("asset.stage_cancelled")
        report = AttemptReport(ended=TaskStatus.CANCELLED, message=cancelled.message)
    except Exception as error:
        report = _failure_report(error, handle)
    finally:
        ctx.close()  # no connection held while idle; the engine and its compiled statements stay
    own = _resident_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return dataclasses.replace(report, peak_rss_bytes=own, start_rss_bytes=start, tools_peak_rss_bytes=TOOLS_PEAK.bytes,
                               pid=os.getpid())  # fmt: skip


def _failure_report(error: Exception, handle: IngestionJobHandle) -> AttemptReport:
    """A failed attempt as the worker reads it: the error's message, and whether it is permanent. The
    process stays fit for the next attempt after a failure of the media, not after one of the code."""
    expected = isinstance(error, MediaIngestError)
    if not expected:
        log.exception("asset.stage_crashed")
    permanent = isinstance(error, Permanent)
    log.warning("asset.stage_failed", error=error_message(error), attempt=handle.attempt, permanent=permanent)
    return AttemptReport(ended=TaskStatus.FAILED, message=error_message(error), permanent=permanent,
                         reusable=expected)  # fmt: skip


def _reset_peak_rss() -> None:
    """The kernel's high-water mark of this process's resident size starts again from its current size (what
    earlier attempts left resident is counted; anything above it is this attempt's)."""
    global _peak_reset_failed
    try:
        resident.reset_peak()
    except OSError as exc:
        if not _peak_reset_failed:  # a sandbox without it: the peaks become the process's lifetime's
            _peak_reset_failed = True
            log.warning("stage_process.peak_rss_not_reset", error=str(exc))


_peak_reset_failed = False


def _resident_bytes(field: str) -> int:
    return (resident.status_kib(field) or 0) * 1024
