"""Playing an asset over HLS, from its first published segment on: `playback` in the API, and the route
that serves its playlists.

Players fetch playlists and segments without our Bearer header (hls.js, Safari, ffmpeg), so access is
by signed URL. The playlists are served by the API, which signs every reference in them as it serves
them: the master's media playlists with the same asset-scoped signature, and each init segment and
media segment as a presigned storage URL (the local backend's own, or S3's). Stored playlists hold only
relative names, so no signed URL is ever stored where it could outlive its expiry; an EVENT playlist
that grows is re-signed on every reload. The signature's expiry is rounded up to a 10-minute step, so
the URL in `playback` stays the same between polls and status events do not change for nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import Response

from mediaingest.assets.clips import CLIP_PLAYLIST, ClipRange, range_playlist
from mediaingest.assets.deps import Assets
from mediaingest.assets.hls_access import check_signature, rewrite_master, rewrite_media
from mediaingest.assets.schemas import UNKNOWN_ASSET
from mediaingest.assets.storage_keys import derived_key
from mediaingest.config import Settings
from mediaingest.dependencies import AppSettings, Db
from mediaingest.exceptions import NotFoundError, ObjectNotFoundError
from mediaingest.models import AssetProxy, MediaAsset
from mediaingest.models.enums import ProxyType
from mediaingest.pipeline.captions import with_timestamp_map
from mediaingest.pipeline.hls import (
    HLS_DIR,
    MASTER_NAME,
    MEDIA_PLAYLIST,
    PLAYLIST_TYPE,
    SUBTITLES_PLAYLIST,
    SUBTITLES_SEGMENT,
    parse_media_playlist,
    presentation_start,
    subtitles_playlist,
    with_subtitles,
)
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import StageRole, stage_with_role
from mediaingest.schemas import UNAUTHENTICATED
from mediaingest.storage.base import Storage

log = structlog.stdlib.get_logger(__name__)

_MEDIA_PLAYLIST_NAME = re.compile(rf"^(?P<rung>\d{{2,5}}p)/{re.escape(MEDIA_PLAYLIST)}$")
_MAX_PLAYLIST_BYTES = 4 * 1024 * 1024
# A media segment's moof comes first, and for 2 s of video is a few KiB: enough to read its sample times.
_FRAGMENT_HEAD_BYTES = 256 * 1024
_CAPTIONS_TYPE = "text/vtt; charset=utf-8"

router = APIRouter(prefix="/api/assets", tags=["playback"])


_SUBTITLES = (SUBTITLES_PLAYLIST, SUBTITLES_SEGMENT)
_WITH_CAPTIONS = (MASTER_NAME, *_SUBTITLES)


@router.get(
    "/{asset_id}/hls/{name:path}",
    response_class=Response,
    responses={
        200: {"content": {PLAYLIST_TYPE: {}}, "description": "The playlist, every reference in it signed"},
        **UNAUTHENTICATED,
        **UNKNOWN_ASSET,
    },
)
def hls_playlist(
    asset_id: str,
    name: str,
    db: Db,
    settings: AppSettings,
    assets: Assets,
    expires: Annotated[int, Query(description="From the signed URL in `playback.hlsUrl`.")],
    signature: Annotated[str, Query(max_length=128)],
    in_frame: Annotated[int | None, Query(alias="inFrame", ge=0, description="clip.m3u8 only")] = None,
    out_frame: Annotated[int | None, Query(alias="outFrame", ge=1, description="clip.m3u8 only")] = None,
) -> Response:
    """A playlist of the asset's HLS, by the signed URL in `playback.hlsUrl` (no Bearer header needed)."""
    structlog.contextvars.bind_contextvars(asset_id=asset_id)
    check_signature(asset_id, expires, signature, settings)
    if name not in (*_WITH_CAPTIONS, CLIP_PLAYLIST) and not _MEDIA_PLAYLIST_NAME.match(name):
        raise NotFoundError(f"no playlist {name!r}")
    asset = _read_asset(db, asset_id, with_captions=name in _WITH_CAPTIONS)
    hls = _SignedHls(
        assets.storage, settings, asset_id=asset_id, folder=_hls_folder(owner_id=asset.owner_id, asset_id=asset_id),
        expires=expires, signature=signature, ttl=max(60, int(expires - time.time())),
    )  # fmt: skip
    if name in _SUBTITLES:
        return _subtitles(hls, name, asset.captions)
    if name == CLIP_PLAYLIST:
        return _clip_playlist(
            hls, owner_id=asset.owner_id, frame_rate=asset.frame_rate, in_frame=in_frame, out_frame=out_frame
        )
    return _stored_playlist(hls, name, asset.captions)


@dataclass(frozen=True)
class _PlaylistAsset:
    """What serving a playlist reads of the asset, in one short read."""

    owner_id: str
    captions: tuple[AssetProxy, str, float] | None  # read for the playlists that carry them
    frame_rate: str | None


def _read_asset(db: Db, asset_id: str, *, with_captions: bool) -> _PlaylistAsset:
    with db.read() as session:
        asset = session.get(MediaAsset, asset_id)
        if asset is None:
            raise NotFoundError("asset not found")
        return _PlaylistAsset(
            owner_id=asset.owner_id,
            captions=_captions_of(asset) if with_captions else None,
            frame_rate=asset.metadata_record.frame_rate if asset.metadata_record else None,
        )


@dataclass(frozen=True)
class _SignedHls:
    """The asset's HLS folder as a request with a valid signature reads it: every reference in what is
    served is signed, a playlist with the request's own signature, any other file presigned."""

    storage: Storage
    settings: Settings
    asset_id: str
    folder: str  # the playback stage's HLS folder; its playlists name files relative to it
    expires: int
    signature: str
    ttl: int  # of the presigned URLs

    def read(self, name: str) -> str:
        return _read_playlist(self.storage, self.settings.bucket_proxies, f"{self.folder}/{name}")

    def signed_master(self, text: str) -> str:
        return rewrite_master(text, self.asset_id, self.settings, self.expires, self.signature)

    def presigned(self, name: str) -> str:
        return self.storage.presign_get(self.settings.bucket_proxies, f"{self.folder}/{name}", expires_in=self.ttl)

    def video_start(self) -> float:
        """Where the HLS video's first frame is presented (seconds; 0 without HLS video): its first listed
        rung's init segment and first fragment, as Safari reads them."""
        bucket = self.settings.bucket_proxies
        try:
            rung = _first_rung(self.read(MASTER_NAME))
            if rung is None:
                return 0.0
            folder = f"{self.folder}/{rung.rsplit('/', 1)[0]}"
            playlist = parse_media_playlist(self.read(rung))
            if playlist.init is None or not playlist.segments:
                return 0.0
            init_key, first_key = f"{folder}/{playlist.init}", f"{folder}/{playlist.segments[0][0]}"
            init = self.storage.read_range(bucket, init_key, 0, self.storage.head(bucket, init_key).size)
            first = self.storage.read_range(
                bucket, first_key, 0, min(self.storage.head(bucket, first_key).size, _FRAGMENT_HEAD_BYTES)
            )
        except (NotFoundError, ObjectNotFoundError):
            return 0.0  # audio, or the proxies not published yet: cue times are media times
        return presentation_start(PipelineOptions.from_settings(self.settings).tools, init, first) or 0.0


def _no_store(body: str, media_type: str = PLAYLIST_TYPE) -> Response:
    # A growing (EVENT) playlist must be fetched again on every reload, never from a cache.
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


def _subtitles(hls: _SignedHls, name: str, captions: tuple[AssetProxy, str, float] | None) -> Response:
    """The captions' playlist, or its one segment: the WebVTT file, its cues placed on the video's timeline."""
    if captions is None:
        raise NotFoundError("this asset has no captions (yet)")
    caption_file, _, duration = captions
    if name == SUBTITLES_PLAYLIST:  # its segment is the route below, signed as the master's playlists are
        return _no_store(hls.signed_master(subtitles_playlist(SUBTITLES_SEGMENT, duration)))
    vtt = hls.storage.read_range(caption_file.storage_bucket, caption_file.storage_key, 0, caption_file.size_bytes)
    return _no_store(with_timestamp_map(vtt.decode("utf-8"), hls.video_start()), _CAPTIONS_TYPE)


def _clip_playlist(
    hls: _SignedHls, *, owner_id: str, frame_rate: str | None, in_frame: int | None, out_frame: int | None
) -> Response:
    if in_frame is None or out_frame is None or out_frame <= in_frame or not frame_rate:
        raise NotFoundError("a clip playlist needs inFrame < outFrame of a probed video")
    span = ClipRange(in_frame, out_frame, Fraction(frame_rate), None, out_frame)
    text, _, _ = range_playlist_of(hls.storage, hls.settings, owner_id=owner_id, asset_id=hls.asset_id, span=span,
                                   ttl=hls.ttl)  # fmt: skip
    return _no_store(text)


def _stored_playlist(hls: _SignedHls, name: str, captions: tuple[AssetProxy, str, float] | None) -> Response:
    """The master (with the captions, whenever the transcript stage adds them) or a rung's media playlist."""
    text = hls.read(name)
    if name != MASTER_NAME:
        rung = name.rsplit("/", 1)[0]
        return _no_store(rewrite_media(text, lambda file: hls.presigned(f"{rung}/{file}")))
    if captions is not None:
        language = captions[1]
        text = with_subtitles(text, language=language, name=f"Captions ({language})")
    return _no_store(hls.signed_master(text))


def _captions_of(asset: MediaAsset) -> tuple[AssetProxy, str, float] | None:
    """The asset's WebVTT captions, their language and the media's length; None before (or without) them."""
    found = next((proxy for proxy in asset.proxies if proxy.type == ProxyType.CAPTIONS), None)
    if found is None:
        return None
    language = str((found.details or {}).get("language") or "und")
    duration = (asset.metadata_record.duration_seconds if asset.metadata_record else None) or 0.0
    return found, language, duration


def _first_rung(master: str) -> str | None:
    """The media playlist a master lists first (rungs are listed by bandwidth, lowest first)."""
    return next((line.strip() for line in master.splitlines() if line.strip() and not line.startswith("#")), None)


def _hls_folder(*, owner_id: str, asset_id: str) -> str:
    """Where the playback stage publishes the asset's HLS."""
    return derived_key(user_id=owner_id, asset_id=asset_id, stage=stage_with_role(StageRole.PLAYBACK), filename=HLS_DIR)


def _read_playlist(storage: Storage, bucket: str, key: str) -> str:
    try:
        info = storage.head(bucket, key)
    except ObjectNotFoundError:
        raise NotFoundError("this asset has no HLS playlist (yet)") from None
    return storage.read_range(bucket, key, 0, min(info.size, _MAX_PLAYLIST_BYTES)).decode("utf-8", "replace")


def range_playlist_of(
    storage: Storage, settings: Settings, *, owner_id: str, asset_id: str, span: ClipRange, ttl: int
) -> tuple[str, float, float]:
    """A clip's range of this asset, accurate to a segment, from its lowest rung (the master lists rungs by
    bandwidth), every reference signed; and where in and out fall from the playlist's start."""
    bucket = settings.bucket_proxies
    folder = _hls_folder(owner_id=owner_id, asset_id=asset_id)
    rung = _first_rung(_read_playlist(storage, bucket, f"{folder}/{MASTER_NAME}"))
    if rung is None:
        raise NotFoundError("this asset has no HLS rung (yet)")
    key = f"{folder}/{rung}"
    rung_folder = key.rsplit("/", 1)[0]
    return range_playlist(
        _read_playlist(storage, bucket, key), span,
        lambda file: storage.presign_get(bucket, f"{rung_folder}/{file}", expires_in=ttl),
    )  # fmt: skip
