"""FastAPI dependencies: the unit of work, the services, and the calling tenant."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from mediaingest.assets.service import AssetService
from mediaingest.assets.timeline import TimelineService
from mediaingest.config import Settings
from mediaingest.db import SessionFactory, session_scope
from mediaingest.users.auth import Authenticator, Principal


class Transactions:
    """Opens the request's transactions, each begun, committed and closed within one synchronous call.

    Never across an await: on SQLite a read-write transaction holds the database's only write lock
    from its first statement (BEGIN IMMEDIATE); held while the request waits for a thread-pool slot,
    it stalls every request whose thread is waiting for that lock (measured: 50 concurrent uploads
    timed out after 30 s, when the transaction spanned the request). Reads take `read()`, which never
    takes the write lock.
    """

    def __init__(self, factory: SessionFactory, read_factory: SessionFactory) -> None:
        self._factory = factory
        self._read_factory = read_factory

    def write(self) -> AbstractContextManager[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        return session_scope(self._factory)

    def read(self) -> Session:
        """A session for `with`: closed at the end, its deferred transaction never written to."""
        return self._read_factory()


def get_transactions(request: Request) -> Transactions:
    return Transactions(request.app.state.session_factory, request.app.state.read_session_factory)


Db = Annotated[Transactions, Depends(get_transactions)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_asset_service(request: Request) -> AssetService:
    return request.app.state.asset_service


def get_timeline_service(request: Request) -> TimelineService:
    return request.app.state.timeline_service


_bearer = HTTPBearer(auto_error=False, description="An API token (mi_…) or a JWT from the main product.")


def authenticate(transactions: Transactions, authenticator: Authenticator, token: str | None) -> Principal:
    """In a transaction of its own: an API token is only read; a JWT may create its user."""
    opened = transactions.write() if authenticator.may_write(token) else transactions.read()
    with opened as session:
        return authenticator.authenticate(session, token)


async def current_principal(
    request: Request,
    transactions: Db,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # async, with the database work in the thread pool: a contextvar bound here (user_id) is seen by
    # the endpoint and every log line after it; one bound inside a worker thread would be lost.
    token = credentials.credentials if credentials else None
    principal = await run_in_threadpool(authenticate, transactions, request.app.state.authenticator, token)
    structlog.contextvars.bind_contextvars(user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Assets = Annotated[AssetService, Depends(get_asset_service)]
Timelines = Annotated[TimelineService, Depends(get_timeline_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
