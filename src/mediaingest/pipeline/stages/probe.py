"""probe: what the media is. ffprobe for audio and video, Pillow (plus ffprobe where it can) for images.

Anything ffprobe or Pillow cannot read is a MediaUnreadableError carrying their reason: the upload is
broken or unsupported, and no retry will change that.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, TypeVar

from PIL import ExifTags, Image, ImageFile, IptcImagePlugin, UnidentifiedImageError
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError

from mediaingest.exceptions import MediaTooLargeError, MediaUnreadableError, ProcessingError
from mediaingest.models.enums import MediaType
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.timing import FrameTiming, rate_text, read_frame_timing
from mediaingest.pipeline.types import MediaMetadata
from mediaingest.pipeline.wav_header import wav_description

__all__ = ["MediaMetadata", "metadata_from_ffprobe", "probe"]

HDR_TRANSFERS = {"smpte2084": "PQ", "arib-std-b67": "HLG"}
_ALPHA_PIX_FMT = re.compile(r"^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr)")
_PIX_FMT_DEPTH = re.compile(r"p(?P<planar>\d+)(?:le|be)$|^(?:gray|ya)(?P<grey>\d+)")
_PILLOW_DEPTH = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}
_TIMECODE = re.compile(r"^\d{2}:\d{2}:\d{2}[:;.]\d{2,3}$")
_GENERIC_HANDLER = re.compile(r"handler|core media|iso media|^\s*(sound|audio)\s*$", re.IGNORECASE)
_PRINTABLE_ASCII = re.compile(rb"[\t\n\r\x20-\x7e]*")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # all but tab and line breaks
_EXIF_ORIENTATION = 0x0112
# EXIF orientation → degrees clockwise; 5 and 7 are mirrored variants of 90 and 270.
_ORIENTATION_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}


def probe(source: Path, media_type: MediaType, *, options: PipelineOptions) -> MediaMetadata:
    if media_type == MediaType.IMAGE:
        return _probe_image(source, options)
    if media_type == MediaType.VIDEO:
        return _probe_video(source, options)
    metadata = _describe(source, media_type, options)
    if metadata.has_video:  # a picture stream in what was uploaded as audio
        deadline = _timing_deadline(options, metadata.duration_seconds)
        _add_frame_timing(metadata, read_frame_timing(source, "V:0", options=options, timeout=deadline))
    return metadata


def _timing_deadline(options: PipelineOptions, duration_seconds: float | None) -> float:
    """How long reading the packet times may take: as long as ffmpeg may run over the described duration."""
    return options.ffmpeg_deadline(duration_seconds).seconds(duration_seconds or 0.0)


def _probe_video(source: Path, options: PipelineOptions) -> MediaMetadata:
    """A video's packet times are read beside its description, by a second ffprobe started at once: for a
    short clip each is mostly a process start (0.1-0.3 s), which the proxies would otherwise wait for in
    turn. "V:0" is the first picture stream, as _Stream.is_picture picks it; the read's deadline follows
    the duration the description reports, as when they ran one after the other."""
    described: list[MediaMetadata] = []

    def deadline() -> float:
        return _timing_deadline(options, described[0].duration_seconds if described else None)

    with ThreadPoolExecutor(1, thread_name_prefix="probe-timing") as pool:
        timing = pool.submit(read_frame_timing, source, "V:0", options=options, timeout=deadline)
        try:
            described.append(_describe(source, MediaType.VIDEO, options))
        except BaseException:
            timing.cancel()  # its own failure says nothing more than this one
            raise
        metadata = described[0]
        _add_frame_timing(metadata, timing.result())
    return metadata


def _describe(source: Path, media_type: MediaType, options: PipelineOptions) -> MediaMetadata:
    """ffprobe's description of the container and its streams, checked against what was uploaded."""
    metadata = metadata_from_ffprobe(wav_description(source) or options.tools.probe(source))
    check_pixel_budget(metadata.width, metadata.height, options, what="video frames")
    _require_stream(metadata, media_type)
    if metadata.has_hdr and metadata.mastering_display is None:
        _add_frame_side_data(source, metadata, options)
    return metadata


def _require_stream(metadata: MediaMetadata, media_type: MediaType) -> None:
    """A video upload needs a picture stream, an audio upload a sound stream."""
    has_stream = {MediaType.VIDEO: metadata.has_video, MediaType.AUDIO: metadata.has_audio}
    if not has_stream[media_type]:
        raise MediaUnreadableError(
            f"the file has no {media_type.value.lower()} stream", details={"format": metadata.format_name}
        )


# --- small parsers ------------------------------------------------------------------------------


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


def _has_alpha(pix_fmt: str | None) -> bool:
    return bool(pix_fmt and _ALPHA_PIX_FMT.match(pix_fmt))


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


def _timecode(value: Any) -> str | None:
    """ "01:00:00:00" (";" before the frames when drop-frame); None for any other text."""
    text = value.strip() if isinstance(value, str) else ""
    return text if _TIMECODE.match(text) else None


def _known_language(code: str | None) -> str | None:
    return None if code == "und" else code  # ISO 639's "undetermined"


# --- ffprobe's JSON -----------------------------------------------------------------------------
# Each value is read as the small parsers above read it: what ffprobe cannot tell ("N/A", "0/0") is None.
_Int = Annotated[int | None, BeforeValidator(_int)]
_Float = Annotated[float | None, BeforeValidator(_float)]
_Ratio = Annotated[Fraction | None, BeforeValidator(_ratio)]


class _Tags(BaseModel):
    """The tags of a stream or of the container that the metadata reads."""

    timecode: Annotated[str | None, BeforeValidator(_timecode)] = None
    language: Annotated[str | None, AfterValidator(_known_language)] = None
    title: str | None = None
    handler_name: str | None = None
    rotate: _Float = None  # the legacy rotation, clockwise
    # Matroska keeps per-stream bitrates in tags (BPS, or BPS-eng from mkvmerge).
    bps: _Int = Field(None, alias="BPS")
    bps_eng: _Int = Field(None, alias="BPS-eng")


class _Stream(BaseModel):
    """One of ffprobe's streams, as far as the metadata reads it."""

    index: int | None = None
    codec_type: str | None = None
    codec_name: str | None = None
    codec_tag_string: str | None = None
    profile: str | None = None
    bit_rate: _Int = None
    duration: _Float = None
    disposition: dict[str, Any] = {}
    tags: _Tags = Field(default_factory=_Tags)
    # video
    width: _Int = None
    height: _Int = None
    sample_aspect_ratio: _Ratio = None
    # avg_frame_rate describes variable-rate phone footage better; r_frame_rate is the fallback.
    avg_frame_rate: _Ratio = None
    r_frame_rate: _Ratio = None
    pix_fmt: str | None = None
    bits_per_raw_sample: _Int = None
    color_space: str | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_range: str | None = None
    side_data_list: list[dict[str, Any]] = []
    # audio
    channels: _Int = None
    channel_layout: str | None = None
    sample_rate: _Int = None

    @property
    def is_picture(self) -> bool:
        # Cover art in an MP3/M4A is a one-frame "video" stream; it does not make the file a video.
        return self.codec_type == "video" and not self.disposition.get("attached_pic")

    @property
    def bitrate(self) -> int | None:
        return self.bit_rate or self.tags.bps or self.tags.bps_eng

    @property
    def rotation(self) -> int:
        """Degrees clockwise to turn the stored picture for display (the legacy `rotate` tag's sense).

        ffprobe's display-matrix "rotation" is counter-clockwise, so a portrait iPhone clip shows -90
        there and 90 here; ffmpeg's autorotate turns it the same way.
        """
        for item in self.side_data_list:
            if item.get("side_data_type") == "Display Matrix" and item.get("rotation") is not None:
                return _snap_rotation(-float(item["rotation"]))
        return _snap_rotation(self.tags.rotate or 0.0)

    @property
    def fps(self) -> float | None:
        rate = self.avg_frame_rate or self.r_frame_rate
        return round(float(rate), 3) if rate else None


class _Frame(BaseModel):
    side_data_list: list[dict[str, Any]] = []


class _Frames(BaseModel):
    """ffprobe's -show_frames JSON, as far as the metadata reads it."""

    frames: list[_Frame] = []


class _Format(BaseModel):
    format_name: str | None = None
    duration: _Float = None
    bit_rate: _Int = None
    tags: _Tags = Field(default_factory=_Tags)


_Parsed = TypeVar("_Parsed", bound=BaseModel)


class _Ffprobe(BaseModel):
    """ffprobe's -show_format -show_streams JSON, as far as the metadata reads it."""

    format: _Format = Field(default_factory=_Format)
    streams: list[_Stream] = []

    @property
    def picture(self) -> _Stream | None:
        return next((stream for stream in self.streams if stream.is_picture), None)

    @property
    def first_video(self) -> _Stream:
        """The first video stream, or an empty one when there is none."""
        return next((stream for stream in self.streams if stream.codec_type == "video"), _Stream())

    @property
    def audio(self) -> list[_Stream]:
        return [stream for stream in self.streams if stream.codec_type == "audio"]

    @property
    def duration(self) -> float | None:
        """The container's, or else its longest stream's."""
        if self.format.duration is not None:
            return self.format.duration
        return max((stream.duration for stream in self.streams if stream.duration is not None), default=None)

    @property
    def timecode(self) -> str | None:
        """The start timecode: a QuickTime `tmcd` track's, the picture stream's tag, or the container's."""
        ordered = sorted(self.streams, key=lambda s: (s.codec_tag_string != "tmcd", s.codec_type != "video"))
        return next((tags.timecode for tags in [*(s.tags for s in ordered), self.format.tags] if tags.timecode), None)


def _read(model: type[_Parsed], data: Any) -> _Parsed:
    """ffprobe's JSON read into `model`: JSON shaped otherwise (a file crafted to make ffprobe print what it
    never should) makes the media unreadable, with a clear error, rather than crashing the stage."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise MediaUnreadableError(
            f"ffprobe's description of the file cannot be read ({where}: {first['msg']})"
        ) from exc


def metadata_from_ffprobe(data: dict[str, Any]) -> MediaMetadata:
    """Map ffprobe's -show_format -show_streams JSON onto MediaMetadata (pure, no I/O)."""
    probed = _read(_Ffprobe, data)
    video, audio = probed.picture, probed.audio
    if video is None and not audio:
        raise MediaUnreadableError("the file has no audio or video stream")
    md = MediaMetadata(
        format_name=probed.format.format_name,
        duration_seconds=probed.duration,
        bitrate=probed.format.bit_rate,
        has_video=video is not None,
        has_audio=bool(audio),
        timecode=probed.timecode,
        raw=data,
    )
    if video is not None:
        _fill_video(md, video)
    if audio:
        _fill_audio(md, audio)
    return md


def _audio_track(number: int, stream: _Stream) -> dict[str, Any]:
    return {
        "index": number,
        "streamIndex": stream.index,
        "codec": stream.codec_name,
        "channels": stream.channels,
        "channelLayout": stream.channel_layout,
        "sampleRate": stream.sample_rate,
        "language": stream.tags.language,
        "title": stream.tags.title or _track_name(stream.tags.handler_name),
    }


def _track_name(handler_name: str | None) -> str | None:
    """QuickTime keeps a track's name in its handler name, beside muxers' boilerplate ("SoundHandler")."""
    name = (handler_name or "").strip()
    return name if name and not _GENERIC_HANDLER.search(name) else None


def _add_frame_timing(md: MediaMetadata, timing: FrameTiming | None) -> None:
    if timing is None:
        return  # a single frame, or no timestamps at all: nothing to conform
    md.frame_count = timing.frames
    md.is_variable_frame_rate = timing.variable
    md.frame_rate = rate_text(timing.timeline_rate)


def _fill_video(md: MediaMetadata, video: _Stream) -> None:
    md.video_codec = video.codec_name
    md.video_profile = video.profile
    md.video_bitrate = video.bitrate
    md.width, md.height = video.width, video.height
    md.rotation = video.rotation
    md.fps = video.fps
    md.pixel_format = video.pix_fmt
    md.bit_depth = video.bits_per_raw_sample or _pix_fmt_depth(video.pix_fmt)
    md.has_alpha = _has_alpha(video.pix_fmt)
    md.color_space = video.color_space
    md.color_primaries = video.color_primaries
    md.color_transfer = video.color_transfer
    md.color_range = video.color_range
    md.hdr_format = HDR_TRANSFERS.get(video.color_transfer or "")
    md.has_hdr = md.hdr_format is not None
    _apply_side_data(md, video.side_data_list)
    if video.width and video.height:
        md.display_width, md.display_height = _display_size(
            video.width, video.height, md.rotation, video.sample_aspect_ratio
        )
        md.display_aspect_ratio = _aspect(md.display_width, md.display_height)


def _fill_audio(md: MediaMetadata, streams: list[_Stream]) -> None:
    """Every audio stream listed as a track; the first one's codec, bitrate and layout as the file's."""
    md.audio_tracks = [_audio_track(number, stream) for number, stream in enumerate(streams)]
    first = streams[0]
    md.audio_codec = first.codec_name
    md.audio_bitrate = first.bitrate
    md.channels = first.channels
    md.channel_layout = first.channel_layout
    md.sample_rate = first.sample_rate


def _snap_rotation(degrees: float) -> int:
    return (round(degrees / 90) * 90) % 360


def _display_size(width: int, height: int, rotation: int, sample_aspect: Fraction | None = None) -> tuple[int, int]:
    """The picture as shown: its pixels' aspect ratio applied, then turned by `rotation`."""
    shown_width = round(width * (sample_aspect or 1))
    return (height, shown_width) if rotation in (90, 270) else (shown_width, height)


def _apply_side_data(md: MediaMetadata, side_data: list[dict[str, Any]]) -> None:
    for item in side_data:
        match item.get("side_data_type"):
            case "Mastering display metadata":
                md.mastering_display = _mastering_display(item)
            case "Content light level metadata":
                md.content_light_level = _content_light_level(item)


def _mastering_display(item: dict[str, Any]) -> dict[str, float]:
    """The primaries, white point and luminances ("34000/50000") as numbers; unknown ones left out."""
    return {
        key: round(float(value), 6)
        for key, raw in item.items()
        if key != "side_data_type" and (value := _ratio(raw)) is not None
    }


def _content_light_level(item: dict[str, Any]) -> dict[str, int]:
    return {"MaxCLL": _int(item.get("max_content")) or 0, "MaxFALL": _int(item.get("max_average")) or 0}


def _add_frame_side_data(source: Path, md: MediaMetadata, options: PipelineOptions) -> None:
    """HDR10 mastering data often lives in the first frame's SEI, not in the container: read one frame."""
    try:
        raw = options.tools.probe(
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
        frames = _read(_Frames, raw)
    except ProcessingError:
        return  # the main probe succeeded; missing mastering data does not make the media unreadable
    for frame in frames.frames:
        _apply_side_data(md, frame.side_data_list)


# --- images -------------------------------------------------------------------------------------


def check_pixel_budget(
    width: int | None, height: int | None, options: PipelineOptions, *, what: str = "the image's pixels"
) -> None:
    """Refuses media whose pictures would decode to more pixels than a stage may hold (media bombs); a size
    not known is not checked."""
    if width and height and width * height > options.max_decoded_pixels:
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
    check_pixel_budget(width, height, options)


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
            pixel_format = _jpeg_pixel_format(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return None
    if pixel_format is None:
        return None
    return {"codec_type": "video", "pix_fmt": pixel_format, "color_range": "pc", "color_space": "bt470bg"}


def _jpeg_pixel_format(image: Image.Image) -> str | None:
    """ffmpeg's name for a plain 8-bit YCbCr JPEG's picture, from its header; None for any other picture."""
    if (image.format, image.mode, getattr(image, "bits", None)) != ("JPEG", "RGB", 8) or "adobe" in image.info:
        return None
    sampling = [(h, v) for _, h, v, _ in getattr(image, "layer", [])]
    if sampling[1:] != [(1, 1), (1, 1)]:  # three components, the chroma's 1×1
        return None
    return _JPEG_PIX_FMT.get(sampling[0])


# A PNG's raw mode (its bit depth and colour type, as Pillow names them) → the pixel format ffmpeg's png
# decoder gives it. Every entry is checked against ffprobe (tests/pipeline/test_probe.py); the rest (1-,
# 2- and 4-bit greys and palettes, 16-bit grey with alpha) are left to ffprobe.
_PNG_PIX_FMT = {
    "RGB": "rgb24", "RGBA": "rgba", "L": "gray", "LA": "ya8", "P": "pal8",
    "RGB;16B": "rgb48be", "RGBA;16B": "rgba64be", "I;16B": "gray16be",
}  # fmt: skip
# Chunks that make ffmpeg describe a PNG otherwise than its header does: transparency (tRNS: ffmpeg
# adds an alpha channel), animation (acTL: apng), and colour properties ffprobe then reports (sRGB, gAMA,
# cHRM, iCCP; cICP in later ffmpeg). Such files go to ffprobe.
_PNG_CHUNKS_FOR_FFPROBE = frozenset({b"tRNS", b"acTL", b"sRGB", b"gAMA", b"cHRM", b"iCCP", b"cICP"})
_PNG_PIXELS = frozenset({b"IDAT", b"fdAT"})


def png_stream(source: Path) -> dict[str, Any] | None:
    """What ffprobe would say of a PNG's picture, read from its header: the pixel format, full range. None
    when a chunk makes ffmpeg's description differ, or for a bit depth and colour type not in the table.

    ffprobe decodes a PNG whole to describe it (0.19 CPU-s for 24 MP)."""
    try:
        with Image.open(source) as image:
            if image.format != "PNG":
                return None
            raw_mode = image.tile[0].args if image.tile else None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return None
    pixel_format = _PNG_PIX_FMT.get(raw_mode) if isinstance(raw_mode, str) else None
    chunks = _png_chunks(source)
    if pixel_format is None or chunks is None or _PNG_CHUNKS_FOR_FFPROBE.intersection(chunks):
        return None
    return {"codec_type": "video", "pix_fmt": pixel_format, "color_range": "pc"}


def _png_chunks(source: Path) -> list[bytes] | None:
    """The kinds of a PNG's chunks in order, read by skipping from one chunk's header to the next; None
    when the file ends before IEND."""
    kinds: list[bytes] = []
    with source.open("rb") as png:
        png.seek(8)  # the signature
        while len(header := png.read(8)) == 8:
            length, kind = struct.unpack(">I4s", header)
            kinds.append(kind)
            if kind == b"IEND":
                return kinds
            png.seek(length + 4, 1)  # the data and its CRC
    return None


def _png_has_chunks_after_pixels(source: Path) -> bool:
    """Whether chunks other than the end follow a PNG's pixel data. Pillow finds those (an eXIf, text) only
    by decoding every pixel first, so a PNG without them has its EXIF read from the header alone."""
    chunks = _png_chunks(source)
    if chunks is None:
        return True  # cut short: Pillow's full read says how
    first_pixels = next((index for index, kind in enumerate(chunks) if kind in _PNG_PIXELS), len(chunks))
    return any(kind not in _PNG_PIXELS and kind != b"IEND" for kind in chunks[first_pixels:])


def _exif_of(image: ImageFile.ImageFile, source: Path) -> Image.Exif:
    """The image's EXIF. PngImageFile.getexif decodes the whole picture in case an eXIf chunk follows it;
    when none can, the generic reader takes what the header held."""
    if image.format == "PNG" and not _png_has_chunks_after_pixels(source):
        return Image.Image.getexif(image)
    return image.getexif()


@dataclass(frozen=True)
class _Picture:
    """What Pillow reads of an image."""

    format: str | None  # Pillow's name: "JPEG", "PNG", …
    mode: str
    size: tuple[int, int]
    has_alpha: bool
    exif: Image.Exif
    iptc: dict[str, Any] | None

    @property
    def format_name(self) -> str | None:
        return (self.format or "").lower() or None

    @property
    def rotation(self) -> int:
        return _ORIENTATION_ROTATION.get(_int(self.exif.get(_EXIF_ORIENTATION)) or 1, 0)


def _probe_image(source: Path, options: PipelineOptions) -> MediaMetadata:
    read_image_size(source, options)
    probed, raw = _describe_image(source, options)
    stream = probed.first_video
    picture = _read_picture(source)
    (width, height), rotation = picture.size, picture.rotation
    display_width, display_height = _display_size(width, height, rotation)
    return MediaMetadata(
        format_name=probed.format.format_name or picture.format_name,
        width=width,
        height=height,
        display_width=display_width,
        display_height=display_height,
        display_aspect_ratio=_aspect(display_width, display_height),
        rotation=rotation,
        pixel_format=stream.pix_fmt or picture.mode,
        # Pillow opens 16-bit RGB PNGs as 8-bit "RGB", so ffprobe's pixel format is the better witness.
        color_depth=_pix_fmt_depth(stream.pix_fmt) or _PILLOW_DEPTH.get(picture.mode, 8),
        color_space=stream.color_space,
        color_primaries=stream.color_primaries,
        color_transfer=stream.color_transfer,
        color_range=stream.color_range,
        has_alpha=picture.has_alpha or _has_alpha(stream.pix_fmt),
        exif=_exif_to_json(picture.exif),
        iptc=picture.iptc,
        image_format=picture.format,
        raw=raw,
    )


def _describe_image(source: Path, options: PipelineOptions) -> tuple[_Ffprobe, dict[str, Any] | None]:
    """ffprobe's description of an image (a plain JPEG's or PNG's from its header alone), checked against the
    pixel budget, and ffprobe's JSON when it ran."""
    header = jpeg_stream(source) or png_stream(source)
    if header is not None:
        return _Ffprobe(streams=[_Stream.model_validate(header)]), None
    raw: dict[str, Any] | None = None
    # Formats ffmpeg lacks (some TIFF variants) may still open with Pillow.
    with contextlib.suppress(MediaUnreadableError):
        raw = options.tools.probe(source)
    probed = _read(_Ffprobe, raw or {})
    stream = probed.first_video
    check_pixel_budget(stream.width, stream.height, options)
    return probed, raw


def _read_picture(source: Path) -> _Picture:
    try:
        with Image.open(source) as image:
            picture = _Picture(
                format=image.format,
                mode=image.mode,
                size=image.size,
                has_alpha=has_transparency(image),
                exif=_exif_of(image, source),
                iptc=_iptc_to_json(image),
            )
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise image_unreadable(exc, source) from exc
    return picture


def has_transparency(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def image_unreadable(exc: Exception, source: Path) -> MediaUnreadableError:
    """Pillow's complaint, without the temp path it likes to quote."""
    if isinstance(exc, UnidentifiedImageError):
        return MediaUnreadableError("the image cannot be read: unrecognised image format")
    reason = str(exc).replace(f"'{source}'", "").replace(str(source), "").strip() or type(exc).__name__
    return MediaUnreadableError(f"the image cannot be read: {reason}")


# IFD0's pointers to the sub-IFDs: offsets, not data.
_IFD_POINTERS = {int(ExifTags.IFD.Exif), int(ExifTags.IFD.GPSInfo), int(ExifTags.IFD.Interop)}


def _exif_to_json(exif: Image.Exif) -> dict[str, Any] | None:
    """EXIF as JSON-safe {tag name: value}: IFD0 and the Exif sub-IFD flat, GPS nested under "GPSInfo"."""
    if not exif:
        return None
    ifd0 = [(tag, value) for tag, value in exif.items() if tag not in _IFD_POINTERS]
    result = _named_tags([*ifd0, *exif.get_ifd(ExifTags.IFD.Exif).items()], ExifTags.TAGS)
    if gps := _named_tags(exif.get_ifd(ExifTags.IFD.GPSInfo).items(), ExifTags.GPSTAGS):
        result["GPSInfo"] = gps
    return result or None


def _named_tags(tags: Iterable[tuple[int, Any]], names: Mapping[int, str]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for tag, value in tags:
        _put(named, names.get(tag, str(tag)), value)
    return named


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
    if _PRINTABLE_ASCII.fullmatch(text):
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
    return _CONTROL_CHARACTERS.sub("", text).strip()


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
# The datasets that hold binary values; all others are text.
_IPTC_BINARY: dict[tuple[int, int], Callable[[bytes], Any]] = {
    (1, 90): bytes.hex,  # CodedCharacterSet: an ISO 2022 escape sequence
    (2, 0): functools.partial(int.from_bytes, byteorder="big"),  # RecordVersion
}


def _iptc_to_json(image: ImageFile.ImageFile) -> dict[str, Any] | None:
    try:
        info = IptcImagePlugin.getiptcinfo(image)
    except (OSError, SyntaxError, ValueError, IndexError):
        return None  # a malformed IPTC block is not worth failing the image for
    if not info:
        return None
    return dict(_iptc_dataset(key, value) for key, value in sorted(info.items()))


def _iptc_dataset(key: tuple[int, int], value: bytes | list[bytes]) -> tuple[str, Any]:
    """A dataset's name and value: a list when it repeats or may repeat, else its one value."""
    record, dataset = key
    name = _IPTC_NAMES.get(key, f"{record}:{dataset}")
    decode = _IPTC_BINARY.get(key, _decode_iptc)
    decoded = [decode(item) for item in (value if isinstance(value, list) else [value])]
    return name, decoded if name in _IPTC_REPEATABLE or len(decoded) > 1 else decoded[0]


def _decode_iptc(value: bytes) -> str:
    try:
        return _clean_text(value.decode("utf-8"))
    except UnicodeDecodeError:
        return _clean_text(value.decode("latin-1"))
