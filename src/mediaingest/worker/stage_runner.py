"""Running one attempt of one stage for one asset: the code both executors share.

The local worker's stage processes call `execute_stage` for each stage task it claims; a Kubernetes Job
calls it through `mediaingest run-stage`. It downloads the source into a private temp folder, runs the
pure stage function from `mediaingest.pipeline`, stores the outputs and has them recorded — all through
a `StageHost` (`stage_host`): the database and storage directly in a local stage process, the API in a
stage pod.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import structlog

from mediaingest.config import Settings
from mediaingest.exceptions import PermanentProcessingError, TransientProcessingError
from mediaingest.models.enums import Stage
from mediaingest.pipeline import run_stage_function
from mediaingest.pipeline.ffmpeg import StageCancelledError
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import StageRole, load_stage_modules, spec_for
from mediaingest.pipeline.types import LiveOutputs
from mediaingest.runtime import Runtime
from mediaingest.worker.jobs import IngestionJobHandle
from mediaingest.worker.stage_host import DirectStageHost, StageAsset, StageHost, StageOutcome

log = structlog.stdlib.get_logger(__name__)

_HASH_CHUNK = 1024 * 1024
WORKSPACE_PREFIX = "mediaingest-job-"


@dataclass(frozen=True)
class StageContext(Runtime):
    """What a process needs to run stages, built once at worker or Job start: the runtime and the
    pipeline's options."""

    options: PipelineOptions

    @classmethod
    def open(cls, settings: Settings, *, pool_size: int = 2) -> Self:
        """Its own engine and storage client (a stage process, a pod, a worker), and the stages of
        STAGE_MODULES registered in this process."""
        load_stage_modules(settings.stage_modules)
        session_factory, storage = cls.connect(settings, pool_size=pool_size)
        return cls(settings=settings, session_factory=session_factory, storage=storage,
                   options=PipelineOptions.from_settings(settings))  # fmt: skip


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _workspaces(settings: Settings) -> Path:
    """Where the stage workspaces are made: WORK_DIR, else the system's temp folder."""
    return settings.work_dir or Path(tempfile.gettempdir())


@contextmanager
def job_workspace(settings: Settings, label: str) -> Iterator[Path]:
    """A private folder removed on every exit path; the pid in its name lets a later worker reap it."""
    root = _workspaces(settings)
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{os.getpid()}-{label}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphaned_workspaces(settings: Settings) -> int:
    """Folders left by workers that were killed (SIGKILL skips every finally)."""
    removed = 0
    for path in _workspaces(settings).glob(f"{WORKSPACE_PREFIX}*"):
        pid_text = path.name[len(WORKSPACE_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Progress:
    """The stage's progress callback: reports at a sane rate and notices cancellation."""

    def __init__(self, host: StageHost, cancel: threading.Event, stage: Stage) -> None:
        self.host, self.cancel, self.stage = host, cancel, stage

    def __call__(self, fraction: float, message: str) -> None:
        if self.cancel.is_set():
            raise StageCancelledError(f"{self.stage} cancelled")
        if not self.host.report_progress(fraction, message):
            self.cancel.set()
            raise StageCancelledError(f"{self.stage} job is no longer ours")


class _LivePublisher:
    """What a stage publishes while it runs (HLS segments, playlists) is stored at once under the stage's
    folder; the names are kept so the outcome keeps them (or a cancellation removes them)."""

    def __init__(self, host: StageHost, stage: Stage, cancel: threading.Event) -> None:
        self.host, self.stage, self.cancel = host, stage, cancel
        self.names: set[str] = set()

    def publish(self, path: Path, name: str) -> None:
        if self.cancel.is_set():
            raise StageCancelledError(f"{self.stage} cancelled")
        self.host.publish(path, name)
        self.names.add(name)


def execute_stage(
    host: StageHost, *, stage: Stage, cancel: threading.Event, settings: Settings, options: PipelineOptions
) -> StageOutcome:
    """One attempt. Raises ProcessingError/StorageError on failure; the caller applies the retry policy."""
    begun = host.begin()
    if begun is None:
        return StageOutcome(completed=False, outputs=0, message="asset deleted")
    spec = spec_for(stage)
    describes_source = spec.role == StageRole.DESCRIBES_SOURCE
    if begun.metadata is None and spec.reads_metadata(begun.media_type):
        raise TransientProcessingError("probe results are not recorded yet")

    progress = _Progress(host, cancel, stage)
    with job_workspace(settings, stage) as workspace:
        progress(0.0, "downloading source")
        # The stage that describes the source checks the bytes against the upload's SHA-256. A stage that
        # starts beside it checks them too when confirm could not (S3 without a client checksum), rather
        # than work from bytes nobody has checked; otherwise the describing stage's check suffices.
        verify = describes_source or (begun.metadata is None and begun.checksum is None)
        source, checksum = _download_source(host, begun, workspace, verify=verify)
        output_dir = workspace / "out"
        output_dir.mkdir()
        live = _LivePublisher(host, stage, cancel)
        try:
            result = run_stage_function(
                stage, source, begun.media_type, begun.metadata, output_dir, options=options, on_progress=progress,
                cancel=cancel, live=LiveOutputs(publish=live.publish, playable=host.report_playable),
            )  # fmt: skip
        except StageCancelledError:
            host.discard(live.names)
            raise
        if cancel.is_set():
            raise StageCancelledError(f"{stage} cancelled")
        stored = [host.store(output) for output in result.outputs]
    return host.record(result, stored, checksum=checksum, published=live.names)


def _download_source(host: StageHost, begun: StageAsset, workspace: Path, *, verify: bool) -> tuple[Path, str | None]:
    """The source in the workspace; with `verify`, checked against the upload's SHA-256, which is returned
    when confirm could not record it."""
    source = workspace / f"source{begun.source_suffix}"
    host.download_source(source)
    return source, _verify_checksum(source, known=begun.checksum, declared=begun.declared_sha256) if verify else None


def direct_host(ctx: StageContext, *, asset_id: str, stage: Stage, handle: IngestionJobHandle) -> StageHost:
    return DirectStageHost(ctx, asset_id=asset_id, stage=stage, handle=handle)


def _verify_checksum(source: Path, *, known: str | None, declared: str | None) -> str | None:
    """The probe's full read: the bytes must be those verified at confirm. Returns the SHA-256 to record
    when confirm could not compute it (S3 without a client checksum), else None.

    Hashed even when the checksum is known: a same-size swap keeps the size, and only the hash tells.
    """
    actual = sha256_of(source)
    if known not in (None, actual):
        raise PermanentProcessingError("SHA-256 mismatch: the stored bytes changed after they were verified")
    if declared not in (None, actual):
        raise PermanentProcessingError("SHA-256 mismatch: the stored bytes do not match the declared sha256")
    return actual if known is None else None
