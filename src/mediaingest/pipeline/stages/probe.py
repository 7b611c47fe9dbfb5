"""probe: what the media is. ffprobe for audio and video, Pillow (plus ffprobe where it can) for images.

Anything ffprobe or Pillow cannot read is a MediaUnreadableError carrying their reason: the upload is
broken or unsupported, and no retry will change that.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageFile, IptcImagePlugin, UnidentifiedImageError

from mediaingest.exceptions import MediaTooLargeError, MediaUnreadableError, ProcessingError
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.timing import FrameTiming, rate_text, read_frame_timing
from mediaingest.pipeline.types import MediaMetadata

__all__ = ["MediaMetadata", "metadata_from_ffprobe", "probe"]

HDR_TRANSFERS = {"smpte2084": "PQ", "arib-std-b67": "HLG"}
_ALPHA_PIX_FMT = re.compile(r"^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr)")
_PIX_FMT_DEPTH = re.compile(r"p(?P<planar>\d+)(?:le|be)$|^(?:gray|ya)(?P<grey>\d+)")
_PILLOW_DEPTH = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}
_TIMECODE = re.compile(r"^\d{2}:\d{2}:\d{2}[:;.]\d{2,3}$")
_GENERIC_HANDLER = re.compile(r"handler|core media|iso media|^\s*(sound|audio)\s*$", re.IGNORECASE)
_EXIF_ORIENTATION = 0x0112
# EXIF orientation → degrees clockwise; 5 and 7 are mirrored variants of 90 and 270.
_ORIENTATION_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}


def probe(source: Path, media_type: MediaType, *, options: PipelineOptions) -> MediaMetadata:
    if media_type == MediaType.IMAGE:
        return _probe_image(source, options)
    if media_type != MediaType.VIDEO:
        metadata = _describe(source, media_type, options)
        if metadata.has_video:  # a picture stream in what was uploaded as audio
            _add_frame_timing(metadata, _read_timing(source, metadata, options))
        return metadata
    # A video's packet times are read beside its description, by a second ffprobe started at once: for a
    # short clip each is mostly a process start (0.1-0.3 s), which the proxies would otherwise wait for in
    # turn. "V:0" is the first picture stream, as _is_picture_stream picks it; the read's deadline follows
    # the duration the description reports, as when they ran one after the other.
    described: list[MediaMetadata] = []

    def deadline() -> float:
        duration = described[0].duration_seconds if described else None
        return options.ffmpeg_deadline(duration).seconds(duration or 0.0)

    with ThreadPoolExecutor(1, thread_name_prefix="probe-timing") as pool:
        timing = pool.submit(read_frame_timing, source, "V:0", options=options, timeout=deadline)
        try:
            described.append(_describe(source, media_type, options))
        except BaseException:
            timing.cancel()  # its own failure says nothing more than this one
            raise
        metadata = described[0]
        _add_frame_timing(metadata, timing.result())
    return metadata


def _describe(source: Path, media_type: MediaType, options: PipelineOptions) -> MediaMetadata:
    """ffprobe's description of the container and its streams, checked against what was uploaded."""
    metadata = metadata_from_ffprobe(options.tools.probe(source))
    if metadata.width and metadata.height:
        check_pixel_budget(metadata.width, metadata.height, options, what="video frames")
    if media_type == MediaType.VIDEO and not metadata.has_video:
        raise MediaUnreadableError("the file has no video stream", details={"format": metadata.format_name})
    if media_type == MediaType.AUDIO and not metadata.has_audio:
        raise MediaUnreadableError("the file has no audio stream", details={"format": metadata.format_name})
    if metadata.has_hdr and metadata.mastering_display is None:
        _add_frame_side_data(source, metadata, options)
    return metadata


def metadata_from_ffprobe(data: dict[str, Any]) -> MediaMetadata:
    """Map ffprobe's -show_format -show_streams JSON onto MediaMetadata (pure, no I/O)."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next((s for s in streams if _is_picture_stream(s)), None)
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    audio = audio_streams[0] if audio_streams else None
    if video is None and audio is None:
        raise MediaUnreadableError("the file has no audio or video stream")

    duration = _float(fmt.get("duration"))
    if duration is None:
        durations = [d for s in streams if (d := _float(s.get("duration"))) is not None]
        duration = max(durations, default=None)
    md = MediaMetadata(
        format_name=fmt.get("format_name"),
        duration_seconds=duration,
        bitrate=_int(fmt.get("bit_rate")),
        has_video=video is not None,
        has_audio=audio is not None,
        raw=data,
    )
    if video is not None:
        _fill_video(md, video)
    md.timecode = _timecode(fmt, streams)
    md.audio_tracks = [_audio_track(number, stream) for number, stream in enumerate(audio_streams)] or None
    if audio is not None:
        md.audio_codec = audio.get("codec_name")
        md.audio_bitrate = _stream_bitrate(audio)
        md.channels = _int(audio.get("channels"))
        md.channel_layout = audio.get("channel_layout")
        md.sample_rate = _int(audio.get("sample_rate"))
    return md


def _timecode(fmt: dict[str, Any], streams: list[dict[str, Any]]) -> str | None:
    """The start timecode: a QuickTime `tmcd` track's, the picture stream's tag, or the container's."""
    ordered = sorted(streams, key=lambda s: (s.get("codec_tag_string") != "tmcd", s.get("codec_type") != "video"))
    for tags in [*((s.get("tags") or {}) for s in ordered), fmt.get("tags") or {}]:
        value = tags.get("timecode")
        if isinstance(value, str) and _TIMECODE.match(value.strip()):
            return value.strip()
    return None


def _audio_track(number: int, stream: dict[str, Any]) -> dict[str, Any]:
    tags = stream.get("tags") or {}
    return {
        "index": number,
        "streamIndex": stream.get("index"),
        "codec": stream.get("codec_name"),
        "channels": _int(stream.get("channels")),
        "channelLayout": stream.get("channel_layout"),
        "sampleRate": _int(stream.get("sample_rate")),
        "language": tags.get("language") if tags.get("language") not in (None, "und") else None,
        "title": tags.get("title") or _track_name(tags.get("handler_name")),
    }


def _track_name(handler_name: object) -> str | None:
    """QuickTime keeps a track's name in its handler name, beside muxers' boilerplate ("SoundHandler")."""
    if not isinstance(handler_name, str) or not handler_name.strip() or _GENERIC_HANDLER.search(handler_name):
        return None
    return handler_name.strip()


def _read_timing(source: Path, md: MediaMetadata, options: PipelineOptions) -> FrameTiming | None:
    index = next((s.get("index") for s in (md.raw or {}).get("streams", []) if _is_picture_stream(s)), None)
    if not isinstance(index, int):
        return None
    deadline = options.ffmpeg_deadline(md.duration_seconds).seconds(md.duration_seconds or 0.0)
    return read_frame_timing(source, index, options=options, timeout=deadline)


def _add_frame_timing(md: MediaMetadata, timing: FrameTiming | None) -> None:
    if timing is None:
        return  # a single frame, or no timestamps at all: nothing to conform
    md.frame_count = timing.frames
    md.is_variable_frame_rate = timing.variable
    md.frame_rate = rate_text(timing.timeline_rate)


def _is_picture_stream(stream: dict[str, Any]) -> bool:
    # Cover art in an MP3/M4A is a one-frame "video" stream; it does not make the file a video.
    return stream.get("codec_type") == "video" and not (stream.get("disposition") or {}).get("attached_pic")


def _fill_video(md: MediaMetadata, video: dict[str, Any]) -> None:
    md.video_codec = video.get("codec_name")
    md.video_profile = video.get("profile")
    md.video_bitrate = _stream_bitrate(video)
    md.width, md.height = _int(video.get("width")), _int(video.get("height"))
    md.rotation = _rotation(video)
    md.fps = _frame_rate(video)
    md.pixel_format = video.get("pix_fmt")
    md.bit_depth = _int(video.get("bits_per_raw_sample")) or _pix_fmt_depth(md.pixel_format)
    md.has_alpha = bool(md.pixel_format and _ALPHA_PIX_FMT.match(md.pixel_format))
    md.color_space = video.get("color_space")
    md.color_primaries = video.get("color_primaries")
    md.color_transfer = video.get("color_transfer")
    md.color_range = video.get("color_range")
    md.hdr_format = HDR_TRANSFERS.get(md.color_transfer or "")
    md.has_hdr = md.hdr_format is not None
    _apply_side_data(md, video.get("side_data_list") or [])
    if md.width and md.height:
        sar = _ratio(video.get("sample_aspect_ratio")) or Fraction(1)
        display_width, display_height = round(md.width * sar), md.height
        if md.rotation in (90, 270):
            display_width, display_height = display_height, display_width
        md.display_width, md.display_height = display_width, display_height
        md.display_aspect_ratio = _aspect(display_width, display_height)


def _rotation(stream: dict[str, Any]) -> int:
    """Degrees clockwise to turn the stored picture for display (the legacy `rotate` tag's sense).

    ffprobe's display-matrix "rotation" is counter-clockwise, so a portrait iPhone clip shows -90
    there and 90 here; ffmpeg's autorotate turns it the same way.
    """
    for item in stream.get("side_data_list") or []:
        if item.get("side_data_type") == "Display Matrix" and item.get("rotation") is not None:
            return _snap_rotation(-float(item["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    return _snap_rotation(float(tag)) if tag is not None and _float(tag) is not None else 0


def _snap_rotation(degrees: float) -> int:
    return (round(degrees / 90) * 90) % 360


def _frame_rate(stream: dict[str, Any]) -> float | None:
    # avg_frame_rate describes variable-rate phone footage better; r_frame_rate is the fallback.
    for key in ("avg_frame_rate", "r_frame_rate"):
        rate = _ratio(stream.get(key))
        if rate:
            return round(float(rate), 3)
    return None


def _apply_side_data(md: MediaMetadata, side_data: list[dict[str, Any]]) -> None:
    for item in side_data:
        kind = item.get("side_data_type")
        if kind == "Mastering display metadata":
            md.mastering_display = {
                key: round(float(value), 6)
                for key, raw in item.items()
                if key != "side_data_type" and (value := _ratio(raw)) is not None
            }
        elif kind == "Content light level metadata":
            md.content_light_level = {
                "MaxCLL": _int(item.get("max_content")) or 0,
                "MaxFALL": _int(item.get("max_average")) or 0,
            }


def _add_frame_side_data(source: Path, md: MediaMetadata, options: PipelineOptions) -> None:
    """HDR10 mastering data often lives in the first frame's SEI, not in the container: read one frame."""
    try:
        frames = options.tools.probe(
            source,
            extra_args=(
                "-select_streams",
                "v:0",
                "-read_intervals",
                "%+#1",
                "-show_frames",
                "-show_entries",
                "frame=side_data_list",
            ),
        )
    except ProcessingError:
        return  # the main probe succeeded; missing mastering data does not make the media unreadable
    for frame in frames.get("frames") or []:
        _apply_side_data(md, frame.get("side_data_list") or [])


# --- images -------------------------------------------------------------------------------------


def check_pixel_budget(width: int, height: int, options: PipelineOptions, *, what: str = "the image") -> None:
    """Refuses media whose pictures would decode to more pixels than a stage may hold (media bombs)."""
    if width * height > options.max_decoded_pixels:
        raise MediaTooLargeError(
            f"{what} are {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{options.max_decoded_pixels / 1e6:.0f} megapixels",
            details={"width": width, "height": height, "maxPixels": options.max_decoded_pixels},
        )


def read_image_size(source: Path, options: PipelineOptions) -> None:
    """The header's size, checked before any decoder runs (ffprobe decodes a PNG whole to describe it)."""
    try:
        with Image.open(source) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"the image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # not Pillow's format: ffprobe's dimensions are checked instead
    check_pixel_budget(width, height, options, what="the image's pixels")


# A baseline or progressive YCbCr JPEG's chroma subsampling (the luma component's sampling factors, the
# chroma's being 1×1) as ffmpeg's mjpeg decoder names the picture it decodes to.
_JPEG_PIX_FMT = {(1, 1): "yuvj444p", (2, 1): "yuvj422p", (2, 2): "yuvj420p", (1, 2): "yuvj440p", (4, 1): "yuvj411p"}


def jpeg_stream(source: Path) -> dict[str, Any] | None:
    """What ffprobe would say of a plain 8-bit YCbCr JPEG's picture, read from its header by Pillow (which
    reads no further): its pixel format, full range and BT.601 matrix, as ffmpeg's mjpeg decoder sets them
    for every such file. None for anything else (greyscale, CMYK, Adobe RGB transforms, 12-bit, odd
    subsampling): ffprobe describes those.

    An ffprobe run costs a process start (about 0.08 CPU-s and 0.15-0.3 s on 2 busy cores), as much as the
    rest of a still's probe together."""
    try:
        with Image.open(source) as image:
            if image.format != "JPEG" or image.mode != "RGB" or "adobe" in image.info:
                return None
            layers = getattr(image, "layer", [])
            bits = getattr(image, "bits", None)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return None
    if bits != 8 or len(layers) != 3 or any((h, v) != (1, 1) for _, h, v, _ in layers[1:]):
        return None
    pixel_format = _JPEG_PIX_FMT.get((layers[0][1], layers[0][2]))
    if pixel_format is None:
        return None
    return {"codec_type": "video", "pix_fmt": pixel_format, "color_range": "pc", "color_space": "bt470bg"}


def _probe_image(source: Path, options: PipelineOptions) -> MediaMetadata:
    read_image_size(source, options)
    raw: dict[str, Any] | None = None
    stream = jpeg_stream(source)
    if stream is None:
        # Formats ffmpeg lacks (some TIFF variants) may still open with Pillow.
        with contextlib.suppress(MediaUnreadableError):
            raw = options.tools.probe(source)
        stream = next((s for s in (raw or {}).get("streams", []) if s.get("codec_type") == "video"), {})
    if stream.get("width") and stream.get("height"):
        check_pixel_budget(int(stream["width"]), int(stream["height"]), options, what="the image's pixels")
    try:
        with Image.open(source) as image:
            image_format, mode, (width, height) = image.format, image.mode, image.size
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            exif = image.getexif()
            iptc = _iptc_to_json(image)
            # Decoding is the only way to find a truncated file; draft() keeps a huge JPEG cheap.
            image.draft(mode, (256, 256))
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise image_unreadable(exc, source) from exc

    orientation = _int(exif.get(_EXIF_ORIENTATION)) or 1
    rotation = _ORIENTATION_ROTATION.get(orientation, 0)
    display_width, display_height = (height, width) if rotation in (90, 270) else (width, height)
    pixel_format = stream.get("pix_fmt")
    return MediaMetadata(
        format_name=(raw or {}).get("format", {}).get("format_name") or (image_format or "").lower() or None,
        width=width,
        height=height,
        display_width=display_width,
        display_height=display_height,
        display_aspect_ratio=_aspect(display_width, display_height),
        rotation=rotation,
        pixel_format=pixel_format or mode,
        # Pillow opens 16-bit RGB PNGs as 8-bit "RGB", so ffprobe's pixel format is the better witness.
        color_depth=_pix_fmt_depth(pixel_format) or _PILLOW_DEPTH.get(mode, 8),
        color_space=stream.get("color_space"),
        color_primaries=stream.get("color_primaries"),
        color_transfer=stream.get("color_transfer"),
        color_range=stream.get("color_range"),
        has_alpha=has_alpha or bool(pixel_format and _ALPHA_PIX_FMT.match(pixel_format)),
        exif=_exif_to_json(exif),
        iptc=iptc,
        image_format=image_format,
        raw=raw,
    )


def image_unreadable(exc: Exception, source: Path) -> MediaUnreadableError:
    """Pillow's complaint, without the temp path it likes to quote."""
    if isinstance(exc, UnidentifiedImageError):
        return MediaUnreadableError("the image cannot be read: unrecognised image format")
    reason = str(exc).replace(f"'{source}'", "").replace(str(source), "").strip() or type(exc).__name__
    return MediaUnreadableError(f"the image cannot be read: {reason}")


def _exif_to_json(exif: Image.Exif) -> dict[str, Any] | None:
    """EXIF as JSON-safe {tag name: value}: IFD0 and the Exif sub-IFD flat, GPS nested under "GPSInfo"."""
    if not exif:
        return None
    result: dict[str, Any] = {}
    pointers = {int(ExifTags.IFD.Exif), int(ExifTags.IFD.GPSInfo), int(ExifTags.IFD.Interop)}
    for tag, value in exif.items():
        if tag not in pointers:
            _put(result, ExifTags.TAGS.get(tag, str(tag)), value)
    for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
        _put(result, ExifTags.TAGS.get(tag, str(tag)), value)
    gps: dict[str, Any] = {}
    for tag, value in exif.get_ifd(ExifTags.IFD.GPSInfo).items():
        _put(gps, ExifTags.GPSTAGS.get(tag, str(tag)), value)
    if gps:
        result["GPSInfo"] = gps
    return result or None


_SKIP = object()
# Vendor blobs: large, undocumented, and useless to a client.
_SKIPPED_TAGS = {"MakerNote", "PrintImageMatching", "ComponentsConfiguration"}


def _put(target: dict[str, Any], name: str, value: Any) -> None:
    if name in _SKIPPED_TAGS:
        return
    if name == "UserComment" and isinstance(value, bytes):
        value = value[8:]  # the first 8 bytes name the character set
    safe = _json_safe(value)
    if safe is not _SKIP:
        target[name] = safe


@functools.singledispatch
def _json_safe(value: Any) -> Any:
    """A tag's value as JSON can hold it (_SKIP: leave it out). By default: IFDRational and other numbers,
    or else the value's text."""
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return _clean_text(str(value))
    return round(number, 8) if math.isfinite(number) else None


@_json_safe.register
def _(value: int) -> Any:  # bool too
    return value


@_json_safe.register
def _(value: float) -> Any:
    return value if math.isfinite(value) else None


@_json_safe.register
def _(value: str) -> Any:
    return _clean_text(value)


@_json_safe.register
def _(value: bytes) -> Any:
    text = value.rstrip(b"\x00")
    if text.isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in text):
        return text.decode("ascii").strip()
    return value.hex() if len(value) <= 64 else _SKIP


@_json_safe.register
def _(value: tuple | list) -> Any:
    return [item for item in map(_json_safe, value) if item is not _SKIP]


@_json_safe.register
def _(value: dict) -> Any:
    out = {str(k): _json_safe(v) for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not _SKIP}


def _clean_text(text: str) -> str:
    # PostgreSQL's JSON types reject NUL, and trailing NULs pad most EXIF strings.
    return "".join(ch for ch in text if ch >= " " or ch in "\t\n\r").strip()


_IPTC_NAMES = {
    (1, 90): "CodedCharacterSet",
    (2, 0): "RecordVersion",
    (2, 5): "ObjectName",
    (2, 7): "EditStatus",
    (2, 10): "Urgency",
    (2, 15): "Category",
    (2, 20): "SupplementalCategories",
    (2, 25): "Keywords",
    (2, 40): "SpecialInstructions",
    (2, 55): "DateCreated",
    (2, 60): "TimeCreated",
    (2, 62): "DigitalCreationDate",
    (2, 63): "DigitalCreationTime",
    (2, 65): "OriginatingProgram",
    (2, 80): "By-line",
    (2, 85): "By-lineTitle",
    (2, 90): "City",
    (2, 92): "Sub-location",
    (2, 95): "Province-State",
    (2, 100): "Country-PrimaryLocationCode",
    (2, 101): "Country-PrimaryLocationName",
    (2, 103): "OriginalTransmissionReference",
    (2, 105): "Headline",
    (2, 110): "Credit",
    (2, 115): "Source",
    (2, 116): "CopyrightNotice",
    (2, 118): "Contact",
    (2, 120): "Caption-Abstract",
    (2, 122): "Writer-Editor",
}
_IPTC_REPEATABLE = {"Keywords", "SupplementalCategories", "By-line", "Contact", "Writer-Editor"}


def _iptc_to_json(image: ImageFile.ImageFile) -> dict[str, Any] | None:
    try:
        info = IptcImagePlugin.getiptcinfo(image)
    except (OSError, SyntaxError, ValueError, IndexError):
        return None  # a malformed IPTC block is not worth failing the image for
    if not info:
        return None
    result: dict[str, Any] = {}
    for (record, dataset), value in sorted(info.items()):
        name = _IPTC_NAMES.get((record, dataset), f"{record}:{dataset}")
        values = value if isinstance(value, list) else [value]
        if name == "RecordVersion" or (record, dataset) == (1, 90):
            decoded = [v.hex() if name == "CodedCharacterSet" else int.from_bytes(v, "big") for v in values]
        else:
            decoded = [_decode_iptc(v) for v in values]
        result[name] = decoded if name in _IPTC_REPEATABLE or len(decoded) > 1 else decoded[0]
    return result


def _decode_iptc(value: bytes) -> str:
    try:
        return _clean_text(value.decode("utf-8"))
    except UnicodeDecodeError:
        return _clean_text(value.decode("latin-1"))


# --- small parsers ------------------------------------------------------------------------------


def _stream_bitrate(stream: dict[str, Any]) -> int | None:
    # Matroska keeps per-stream bitrates in tags (BPS, or BPS-eng from mkvmerge).
    tags = stream.get("tags") or {}
    return _int(stream.get("bit_rate")) or _int(tags.get("BPS")) or _int(tags.get("BPS-eng"))


def _pix_fmt_depth(pix_fmt: str | None) -> int | None:
    if not pix_fmt:
        return None
    if pix_fmt in {"monob", "monow"}:
        return 1
    if pix_fmt.startswith(("rgb48", "rgba64", "bgr48", "bgra64")):
        return 16
    if "f32" in pix_fmt:
        return 32
    match = _PIX_FMT_DEPTH.search(pix_fmt)  # yuv420p10le, gbrap12be, p010le, gray16be, ya8
    if match:
        return int(match.group("planar") or match.group("grey"))
    return 8


def _aspect(width: int, height: int) -> str | None:
    if width <= 0 or height <= 0:
        return None
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _ratio(value: Any) -> Fraction | None:
    """ffprobe rationals: "30000/1001", "16:9", "0/0" (unknown) → Fraction, or None when unknown."""
    if value is None:
        return None
    text = str(value).replace(":", "/")
    try:
        ratio = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None
