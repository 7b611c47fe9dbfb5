"""The timeline endpoints: a frame at any time, a filmstrip of any range (thin: see `assets.timeline`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from mediaingest.assets.clips import clip_hls_url, create_clip
from mediaingest.assets.deps import Assets, Timelines
from mediaingest.assets.playback import range_playlist_of
from mediaingest.assets.schemas import UNKNOWN_ASSET
from mediaingest.assets.timeline import MAX_FILMSTRIP_TILES
from mediaingest.assets.timeline_schemas import (
    ClipCreated,
    ClipPreview,
    ClipRequest,
    FilmstripOut,
    FrameFormat,
    FrameOut,
)
from mediaingest.dependencies import Db
from mediaingest.exceptions import NotFoundError
from mediaingest.pipeline.stages.sprites import vtt_timestamp
from mediaingest.schemas import UNAUTHENTICATED, Envelope, ErrorEnvelope
from mediaingest.users.deps import CurrentPrincipal

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


@router.post(
    "/{asset_id}/clips",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[ClipCreated],
    responses={**_ERRORS, 413: {"model": ErrorEnvelope, "description": "Over the plan's quota"}},
)
def create_clip_endpoint(
    asset_id: str, body: ClipRequest, db: Db, principal: CurrentPrincipal, assets: Assets
) -> Envelope[ClipCreated]:
    """A clip of [start, end) as an asset of its own: answered at once with a playlist of the range (accurate
    to a segment, with the exact in and out), while its frame-exact cut is made and ingested."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    with db.write() as session:
        clip, span = create_clip(session, assets, principal, asset_id, start=body.start, end=body.end, name=body.name)
        created = ClipCreated(
            asset_id=clip.id,
            parent_id=asset_id,
            name=clip.name,
            in_frame=span.in_frame,
            out_frame=span.out_frame,
            frames=span.out_frame - span.in_frame,
            frame_rate=f"{span.rate.numerator}/{span.rate.denominator}",
            in_seconds=round(span.in_seconds, 6),
            out_seconds=round(span.out_seconds, 6),
            in_timecode=span.in_timecode,
            upload_status=clip.upload_status,
            processing_status=clip.processing_status,
        )
        owner_id = clip.owner_id
    try:
        _, start, end = range_playlist_of(
            assets.storage, assets.settings, owner_id=owner_id, asset_id=asset_id, span=span,
            ttl=assets.settings.download_url_ttl_seconds,
        )  # fmt: skip
        created.preview = ClipPreview(
            hls_url=clip_hls_url(asset_id, span, assets), in_offset_seconds=start, out_offset_seconds=end
        )
    except NotFoundError:
        pass  # the parent has no HLS yet: the clip is still made; its own playback comes with its ingestion
    return Envelope(data=created)
