"""The calling tenant, as a FastAPI dependency of every authenticated route."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mediaingest.dependencies import Db, Transactions
from mediaingest.users.auth import Authenticator, Principal

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
