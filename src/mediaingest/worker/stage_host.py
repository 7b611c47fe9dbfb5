"""What a running stage asks of the world: its input, somewhere to put files, someone to tell.

`execute_stage` (stage_runner) does the media work in a private folder and talks to a `StageHost` for
everything else. Two hosts, one set of rules:

- `DirectStageHost` reads and writes the database and object storage itself. The local worker's stage
  processes use it, and so does the API when a Kubernetes stage pod reports (`stage_reports`).
- `stage_reports.client.ApiStageHost` runs in a stage pod: it holds no database or storage credentials,
  only a token for one attempt; the API signs URLs for the source and the outputs and records what
  the pod reports through a `DirectStageHost` of its own.

So a stage's rows, keys and transitions are written by one class whichever executor ran it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
import structlog

from mediaingest.assets import repository
from mediaingest.assets.metadata import metadata_of
from mediaingest.assets.storage_keys import derived_key, stage_prefix
from mediaingest.db import session_scope
from mediaingest.exceptions import PermanentProcessingError, TransientProcessingError
from mediaingest.models import AssetMetadata, AssetProxy, MediaAsset
from mediaingest.models.enums import MediaType, ProxyType, Stage, UploadStatus
from mediaingest.pipeline import registry
from mediaingest.pipeline.hls import PLAYLIST_TYPE, SEGMENT_TYPE
from mediaingest.pipeline.types import Measurements, MediaMetadata, StageOutput, StageResult
from mediaingest.runtime import Runtime
from mediaingest.storage.base import PresignedRequest
from mediaingest.storage.errors import PreconditionFailedError
from mediaingest.worker import progression
from mediaingest.worker.jobs import IngestionJobHandle

log = structlog.stdlib.get_logger(__name__)

# What a stage may call its files: relative paths of plain names, never `..` (a pod's word is not trusted).
OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,3}")
SOURCE_CHANGED = "the stored upload is not the one verified at confirm (its ETag changed); upload it again"


@dataclass(frozen=True)
class StageAsset:
    """What a stage needs to know about its asset before it starts."""

    media_type: MediaType
    source_suffix: str  # ".mp4": the downloaded source keeps its extension (some tools look at it)
    checksum: str | None  # the SHA-256 verified at confirm, when it was computed there
    declared_sha256: str | None  # the SHA-256 the client declared, when it did
    metadata: MediaMetadata | None  # what the probe recorded; None before it has run


@dataclass(frozen=True)
class StoredOutput:
    """A stage output after it reached object storage."""

    output: StageOutput
    bucket: str
    key: str
    size: int


@dataclass(frozen=True)
class StageOutcome:
    completed: bool  # False: the asset was deleted or the job taken away; nothing was recorded
    outputs: int
    message: str


class StageHost(Protocol):
    def begin(self) -> StageAsset | None:
        """None when the asset was deleted; TransientProcessingError while it is not uploaded yet."""

    def download_source(self, destination: Path) -> None:
        """The verified upload, byte for byte: PermanentProcessingError when other bytes are stored."""

    def report_progress(self, fraction: float, message: str) -> bool:
        """Rate-limited; False when the attempt is no longer this runner's (then it stops)."""

    def publish(self, path: Path, name: str) -> None:
        """A file made visible while the stage runs (HLS), under `name` in the stage's folder."""

    def report_playable(self, seconds: float) -> None:
        """How much of the asset plays now; written at most twice a second."""

    def store(self, output: StageOutput) -> StoredOutput:
        """Uploads one final output under its deterministic key."""

    def record(
        self, result: StageResult, stored: list[StoredOutput], *, checksum: str | None, published: Iterable[str]
    ) -> StageOutcome:
        """The stage's rows and its job's completion, in one transaction."""

    def discard(self, published: Iterable[str]) -> None:
        """After a cancellation: removes what was published if the asset is gone (else a successor reuses it)."""


def live_content_type(name: str) -> str:
    return PLAYLIST_TYPE if name.endswith(".m3u8") else SEGMENT_TYPE


class DirectStageHost:
    """A stage host with the database and object storage at hand (one unit of work per call)."""

    def __init__(
        self,
        ctx: Runtime,
        *,
        asset_id: str,
        stage: Stage,
        handle: IngestionJobHandle,
        owner_id: str | None = None,
    ) -> None:
        self.ctx, self.asset_id, self.stage, self.handle = ctx, asset_id, stage, handle
        self.owner_id = owner_id
        self._source: tuple[str, str, str | None] | None = None  # bucket, key, verified ETag
        self._last_playable_write = 0.0

    # --- reading ----------------------------------------------------------------------------------
    def begin(self) -> StageAsset | None:
        with session_scope(self.ctx.session_factory) as session:
            asset = session.get(MediaAsset, self.asset_id)
            if asset is None:
                return None
            if asset.upload_status != UploadStatus.UPLOADED:
                raise TransientProcessingError(f"asset upload is {asset.upload_status.value}, not UPLOADED yet")
            progression.mark_processing(session, asset)
            self.owner_id = asset.owner_id
            self._source = (asset.storage_bucket, asset.storage_key, asset.etag)
            return StageAsset(
                media_type=asset.type,
                source_suffix=Path(asset.storage_key).suffix,
                checksum=asset.checksum,
                declared_sha256=asset.declared_sha256,
                metadata=metadata_of(asset),
            )

    def download_source(self, destination: Path) -> None:
        bucket, key, etag = self._begun_source()
        try:
            # Pinned to the ETag verified at confirm: other bytes under the key are never processed.
            self.ctx.storage.download_file(bucket, key, destination, etag=etag)
        except PreconditionFailedError as exc:
            raise PermanentProcessingError(SOURCE_CHANGED) from exc

    def sign_source(self, *, expires_in: int) -> tuple[str, str | None]:
        """A GET URL of the source for a stage pod, and the ETag its bytes must carry."""
        bucket, key, etag = self._begun_source()
        return self.ctx.storage.presign_get(bucket, key, expires_in=expires_in), etag

    def _begun_source(self) -> tuple[str, str, str | None]:
        if self._source is None:
            raise RuntimeError("begin() first")
        return self._source

    @property
    def _owner(self) -> str:
        """Whose the asset is: read by `begin()`, or given by a caller that knows it."""
        if self.owner_id is None:
            raise RuntimeError("the asset's owner is unknown")
        return self.owner_id

    # --- progress ---------------------------------------------------------------------------------
    def report_progress(self, fraction: float, message: str) -> bool:
        return self.handle.write_progress(self.ctx.session_factory, fraction, message, min_interval=0.5)

    def report_playable(self, seconds: float) -> None:
        now = time.monotonic()
        if self._last_playable_write and now - self._last_playable_write < 0.5:
            return
        self._last_playable_write = now
        with session_scope(self.ctx.session_factory) as session:
            progression.record_playable(session, asset_id=self.asset_id, seconds=round(seconds, 3))

    # --- objects ----------------------------------------------------------------------------------
    def output_location(self, name: str, role: str) -> tuple[str, str]:
        return output_location(self.ctx, owner_id=self._owner, asset_id=self.asset_id, stage=self.stage, name=name,
                               role=role)  # fmt: skip

    def publish(self, path: Path, name: str) -> None:
        bucket, key = self.output_location(name, "proxies")
        self.ctx.storage.upload_file(bucket, key, path, content_type=live_content_type(name))

    def store(self, output: StageOutput) -> StoredOutput:
        bucket, key = self.output_location(output.key_name, output.bucket)
        info = self.ctx.storage.upload_file(bucket, key, output.path, content_type=output.content_type)
        return StoredOutput(output=output, bucket=bucket, key=key, size=info.size)

    def sign_output(
        self, name: str, *, role: str, size: int, content_type: str, sha256: str, expires_in: int
    ) -> PresignedRequest:
        """A PUT URL for one output of a stage pod. It may replace an earlier attempt's file of that name."""
        bucket, key = self.output_location(name, role)
        return self.ctx.storage.presign_put(
            bucket, key, size=size, content_type=content_type, metadata={}, expires_in=expires_in, sha256=sha256,
            replace=True,
        )  # fmt: skip

    def stored(self, output: StageOutput) -> StoredOutput:
        """An output a stage pod says it stored, as storage has it (ObjectNotFoundError when it did not)."""
        bucket, key = self.output_location(output.key_name, output.bucket)
        return StoredOutput(output=output, bucket=bucket, key=key, size=self.ctx.storage.head(bucket, key).size)

    def discard(self, published: Iterable[str]) -> None:
        discard_published(self.ctx, owner_id=self._owner, asset_id=self.asset_id, stage=self.stage, names=published)

    # --- outcome ----------------------------------------------------------------------------------
    def record(
        self, result: StageResult, stored: list[StoredOutput], *, checksum: str | None, published: Iterable[str]
    ) -> StageOutcome:
        prefix = stage_prefix(user_id=self._owner, asset_id=self.asset_id, stage=self.stage)
        try:
            measured = checked_data(self.stage, result)
        except ValueError as exc:  # the stage's code disagrees with its spec: no retry cures that
            raise PermanentProcessingError(f"the {self.stage} stage's result: {exc}") from exc
        kept = {(item.bucket, item.key) for item in stored} | {self.output_location(n, "proxies") for n in published}
        with session_scope(self.ctx.session_factory) as session:
            asset = repository.get_for_update(session, self.asset_id)
            recorded = asset is not None and self._record_rows(
                session, asset, prefix=prefix, result=result, stored=stored, measured=measured, checksum=checksum
            )
        if not recorded:
            # Deleted while we worked, or the job was taken over: leave no objects behind for this attempt.
            # (A successor writing the same keys will rewrite them; a deleted asset's prefix is gone for good.)
            if asset is None:
                for bucket, key in kept:
                    self.ctx.storage.delete(bucket, key)
            return StageOutcome(completed=False, outputs=0, message="asset deleted or job taken over")
        self._remove_stale_objects(prefix=prefix, kept=kept)
        log.info("asset.stage_completed", asset_id=self.asset_id, stage=self.stage, outputs=len(stored))
        return StageOutcome(completed=True, outputs=len(stored), message=result.message)

    def _record_rows(
        self, session: sa.orm.Session, asset: MediaAsset, *, prefix: str, result: StageResult,
        stored: list[StoredOutput], measured: Measurements | None, checksum: str | None,
    ) -> bool:  # fmt: skip
        """The stage's rows and its job's completion; False, with nothing written, when the attempt is no
        longer current."""
        _replace_rows(session, asset, prefix=prefix, result=result, stored=stored, stage=self.stage, measured=measured)
        hls = next((item.output for item in stored if item.output.kind == ProxyType.HLS), None)
        if hls is not None:  # the whole length plays now, whatever the last throttled write said
            progression.record_playable(
                session, asset_id=self.asset_id, seconds=float(hls.details.get("durationSeconds") or 0.0)
            )
        if checksum is not None:
            asset.checksum = checksum
        recorded = progression.stage_succeeded(
            session, asset=asset, stage=self.stage, handle=self.handle, message=result.message,
            settings=self.ctx.settings,
        )  # fmt: skip
        if not recorded:
            session.rollback()
        return recorded

    def _remove_stale_objects(self, *, prefix: str, kept: set[tuple[str, str]]) -> None:
        """Objects of an earlier run that this run did not produce: nothing strays."""
        for bucket in {self.ctx.settings.bucket_processed, self.ctx.settings.bucket_proxies}:
            for key in self.ctx.storage.list_keys(bucket, prefix):
                if (bucket, key) not in kept:
                    self.ctx.storage.delete(bucket, key)


def output_location(
    ctx: Runtime, *, owner_id: str, asset_id: str, stage: Stage, name: str, role: str
) -> tuple[str, str]:
    """Bucket and key of a file the stage names (`hls/seg_00001.ts`), always inside its own folder."""
    if not OUTPUT_NAME.fullmatch(name) or ".." in name.split("/"):
        raise ValueError(f"not an output name: {name!r}")
    return ctx.bucket(role), derived_key(user_id=owner_id, asset_id=asset_id, stage=stage, filename=name)


def discard_published(ctx: Runtime, *, owner_id: str, asset_id: str, stage: Stage, names: Iterable[str]) -> None:
    """What a cancelled attempt published, removed if its asset is gone (a later attempt reuses the names)."""
    with session_scope(ctx.session_factory) as session:
        if session.get(MediaAsset, asset_id) is not None:
            return
    for name in names:
        ctx.storage.delete(*output_location(ctx, owner_id=owner_id, asset_id=asset_id, stage=stage, name=name,
                                            role="proxies"))  # fmt: skip


def checked_data(stage: Stage, result: StageResult) -> Measurements | None:
    """The result's measurements as its StageSpec's model, and its outputs of the kinds the spec declares
    (ValueError otherwise: a stage pod's report is not trusted, and a stage's slip shows at once)."""
    spec = registry.spec_for(stage)
    if undeclared := sorted({output.kind for output in result.outputs} - spec.output_kind_names):
        raise ValueError(f"stage {stage!r} wrote outputs of kinds it does not declare: {undeclared}")
    if spec.measurements is None:
        if result.measurements:
            raise ValueError(f"stage {stage!r} declares no measurements but returned {sorted(result.measurements)}")
        return None
    return spec.measurements.model_validate(result.measurements) if result.measurements else None


def _replace_rows(
    session: sa.orm.Session,
    asset: MediaAsset,
    *,
    prefix: str,
    result: StageResult,
    stored: list[StoredOutput],
    stage: Stage,
    measured: Measurements | None,
) -> None:
    if result.metadata is not None:
        session.execute(sa.delete(AssetMetadata).where(AssetMetadata.asset_id == asset.id))
        session.add(AssetMetadata(asset_id=asset.id, **result.metadata.to_dict()))
    if measured is not None:
        _store_measurements(session, asset, stage=stage, measured=measured)
    session.execute(
        sa.delete(AssetProxy).where(AssetProxy.asset_id == asset.id, AssetProxy.storage_key.startswith(prefix))
    )
    for item in stored:
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


def _store_measurements(session: sa.orm.Session, asset: MediaAsset, *, stage: Stage, measured: Measurements) -> None:
    """The stage's entry in the asset's measurements, and the columns its model fills.

    Read, changed and written under the asset's row lock (`get_for_update` on PostgreSQL; SQLite's writers
    are serialized by BEGIN IMMEDIATE), so stages finishing side by side keep each other's entry.
    """
    record = session.get(AssetMetadata, asset.id)
    if record is not None:
        record.measurements = {**(record.measurements or {}), stage: measured.stored()}
        for name, value in measured.column_values().items():
            setattr(record, name, value)
