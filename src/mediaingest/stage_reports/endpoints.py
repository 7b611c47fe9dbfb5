"""`/internal/stage-run/*`: what a Kubernetes stage pod may ask and report, as the pod of one attempt.

Each call is one unit of work through a `DirectStageHost`, the class a local stage process uses, so
the rows, keys and transitions are the same whichever executor ran the stage. The pod's token is its
projected ServiceAccount token, tied to the attempt's Job (`identity`); and every call but `discard` is
heard only while that attempt is the current one — its task RUNNING at that attempt number — so a
finished, superseded or cancelled attempt's pod writes nothing and reads no source. A pod can read only
its asset's source, write only under its stage's folder, and its result or failure finishes its task
in the same transaction (one record of how the attempt ended). Not in the public OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError as PydanticValidationError

from mediaingest import metrics
from mediaingest.config import MIB, Settings
from mediaingest.dependencies import Db
from mediaingest.dispatch import stage_task_key
from mediaingest.exceptions import (
    AuthenticationError,
    ConflictError,
    MediaIngestError,
    ObjectNotFoundError,
    PermanentProcessingError,
    TransientProcessingError,
    ValidationFailedError,
)
from mediaingest.models import IngestionJob, Task, TaskStatus
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import job_type_for
from mediaingest.pipeline.types import StageResult
from mediaingest.schemas import Envelope
from mediaingest.stage_reports import identity
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
from mediaingest.worker.jobs import IngestionJobHandle
from mediaingest.worker.stage_host import DirectStageHost, StoredOutput, checked_data, discard_published
from mediaingest.worker.stage_runner import StageContext
from mediaingest.worker.stage_tasks import RUN

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


def _reviewer(request: Request) -> identity.TokenReviewer:
    state = request.app.state
    if getattr(state, "token_reviewer", None) is None:
        # Built at the first report, not at start-up: only an API that Kubernetes stage pods report to
        # needs a Kubernetes client (in-cluster service account, else the kubeconfig).
        from mediaingest.operator.kube import load_api_client

        # As many connections as request threads: every stage pod's first report asks at once at load.
        state.token_reviewer = identity.KubernetesTokenReviewer(load_api_client(pool_size=40))
    reviewer: identity.TokenReviewer = state.token_reviewer
    return reviewer


async def _claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    attempt: Annotated[str | None, Header(alias=identity.ATTEMPT_HEADER)] = None,
) -> identity.StageClaims:
    # async, like the API's principal: a log binding made in a worker thread would not reach the endpoint.
    if credentials is None:
        raise AuthenticationError("a stage token is required")
    settings: Settings = request.app.state.settings
    claims = await run_in_threadpool(
        identity.authenticate,
        _reviewer(request),
        token=credentials.credentials,
        attempt_header=attempt,
        audience=settings.stage_token_audience,
        username=identity.stage_username(settings.k8s_namespace, settings.stage_service_account),
    )
    structlog.contextvars.bind_contextvars(asset_id=claims.asset_id, stage=claims.stage, attempt=claims.attempt)
    return claims


Claims = Annotated[identity.StageClaims, Depends(_claims)]
Context = Annotated[StageContext, Depends(_context)]


@dataclass(frozen=True)
class CurrentAttempt:
    handle: IngestionJobHandle
    owner_id: str


def _current(db: Db, claims: Claims) -> CurrentAttempt:
    """The attempt's handle, if it is still the current one: its task RUNNING at this attempt number.
    410 when the asset is gone, 409 for any other attempt (finished, superseded, cancelled, not begun)."""
    with db.read() as session:
        task = session.scalar(sa.select(Task).where(Task.dedupe_key == stage_task_key(claims.asset_id, claims.stage)))
        if task is None or task.tenant is None or task.status == TaskStatus.CANCELLED:
            raise AssetGoneError("the asset no longer exists")
        job_id = session.scalar(sa.select(IngestionJob.id).where(IngestionJob.task_id == task.id))
    if job_id is None:
        raise AssetGoneError("the asset no longer exists")
    if task.status != TaskStatus.RUNNING or task.attempts != claims.attempt:
        raise ConflictError(
            f"attempt {claims.attempt} of {claims.stage} is not the current one "
            f"(the stage is {task.status.value.lower()} at attempt {task.attempts})"
        )
    # Fenced by the attempt's number.
    handle = IngestionJobHandle(job_id=job_id, task_id=task.id, attempt=claims.attempt)
    return CurrentAttempt(handle=handle, owner_id=task.tenant)


Current = Annotated[CurrentAttempt, Depends(_current)]


def _host(ctx: StageContext, claims: identity.StageClaims, current: CurrentAttempt) -> DirectStageHost:
    return DirectStageHost(
        ctx, asset_id=claims.asset_id, stage=claims.stage, handle=current.handle,
        owner_id=current.owner_id,
    )  # fmt: skip


@router.post("/start", response_model=Envelope[StageStart])
def start(ctx: Context, claims: Claims, current: Current) -> Envelope[StageStart]:
    """The pod's input and a URL of the source. The attempt began when its runner created the Job."""
    host = _host(ctx, claims, current)
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
def progress(report: ProgressReport, ctx: Context, claims: Claims, current: Current) -> Envelope[ProgressAnswer]:
    host = _host(ctx, claims, current)
    return Envelope(data=ProgressAnswer(current=host.report_progress(report.fraction, report.message)))


@router.post("/playable", status_code=status.HTTP_204_NO_CONTENT)
def playable(report: PlayableReport, ctx: Context, claims: Claims, current: Current) -> None:
    _host(ctx, claims, current).report_playable(report.seconds)


@router.post("/outputs", response_model=Envelope[SignedPuts])
def sign_outputs(request: OutputFiles, ctx: Context, claims: Claims, current: Current) -> Envelope[SignedPuts]:
    """PUT URLs for files the pod is about to store, each under its stage's folder, checksum signed in."""
    host = _host(ctx, claims, current)
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


def _record(report: StageRecord, db: Db, ctx: StageContext, claims: identity.StageClaims) -> Envelope[StageRecorded]:
    host = _host(ctx, claims, _current(db, claims))
    result, stored = _checked_result(report, host, claims)
    outcome = host.record(result, stored, checksum=report.checksum, published=report.published)
    if outcome.completed:  # a pod's own metrics are never scraped: its outcomes are counted where recorded
        metrics.count_stage_attempt(job_type_for(claims.stage), TaskStatus.SUCCEEDED)
    return Envelope(data=StageRecorded(completed=outcome.completed, outputs=outcome.outputs))


def _checked_result(
    report: StageRecord, host: DirectStageHost, claims: identity.StageClaims
) -> tuple[StageResult, list[StoredOutput]]:
    """The reported result, from outputs that storage really holds, refused as a bad report (422) where
    recording would refuse it."""
    try:
        stored = [host.stored(item.to_output()) for item in report.outputs]
        result = StageResult(
            outputs=[item.output for item in stored],
            metadata=report.metadata_value(),
            measurements=report.measurements,
            message=report.message,
        )
        checked_data(claims.stage, result)
        for name in report.published:
            host.output_location(name, "proxies")
    except ObjectNotFoundError as exc:
        raise ValidationFailedError(f"an output was not stored: {exc.message}") from exc
    except ValueError as exc:
        raise ValidationFailedError(str(exc)) from exc
    return result, stored


@router.post("/fail", status_code=status.HTTP_204_NO_CONTENT)
def fail(report: FailureReport, db: Db, ctx: Context, claims: Claims, current: Current) -> None:
    """A failed attempt, decided by the one stage retry policy as a worker's would be: retried after its
    backoff, or failed for good (a permanent error, or the task's last attempt)."""
    error = PermanentProcessingError(report.message) if report.permanent else TransientProcessingError(report.message)
    with db.write() as session:
        RUN.fail(session, task_id=current.handle.task_id, attempt=current.handle.attempt, error=error,
                 settings=ctx.settings)  # fmt: skip


@router.post("/discard", status_code=status.HTTP_204_NO_CONTENT)
def discard(report: DiscardReport, db: Db, ctx: Context, claims: Claims) -> None:
    """A cancelled attempt's published files go if the asset is gone (its job row went with it). Heard from
    an attempt that is no longer current: that is when it is needed. Its task says whose files they are."""
    with db.read() as session:
        owner_id = session.scalar(
            sa.select(Task.tenant).where(Task.dedupe_key == stage_task_key(claims.asset_id, claims.stage))
        )
    if owner_id is None:
        return
    try:
        discard_published(ctx, owner_id=owner_id, asset_id=claims.asset_id, stage=claims.stage,
                          names=report.published)  # fmt: skip
    except ValueError as exc:
        raise ValidationFailedError(str(exc)) from exc
