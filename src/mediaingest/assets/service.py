"""The asset service: the upload protocol, integrity checks, quotas, listing, status and deletion.

Endpoints, the CLI and the sweeper call it; services only flush, and the request or job wrapper
commits (confirm_upload runs three units of work its caller opens, around storage work that must
not hold locks). A failure that must be kept (an upload discarded) is a returned result that the
wrapper commits, never an exception that commits on its way out.
Storage calls are ordered so that a failure leaves nothing behind: rows are written before the
storage operation they describe is acknowledged to the client, and objects are removed before the
rows that point at them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from mediaingest.assets import repository
from mediaingest.assets.hls_access import playback_of
from mediaingest.assets.lifecycle import mark_failed
from mediaingest.assets.media_types import (
    ALLOWED_MIME_TYPES,
    SNIFF_BYTES,
    extension_of,
    printable_name,
    sanitize_filename,
    sniff,
)
from mediaingest.assets.schemas import (
    AssetStatus,
    AssetSummary,
    ConfirmedPart,
    ConfirmUploadRequest,
    JobOut,
    MultipartUpload,
    Playback,
    PresignedPart,
    ReceivedPart,
    SignedParts,
    SignPartsRequest,
    SpokenMatch,
    UploadState,
    UploadUrlRequest,
    UploadUrlResponse,
)
from mediaingest.assets.storage_keys import UPLOAD_PREFIX, asset_of_derived_key, derived_prefix, upload_key
from mediaingest.config import Settings
from mediaingest.db import new_id, utcnow
from mediaingest.dispatch import Dispatcher
from mediaingest.exceptions import (
    ConflictError,
    FileTooLargeError,
    IntegrityCheckError,
    MediaIngestError,
    MimeTypeNotAllowedError,
    NotFoundError,
    ObjectNotFoundError,
    QuotaExceededError,
    StorageError,
    ValidationFailedError,
)
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import (
    AssetProcessingStatus,
    IngestionJobStatus,
    MediaType,
    ProxyType,
    UploadStatus,
)
from mediaingest.pipeline.captions import phrase_time
from mediaingest.pipeline.registry import StageRole, job_type_for, stage_with_role
from mediaingest.storage.base import CompletedPart, ObjectInfo, PartInfo, PresignedRequest, Storage
from mediaingest.storage.errors import InvalidPartError
from mediaingest.users.auth import Principal

log = structlog.stdlib.get_logger(__name__)

S3_MAX_PARTS = 10_000
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3_MAX_PART_SIZE = 5 * 1024 * 1024 * 1024


IDLE_EXPIRY_REASON = "upload expired: it was left idle (no part, no request for URLs) past its deadline"


@dataclass(frozen=True)
class ConfirmedUpload:
    """How a confirmation ended. With `failure`, the upload was discarded and that is recorded: the
    unit of work commits it like any outcome, then the failure is raised to the client."""

    asset: MediaAsset
    failure: MediaIngestError | None = None

    def raise_for_failure(self) -> ConfirmedUpload:
        if self.failure is not None:
            raise self.failure
        return self


@dataclass(frozen=True)
class UploadInspection:
    info: ObjectInfo
    failure: IntegrityCheckError | None  # why the stored object is not the declared upload, or None


UnitOfWork = Callable[[], AbstractContextManager[Session]]


def _normalize_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _object_metadata(asset: MediaAsset) -> dict[str, str]:
    """What the stored object says of itself (x-amz-meta-*), so storage alone can tell whose it is."""
    return {"asset-id": asset.id, "user-id": asset.owner_id, "original-name": asset.original_name}


def _current_job(jobs: Sequence[IngestionJob]) -> IngestionJob | None:
    """The running job, else a waiting one, else the one that changed last."""
    for wanted in (IngestionJobStatus.RUNNING, IngestionJobStatus.RETRYING, IngestionJobStatus.PENDING):
        for job in jobs:
            if job.status == wanted:
                return job
    return max(jobs, key=lambda job: job.updated_at, default=None)


class AssetService:
    def __init__(self, *, settings: Settings, storage: Storage, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.storage = storage
        self.dispatcher = dispatcher

    # --- upload URL ---------------------------------------------------------------------------
    def create_upload(self, session: Session, principal: Principal, request: UploadUrlRequest) -> UploadUrlResponse:
        mime_type = request.mime_type.strip().lower()
        media_type = self._declared_media_type(request, mime_type)
        part_size = self._multipart_part_size(request)

        now = utcnow()
        user = repository.lock_user(session, principal.user_id)
        if user is None:  # a token whose user vanished between authentication and here
            raise NotFoundError("user not found")
        self.check_quota(session, principal, requested=request.file_size)

        asset_id = new_id()
        name = sanitize_filename(request.file_name, mime_type=mime_type)
        key = upload_key(user_id=principal.user_id, asset_id=asset_id, extension=extension_of(name), at=now)
        asset = MediaAsset(
            id=asset_id,
            owner_id=principal.user_id,
            project_id=request.project_id,
            name=name,
            original_name=printable_name(request.file_name),
            type=media_type,
            file_size=request.file_size,
            mime_type=mime_type,
            upload_status=UploadStatus.PENDING,
            processing_status=AssetProcessingStatus.PENDING,
            storage_bucket=self.settings.bucket_incoming,
            storage_key=key,
            declared_sha256=request.sha256.lower() if request.sha256 else None,
            upload_expires_at=now + timedelta(seconds=self.settings.upload_session_idle_seconds),
            created_at=now,
        )
        session.add(asset)
        session.flush()  # the row exists before any storage state that refers to it

        response = UploadUrlResponse(
            asset_id=asset_id,
            storage_key=key,
            file_name=name,
            expires_at=now + timedelta(seconds=self.settings.upload_url_ttl_seconds),
            session_expires_at=asset.upload_expires_at,
        )
        if part_size is not None:
            response.multipart = self._start_multipart(asset, part_size)
        else:
            presigned = self._presign_single_put(asset)
            response.upload_url = presigned.url
            response.headers = presigned.headers
        session.flush()
        log.info(
            "asset.upload_url_issued",
            asset_id=asset_id,
            user_id=principal.user_id,
            size=request.file_size,
            multipart=response.multipart is not None,
        )
        return response

    def _declared_media_type(self, request: UploadUrlRequest, mime_type: str) -> MediaType:
        """The media type of the file the client declares: an allowed type, of an allowed size."""
        allowed = ALLOWED_MIME_TYPES.get(mime_type)
        if allowed is None:
            raise MimeTypeNotAllowedError(
                f"MIME type {request.mime_type!r} is not allowed; upload video, audio or image files",
                details={"mimeType": request.mime_type},
            )
        if request.file_size < 1:
            raise ValidationFailedError("fileSize must be at least 1 byte", details={"fileSize": request.file_size})
        if request.file_size > self.settings.max_file_size:
            raise FileTooLargeError(
                f"file is {request.file_size} bytes; the limit is {self.settings.max_file_size} bytes",
                details={"fileSize": request.file_size, "maxFileSize": self.settings.max_file_size},
            )
        return allowed[0]

    def _multipart_part_size(self, request: UploadUrlRequest) -> int | None:
        """The part size when the upload goes in parts; None for one PUT."""
        multipart = request.multipart
        if multipart is None:
            multipart = request.file_size > self.settings.multipart_threshold or request.part_size is not None
        if not multipart and request.part_size is not None:
            raise ValidationFailedError("partSize is for multipart uploads; leave it out with multipart false")
        return self._part_size(request) if multipart else None

    def _start_multipart(self, asset: MediaAsset, part_size: int) -> MultipartUpload:
        """Opens the multipart upload in storage, with a URL for every part."""
        upload_id = self.storage.create_multipart_upload(
            asset.storage_bucket, asset.storage_key, content_type=asset.mime_type, metadata=_object_metadata(asset)
        )
        asset.multipart_upload_id = upload_id
        asset.part_size = part_size
        wanted = dict.fromkeys(range(1, self._part_count(asset) + 1))
        return MultipartUpload(upload_id=upload_id, part_size=part_size, parts=self._presign_parts(asset, wanted))

    def _part_size(self, request: UploadUrlRequest) -> int:
        """The client's part size when it asked for one S3 can take, else the server's."""
        fitting = math.ceil(request.file_size / S3_MAX_PARTS)  # the smallest that keeps within 10,000 parts
        if request.part_size is None:
            return max(self.settings.multipart_part_size, fitting)
        smallest = min(S3_MIN_PART_SIZE, self.settings.multipart_part_size)
        if not max(smallest, fitting) <= request.part_size <= S3_MAX_PART_SIZE:
            raise ValidationFailedError(
                f"partSize must be between {max(smallest, fitting)} and {S3_MAX_PART_SIZE} bytes for this file",
                details={"partSize": request.part_size, "minimum": max(smallest, fitting)},
            )
        return request.part_size

    @staticmethod
    def _part_count(asset: MediaAsset) -> int:
        return math.ceil(asset.file_size / (asset.part_size or asset.file_size))

    def _presign_parts(self, asset: MediaAsset, wanted: Mapping[int, str | None]) -> list[PresignedPart]:
        """URLs for these part numbers, each with its SHA-256 (hex) signed in when one is given."""
        assert asset.multipart_upload_id is not None and asset.part_size is not None
        count = self._part_count(asset)
        parts = []
        for number, sha256 in wanted.items():
            if number > count:
                raise ValidationFailedError(
                    f"part {number} does not exist: this upload has parts 1..{count}",
                    details={"partNumber": number, "parts": count},
                )
            size = min(asset.part_size, asset.file_size - (number - 1) * asset.part_size)
            presigned = self.storage.presign_upload_part(
                asset.storage_bucket,
                asset.storage_key,
                upload_id=asset.multipart_upload_id,
                part_number=number,
                size=size,
                expires_in=self.settings.upload_url_ttl_seconds,
                sha256=sha256.lower() if sha256 else None,
            )
            parts.append(PresignedPart(part_number=number, url=presigned.url, size=size, headers=presigned.headers))
        return parts

    def _presign_single_put(self, asset: MediaAsset) -> PresignedRequest:
        return self.storage.presign_put(
            asset.storage_bucket,
            asset.storage_key,
            size=asset.file_size,
            content_type=asset.mime_type,
            metadata=_object_metadata(asset),
            expires_in=self.settings.upload_url_ttl_seconds,
            sha256=asset.declared_sha256,
        )

    # --- resuming and cancelling ------------------------------------------------------------------
    def upload_state(self, session: Session, principal: Principal, asset_id: str) -> UploadState:
        """What storage holds of the upload and fresh URLs for the rest; keeps the session open."""
        asset, now = self._open_upload(session, principal, asset_id)
        state = UploadState(
            asset_id=asset.id,
            upload_status=asset.upload_status,
            file_size=asset.file_size,
            complete=False,
            expires_at=now + timedelta(seconds=self.settings.upload_url_ttl_seconds),
            session_expires_at=asset.upload_expires_at,
        )
        if asset.multipart_upload_id is not None:
            self._add_parts_state(asset, state)
        else:
            try:
                state.etag = self.storage.head(asset.storage_bucket, asset.storage_key).etag
                state.complete = True
            except ObjectNotFoundError:
                presigned = self._presign_single_put(asset)
                state.upload_url, state.headers = presigned.url, presigned.headers
        return state

    def _add_parts_state(self, asset: MediaAsset, state: UploadState) -> None:
        """A multipart upload's state: the parts storage holds, and URLs for the missing ones."""
        count = self._part_count(asset)
        received = [part for part in self._parts_of(asset) if part.part_number <= count]
        state.upload_id = asset.multipart_upload_id
        state.part_size = asset.part_size
        state.received_parts = [
            ReceivedPart(part_number=part.part_number, size=part.size, etag=part.etag) for part in received
        ]
        missing = dict.fromkeys(sorted(set(range(1, count + 1)) - {part.part_number for part in received}))
        state.parts = self._presign_parts(asset, missing)
        state.complete = not missing

    def sign_parts(
        self, session: Session, principal: Principal, asset_id: str, request: SignPartsRequest
    ) -> SignedParts:
        """URLs for the parts asked for, each with its declared SHA-256 signed in."""
        asset, now = self._open_upload(session, principal, asset_id)
        if asset.multipart_upload_id is None:
            raise ConflictError("this is a single-part upload: GET its upload state for the URL")
        return SignedParts(
            parts=self._presign_parts(asset, {part.part_number: part.sha256 for part in request.parts}),
            expires_at=now + timedelta(seconds=self.settings.upload_url_ttl_seconds),
            session_expires_at=asset.upload_expires_at,
        )

    def abort_upload(self, session: Session, principal: Principal, asset_id: str) -> None:
        """Cancels an upload in progress: its parts or object and its row go, and so its reservation."""
        asset = self._owned_for_update(session, principal, asset_id)
        if asset.upload_status not in (UploadStatus.PENDING, UploadStatus.FAILED, UploadStatus.EXPIRED):
            raise ConflictError(
                f"upload is {asset.upload_status.value.lower()}: nothing to cancel; DELETE the asset to remove it"
            )
        self._delete_asset(session, asset)
        log.info("asset.upload_aborted", asset_id=asset.id, user_id=asset.owner_id)

    def _open_upload(self, session: Session, principal: Principal, asset_id: str) -> tuple[MediaAsset, datetime]:
        """The asset, locked, while its upload takes bytes; the session's idle deadline moves forward."""
        asset = self._owned_for_update(session, principal, asset_id)
        if asset.upload_status != UploadStatus.PENDING:
            status = asset.upload_status.value.lower()
            reason = f": {asset.error}" if asset.error else ""
            raise ConflictError(f"upload is {status}{reason}; there is nothing left to send")
        now = utcnow()
        if self._lapsed(asset, now):
            raise ConflictError(f"{IDLE_EXPIRY_REASON}; request a new upload URL")
        asset.upload_expires_at = now + timedelta(seconds=self.settings.upload_session_idle_seconds)
        session.flush()
        return asset, now

    def _parts_of(self, asset: MediaAsset) -> list[PartInfo]:
        assert asset.multipart_upload_id is not None
        return self.storage.list_parts(asset.storage_bucket, asset.storage_key, upload_id=asset.multipart_upload_id)

    def _lapsed(self, asset: MediaAsset, now: datetime) -> bool:
        """Whether the upload sat idle past its deadline. A part that arrived meanwhile (the store knows;
        S3 tells no one) keeps it open: the deadline moves to that part's time plus the idle limit."""
        if asset.upload_expires_at > now:
            return False
        if asset.multipart_upload_id is None:
            return True
        try:
            latest = max((part.last_modified for part in self._parts_of(asset)), default=None)
        except ObjectNotFoundError:
            return True
        idle = timedelta(seconds=self.settings.upload_session_idle_seconds)
        if latest is not None and latest + idle > now:
            asset.upload_expires_at = latest + idle
            return False
        return True

    def check_quota(self, session: Session, principal: Principal, *, requested: int) -> None:
        """413 when `requested` more bytes would take the user past the plan (the caller holds the user's lock)."""
        limit = self.settings.quota_for(principal.plan)
        stored, reserved = repository.bytes_used(session, owner_id=principal.user_id)
        if stored + reserved + requested > limit:
            available = max(0, limit - stored - reserved)
            raise QuotaExceededError(
                f"storage quota exceeded: {principal.plan.value} plan allows {limit} bytes; "
                f"{stored} stored, {reserved} reserved by uploads in progress, {requested} requested, "
                f"{available} available",
                details={
                    "plan": principal.plan.value,
                    "limit": limit,
                    "stored": stored,
                    "reserved": reserved,
                    "requested": requested,
                    "available": available,
                },
            )

    # --- confirmation -------------------------------------------------------------------------
    def confirm_upload(
        self, unit_of_work: UnitOfWork, principal: Principal, request: ConfirmUploadRequest
    ) -> ConfirmedUpload:
        """Completes and verifies the upload, then starts ingestion. Idempotent.

        Three phases, each in a unit of work the caller's `unit_of_work()` opens and commits, so that no
        database lock is held while storage works (completing a multipart upload on the local backend
        reads and writes every byte; SQLite has one writer for the whole service, and PostgreSQL would
        hold the asset's row): check the asset; complete and inspect the object (no transaction);
        lock the asset again and record the outcome, re-checking what a concurrent confirm, delete or
        sweep did meanwhile. A failure is recorded (the asset FAILED or EXPIRED, its bytes removed) and
        committed like any outcome; only then is it raised to the client.
        """
        with unit_of_work() as session:
            started = self._confirmable(session, principal, request)
        if isinstance(started, ConfirmedUpload):
            return started.raise_for_failure()
        try:
            inspection = self._inspect_upload(started, request)
        except (ConflictError, StorageError):
            # Another confirm may have completed this upload meanwhile, or a delete or sweep removed
            # it: that answer wins over the storage error it caused here.
            with unit_of_work() as session:
                settled = self._confirmable(session, principal, request, after_storage=True)
            if isinstance(settled, ConfirmedUpload):
                return settled.raise_for_failure()
            raise
        with unit_of_work() as session:
            recorded = self._record_confirmation(session, principal, request, started, inspection)
        return recorded.raise_for_failure()

    def _inspect_upload(self, asset: MediaAsset, request: ConfirmUploadRequest) -> UploadInspection:
        """Phase two, storage only: completes a multipart upload, reads what the store holds."""
        info = self._uploaded_object(asset, request)
        if asset.declared_sha256 and info.sha256 is None and info.size == asset.file_size:
            # S3 keeps a multipart object's checksum only as a checksum of part checksums: the
            # declared whole-file SHA-256 is checked here by one streamed read, before ingestion.
            info = dataclasses.replace(
                info, sha256=self.storage.sha256_of(asset.storage_bucket, asset.storage_key, etag=info.etag)
            )
        failure = self._integrity_failure(asset, info.size, info.etag, info.sha256, request.etag)
        return UploadInspection(info=info, failure=failure)

    def _uploaded_object(self, asset: MediaAsset, request: ConfirmUploadRequest) -> ObjectInfo:
        """The stored upload: a multipart upload completed now, or the object of the single PUT."""
        if asset.multipart_upload_id is not None:
            return self._complete_multipart(asset, request)
        try:
            return self.storage.head(asset.storage_bucket, asset.storage_key)
        except ObjectNotFoundError as exc:
            raise ConflictError("no uploaded object yet: PUT the file to the upload URL, then confirm") from exc

    def _record_confirmation(
        self,
        session: Session,
        principal: Principal,
        request: ConfirmUploadRequest,
        started: MediaAsset,
        inspection: UploadInspection,
    ) -> ConfirmedUpload:
        """Phase three: the asset, locked again, takes the verified upload (or its failure)."""
        current = self._confirmable(
            session, principal, request, after_storage=True, orphan=(started.storage_bucket, started.storage_key)
        )
        if isinstance(current, ConfirmedUpload):
            return current
        if inspection.failure is not None:
            self._discard_upload(session, current, UploadStatus.FAILED, inspection.failure.message)
            log.warning("asset.integrity_check_failed", asset_id=current.id, reason=inspection.failure.message)
            return ConfirmedUpload(asset=current, failure=inspection.failure)
        info = inspection.info
        current.upload_status = UploadStatus.UPLOADED
        current.processing_status = AssetProcessingStatus.PENDING
        current.etag = _normalize_etag(info.etag)
        current.checksum = info.sha256  # None on S3 without a client checksum: the probe stage computes it
        current.multipart_upload_id = None
        current.uploaded_at = utcnow()
        current.error = None
        session.flush()
        self.dispatcher.dispatch(session, current)
        log.info("asset.upload_confirmed", asset_id=current.id, user_id=current.owner_id, size=info.size)
        return ConfirmedUpload(asset=current)

    def _confirmable(
        self,
        session: Session,
        principal: Principal,
        request: ConfirmUploadRequest,
        *,
        after_storage: bool = False,
        orphan: tuple[str, str] | None = None,
    ) -> MediaAsset | ConfirmedUpload:
        """The asset, locked, if its upload can still be confirmed; else the answer it already has.

        `after_storage`: called once storage has worked, when expiry no longer applies (the client
        confirmed in time). `orphan`: the (bucket, key) whose completed object is removed when the
        asset can no longer take it (deleted, expired or failed meanwhile), so no object outlives the
        row that would point at it.
        """
        asset = repository.get_owned(session, asset_id=request.asset_id, owner_id=principal.user_id, for_update=True)
        if asset is None:
            self._remove_orphan(orphan)
            raise NotFoundError(f"asset {request.asset_id} not found")
        if asset.upload_status == UploadStatus.UPLOADED:
            return self._confirmed_again(session, asset, request)
        if asset.upload_status in (UploadStatus.FAILED, UploadStatus.EXPIRED):
            self._remove_orphan(orphan)
            raise ConflictError(
                f"upload is {asset.upload_status.value.lower()}: {asset.error or 'request a new upload URL'}"
            )
        if not after_storage and self._lapsed(asset, utcnow()):
            self._discard_upload(session, asset, UploadStatus.EXPIRED, IDLE_EXPIRY_REASON)
            return ConfirmedUpload(
                asset=asset, failure=ConflictError(f"{IDLE_EXPIRY_REASON}; request a new upload URL")
            )
        return asset

    def _confirmed_again(self, session: Session, asset: MediaAsset, request: ConfirmUploadRequest) -> ConfirmedUpload:
        """A confirm of an upload already confirmed: the same answer, unless it names other bytes."""
        if request.etag and asset.etag and _normalize_etag(request.etag) != asset.etag:
            raise ConflictError("asset was already confirmed with a different ETag")
        self.dispatcher.dispatch(session, asset)  # harmless if already dispatched; heals a lost dispatch
        return ConfirmedUpload(asset=asset)

    def _remove_orphan(self, orphan: tuple[str, str] | None) -> None:
        """Removes the completed object that no row will point at (see `_confirmable`)."""
        if orphan is not None:
            self.storage.delete(*orphan)

    def _listed_parts(self, asset: MediaAsset, request: ConfirmUploadRequest) -> list[ConfirmedPart]:
        """The parts a multipart confirm lists: every part of the upload, once."""
        if not request.parts:
            raise ValidationFailedError("parts are required to confirm a multipart upload")
        expected_parts = self._part_count(asset)
        numbers = sorted(part.part_number for part in request.parts)
        if numbers != list(range(1, expected_parts + 1)):
            raise ValidationFailedError(
                f"expected parts 1..{expected_parts}, each once", details={"expectedParts": expected_parts}
            )
        return request.parts

    def _complete_multipart(self, asset: MediaAsset, request: ConfirmUploadRequest) -> ObjectInfo:
        parts = self._listed_parts(asset, request)
        assert asset.multipart_upload_id is not None
        try:
            return self.storage.complete_multipart_upload(
                asset.storage_bucket,
                asset.storage_key,
                upload_id=asset.multipart_upload_id,
                parts=[CompletedPart(part.part_number, _normalize_etag(part.etag)) for part in parts],
            )
        except InvalidPartError:
            raise  # 422 naming the bad part; the upload stays open, as on S3, for a corrected confirm
        except ObjectNotFoundError as exc:
            # Claimed by a concurrent confirm still at work (whose answer then holds), or aborted.
            raise ConflictError(
                "could not complete the multipart upload: no such upload in progress; if another confirm of "
                "this asset is under way, retry once it has answered"
            ) from exc
        except StorageError as exc:
            # Parts not uploaded yet: the client can upload the rest and confirm again.
            raise ConflictError(f"could not complete the multipart upload: {exc.message}") from exc

    def _integrity_failure(
        self, asset: MediaAsset, size: int, etag: str, sha256: str | None, client_etag: str | None
    ) -> IntegrityCheckError | None:
        """Which check the stored object fails, with what was declared and what was found (`details.check`:
        size, etag, sha256 or type), so a client can give advice that fits; None when it passes them all."""
        if size != asset.file_size:
            return IntegrityCheckError(
                f"size mismatch: declared {asset.file_size} bytes, stored {size} bytes",
                details={"check": "size", "declared": asset.file_size, "found": size},
            )
        if client_etag and _normalize_etag(client_etag) != _normalize_etag(etag):
            return IntegrityCheckError(
                "ETag mismatch: the stored object is not the one the client uploaded", details={"check": "etag"}
            )
        if asset.declared_sha256 and sha256 and sha256.lower() != asset.declared_sha256:
            return IntegrityCheckError(
                "SHA-256 mismatch: the stored bytes do not match the declared sha256", details={"check": "sha256"}
            )
        return self._type_failure(asset)

    def _type_failure(self, asset: MediaAsset) -> IntegrityCheckError | None:
        """Whether the stored object's first bytes can be the declared type (`details.check`: type)."""
        head = self.storage.read_range(asset.storage_bucket, asset.storage_key, 0, SNIFF_BYTES)
        detected = sniff(head)
        if not detected.could_be(asset.type):
            found = detected.mime_type or "unrecognised content"
            return IntegrityCheckError(
                f"content does not match the declared type: declared {asset.mime_type}, found {found}",
                details={"check": "type", "declared": asset.mime_type, "found": detected.mime_type},
            )
        return None

    def _discard_upload(self, session: Session, asset: MediaAsset, status: UploadStatus, reason: str) -> None:
        """Removes the bytes and marks the asset, which releases its quota reservation."""
        self._delete_upload_objects(asset)
        asset.upload_status = status
        asset.multipart_upload_id = None
        mark_failed(session, asset, reason=reason)

    def _delete_upload_objects(self, asset: MediaAsset) -> None:
        if asset.multipart_upload_id is not None:
            self.storage.abort_multipart_upload(
                asset.storage_bucket, asset.storage_key, upload_id=asset.multipart_upload_id
            )
        self.storage.delete(asset.storage_bucket, asset.storage_key)

    # --- reading ------------------------------------------------------------------------------
    def get(self, session: Session, principal: Principal, asset_id: str, *, with_details: bool = False) -> MediaAsset:
        asset = repository.get_owned(session, asset_id=asset_id, owner_id=principal.user_id, with_details=with_details)
        if asset is None:
            raise NotFoundError("asset not found")
        return asset

    @staticmethod
    def _owned_for_update(session: Session, principal: Principal, asset_id: str) -> MediaAsset:
        """The caller's asset, its row locked; 404 when it has none of that id."""
        asset = repository.get_owned(session, asset_id=asset_id, owner_id=principal.user_id, for_update=True)
        if asset is None:
            raise NotFoundError(f"asset {asset_id} not found")
        return asset

    def list(
        self,
        session: Session,
        principal: Principal,
        *,
        filters: repository.AssetFilters,
        page: int,
        page_size: int,
        sort: str = "-createdAt",
    ) -> tuple[list[AssetSummary], int]:
        """A page of the caller's assets, each with its poster's signed URL and its duration (a library row)."""
        items, total = repository.list_owned(
            session, owner_id=principal.user_id, filters=filters, page=page, page_size=page_size, sort=sort,
            with_previews=True,
        )  # fmt: skip
        summaries = [self._summary(asset) for asset in items]
        if filters.name_contains:
            for asset, summary in zip(items, summaries, strict=True):
                summary.spoken_match = _spoken_match(asset, filters.name_contains)
        return summaries, total

    def _summary(self, asset: MediaAsset) -> AssetSummary:
        summary = AssetSummary.model_validate(asset)
        poster = next((p for p in asset.proxies if p.type in (ProxyType.POSTER, ProxyType.THUMBNAIL)), None)
        if poster is not None:
            summary.poster_url = self.download_url(poster.storage_bucket, poster.storage_key)
        if asset.metadata_record is not None:
            summary.duration_seconds = asset.metadata_record.duration_seconds
        return summary

    def jobs(self, session: Session, asset: MediaAsset) -> Sequence[IngestionJob]:
        return repository.jobs_of(session, asset.id)

    def status(self, session: Session, principal: Principal, asset_id: str) -> AssetStatus:
        """Upload and processing status with every job, and the one a person wants to see first."""
        return self._status(session, self.get(session, principal, asset_id))

    def library_changes(
        self, session: Session, principal: Principal, *, since: datetime
    ) -> tuple[Sequence[AssetStatus], int]:
        """The status of each of the caller's assets that is moving or changed since `since`, and how
        many assets the caller has: what the library stream compares from one poll to the next."""
        changed, total = repository.library_changes(session, owner_id=principal.user_id, since=since)
        return [self._status(session, asset) for asset in changed], total

    def _status(self, session: Session, asset: MediaAsset) -> AssetStatus:
        jobs = repository.jobs_of(session, asset.id)
        current = _current_job(jobs)
        return AssetStatus(
            asset_id=asset.id,
            upload_status=asset.upload_status,
            processing_status=asset.processing_status,
            error=asset.error,
            current_job=JobOut.model_validate(current) if current else None,
            jobs=[JobOut.model_validate(job) for job in jobs],
            playback=self.playback(asset, jobs),
        )

    def playback(self, asset: MediaAsset, jobs: Sequence[IngestionJob]) -> Playback | None:
        """HLS playback once the proxies pass has published a segment; complete when that pass is done."""
        playback_jobs = job_type_for(stage_with_role(StageRole.PLAYBACK))
        complete = any(job.type == playback_jobs and job.status == IngestionJobStatus.COMPLETED for job in jobs)
        return playback_of(asset, self.settings, complete=complete)

    def download_url(self, bucket: str, key: str, *, download_name: str | None = None) -> str:
        return self.storage.presign_get(
            bucket, key, expires_in=self.settings.download_url_ttl_seconds, download_name=download_name
        )

    # --- deletion and sweeping ------------------------------------------------------------------
    def delete(self, session: Session, principal: Principal, asset_id: str) -> None:
        asset = self._owned_for_update(session, principal, asset_id)
        self._delete_asset(session, asset)

    def delete_all_owned_by(self, session: Session, *, owner_id: str) -> int:
        """Every asset of a tenant, as DELETE removes each one (a user being deleted); returns how many."""
        assets = repository.all_owned(session, owner_id=owner_id)
        for asset in assets:
            if asset.parent_id is None:  # a clip goes with its parent
                self._delete_asset(session, asset)
        return len(assets)

    def _delete_asset(self, session: Session, asset: MediaAsset) -> None:
        """Stops its work, then removes its objects in every bucket before the row that points at them.
        Its clips first: each is an asset with objects of its own."""
        for clip in repository.clips_of(session, asset.id):
            self._delete_asset(session, clip)
        self.dispatcher.cancel(session, asset)
        self._delete_upload_objects(asset)
        prefix = derived_prefix(user_id=asset.owner_id, asset_id=asset.id)
        for bucket in (self.settings.bucket_processed, self.settings.bucket_proxies):
            self.storage.delete_prefix(bucket, prefix)
        session.delete(asset)
        session.flush()
        log.info("asset.deleted", asset_id=asset.id, user_id=asset.owner_id)

    def accepts_upload(self, session: Session, *, bucket: str, key: str) -> bool:
        """The local backend's upload gate: bytes only for an asset still waiting for them, and derived
        files (a stage pod's outputs, on URLs the API signed for it) only for an asset that still exists."""
        if bucket == self.settings.bucket_incoming:
            return repository.accepts_upload(session, bucket=bucket, key=key)
        if bucket in (self.settings.bucket_processed, self.settings.bucket_proxies):
            asset_id = asset_of_derived_key(key)
            return asset_id is not None and session.get(MediaAsset, asset_id) is not None
        return False

    def reap_stray_uploads(self, session: Session, *, batch: int = 1000) -> int:
        """Removes objects under the upload prefix that no live asset owns; returns how many.

        Strays come from an upload URL used after its asset was deleted or failed (an S3 presigned URL
        cannot be revoked before it expires), or from a crash between a delete's storage and database
        steps. Reading the listing before the rows is safe: an asset's row commits before its upload
        URL is handed out, so a key whose row is missing now has no upload coming.
        """
        bucket = self.settings.bucket_incoming
        try:
            keys = self.storage.list_keys(bucket, UPLOAD_PREFIX)
        except ObjectNotFoundError:  # a store no upload has reached yet: nothing to sweep
            log.info("asset.sweep_found_no_bucket", bucket=bucket)
            return 0
        removed = 0
        for offset in range(0, len(keys), batch):
            chunk = keys[offset : offset + batch]
            live = repository.keys_of_live_assets(session, bucket=bucket, keys=chunk)
            for key in chunk:
                if key not in live:
                    self.storage.delete(bucket, key)
                    removed += 1
                    log.warning("asset.stray_object_removed", bucket=bucket, key=key)
        return removed

    def sweep_expired_uploads(self, session: Session, *, now: datetime | None = None) -> int:
        """Expires uploads left idle past their deadline (no part, no request for URLs): multipart aborted,
        objects removed, quota released. One still receiving parts only has its deadline moved."""
        now = now or utcnow()
        expired = [asset for asset in repository.expired_pending_uploads(session, now=now) if self._lapsed(asset, now)]
        for asset in expired:
            self._discard_upload(session, asset, UploadStatus.EXPIRED, IDLE_EXPIRY_REASON)
            log.info("asset.upload_expired", asset_id=asset.id, user_id=asset.owner_id)
        session.flush()
        return len(expired)


def _spoken_match(asset: MediaAsset, phrase: str) -> SpokenMatch | None:
    """Where a searched phrase is said, from the words the transcript stage kept (the page seeks there)."""
    record = asset.metadata_record
    measured = (record.measurements or {}) if record is not None else {}
    index = (measured.get("transcript") or {}).get("transcript_segments")  # TranscriptMeasurements, as stored
    found = phrase_time(index or [], phrase)
    return SpokenMatch(seconds=found[0], text=found[1]) if found else None
