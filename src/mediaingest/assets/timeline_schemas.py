"""Answers of the timeline endpoints: a frame and a filmstrip, each behind a signed URL like every output."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from mediaingest.models.enums import AssetProcessingStatus, UploadStatus
from mediaingest.schemas import ApiModel, RequestModel

FrameFormat = Literal["jpg", "webp"]
PictureSource = Literal["scrub_rung", "source", "sprites"]


class FrameOut(ApiModel):
    url: str = Field(description="The picture, signed; it stops working at expiresAt.")
    expires_at: datetime
    content_type: str
    frame: int = Field(description="The frame's number on the timeline, counted from 0 at the timeline rate.")
    time: float = Field(description="When that frame starts, in seconds: t rounded down to its frame.")
    frame_rate: str = Field(description="The timeline rate frames are counted at, exact: 30000/1001.")
    width: int
    height: int
    decoded_from: PictureSource = Field(description="The scrubbing rung, or the source for sizes above it.")
    cached: bool = Field(description="Made before and served from storage.")


class FilmstripTile(ApiModel):
    index: int
    time: float = Field(description="When the picture in this tile is from, in seconds.")
    frame: int = Field(description="Its frame on the timeline (for a sprite tile: the frame nearest its time).")
    x: int
    y: int


class FilmstripOut(ApiModel):
    url: str = Field(description="One JPEG holding every tile, signed; it stops working at expiresAt.")
    expires_at: datetime
    start: float
    end: float
    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    frame_rate: str
    decoded_from: PictureSource = Field(
        description="`sprites` when the ingest's sprite sheets were dense enough, else decoded frames."
    )
    cached: bool
    tiles: list[FilmstripTile]


class ClipRequest(RequestModel):
    start: float = Field(description="Seconds: the clip starts with the frame showing then.", examples=[12.2])
    end: float = Field(description="Seconds: the clip ends before the frame showing then.", examples=[20.0])
    name: str | None = Field(None, min_length=1, max_length=255, examples=["interview answer.mp4"])


class ClipPreview(ApiModel):
    hls_url: str = Field(description="The parent's segments holding the range, signed; plays now.")
    in_offset_seconds: float = Field(description="Where the clip starts, from the playlist's start: trim to it.")
    out_offset_seconds: float = Field(description="Where the clip ends, from the playlist's start.")


class ClipCreated(ApiModel):
    asset_id: str = Field(description="The clip: an asset of its own, ingested once its frame-exact cut is made.")
    parent_id: str
    name: str
    in_frame: int
    out_frame: int = Field(description="Exclusive: the clip holds outFrame − inFrame frames.")
    frames: int
    frame_rate: str
    in_seconds: float
    out_seconds: float
    in_timecode: str | None = Field(None, description="The clip's start timecode: the source's, moved to in.")
    upload_status: UploadStatus
    processing_status: AssetProcessingStatus
    preview: ClipPreview | None = Field(None, description="None until the parent has HLS segments.")
