"""`/internal/stage-run/*`: what a Kubernetes stage pod may ask and report, with its attempt's token.

Each call is one unit of work through a `DirectStageHost`, the class a local stage process uses, so
the rows, keys and transitions are the same whichever executor ran the stage. The token names the
asset, its owner, the stage and the attempt: a pod can read only its asset's source, write only
under its stage's folder, and report only on its own attempt (a later attempt fences it out).
Not in the public OpenAPI document: only stage pods call these.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Depends, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError as PydanticValidationError

from mediaingest.api.deps import Db
from mediaingest.config import MIB, Settings
from mediaingest.exceptions import (
    AuthenticationError,
    ConflictError,
    MediaIngestError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientProcessingError,
    ValidationFailedError,
)
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import job_type_for
from mediaingest.pipeline.types import StageResult
from mediaingest.retry import RetryDecision
from mediaingest.schemas import Envelope
from mediaingest.stage_reports import tokens
from mediaingest.stage_reports.schemas import (
    PREFIX,
    DiscardReport,
    FailureReport,
    OutputFiles,
    PlayableReport,
    ProgressAnswer,
    ProgressReport,
    SignedPut,
    SignedPuts,
    StageRecord,
    StageRecorded,
    StageStart,
)
from mediaingest.worker import progression
from mediaingest.worker.jobs import JobHandle
from mediaingest.worker.queue import ensure_job
from mediaingest.worker.stage_host import DirectStageHost, discard_published
from mediaingest.worker.stage_runner import StageContext

router = APIRouter(prefix=PREFIX, tags=["internal"], include_in_schema=False)
_bearer = HTTPBearer(auto_error=False)
# Signed URLs handed to a pod live this long: it asks for each one just before using it.
URL_SECONDS = 3600
RECORD_PATH = f"{PREFIX}/record"
RECORD_BODY_LIMIT = 64 * MIB  # a 10-hour video's HLS names are about 2 MiB


class AssetGoneError(MediaIngestError):
    """The asset a stage pod reports on was deleted (stage pods only)."""

    status_code = 410
    code = "asset_deleted"


class StageResultTooLargeError(MediaIngestError):
    """A stage result over its limit (the middleware's `body_too_large`, for a path it leaves alone)."""

    status_code = 413
    code = "body_too_large"


class StageNotReadyError(MediaIngestError):
    """The asset is not ready for this stage yet; the operator retries it (stage pods only)."""

    status_code = 503
    code = "stage_not_ready"


def _context(request: Request) -> StageContext:
    state = request.app.state
    if getattr(state, "stage_context", None) is None:
        settings: Settings = state.settings
        state.stage_context = StageContext(
            settings=settings,
            session_factory=state.session_factory,
            storage=state.storage,
            options=PipelineOptions.from_settings(settings),
        )
    context: StageContext = state.stage_context
    return context


async def _claims(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> tokens.StageClaims:
    # async, like the API's principal: a log binding made in a worker thread would not reach the endpoint.
    if credentials is None:
        raise AuthenticationError("a stage token is required")
    claims = tokens.verify(request.app.state.settings.url_secret(), credentials.credentials)
    structlog.contextvars.bind_contextvars(asset_id=claims.asset_id, stage=claims.stage, attempt=claims.attempt)
    return claims


Claims = Annotated[tokens.StageClaims, Depends(_claims)]
Context = Annotated[StageContext, Depends(_context)]


def _host(ctx: StageContext, claims: tokens.StageClaims, job_id: str) -> DirectStageHost:
    handle = JobHandle(job_id=job_id, lease_owner=None, attempt=claims.attempt)
    return DirectStageHost(
        ctx, asset_id=claims.asset_id, stage=claims.stage, handle=handle, enqueue_next=False, owner_id=claims.owner_id
    )


def _job_id(db: Db, claims: tokens.StageClaims) -> str:
    with db.read() as session:
        job_id = session.scalar(
            sa.select(IngestionJob.id)
            .join(MediaAsset, MediaAsset.id == IngestionJob.asset_id)
            .where(
                IngestionJob.asset_id == claims.asset_id,
                IngestionJob.type == job_type_for(claims.stage),
                MediaAsset.owner_id == claims.owner_id,
            )
        )
    if job_id is None:
        raise AssetGoneError("the asset no longer exists")
    return job_id


@router.post("/start", response_model=Envelope[StageStart])
def start(db: Db, ctx: Context, claims: Claims) -> Envelope[StageStart]:
    """The attempt starts: the job row says so, and the pod gets its input and a URL of the source."""
    with db.write() as session:
        asset = session.get(MediaAsset, claims.asset_id)
        if asset is None:
            raise AssetGoneError("the asset no longer exists")
        if asset.owner_id != claims.owner_id:  # a MediaAsset whose spec names another owner than the row
            raise PermissionDeniedError("the stage token names another owner than the asset's")
        job = ensure_job(session, asset=asset, stage=claims.stage, max_attempts=ctx.settings.job_max_attempts)
        if job.attempts > claims.attempt:
            raise ConflictError(f"attempt {claims.attempt} was superseded by attempt {job.attempts}")
        handle = progression.stage_started_unleased(session, job=job, attempt=claims.attempt)
    host = DirectStageHost(
        ctx, asset_id=claims.asset_id, stage=claims.stage, handle=handle, enqueue_next=False, owner_id=claims.owner_id
    )
    try:
        begun = host.begin()
    except TransientProcessingError as exc:
        raise StageNotReadyError(exc.message) from exc
    if begun is None:
        raise AssetGoneError("the asset no longer exists")
    url, etag = host.sign_source(expires_in=URL_SECONDS)
    return Envelope(
        data=StageStart(
            media_type=begun.media_type,
            source_suffix=begun.source_suffix,
            source_url=url,
            source_etag=etag,
            checksum=begun.checksum,
            declared_sha256=begun.declared_sha256,
            metadata=begun.metadata.to_dict() if begun.metadata is not None else None,
        )
    )


@router.post("/progress", response_model=Envelope[ProgressAnswer])
def progress(report: ProgressReport, db: Db, ctx: Context, claims: Claims) -> Envelope[ProgressAnswer]:
    host = _host(ctx, claims, _job_id(db, claims))
    return Envelope(data=ProgressAnswer(current=host.report_progress(report.fraction, report.message)))


@router.post("/playable", status_code=status.HTTP_204_NO_CONTENT)
def playable(report: PlayableReport, db: Db, ctx: Context, claims: Claims) -> None:
    _host(ctx, claims, _job_id(db, claims)).report_playable(report.seconds)


@router.post("/outputs", response_model=Envelope[SignedPuts])
def sign_outputs(request: OutputFiles, db: Db, ctx: Context, claims: Claims) -> Envelope[SignedPuts]:
    """PUT URLs for files the pod is about to store, each under its stage's folder, checksum signed in."""
    host = _host(ctx, claims, _job_id(db, claims))
    signed = []
    for item in request.files:
        try:
            bucket, key = host.output_location(item.name, item.role)
        except ValueError as exc:
            raise ValidationFailedError(str(exc)) from exc
        put = host.sign_output(
            item.name, role=item.role, size=item.size, content_type=item.content_type, sha256=item.sha256,
            expires_in=URL_SECONDS,
        )  # fmt: skip
        signed.append(
            SignedPut(
                name=item.name, bucket=bucket, key=key, url=put.url, headers=put.headers, expires_at=put.expires_at
            )
        )
    return Envelope(data=SignedPuts(files=signed))


@router.post("/record", response_model=Envelope[StageRecorded])
async def record(request: Request, db: Db, ctx: Context, claims: Claims) -> Envelope[StageRecorded]:
    """The stage's result: its rows and the job's completion, from outputs that storage really holds.

    Read only once the token is checked (the body-size middleware leaves this path alone): a long
    video's proxies publish tens of thousands of HLS files, whose names the result lists.
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > RECORD_BODY_LIMIT:
            raise StageResultTooLargeError(f"the stage result is over {RECORD_BODY_LIMIT // MIB} MiB")
    try:
        report = StageRecord.model_validate_json(bytes(body))
    except PydanticValidationError as exc:
        raise ValidationFailedError(f"not a stage result: {exc.errors()[0]['msg']}") from exc
    return await run_in_threadpool(_record, report, db, ctx, claims)


def _record(report: StageRecord, db: Db, ctx: StageContext, claims: tokens.StageClaims) -> Envelope[StageRecorded]:
    host = _host(ctx, claims, _job_id(db, claims))
    stored = []
    try:
        for item in report.outputs:
            stored.append(host.stored(item.to_output()))
        result = StageResult(
            outputs=[item.output for item in stored],
            metadata=report.metadata_value(),
            measurements=report.measurements,
            message=report.message,
        )
        for name in report.published:
            host.output_location(name, "proxies")
    except ObjectNotFoundError as exc:
        raise ValidationFailedError(f"an output was not stored: {exc.message}") from exc
    except ValueError as exc:
        raise ValidationFailedError(str(exc)) from exc
    outcome = host.record(result, stored, checksum=report.checksum, published=report.published)
    return Envelope(data=StageRecorded(completed=outcome.completed, outputs=outcome.outputs))


@router.post("/fail", status_code=status.HTTP_204_NO_CONTENT)
def fail(report: FailureReport, db: Db, ctx: Context, claims: Claims) -> None:
    """A failed attempt: the operator retries a transient one with its own backoff, so no delay here."""
    reason = "permanent" if report.permanent else "transient"
    decision = RetryDecision(retry=not report.permanent, delay_seconds=0.0, reason=reason)
    _host(ctx, claims, _job_id(db, claims)).fail(report.message, decision)


@router.post("/discard", status_code=status.HTTP_204_NO_CONTENT)
def discard(report: DiscardReport, ctx: Context, claims: Claims) -> None:
    """A cancelled attempt's published files go if the asset is gone (its job row went with it)."""
    try:
        discard_published(ctx, owner_id=claims.owner_id, asset_id=claims.asset_id, stage=claims.stage,
                          names=report.published)  # fmt: skip
    except ValueError as exc:
        raise ValidationFailedError(str(exc)) from exc
