"""FastAPI dependencies: the unit of work, the services, and the calling tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from mediaingest.assets.service import AssetService
from mediaingest.config import Settings
from mediaingest.exceptions import MediaIngestError
from mediaingest.users.auth import Authenticator, Principal


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent (scope="function")."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except MediaIngestError as error:
        # An error that reports a state the service just recorded (e.g. asset FAILED) keeps it.
        if error.keep_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session, scope="function")]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_asset_service(request: Request) -> AssetService:
    return request.app.state.asset_service


_bearer = HTTPBearer(auto_error=False, description="An API token (mi_…) or a JWT from the main product.")


async def current_principal(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # async, with the database work in the thread pool: a contextvar bound here (user_id) is seen by
    # the endpoint and every log line after it; one bound inside a worker thread would be lost.
    authenticator: Authenticator = request.app.state.authenticator
    token = credentials.credentials if credentials else None
    principal = await run_in_threadpool(authenticator.authenticate, session, token)
    structlog.contextvars.bind_contextvars(user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Assets = Annotated[AssetService, Depends(get_asset_service)]
