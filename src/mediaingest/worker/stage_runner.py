"""Running one attempt of one stage for one asset: the code both executors share.

The local worker's stage processes call `execute_stage` for each stage task it claims; a Kubernetes Job calls it through
`mediaingest run-stage`. It downloads the source into a private temp folder, runs the pure stage
function from `mediaingest.pipeline`, uploads the outputs under deterministic keys, and records
rows and the job's completion in one transaction. Re-running a stage replaces its outputs; objects
of an earlier run that this run did not produce are removed, so nothing strays.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import structlog

from mediaingest.assets import repository
from mediaingest.assets.storage_keys import derived_key, stage_prefix
from mediaingest.config import Settings
from mediaingest.db import SessionFactory, create_db_engine, create_session_factory, session_scope
from mediaingest.exceptions import MediaIngestError, PermanentProcessingError, TransientProcessingError
from mediaingest.models import AssetMetadata, AssetProxy, IngestionJob, MediaAsset
from mediaingest.models.enums import ProxyType, Stage, UploadStatus
from mediaingest.pipeline import run_stage_function
from mediaingest.pipeline.ffmpeg import StageCancelledError
from mediaingest.pipeline.hls import PLAYLIST_TYPE, SEGMENT_TYPE
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.types import LiveOutputs, StageOutput, StageResult
from mediaingest.retry import RetryDecision, RetryPolicy
from mediaingest.storage import build_storage
from mediaingest.storage.base import Storage
from mediaingest.storage.errors import PreconditionFailedError
from mediaingest.worker import progression
from mediaingest.worker.jobs import JobHandle

log = structlog.stdlib.get_logger(__name__)

_HASH_CHUNK = 1024 * 1024
WORKSPACE_PREFIX = "mediaingest-job-"


@dataclass(frozen=True)
class StageContext:
    """What a process needs to run stages, built once at worker or Job start."""

    settings: Settings
    session_factory: SessionFactory
    storage: Storage
    options: PipelineOptions

    @classmethod
    def open(cls, settings: Settings, *, pool_size: int = 2) -> StageContext:
        """Its own engine and storage client, built from the settings (a stage process, a pod, a worker)."""
        engine = create_db_engine(settings.resolved_database_url, pool_size=pool_size)
        return cls(
            settings=settings,
            session_factory=create_session_factory(engine),
            storage=build_storage(settings),
            options=PipelineOptions.from_settings(settings),
        )

    def close(self) -> None:
        """Closes the database connections `open` made."""
        bind = self.session_factory.kw.get("bind")
        if isinstance(bind, sa.Engine):
            bind.dispose()

    def bucket(self, role: str) -> str:
        return self.settings.bucket_proxies if role == "proxies" else self.settings.bucket_processed


@dataclass(frozen=True)
class StageOutcome:
    completed: bool  # False: the asset was deleted or the job taken away; nothing was recorded
    outputs: int
    message: str


@dataclass(frozen=True)
class _UploadedOutput:
    output: StageOutput
    bucket: str
    key: str
    size: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def job_workspace(settings: Settings, label: str) -> Iterator[Path]:
    """A private folder removed on every exit path; the pid in its name lets a later worker reap it."""
    root = settings.work_dir or Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{os.getpid()}-{label}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphaned_workspaces(settings: Settings) -> int:
    """Folders left by workers that were killed (SIGKILL skips every finally)."""
    root = settings.work_dir or Path(tempfile.gettempdir())
    removed = 0
    for path in root.glob(f"{WORKSPACE_PREFIX}*"):
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
    """The stage's progress callback: writes the job row at a sane rate and notices cancellation."""

    def __init__(self, ctx: StageContext, handle: JobHandle, cancel: threading.Event, stage: Stage) -> None:
        self.ctx, self.handle, self.cancel, self.stage = ctx, handle, cancel, stage

    def __call__(self, fraction: float, message: str) -> None:
        if self.cancel.is_set():
            raise StageCancelledError(f"{self.stage.value} cancelled")
        if not self.handle.write_progress(self.ctx.session_factory, fraction, message, min_interval=0.5):
            self.cancel.set()
            raise StageCancelledError(f"{self.stage.value} job is no longer ours")


def execute_stage(
    ctx: StageContext,
    *,
    asset_id: str,
    stage: Stage,
    handle: JobHandle,
    cancel: threading.Event,
    enqueue_next: bool,
) -> StageOutcome:
    """One attempt. Raises ProcessingError/StorageError on failure; the caller applies the retry policy."""
    with session_scope(ctx.session_factory) as session:
        asset = session.get(MediaAsset, asset_id)
        if asset is None:
            return StageOutcome(completed=False, outputs=0, message="asset deleted")
        if asset.upload_status != UploadStatus.UPLOADED:
            raise TransientProcessingError(f"asset upload is {asset.upload_status.value}, not UPLOADED yet")
        progression.mark_processing(session, asset)
        media_type, bucket, key, owner_id = asset.type, asset.storage_bucket, asset.storage_key, asset.owner_id
        known_checksum, declared_sha256, verified_etag = asset.checksum, asset.declared_sha256, asset.etag
        metadata = progression.metadata_of(asset)
    if stage != Stage.PROBE and metadata is None:
        raise TransientProcessingError("probe results are not recorded yet")

    progress = _Progress(ctx, handle, cancel, stage)
    with job_workspace(ctx.settings, stage.value) as workspace:
        progress(0.0, "downloading source")
        source = workspace / f"source{Path(key).suffix}"
        try:
            # Pinned to the ETag verified at confirm: other bytes under the key are never processed.
            ctx.storage.download_file(bucket, key, source, etag=verified_etag)
        except PreconditionFailedError as exc:
            raise PermanentProcessingError(
                "the stored upload is not the one verified at confirm (its ETag changed); upload it again"
            ) from exc
        checksum = None
        if stage == Stage.PROBE:
            checksum = _verify_checksum(source, known=known_checksum, declared=declared_sha256)
        output_dir = workspace / "out"
        output_dir.mkdir()
        live = _LivePublisher(ctx, owner_id=owner_id, asset_id=asset_id, stage=stage, cancel=cancel)
        try:
            result = run_stage_function(
                stage, source, media_type, metadata, output_dir, options=ctx.options, on_progress=progress,
                cancel=cancel, live=LiveOutputs(publish=live.publish, playable=live.playable),
            )  # fmt: skip
        except StageCancelledError:
            live.discard_if_asset_deleted()
            raise
        if cancel.is_set():
            raise StageCancelledError(f"{stage.value} cancelled")
        uploaded = _upload_outputs(ctx, result, owner_id=owner_id, asset_id=asset_id, stage=stage)
    return _record(ctx, asset_id=asset_id, owner_id=owner_id, stage=stage, handle=handle, result=result,
                   uploaded=uploaded, checksum=checksum, enqueue_next=enqueue_next,
                   published=live.keys)  # fmt: skip


class _LivePublisher:
    """What a stage publishes while it runs (HLS segments, playlists) goes to the proxies bucket at once, under
    the stage's prefix; how much plays is written to the asset at most twice a second."""

    def __init__(
        self, ctx: StageContext, *, owner_id: str, asset_id: str, stage: Stage, cancel: threading.Event
    ) -> None:
        self.ctx, self.owner_id, self.asset_id, self.stage, self.cancel = ctx, owner_id, asset_id, stage, cancel
        self.keys: set[tuple[str, str]] = set()
        self._last_write = 0.0

    def discard_if_asset_deleted(self) -> None:
        """The asset was deleted while this stage published: what it stored since then would stray."""
        with session_scope(self.ctx.session_factory) as session:
            if session.get(MediaAsset, self.asset_id) is not None:
                return  # taken over by another attempt, which publishes the same names
        for bucket, key in self.keys:
            self.ctx.storage.delete(bucket, key)

    def publish(self, path: Path, name: str) -> None:
        if self.cancel.is_set():
            raise StageCancelledError(f"{self.stage.value} cancelled")
        bucket = self.ctx.bucket("proxies")
        key = derived_key(user_id=self.owner_id, asset_id=self.asset_id, stage=self.stage.value, filename=name)
        content_type = PLAYLIST_TYPE if name.endswith(".m3u8") else SEGMENT_TYPE
        self.ctx.storage.upload_file(bucket, key, path, content_type=content_type)
        self.keys.add((bucket, key))

    def playable(self, seconds: float) -> None:
        now = time.monotonic()
        if now - self._last_write < 0.5 and self._last_write:
            return
        self._last_write = now
        with session_scope(self.ctx.session_factory) as session:
            progression.record_playable(session, asset_id=self.asset_id, seconds=round(seconds, 3))


def record_attempt_failure(
    ctx: StageContext, *, handle: JobHandle, asset_id: str, stage: Stage, error: BaseException, policy: RetryPolicy
) -> RetryDecision:
    """Applies the retry policy to a failed attempt and records the outcome (retrying or failed).

    One place for both ways an attempt fails: an error raised by the stage, recorded by the stage
    process itself, and a stage process that died without a word, recorded by the worker.
    """
    message = error.message if isinstance(error, MediaIngestError) else f"{type(error).__name__}: {error}"
    with session_scope(ctx.session_factory) as session:
        job = session.get(IngestionJob, handle.job_id)
        max_attempts = job.max_attempts if job else policy.max_attempts
        decision = policy.decide(error, attempts=handle.attempt, max_attempts=max_attempts)
        progression.stage_failed(
            session, asset=session.get(MediaAsset, asset_id), stage=stage, handle=handle, error=message,
            decision=decision,
        )  # fmt: skip
    log.warning(
        "asset.stage_failed",
        error=message,
        attempt=handle.attempt,
        retry=decision.retry,
        delay_seconds=round(decision.delay_seconds, 2),
        permanent=isinstance(error, PermanentProcessingError),
    )
    return decision


def _verify_checksum(source: Path, *, known: str | None, declared: str | None) -> str | None:
    """The probe's full read: the bytes must be those verified at confirm. Returns the SHA-256 to record
    when confirm could not compute it (S3 without a client checksum), else None.

    Hashed even when the checksum is known: a same-size swap keeps the size, and only the hash tells.
    """
    actual = sha256_of(source)
    if known is not None and actual != known:
        raise PermanentProcessingError("SHA-256 mismatch: the stored bytes changed after they were verified")
    if declared is not None and actual != declared:
        raise PermanentProcessingError("SHA-256 mismatch: the stored bytes do not match the declared sha256")
    return actual if known is None else None


def _upload_outputs(
    ctx: StageContext, result: StageResult, *, owner_id: str, asset_id: str, stage: Stage
) -> list[_UploadedOutput]:
    uploaded = []
    for output in result.outputs:
        bucket = ctx.bucket(output.bucket)
        key = derived_key(user_id=owner_id, asset_id=asset_id, stage=stage.value, filename=output.key_name)
        info = ctx.storage.upload_file(bucket, key, output.path, content_type=output.content_type)
        uploaded.append(_UploadedOutput(output=output, bucket=bucket, key=key, size=info.size))
    return uploaded


def _record(
    ctx: StageContext,
    *,
    asset_id: str,
    owner_id: str,
    stage: Stage,
    handle: JobHandle,
    result: StageResult,
    uploaded: list[_UploadedOutput],
    checksum: str | None,
    enqueue_next: bool,
    published: set[tuple[str, str]],
) -> StageOutcome:
    prefix = stage_prefix(user_id=owner_id, asset_id=asset_id, stage=stage.value)
    kept = {(item.bucket, item.key) for item in uploaded} | published
    with session_scope(ctx.session_factory) as session:
        asset = repository.get_for_update(session, asset_id)
        recorded = asset is not None
        if asset is not None:
            _replace_rows(session, asset, stage=stage, prefix=prefix, result=result, uploaded=uploaded)
            hls = next((o for o in result.outputs if o.kind == ProxyType.HLS), None)
            if hls is not None:  # the whole length plays now, whatever the last throttled write said
                progression.record_playable(
                    session, asset_id=asset_id, seconds=float(hls.details.get("durationSeconds") or 0.0)
                )
            if checksum is not None:
                asset.checksum = checksum
            recorded = progression.stage_succeeded(
                session, asset=asset, stage=stage, handle=handle, message=result.message, enqueue_next=enqueue_next,
                max_attempts=ctx.settings.job_max_attempts,
            )  # fmt: skip
            if not recorded:
                session.rollback()
    if not recorded:
        # Deleted while we worked, or the job was taken over: leave no objects behind for this attempt.
        # (A successor writing the same keys will rewrite them; a deleted asset's prefix is gone for good.)
        if asset is None:
            for bucket, key in kept:
                ctx.storage.delete(bucket, key)
        return StageOutcome(completed=False, outputs=0, message="asset deleted or job taken over")
    _remove_stale_objects(ctx, prefix=prefix, kept=kept)
    log.info("asset.stage_completed", asset_id=asset_id, stage=stage.value, outputs=len(uploaded))
    return StageOutcome(completed=True, outputs=len(uploaded), message=result.message)


def _replace_rows(
    session: sa.orm.Session,
    asset: MediaAsset,
    *,
    stage: Stage,
    prefix: str,
    result: StageResult,
    uploaded: list[_UploadedOutput],
) -> None:
    if result.metadata is not None:
        session.execute(sa.delete(AssetMetadata).where(AssetMetadata.asset_id == asset.id))
        session.add(AssetMetadata(asset_id=asset.id, **result.metadata.to_dict()))
    if result.measurements:
        session.execute(
            sa.update(AssetMetadata).where(AssetMetadata.asset_id == asset.id).values(**result.measurements)
        )
    session.execute(
        sa.delete(AssetProxy).where(AssetProxy.asset_id == asset.id, AssetProxy.storage_key.startswith(prefix))
    )
    for item in uploaded:
        output = item.output
        session.add(
            AssetProxy(
                asset_id=asset.id,
                type=output.kind,
                resolution=output.resolution,
                format=output.format,
                content_type=output.content_type,
                size_bytes=item.size,
                quality=output.quality,
                width=output.width,
                height=output.height,
                storage_bucket=item.bucket,
                storage_key=item.key,
                details=output.details or None,
            )
        )
    session.flush()
    session.expire(asset, ["metadata_record", "proxies"])


def _remove_stale_objects(ctx: StageContext, *, prefix: str, kept: set[tuple[str, str]]) -> None:
    for bucket in {ctx.settings.bucket_processed, ctx.settings.bucket_proxies}:
        for key in ctx.storage.list_keys(bucket, prefix):
            if (bucket, key) not in kept:
                ctx.storage.delete(bucket, key)
