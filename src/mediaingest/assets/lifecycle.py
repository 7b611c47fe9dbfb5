"""An asset's terminal processing states, set in one place so every path announces them the same way.

The local worker, the operator's database mirror and the upload service all end an asset here, and
each end is announced to the listeners the composition root registered (`mediaingest.catalog`: the
completion webhook). A listener runs in the caller's transaction (an outbox write), so what it records
commits if and only if the state change does. Assets know no listener: the dependency points from
webhooks to assets, never back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from mediaingest.db import utcnow
from mediaingest.models import MediaAsset
from mediaingest.models.enums import AssetProcessingStatus

AssetFinished = Callable[[Session, MediaAsset], None]
"""Called with the asset once it is READY or FAILED (its `processing_status` says which)."""

_listeners: list[AssetFinished] = []


def on_asset_finished(listener: AssetFinished) -> None:
    """Registers a listener, once however often it is called (entry points may share a process)."""
    if listener not in _listeners:
        _listeners.append(listener)


def mark_ready(session: Session, asset: MediaAsset, *, at: datetime | None = None) -> None:
    asset.processing_status = AssetProcessingStatus.READY
    asset.processed_at = asset.processed_at or at or utcnow()
    asset.error = None
    _announce(session, asset)


def mark_failed(session: Session, asset: MediaAsset, *, reason: str) -> None:
    asset.processing_status = AssetProcessingStatus.FAILED
    asset.error = reason[:4000]
    _announce(session, asset)


def _announce(session: Session, asset: MediaAsset) -> None:
    for listener in _listeners:
        listener(session, asset)
