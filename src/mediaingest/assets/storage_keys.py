"""Where an asset's objects live. Deterministic, so re-running a stage overwrites instead of piling up."""

from __future__ import annotations

from datetime import datetime

UPLOAD_PREFIX = "uploads/"


def upload_key(*, user_id: str, asset_id: str, extension: str, at: datetime) -> str:
    """`uploads/{userId}/{timestamp}-{assetId}.ext` in the incoming bucket (timestamp: epoch millis)."""
    return f"{UPLOAD_PREFIX}{user_id}/{int(at.timestamp() * 1000)}-{asset_id}.{extension}"


def derived_prefix(*, user_id: str, asset_id: str) -> str:
    """Everything made from one asset, in the processed and proxies buckets."""
    return f"assets/{user_id}/{asset_id}/"


def stage_prefix(*, user_id: str, asset_id: str, stage: str) -> str:
    return f"{derived_prefix(user_id=user_id, asset_id=asset_id)}{stage}/"


def derived_key(*, user_id: str, asset_id: str, stage: str, filename: str) -> str:
    return f"{stage_prefix(user_id=user_id, asset_id=asset_id, stage=stage)}{filename}"


def asset_of_derived_key(key: str) -> str | None:
    """The asset id in `assets/{userId}/{assetId}/…`; None for any other key."""
    parts = key.split("/")
    return parts[2] if len(parts) >= 4 and parts[0] == "assets" and parts[2] else None
