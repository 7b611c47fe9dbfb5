"""The asset endpoints: thin — authenticate, call the service, shape the answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query, status

from mediaingest import metrics
from mediaingest.assets.deps import Assets
from mediaingest.assets.repository import AssetFilters
from mediaingest.assets.schemas import (
    UNKNOWN_ASSET,
    AbortedUpload,
    AssetDetail,
    AssetPage,
    AssetStatus,
    ConfirmUploadRequest,
    ConfirmUploadResponse,
    DeletedAsset,
    IngestionJobOut,
    MetadataOut,
    ProxyOut,
    SignedParts,
    SignPartsRequest,
    UploadState,
    UploadUrlRequest,
    UploadUrlResponse,
)
from mediaingest.db import utcnow
from mediaingest.dependencies import Db
from mediaingest.exceptions import MediaIngestError
from mediaingest.models.enums import AssetProcessingStatus, MediaType, UploadStatus
from mediaingest.schemas import UNAUTHENTICATED, Envelope, ErrorEnvelope
from mediaingest.users.deps import CurrentPrincipal

# Past this the offset means nothing (100 per page: ten million assets) and databases overflow on it.
MAX_PAGE = 100_000

router = APIRouter(
    prefix="/api/assets",
    tags=["assets"],
    responses=UNAUTHENTICATED,
)


@contextmanager
def _counted(endpoint: str) -> Iterator[None]:
    """`upload_requests_total{endpoint, outcome}`: outcome is "success" or the error code."""
    try:
        yield
    except MediaIngestError as error:
        metrics.upload_requests_total.labels(endpoint=endpoint, outcome=error.code).inc()
        raise
    metrics.upload_requests_total.labels(endpoint=endpoint, outcome="success").inc()


@router.post(
    "/upload-url",
    status_code=status.HTTP_201_CREATED,
    response_model=Envelope[UploadUrlResponse],
    responses={
        413: {"model": ErrorEnvelope, "description": "File over 5 GiB, or over the plan's quota"},
        415: {"model": ErrorEnvelope, "description": "MIME type not allowed"},
    },
)
def create_upload_url(
    body: UploadUrlRequest, db: Db, principal: CurrentPrincipal, assets: Assets
) -> Envelope[UploadUrlResponse]:
    """Reserves quota and returns where to PUT the bytes (one URL, or one per part above 100 MiB)."""
    with _counted("upload-url"), db.write() as session:
        ticket = assets.create_upload(session, principal, body)
    structlog.contextvars.bind_contextvars(asset_id=ticket.asset_id)
    return Envelope(data=ticket)


@router.post(
    "/confirm-upload",
    response_model=Envelope[ConfirmUploadResponse],
    responses={
        **UNKNOWN_ASSET,
        409: {"model": ErrorEnvelope, "description": "Not uploaded yet, expired, or already failed"},
        422: {
            "model": ErrorEnvelope,
            "description": "Invalid request, or integrity check failed (the upload was discarded)",
        },
    },
)
def confirm_upload(
    body: ConfirmUploadRequest, db: Db, principal: CurrentPrincipal, assets: Assets
) -> Envelope[ConfirmUploadResponse]:
    """Verifies size, ETag, type and SHA-256 of the stored bytes, then starts ingestion. Idempotent."""
    structlog.contextvars.bind_contextvars(asset_id=body.asset_id)
    with _counted("confirm-upload"):
        confirmed = assets.confirm_upload(db.write, principal, body)
    asset = confirmed.asset
    return Envelope(
        data=ConfirmUploadResponse(
            asset_id=asset.id,
            etag=asset.etag or "",
            checksum=asset.checksum,
            upload_status=asset.upload_status,
            processing_status=asset.processing_status,
        )
    )


_UPLOAD_CLOSED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorEnvelope, "description": "The upload is confirmed, failed or expired"}
}


@router.get("/{asset_id}/upload", response_model=Envelope[UploadState], responses={**UNKNOWN_ASSET, **_UPLOAD_CLOSED})
def get_upload_state(asset_id: str, db: Db, principal: CurrentPrincipal, assets: Assets) -> Envelope[UploadState]:
    """Resume: the parts storage holds (with their ETags) and fresh URLs for exactly the ones missing.

    Asking keeps the upload open: its idle deadline moves forward.
    """
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with _counted("upload-state"), db.write() as session:
        return Envelope(data=assets.upload_state(session, principal, asset_id))


@router.post(
    "/{asset_id}/upload/parts",
    response_model=Envelope[SignedParts],
    responses={**UNKNOWN_ASSET, **_UPLOAD_CLOSED},
)
def sign_upload_parts(
    asset_id: str, body: SignPartsRequest, db: Db, principal: CurrentPrincipal, assets: Assets
) -> Envelope[SignedParts]:
    """URLs for these parts of a multipart upload, each part's SHA-256 signed in: storage refuses a
    part whose bytes differ, and the client sends that part again."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with _counted("upload-parts"), db.write() as session:
        return Envelope(data=assets.sign_parts(session, principal, asset_id, body))


@router.post(
    "/{asset_id}/upload/abort",
    response_model=Envelope[AbortedUpload],
    responses={
        **UNKNOWN_ASSET,
        409: {"model": ErrorEnvelope, "description": "Already confirmed: DELETE the asset instead"},
    },
)
def abort_upload(asset_id: str, db: Db, principal: CurrentPrincipal, assets: Assets) -> Envelope[AbortedUpload]:
    """Cancels an upload in progress: parts deleted, quota released, the asset gone."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with _counted("upload-abort"), db.write() as session:
        assets.abort_upload(session, principal, asset_id)
    return Envelope(data=AbortedUpload(asset_id=asset_id))


@router.get("", response_model=Envelope[AssetPage])
def list_assets(
    db: Db,
    principal: CurrentPrincipal,
    assets: Assets,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 20,
    status_filter: Annotated[UploadStatus | None, Query(alias="status", description="Filter by upload status")] = None,
    processing_status: Annotated[AssetProcessingStatus | None, Query(alias="processingStatus")] = None,
    media_type: Annotated[MediaType | None, Query(alias="type")] = None,
    project_id: Annotated[str | None, Query(alias="projectId", max_length=128)] = None,
    id_prefix: Annotated[
        str | None,
        Query(
            alias="idPrefix",
            min_length=4,
            max_length=36,
            pattern=r"^[0-9a-fA-F-]+$",
            description="Only assets whose id starts with this (the short ids a listing shows).",
        ),
    ] = None,
    search: Annotated[
        str | None,
        Query(
            alias="q",
            max_length=255,
            description="Only names containing this (any case), or assets that say these words in this order "
            "(full text of the transcript; `spokenMatch` tells where).",
        ),
    ] = None,
    parent_id: Annotated[
        str | None, Query(alias="parentId", max_length=36, description="Only the clips cut from this asset.")
    ] = None,
    sort: Annotated[
        Literal["-createdAt", "createdAt", "name", "-name", "fileSize", "-fileSize"],
        Query(description="Order: newest first by default; `-` in front for descending."),
    ] = "-createdAt",
) -> Envelope[AssetPage]:
    filters = AssetFilters(
        upload_status=status_filter,
        processing_status=processing_status,
        media_type=media_type,
        project_id=project_id,
        id_prefix=id_prefix,
        name_contains=search.strip() if search else None,
        parent_id=parent_id,
    )
    with db.read() as session:
        summaries, total = assets.list(session, principal, filters=filters, page=page, page_size=page_size, sort=sort)
    return Envelope(data=AssetPage(items=summaries, total=total, page=page, page_size=page_size))


@router.get("/{asset_id}", response_model=Envelope[AssetDetail], responses=UNKNOWN_ASSET)
def get_asset(asset_id: str, db: Db, principal: CurrentPrincipal, assets: Assets) -> Envelope[AssetDetail]:
    """The asset with its metadata and derived files, each with a signed download URL."""
    with db.read() as session:
        asset = assets.get(session, principal, asset_id, with_details=True)
        detail = AssetDetail.model_validate(asset)
        if asset.upload_status == UploadStatus.UPLOADED:
            detail.download_url = assets.download_url(asset.storage_bucket, asset.storage_key, download_name=asset.name)
            detail.download_expires_at = utcnow() + timedelta(seconds=assets.settings.download_url_ttl_seconds)
        if asset.metadata_record is not None:
            detail.metadata = MetadataOut.model_validate(asset.metadata_record)
        detail.proxies = [
            ProxyOut.model_validate(proxy).model_copy(
                update={"url": assets.download_url(proxy.storage_bucket, proxy.storage_key)}
            )
            for proxy in asset.proxies
        ]
        jobs = assets.jobs(session, asset)
        detail.ingestion_jobs = [IngestionJobOut.model_validate(job) for job in jobs]
        detail.playback = assets.playback(asset, jobs)
    return Envelope(data=detail)


@router.get("/{asset_id}/status", response_model=Envelope[AssetStatus], responses=UNKNOWN_ASSET)
def get_asset_status(asset_id: str, db: Db, principal: CurrentPrincipal, assets: Assets) -> Envelope[AssetStatus]:
    """uploadStatus, processingStatus and the current job's status, progress and message."""
    with db.read() as session:
        return Envelope(data=assets.status(session, principal, asset_id))


@router.delete("/{asset_id}", response_model=Envelope[DeletedAsset], responses=UNKNOWN_ASSET)
def delete_asset(asset_id: str, db: Db, principal: CurrentPrincipal, assets: Assets) -> Envelope[DeletedAsset]:
    """Stops its work and removes every object of the asset in all buckets, its rows and its quota."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with db.write() as session:
        assets.delete(session, principal, asset_id)
    return Envelope(data=DeletedAsset(asset_id=asset_id))
