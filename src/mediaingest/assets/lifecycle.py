"""An asset's terminal processing states, set in one place so every path announces them the same way.

The local worker, the operator's database mirror and the upload service all end an asset here; the
completion webhook is queued in the same transaction (outbox), so it is sent if and only if the
state change commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mediaingest.db import utcnow
from mediaingest.models import MediaAsset
from mediaingest.models.enums import AssetProcessingStatus
from mediaingest.webhooks.service import ASSET_FAILED, ASSET_READY, record_asset_event


def mark_ready(session: Session, asset: MediaAsset, *, at: datetime | None = None) -> None:
    asset.processing_status = AssetProcessingStatus.READY
    asset.processed_at = asset.processed_at or at or utcnow()
    asset.error = None
    record_asset_event(session, asset, ASSET_READY)


def mark_failed(session: Session, asset: MediaAsset, *, reason: str) -> None:
    asset.processing_status = AssetProcessingStatus.FAILED
    asset.error = reason[:4000]
    record_asset_event(session, asset, ASSET_FAILED)
