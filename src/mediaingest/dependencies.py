"""FastAPI dependencies every router shares: the request's transactions and the settings.

Below every domain, so each domain's endpoints take them without importing the API's composition root
(`api.app`, which mounts the routers). Domain dependencies live with their domain: the calling tenant in
`users.deps`, the asset services in `assets.deps`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from mediaingest.config import Settings
from mediaingest.db import SessionFactory, session_scope


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


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


Db = Annotated[Transactions, Depends(get_transactions)]
AppSettings = Annotated[Settings, Depends(get_settings)]
