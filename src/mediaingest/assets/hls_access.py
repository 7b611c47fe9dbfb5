"""Signed access to an asset's HLS: the URL `playback.hlsUrl` carries, its check, and the rewriting that
signs every reference in a playlist as it is served (see `mediaingest.assets.playback` for why)."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable
from urllib.parse import urlencode

from mediaingest.assets.schemas import Playback
from mediaingest.config import Settings
from mediaingest.exceptions import AuthenticationError
from mediaingest.models import MediaAsset
from mediaingest.pipeline.hls import MASTER_NAME

_EXPIRY_STEP_SECONDS = 600
_URI_ATTRIBUTE = re.compile(r'URI="([^"]+)"')


def playback_of(asset: MediaAsset, settings: Settings, *, complete: bool) -> Playback | None:
    """None for media without HLS (audio, images) or before the proxies pass has published anything."""
    seconds = asset.playable_seconds
    if seconds is None or seconds <= 0:
        return None
    return Playback(hls_url=hls_url(asset.id, settings), ready=True, playable_seconds=seconds, complete=complete)


def hls_url(asset_id: str, settings: Settings, *, name: str = MASTER_NAME, now: float | None = None) -> str:
    ttl = settings.download_url_ttl_seconds
    expires = math.ceil(((now or time.time()) + ttl) / _EXPIRY_STEP_SECONDS) * _EXPIRY_STEP_SECONDS
    query = urlencode({"expires": expires, "signature": _signature(asset_id, expires, settings)})
    return f"{settings.resolved_public_url}/api/assets/{asset_id}/hls/{name}?{query}"


def _signature(asset_id: str, expires: int, settings: Settings) -> str:
    message = f"hls:{asset_id}:{expires}".encode()
    return hmac.new(settings.url_secret(), message, hashlib.sha256).hexdigest()


def check_signature(asset_id: str, expires: int, signature: str, settings: Settings) -> None:
    if expires < time.time():
        raise AuthenticationError("this playback URL has expired; get a new one from the asset")
    if not hmac.compare_digest(signature, _signature(asset_id, expires, settings)):
        raise AuthenticationError("this playback URL's signature is not valid")


def rewrite_master(text: str, asset_id: str, settings: Settings, expires: int, signature: str) -> str:
    """Each media playlist's line → this route, with the same signature (it covers the asset, not a file)."""
    query = urlencode({"expires": expires, "signature": signature})
    base = f"{settings.resolved_public_url}/api/assets/{asset_id}/hls"
    return rewrite_media(text, lambda name: f"{base}/{name}?{query}")


def rewrite_media(text: str, target: Callable[[str], str]) -> str:
    """Every reference in a playlist (media playlists, renditions, the init segment, segments) → `target(name)`."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            line = target(stripped)
        elif stripped.startswith(("#EXT-X-MAP:", "#EXT-X-MEDIA:")):
            line = _URI_ATTRIBUTE.sub(lambda match: f'URI="{target(match.group(1))}"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"
