"""The asset services the API built at start-up, as FastAPI dependencies of the asset routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mediaingest.assets.service import AssetService
from mediaingest.assets.timeline import TimelineService


def get_asset_service(request: Request) -> AssetService:
    return request.app.state.asset_service


def get_timeline_service(request: Request) -> TimelineService:
    return request.app.state.timeline_service


Assets = Annotated[AssetService, Depends(get_asset_service)]
Timelines = Annotated[TimelineService, Depends(get_timeline_service)]
