"""Pictures for an editor's timeline: any frame on demand, and filmstrips at any zoom.

Both are made on request by the API from files ingestion stored (the scrubbing rung, the source, the
sprite sheets), kept in storage under the asset's own prefix (so deleting the asset removes them), and
answered with a signed URL like every other output. A second request for the same picture is a HEAD
and a signature. The frames themselves come from `mediaingest.pipeline.frames`, which says why they
are exact.

The service reads the asset in the caller's session (`timeline`) into a plain value, and renders
outside it: no database connection is held while ffmpeg runs.
"""

from __future__ import annotations

import hashlib
import io
import math
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import structlog
from PIL import Image
from sqlalchemy.orm import Session

from mediaingest.assets import repository
from mediaingest.assets.media_cache import MediaCache
from mediaingest.assets.metadata import metadata_of
from mediaingest.assets.storage_keys import derived_key
from mediaingest.assets.timeline_schemas import FilmstripOut, FilmstripTile, FrameFormat, FrameOut, PictureSource
from mediaingest.config import Settings
from mediaingest.db import SessionFactory, session_scope, utcnow
from mediaingest.exceptions import (
    ConflictError,
    NotFoundError,
    ObjectNotFoundError,
    ValidationFailedError,
)
from mediaingest.models import MediaAsset
from mediaingest.models.enums import MediaType, ProxyType, UploadStatus
from mediaingest.pipeline.frames import (
    SCRUB_RUNG,
    FrameSource,
    decode_frames,
    fitted_size,
    frame_at,
    frame_time,
    timeline_frames,
)
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.proxies import picture_duration
from mediaingest.pipeline.timing import rate_text
from mediaingest.pipeline.types import MediaMetadata
from mediaingest.storage.base import Storage
from mediaingest.users.auth import Principal

log = structlog.stdlib.get_logger(__name__)

CACHE_FOLDER = "timeline"  # under the asset's prefix in the processed bucket, beside the stages' folders
MAX_FILMSTRIP_TILES = 200
FILMSTRIP_COLUMNS = 10  # as the sprite sheets are laid out
_CONTENT_TYPES = {"jpg": "image/jpeg", "webp": "image/webp"}
_RENDER_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Picture:
    """A stored video frames can be decoded from."""

    bucket: str
    key: str
    width: int
    height: int
    kind: PictureSource
    source: FrameSource


@dataclass(frozen=True)
class SpriteSheetRef:
    bucket: str
    key: str
    first_tile: int  # the number of the sheet's first tile on the whole storyboard
    tiles: int
    columns: int

    def box(self, number: int, width: int, height: int) -> tuple[int, int, int, int]:
        """Where tile `number` of the storyboard is on this sheet of tiles `width` × `height`."""
        row, column = divmod(number - self.first_tile, self.columns)
        x, y = column * width, row * height
        return (x, y, x + width, y + height)


@dataclass(frozen=True)
class SpriteTiles:
    interval_seconds: float
    tile_width: int
    tile_height: int
    sheets: tuple[SpriteSheetRef, ...]

    @property
    def count(self) -> int:
        return sum(sheet.tiles for sheet in self.sheets)

    def serve(self, *, step: float, height: int) -> bool:
        """Whether the sheets hold a distinct tile for every slot `step` apart, `height` high or less."""
        return step >= self.interval_seconds and height <= self.tile_height

    def nearest(self, t: float) -> int:
        """The number of the tile nearest to `t`."""
        return min(round(t / self.interval_seconds), self.count - 1)

    def sheet_of(self, number: int) -> SpriteSheetRef:
        return next(s for s in self.sheets if s.first_tile <= number < s.first_tile + s.tiles)


@dataclass(frozen=True)
class Timeline:
    """What one asset's pictures are made from, read from its rows."""

    asset_id: str
    owner_id: str
    rate: Fraction
    frames: int
    seconds: float
    display_width: int
    display_height: int
    source: Picture
    scrub_rung: Picture | None
    sprites: SpriteTiles | None
    timecode: str | None  # the source's start timecode

    def cache_key(self, name: str) -> str:
        return derived_key(user_id=self.owner_id, asset_id=self.asset_id, stage=CACHE_FOLDER, filename=name)

    @property
    def frame_width(self) -> int:
        """A frame's width when none is asked for: the scrubbing rung's, else the source's up to 640."""
        return self.scrub_rung.width if self.scrub_rung is not None else min(self.display_width, 640)

    @property
    def tile_height(self) -> int:
        """A filmstrip tile's height when none is asked for: the sprite tiles'."""
        return self.sprites.tile_height if self.sprites else 90

    def decoding(self, *, width: int = 0, height: int = 0) -> Picture:
        """What to decode a picture `width` wide and `height` high from: the scrubbing rung when it is that
        large (less to decode), else the source."""
        rung = self.scrub_rung
        return rung if rung is not None and width <= rung.width and height <= rung.height else self.source

    def frame_showing(self, t: float) -> int:
        """The frame showing at `t` (the last one from the end of the picture on)."""
        return min(frame_at(t, self.rate), self.frames - 1)


@dataclass(frozen=True)
class _FilmstripPlan:
    """Which picture each tile shows, and where it comes from."""

    frames: list[int]  # each tile's frame at the timeline rate
    shown: list[float]  # the time each tile shows
    sprite_numbers: list[int] | None  # the sprite tiles, when cut from the sheets
    picture: Picture | None  # what the frames are decoded from, when they are

    @property
    def kind(self) -> PictureSource:
        return self.picture.kind if self.picture is not None else "sprites"

    @property
    def identity(self) -> list[int]:
        return self.sprite_numbers if self.sprite_numbers is not None else self.frames

    def cache_name(self, size: tuple[int, int]) -> str:
        """The stored filmstrip's name: a digest of what its tiles show, and how large."""
        digest = hashlib.sha256(f"{self.kind}:{size}:{self.identity}".encode()).hexdigest()[:24]
        return f"filmstrip-{digest}.jpg"

    @classmethod
    def of(cls, timeline: Timeline, *, start: float, step: float, count: int, height: int) -> _FilmstripPlan:
        times = [start + index * step for index in range(count)]
        sprites = timeline.sprites
        if sprites is not None and sprites.serve(step=step, height=height):
            return cls.cut(timeline, sprites, times)
        return cls.decoded(timeline, times, height)

    @classmethod
    def cut(cls, timeline: Timeline, sprites: SpriteTiles, times: list[float]) -> _FilmstripPlan:
        """The sprite tiles nearest to `times`."""
        numbers = [sprites.nearest(t) for t in times]
        shown = [number * sprites.interval_seconds for number in numbers]
        return cls([timeline.frame_showing(t) for t in shown], shown, numbers, None)

    @classmethod
    def decoded(cls, timeline: Timeline, times: list[float], height: int) -> _FilmstripPlan:
        """The frames showing at `times`, from the scrubbing rung when it is `height` high or more."""
        frames = [timeline.frame_showing(t) for t in times]
        shown = [frame_time(frame, timeline.rate) for frame in frames]
        return cls(frames, shown, None, timeline.decoding(height=height))

    def tiles(self, columns: int, size: tuple[int, int]) -> list[FilmstripTile]:
        """Where each tile is on a sheet `columns` tiles wide."""
        return [
            FilmstripTile(
                index=index,
                time=round(shown, 6),
                frame=frame,
                x=(index % columns) * size[0],
                y=(index // columns) * size[1],
            )
            for index, (frame, shown) in enumerate(zip(self.frames, self.shown, strict=True))
        ]


def asset_lives(session_factory: SessionFactory, asset_id: str) -> bool:
    """Whether the asset exists, once a delete in progress has ended: it holds the asset's row (PostgreSQL)
    or the write lock (SQLite), which this waits for."""
    with session_scope(session_factory) as session:
        return repository.exists_for_share(session, asset_id=asset_id)


class TimelineService:
    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        options: PipelineOptions,
        asset_exists: Callable[[str], bool],
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.options = options
        self.asset_exists = asset_exists  # by id, after any delete in progress (see `asset_lives`)
        self.files = MediaCache(
            storage, settings.data_dir / "timeline-cache", max_bytes=settings.timeline_cache_mb * 2**20
        )
        # Each render is one ffmpeg process; a burst of requests queues here rather than overloading the host.
        self._renders = threading.BoundedSemaphore(max(1, settings.ffmpeg_threads or 2) * 2)

    # --- reading the asset ----------------------------------------------------------------------------
    def timeline(self, session: Session, principal: Principal, asset_id: str) -> Timeline:
        """The caller's asset as a Timeline (see `timeline_of`); 404 for another tenant's."""
        asset = repository.get_owned(session, asset_id=asset_id, owner_id=principal.user_id, with_details=True)
        if asset is None:
            raise NotFoundError("asset not found")
        return timeline_of(asset)

    # --- one frame ------------------------------------------------------------------------------------
    def frame(self, timeline: Timeline, *, t: float, width: int | None, fmt: FrameFormat) -> FrameOut:
        """The frame showing at `t`, `width` wide (default: the scrubbing rung's), from storage when made before."""
        _check_time("t", t, timeline)
        width = timeline.frame_width if width is None else width
        _check_size("width", width, timeline.display_width)
        size = fitted_size(timeline.display_width, timeline.display_height, width=width)
        frame = timeline.frame_showing(t)
        picture = timeline.decoding(width=width)
        key = timeline.cache_key(f"frame-{frame:08d}-{size[0]}x{size[1]}.{fmt}")
        cached = self._stored(key)
        if not cached:
            (image,) = self._decode(picture, [frame], timeline.rate, size)
            self._store(timeline, key, _encode(image, fmt, self.options), _CONTENT_TYPES[fmt])
            log.info("timeline.frame_rendered", asset_id=timeline.asset_id, frame=frame, source=picture.kind)
        return FrameOut(
            url=self._signed(key),
            expires_at=self._expiry(),
            content_type=_CONTENT_TYPES[fmt],
            frame=frame,
            time=round(frame_time(frame, timeline.rate), 6),
            frame_rate=rate_text(timeline.rate),
            width=size[0],
            height=size[1],
            decoded_from=picture.kind,
            cached=cached,
        )

    # --- filmstrips -----------------------------------------------------------------------------------
    def filmstrip(
        self, timeline: Timeline, *, start: float | None, end: float | None, count: int, height: int | None
    ) -> FilmstripOut:
        """`count` pictures evenly spaced over [start, end), tile k at start + k·(end − start)/count, in one
        JPEG: cut from the sprite sheets when they hold a tile for every slot at this height, else decoded."""
        start = 0.0 if start is None else start
        end = timeline.seconds if end is None else end
        height = height or timeline.tile_height
        size = self._filmstrip_size(timeline, start=start, end=end, count=count, height=height)
        plan = _FilmstripPlan.of(timeline, start=start, step=(end - start) / count, count=count, height=height)
        columns = min(count, FILMSTRIP_COLUMNS)
        rows = math.ceil(count / columns)
        key = timeline.cache_key(plan.cache_name(size))
        cached = self._stored(key)
        if not cached:
            sheet = _contact_sheet(self._filmstrip_pictures(timeline, plan, size), columns, rows, size)
            self._store(timeline, key, _encode(sheet, "jpg", self.options), _CONTENT_TYPES["jpg"])
            log.info("timeline.filmstrip_rendered", asset_id=timeline.asset_id, count=count, source=plan.kind)
        return FilmstripOut(
            url=self._signed(key),
            expires_at=self._expiry(),
            start=start,
            end=end,
            count=count,
            columns=columns,
            rows=rows,
            tile_width=size[0],
            tile_height=size[1],
            frame_rate=rate_text(timeline.rate),
            decoded_from=plan.kind,
            cached=cached,
            tiles=plan.tiles(columns, size),
        )

    def _filmstrip_size(
        self, timeline: Timeline, *, start: float, end: float, count: int, height: int
    ) -> tuple[int, int]:
        """A tile's size, once the range, the height and the count are shown to be possible (else a 422)."""
        _check_range(start, end, timeline)
        _check_size("height", height, timeline.display_height)
        first, last = frame_at(start, timeline.rate), min(frame_at(end, timeline.rate), timeline.frames)
        if (end - start) / count * timeline.rate < 1 or count > last - first:
            raise ValidationFailedError(
                f"count must be at most {max(1, last - first)}: the range holds that many frames",
                details={"count": count, "frames": last - first},
            )
        size = fitted_size(timeline.display_width, timeline.display_height, height=height)
        if size[0] * size[1] * count > self.options.max_decoded_pixels:
            raise ValidationFailedError(
                "the filmstrip would be too large: ask for fewer or smaller tiles",
                details={"pixels": size[0] * size[1] * count, "maxPixels": self.options.max_decoded_pixels},
            )
        return size

    def _filmstrip_pictures(self, timeline: Timeline, plan: _FilmstripPlan, size: tuple[int, int]) -> list[Image.Image]:
        if plan.picture is None:
            assert timeline.sprites is not None and plan.sprite_numbers is not None
            return self._sprite_pictures(timeline.sprites, plan.sprite_numbers, size)
        images = self._decode(plan.picture, plan.frames, timeline.rate, size)
        decoded = dict(zip(sorted(set(plan.frames)), images, strict=True))
        return [decoded[frame] for frame in plan.frames]

    def _sprite_pictures(self, sprites: SpriteTiles, numbers: list[int], size: tuple[int, int]) -> list[Image.Image]:
        sheets: dict[str, Image.Image] = {}
        pictures = []
        for number in numbers:
            sheet = sprites.sheet_of(number)
            if sheet.key not in sheets:
                sheets[sheet.key] = self._read_picture(sheet.bucket, sheet.key)
            tile = sheets[sheet.key].crop(sheet.box(number, sprites.tile_width, sprites.tile_height))
            pictures.append(tile if tile.size == size else tile.resize(size, Image.Resampling.LANCZOS))
        return pictures

    def _read_picture(self, bucket: str, key: str) -> Image.Image:
        info = self.storage.head(bucket, key)
        return Image.open(io.BytesIO(self.storage.read_range(bucket, key, 0, info.size))).convert("RGB")

    # --- decoding and storing -------------------------------------------------------------------------
    def _decode(self, picture: Picture, frames: list[int], rate: Fraction, size: tuple[int, int]) -> list[Image.Image]:
        """The distinct frames, in order, in one ffmpeg run over the stored file (read in place)."""
        with self._renders:
            location = self.files.path(picture.bucket, picture.key)
            return decode_frames(
                location,
                picture.source,
                frames,
                rate,
                width=size[0],
                height=size[1],
                tools=self.options.tools,
                timeout=_RENDER_TIMEOUT_SECONDS,
            )

    def _stored(self, key: str) -> bool:
        try:
            self.storage.head(self.settings.bucket_processed, key)
        except ObjectNotFoundError:
            return False
        return True

    def _store(self, timeline: Timeline, key: str, data: bytes, content_type: str) -> None:
        """Keeps a picture under the asset's prefix, unless the asset was deleted while it was rendered: that
        delete removed the prefix before this upload, and the picture would outlive its asset."""
        with tempfile.TemporaryDirectory(prefix="mediaingest-timeline-") as folder:
            path = Path(folder) / "picture"
            path.write_bytes(data)
            self.storage.upload_file(self.settings.bucket_processed, key, path, content_type=content_type)
        # After the upload: a delete that starts later removes the picture with the prefix.
        if not self.asset_exists(timeline.asset_id):
            self.storage.delete(self.settings.bucket_processed, key)
            raise NotFoundError("asset not found")

    def _signed(self, key: str) -> str:
        return self.storage.presign_get(
            self.settings.bucket_processed, key, expires_in=self.settings.download_url_ttl_seconds
        )

    def _expiry(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.download_url_ttl_seconds)


def timeline_of(asset: MediaAsset) -> Timeline:
    """The asset's Timeline, from its rows (metadata and proxies loaded): 422 when it has no picture, 409
    while it is not ingested far enough (not uploaded, or not probed yet)."""
    metadata = _probed_video(asset)
    if not metadata.has_video or not metadata.display_width or not metadata.display_height:
        raise ValidationFailedError("this video has no picture stream", details={"type": asset.type})
    seconds = picture_duration(metadata)
    if not metadata.frame_rate or not seconds:
        raise ConflictError("the video's frame timing is not known yet: ask again once ingestion has begun")
    rate = Fraction(metadata.frame_rate)
    source = Picture(
        bucket=asset.storage_bucket,
        key=asset.storage_key,
        width=metadata.display_width,
        height=metadata.display_height,
        kind="source",
        source=FrameSource.of(metadata),
    )
    return Timeline(
        asset_id=asset.id,
        owner_id=asset.owner_id,
        rate=rate,
        frames=timeline_frames(seconds, rate),
        seconds=seconds,
        display_width=metadata.display_width,
        display_height=metadata.display_height,
        source=source,
        scrub_rung=_scrub_rung(asset),
        sprites=_sprite_tiles(asset),
        timecode=metadata.timecode,
    )


def _probed_video(asset: MediaAsset) -> MediaMetadata:
    """The metadata of an uploaded video that has been probed."""
    if asset.type != MediaType.VIDEO:
        raise ValidationFailedError(
            f"this asset is {asset.type.value.lower()}: only videos have frames", details={"type": asset.type}
        )
    if asset.upload_status != UploadStatus.UPLOADED:
        raise ConflictError(f"the upload is {asset.upload_status.value.lower()}: no frames yet")
    metadata = metadata_of(asset)
    if metadata is None:
        raise ConflictError("the video has not been probed yet: ask again once ingestion has begun")
    return metadata


def _check_time(name: str, value: float, timeline: Timeline) -> None:
    if not math.isfinite(value) or not 0 <= value < timeline.seconds:
        raise ValidationFailedError(
            f"{name} must be a number of seconds from 0 to under {timeline.seconds:.3f}, the picture's length",
            details={name: value if math.isfinite(value) else str(value), "durationSeconds": timeline.seconds},
        )


def _check_range(start: float, end: float, timeline: Timeline) -> None:
    _check_time("start", start, timeline)
    if not (math.isfinite(end) and start < end <= timeline.seconds + 1e-6):
        raise ValidationFailedError(
            f"end must be after start and at most {timeline.seconds:.3f} s, the picture's length",
            details={"start": start, "end": end, "durationSeconds": timeline.seconds},
        )


def _check_size(name: Literal["width", "height"], value: int, source: int) -> None:
    if not 2 <= value <= source:
        raise ValidationFailedError(
            f"{name} must be between 2 and {source}, the source's displayed {name}",
            details={name: value, f"source{name.title()}": source},
        )


def _contact_sheet(images: list[Image.Image], columns: int, rows: int, size: tuple[int, int]) -> Image.Image:
    """The images in rows of `columns`, each `size`, as one picture."""
    sheet = Image.new("RGB", (columns * size[0], rows * size[1]))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        sheet.paste(image, (column * size[0], row * size[1]))
    return sheet


def _encode(image: Image.Image, fmt: FrameFormat, options: PipelineOptions) -> bytes:
    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, "WEBP", quality=options.frame_webp_quality, method=4)
    else:
        # Full-resolution colour (4:4:4): the picture was decoded from 4:2:0 already; halving it again shows.
        image.save(buffer, "JPEG", quality=options.frame_jpeg_quality, subsampling=0)
    return buffer.getvalue()


def _scrub_rung(asset: MediaAsset) -> Picture | None:
    """The rung made for scrubbing (a keyframe every second, no B-frames). Rows written before that flag
    was recorded: the lowest encoded H.264 rung, which is how the proxies pass chooses it."""
    rungs = _video_rungs(asset)
    flagged = [rung for details, rung in rungs if details.get("scrub")]
    encoded = [rung for details, rung in rungs if not details.get("remuxed") and "scrub" not in details]
    return flagged[0] if flagged else min(encoded, key=lambda rung: rung.width, default=None)


def _video_rungs(asset: MediaAsset) -> list[tuple[dict[str, Any], Picture]]:
    """The video proxies with a known size, as pictures, each with its row's details."""
    return [
        (p.details or {}, Picture(p.storage_bucket, p.storage_key, p.width, p.height, "scrub_rung", SCRUB_RUNG))
        for p in asset.proxies
        if p.type == ProxyType.VIDEO and p.width and p.height
    ]


def _sprite_tiles(asset: MediaAsset) -> SpriteTiles | None:
    rows = sorted(
        ((p.details, p) for p in asset.proxies if p.type == ProxyType.SPRITE_SHEET and p.details),
        key=lambda row: int(row[0].get("index", 0)),
    )
    if not rows:
        return None
    sheets, first = [], 0
    for details, row in rows:
        tiles = int(details.get("tiles", 0))
        sheets.append(SpriteSheetRef(row.storage_bucket, row.storage_key, first, tiles, int(details["columns"])))
        first += tiles
    details = rows[0][0]
    return SpriteTiles(
        interval_seconds=float(details["interval_seconds"]),
        tile_width=int(details["tile_width"]),
        tile_height=int(details["tile_height"]),
        sheets=tuple(sheets),
    )
