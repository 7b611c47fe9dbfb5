"""What every background task runs with: the settings, the database and the object store.

A leaf of the package: it imports configuration, the database and storage, never the domain. Webhook
deliveries, sweeps, the reaper and the pruner take a `Runtime`; stage runs take a `StageContext`
(`worker.stage_runner`), which is a Runtime with the pipeline's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import sqlalchemy as sa

from mediaingest.config import Settings
from mediaingest.db import SessionFactory, create_db_engine, create_session_factory
from mediaingest.storage import build_storage
from mediaingest.storage.base import Storage


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    session_factory: SessionFactory
    storage: Storage

    @classmethod
    def connect(cls, settings: Settings, *, pool_size: int = 2) -> tuple[SessionFactory, Storage]:
        """Its own engine and storage client, built from the settings."""
        engine = create_db_engine(settings.resolved_database_url, pool_size=pool_size)
        return create_session_factory(engine), build_storage(settings)

    @classmethod
    def open(cls, settings: Settings, *, pool_size: int = 2) -> Self:
        session_factory, storage = cls.connect(settings, pool_size=pool_size)
        return cls(settings=settings, session_factory=session_factory, storage=storage)

    def close(self) -> None:
        """Closes the database connections `open` made."""
        bind = self.session_factory.kw.get("bind")
        if isinstance(bind, sa.Engine):
            bind.dispose()

    def bucket(self, role: str) -> str:
        """The bucket of a derived output's role: proxies and their playlists, or everything else."""
        return self.settings.bucket_proxies if role == "proxies" else self.settings.bucket_processed
