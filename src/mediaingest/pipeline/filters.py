"""Filter-graph pieces the stages share: picking the streams, deinterlacing, HDR tone mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mediaingest.pipeline.ffmpeg import filter_spec
from mediaingest.pipeline.types import MediaMetadata

INTERLACED = {"tt", "bb", "tb", "bt"}


def base_video_filters(metadata: MediaMetadata) -> list[str]:
    """What every picture made from the video needs first (once, before any split): deinterlacing and
    HDR → SDR tone mapping, so proxies, sprites and posters all look right on SDR screens.
    """
    filters: list[str] = []
    if field_order(metadata) in INTERLACED:
        filters.append(filter_spec("bwdif", mode="send_frame", deint="interlaced"))
    if metadata.has_hdr:
        filters += _tone_mapping(metadata)
    return filters


def _tone_mapping(metadata: MediaMetadata) -> list[str]:
    # Debian's zscale refuses to convert untagged input ("no path between colorspaces"), and
    # decoders do not always hand the tags on; restate them from the probe first.
    return [
        filter_spec(
            "setparams",
            color_primaries=metadata.color_primaries or "bt2020",
            color_trc=metadata.color_transfer or "smpte2084",
            colorspace=metadata.color_space or "bt2020nc",
            range=metadata.color_range if metadata.color_range in ("tv", "pc") else "tv",
        ),
        filter_spec("zscale", t="linear", npl=100),
        filter_spec("format", "gbrpf32le"),
        filter_spec("zscale", p="bt709"),
        filter_spec("tonemap", "hable", desat=0),
        filter_spec("zscale", t="bt709", m="bt709", r="tv"),
        filter_spec("format", "yuv420p"),
    ]


def _probed_streams(metadata: MediaMetadata) -> list[dict[str, Any]]:
    """ffprobe's streams, as the probe kept them."""
    return (metadata.raw or {}).get("streams", [])


def _picture_stream(metadata: MediaMetadata) -> dict[str, Any] | None:
    """The probed stream the picture comes from: the first video stream that is not cover art."""
    for stream in _probed_streams(metadata):
        if stream.get("codec_type") == "video" and not (stream.get("disposition") or {}).get("attached_pic"):
            return stream
    return None


def video_stream_specifier(metadata: MediaMetadata) -> str:
    """The probed picture stream by absolute index, so cover art stored first is never picked."""
    stream = _picture_stream(metadata)
    return f"0:{stream['index']}" if stream else "0:v:0"


@dataclass(frozen=True)
class AudioTrack:
    number: int  # 0 for the first audio stream, as `audioTracks[].index` counts them
    specifier: str  # "0:<stream index>"
    channels: int | None
    channel_layout: str | None


def audio_tracks(metadata: MediaMetadata) -> list[AudioTrack]:
    """Every audio stream, in the order `audioTracks` lists them (the first is what browsers play)."""
    listed = metadata.audio_tracks or []
    tracks = [
        AudioTrack(int(t["index"]), f"0:{t['streamIndex']}", t.get("channels"), t.get("channelLayout"))
        for t in listed
        if isinstance(t.get("streamIndex"), int)
    ]
    return tracks or _unlisted_audio(metadata)


def _unlisted_audio(metadata: MediaMetadata) -> list[AudioTrack]:
    """Metadata probed before audioTracks existed: its first audio stream, as the probe described it."""
    if not metadata.has_audio:
        return []
    return [AudioTrack(0, audio_stream_specifier(metadata), metadata.channels, metadata.channel_layout)]


def audio_stream_specifier(metadata: MediaMetadata) -> str:
    for stream in _probed_streams(metadata):
        if stream.get("codec_type") == "audio":
            return f"0:{stream['index']}"
    return "0:a:0"


def field_order(metadata: MediaMetadata) -> str | None:
    stream = _picture_stream(metadata)
    return stream.get("field_order") if stream else None
