"""`GET /api/assets/{id}/events`: the asset's status as Server-Sent Events, until it is READY or FAILED.

Progress is written by workers that may run on other machines, so there is nothing in this process
to subscribe to: the stream polls the database every `POLL_INTERVAL_SECONDS` and sends an event only
when the status changed. Each poll is its own short session, closed before the stream sleeps, so an
open stream holds no connection or transaction (on SQLite none of its write lock, on PostgreSQL no
snapshot that would hold back vacuum).

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html):

    retry: 2000                         reconnect delay hint, sent first
    id: 7                               increasing; a reconnect's Last-Event-ID continues the count
    event: status                       data: the same JSON as GET /api/assets/{id}/status's `data`
    : keep-alive                        a comment every KEEPALIVE_SECONDS, so proxies keep the line open
    event: end                          after the READY/FAILED status: {"processingStatus": …}; then closes
    event: deleted                      the asset was deleted while watched; then closes

A client should stop on `end` (an EventSource would otherwise reconnect and get the final status again).

`GET /api/assets/events` is the library's stream: every asset of the caller, whoever uploaded it (the
page, the CLI, another tab), without end:

    event: asset                        data: an asset's status (as above) each time it changes: a new
                                        upload, its progress, READY, FAILED
    event: count                        data: {"total": n}: how many assets the caller has, first and on
                                        every change (a drop is a deletion)

Authentication is the Bearer header like every /api route, or `?access_token=` because the browser's
EventSource cannot set request headers. A token in a URL can end up in proxy or server access logs,
so prefer the header where the client can set it (fetch-based readers, the CLI, the upload page);
this service never logs query strings. Another tenant's asset is a 404, before the stream starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mediaingest.assets.deps import Assets
from mediaingest.assets.schemas import UNKNOWN_ASSET
from mediaingest.assets.service import AssetService
from mediaingest.db import SessionFactory, utcnow
from mediaingest.dependencies import Db, Transactions
from mediaingest.exceptions import NotFoundError
from mediaingest.models.enums import AssetProcessingStatus
from mediaingest.schemas import UNAUTHENTICATED
from mediaingest.users.auth import Authenticator, Principal
from mediaingest.users.deps import authenticate

log = structlog.stdlib.get_logger(__name__)

POLL_INTERVAL_SECONDS = 0.4
KEEPALIVE_SECONDS = 15.0
RETRY_MILLISECONDS = 2000
TERMINAL = (AssetProcessingStatus.READY, AssetProcessingStatus.FAILED)

router = APIRouter(
    prefix="/api/assets",
    tags=["assets"],
    responses=UNAUTHENTICATED,
)

_bearer = HTTPBearer(auto_error=False, description="An API token (mi_…) or a JWT from the main product.")


async def stream_principal(
    request: Request,
    db: Db,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(description="The token, for EventSource clients that cannot send an Authorization header."),
    ] = None,
) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    token = credentials.credentials if credentials else access_token
    principal = await run_in_threadpool(authenticate, db, authenticator, token)
    structlog.contextvars.bind_contextvars(user_id=principal.user_id)
    return principal


StreamPrincipal = Annotated[Principal, Depends(stream_principal)]


def status_snapshot(session: Session, assets: AssetService, principal: Principal, asset_id: str) -> dict[str, Any]:
    """The asset's status as the status endpoint shows it; NotFoundError for anyone but its owner."""
    status = assets.status(session, principal, asset_id)
    return status.model_dump(mode="json", by_alias=True)


def _first_snapshot(db: Transactions, assets: AssetService, principal: Principal, asset_id: str) -> dict[str, Any]:
    with db.read() as session:
        return status_snapshot(session, assets, principal, asset_id)


def _poll(factory: SessionFactory, assets: AssetService, principal: Principal, asset_id: str) -> dict[str, Any] | None:
    """One short read; None once the asset is gone. The session (and its transaction) ends here."""
    with factory() as session:
        try:
            return status_snapshot(session, assets, principal, asset_id)
        except NotFoundError:
            return None
        finally:
            session.rollback()  # read-only: end the transaction before the stream sleeps


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _first_id(last_event_id: str | None) -> int:
    if last_event_id and last_event_id.isdigit() and len(last_event_id) < 16:
        return int(last_event_id) + 1
    return 1


async def _stream(
    request: Request,
    factory: SessionFactory,
    assets: AssetService,
    principal: Principal,
    asset_id: str,
    first: dict[str, Any],
    next_id: int,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    snapshot: dict[str, Any] | None = first
    sent: dict[str, Any] | None = None
    last_write = time.monotonic()
    try:
        while True:
            if snapshot is None:
                yield _event("deleted", {"assetId": asset_id}, next_id)
                return
            if snapshot != sent:
                yield _event("status", snapshot, next_id)
                next_id += 1
                sent = snapshot
                last_write = time.monotonic()
                if snapshot["processingStatus"] in TERMINAL:
                    yield _event("end", {"processingStatus": snapshot["processingStatus"]}, next_id)
                    return
            elif time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                last_write = time.monotonic()
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
            if await request.is_disconnected():
                return
            snapshot = await run_in_threadpool(_poll, factory, assets, principal, asset_id)
    except Exception:
        # The client reconnects after `retry` and gets the current status; the error stays in our log.
        log.exception("asset.events_failed", asset_id=asset_id)


@router.get(
    "/{asset_id}/events",
    response_class=StreamingResponse,
    responses={**UNKNOWN_ASSET, 200: {"content": {"text/event-stream": {}}, "description": "The status stream"}},
)
async def asset_events(
    asset_id: str,
    request: Request,
    db: Db,
    principal: StreamPrincipal,
    assets: Assets,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Every status and progress change of the asset, as Server-Sent Events, until READY or FAILED."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    # Checked before the stream starts, so a wrong id or another tenant's asset is a plain 404.
    first = await run_in_threadpool(_first_snapshot, db, assets, principal, asset_id)
    factory: SessionFactory = request.app.state.read_session_factory
    return _event_stream(_stream(request, factory, assets, principal, asset_id, first, _first_id(last_event_id)))


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    # No caching, and no buffering by a proxy (nginx's header): each event must reach the client at once.
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


# A change committed just before a poll may carry an updated_at a little older than the poll's start
# (another machine's clock, a long transaction): look back this far, and send only what differs.
LIBRARY_LOOKBACK = timedelta(seconds=5)


def _poll_library(
    factory: SessionFactory, assets: AssetService, principal: Principal, since: datetime
) -> tuple[list[dict[str, Any]], int]:
    with factory() as session:
        try:
            statuses, total = assets.library_changes(session, principal, since=since)
            return [status.model_dump(mode="json", by_alias=True) for status in statuses], total
        finally:
            session.rollback()  # read-only: end the transaction before the stream sleeps


async def _library_stream(
    request: Request, factory: SessionFactory, assets: AssetService, principal: Principal, next_id: int
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    sent: dict[str, dict[str, Any]] = {}
    total_sent: int | None = None
    # The first poll looks back only the lookback: what changed before is in the listing the page loads.
    since = utcnow() - LIBRARY_LOOKBACK
    last_write = time.monotonic()
    try:
        while True:
            polled_at = utcnow()
            statuses, total = await run_in_threadpool(_poll_library, factory, assets, principal, since)
            since = polled_at - LIBRARY_LOOKBACK
            if total != total_sent:
                yield _event("count", {"total": total}, next_id)
                next_id += 1
                total_sent = total
                last_write = time.monotonic()
            for status in statuses:
                if sent.get(status["assetId"]) != status:
                    yield _event("asset", status, next_id)
                    next_id += 1
                    sent[status["assetId"]] = status
                    last_write = time.monotonic()
            if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                last_write = time.monotonic()
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
            if await request.is_disconnected():
                return
    except Exception:
        log.exception("asset.library_events_failed")


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The library's stream"}},
)
async def library_events(
    request: Request,
    principal: StreamPrincipal,
    assets: Assets,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Every change to any of the caller's assets, as Server-Sent Events, for as long as it is open."""
    factory: SessionFactory = request.app.state.read_session_factory
    return _event_stream(_library_stream(request, factory, assets, principal, _first_id(last_event_id)))
