"""The timeline endpoints: a frame at any time, a filmstrip of any range (thin: see `assets.timeline`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import Response

from mediaingest.api.deps import CurrentPrincipal, Db, Timelines
from mediaingest.assets.schemas import UNKNOWN_ASSET
from mediaingest.assets.timeline import MAX_FILMSTRIP_TILES
from mediaingest.assets.timeline_schemas import FilmstripOut, FrameFormat, FrameOut
from mediaingest.pipeline.stages.sprites import vtt_timestamp
from mediaingest.schemas import UNAUTHENTICATED, Envelope, ErrorEnvelope

router = APIRouter(prefix="/api/assets", tags=["timeline"], responses=UNAUTHENTICATED)

_ERRORS: dict[int | str, dict[str, Any]] = {
    **UNKNOWN_ASSET,
    409: {"model": ErrorEnvelope, "description": "Not uploaded, or not probed yet: no frame timing to count by"},
    422: {
        "model": ErrorEnvelope,
        "description": "Not a video, a time outside the picture, or a size larger than the source",
    },
}


@router.get("/{asset_id}/frame", response_model=Envelope[FrameOut], responses=_ERRORS)
def get_frame(
    asset_id: str,
    db: Db,
    principal: CurrentPrincipal,
    timelines: Timelines,
    t: Annotated[float, Query(description="Seconds from the start; the frame showing then is answered.")],
    width: Annotated[
        int | None, Query(description="Pixels; default the scrubbing rung's width; at most the source's.")
    ] = None,
    fmt: Annotated[FrameFormat, Query(alias="format")] = "jpg",
) -> Envelope[FrameOut]:
    """The exact frame at `t` at the timeline rate, as a signed URL to a JPEG or WebP. Made once, then kept."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with db.read() as session:
        timeline = timelines.timeline(session, principal, asset_id)
    return Envelope(data=timelines.frame(timeline, t=t, width=width, fmt=fmt))


@router.get(
    "/{asset_id}/filmstrip",
    response_model=Envelope[FilmstripOut],
    responses={**_ERRORS, 200: {"content": {"text/vtt": {}}, "description": "The map, as JSON or as WebVTT"}},
)
def get_filmstrip(
    asset_id: str,
    db: Db,
    principal: CurrentPrincipal,
    timelines: Timelines,
    start: Annotated[float | None, Query(description="Seconds; default 0.")] = None,
    end: Annotated[float | None, Query(description="Seconds; default the end of the picture.")] = None,
    count: Annotated[int, Query(ge=1, le=MAX_FILMSTRIP_TILES, description="Tiles, evenly spaced.")] = 10,
    height: Annotated[int | None, Query(description="Tile height in pixels; default the sprite tiles'.")] = None,
    map_format: Annotated[Literal["json", "vtt"], Query(alias="format")] = "json",
) -> Any:
    """One JPEG of `count` tiles over [start, end) and its map: each tile's time, frame and place."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with db.read() as session:
        timeline = timelines.timeline(session, principal, asset_id)
    strip = timelines.filmstrip(timeline, start=start, end=end, count=count, height=height)
    if map_format == "json":
        return Envelope(data=strip)
    step = (strip.end - strip.start) / strip.count
    lines = ["WEBVTT", ""]
    for tile in strip.tiles:
        begin = strip.start + tile.index * step
        lines += [
            f"{vtt_timestamp(begin)} --> {vtt_timestamp(begin + step)}",
            f"{strip.url}#xywh={tile.x},{tile.y},{strip.tile_width},{strip.tile_height}",
            "",
        ]
    return Response("\n".join(lines), media_type="text/vtt")
