"""Which media an upload may carry, how its file name is cleaned, and what its first bytes really are."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import filetype
from filetype.types import Type

from mediaingest.models.enums import MediaType

# Explicit allowlist: declared MIME type → (media type, default extension).
ALLOWED_MIME_TYPES: dict[str, tuple[MediaType, str]] = {
    "video/mp4": (MediaType.VIDEO, "mp4"),
    "video/quicktime": (MediaType.VIDEO, "mov"),
    "video/x-matroska": (MediaType.VIDEO, "mkv"),
    "video/webm": (MediaType.VIDEO, "webm"),
    "video/x-msvideo": (MediaType.VIDEO, "avi"),
    "video/mpeg": (MediaType.VIDEO, "mpg"),
    "video/mp2t": (MediaType.VIDEO, "ts"),
    "video/x-m4v": (MediaType.VIDEO, "m4v"),
    "video/3gpp": (MediaType.VIDEO, "3gp"),
    "video/ogg": (MediaType.VIDEO, "ogv"),
    "video/x-flv": (MediaType.VIDEO, "flv"),
    "audio/mpeg": (MediaType.AUDIO, "mp3"),
    "audio/mp4": (MediaType.AUDIO, "m4a"),
    "audio/x-m4a": (MediaType.AUDIO, "m4a"),
    "audio/aac": (MediaType.AUDIO, "aac"),
    "audio/wav": (MediaType.AUDIO, "wav"),
    "audio/x-wav": (MediaType.AUDIO, "wav"),
    "audio/wave": (MediaType.AUDIO, "wav"),
    "audio/flac": (MediaType.AUDIO, "flac"),
    "audio/x-flac": (MediaType.AUDIO, "flac"),
    "audio/ogg": (MediaType.AUDIO, "ogg"),
    "audio/opus": (MediaType.AUDIO, "opus"),
    "audio/webm": (MediaType.AUDIO, "weba"),
    "audio/aiff": (MediaType.AUDIO, "aiff"),
    "audio/x-aiff": (MediaType.AUDIO, "aiff"),
    "image/jpeg": (MediaType.IMAGE, "jpg"),
    "image/png": (MediaType.IMAGE, "png"),
    "image/gif": (MediaType.IMAGE, "gif"),
    "image/webp": (MediaType.IMAGE, "webp"),
    "image/tiff": (MediaType.IMAGE, "tif"),
    "image/bmp": (MediaType.IMAGE, "bmp"),
    "image/heic": (MediaType.IMAGE, "heic"),
    "image/heif": (MediaType.IMAGE, "heif"),
    "image/avif": (MediaType.IMAGE, "avif"),
}

# Containers that carry audio, video or both: their bytes alone cannot tell an .m4a from an .mp4.
_AV_CONTAINERS = frozenset(
    {
        "video/mp4", "video/quicktime", "video/x-m4v", "video/3gpp", "audio/mp4", "audio/x-m4a",
        "video/x-matroska", "video/webm", "audio/webm", "audio/ogg", "video/ogg", "video/mpeg",
        "video/mp2t", "video/x-flv", "video/x-msvideo",
    }
)  # fmt: skip

# How many leading bytes confirmation reads: enough for every signature below, and for ISO-BMFF's ftyp.
SNIFF_BYTES = 64 * 1024


def media_type_for(mime_type: str) -> MediaType | None:
    entry = ALLOWED_MIME_TYPES.get(mime_type.strip().lower())
    return entry[0] if entry else None


class _MpegTransportStream(Type):
    """filetype does not know MPEG-TS: 0x47 sync bytes every 188 bytes."""

    MIME = "video/mp2t"
    EXTENSION = "ts"

    def __init__(self) -> None:
        super().__init__(mime=self.MIME, extension=self.EXTENSION)

    def match(self, buf: bytes) -> bool:
        return len(buf) >= 188 * 4 and all(buf[i * 188] == 0x47 for i in range(4))


filetype.add_type(_MpegTransportStream())


@dataclass(frozen=True)
class SniffResult:
    mime_type: str | None  # None: no known signature

    def could_be(self, media_type: MediaType) -> bool:
        if self.mime_type is None:
            return False
        if self.mime_type in _AV_CONTAINERS:
            return media_type in (MediaType.VIDEO, MediaType.AUDIO)
        family = self.mime_type.split("/", 1)[0]
        return family == media_type.value.lower()


def sniff(head: bytes) -> SniffResult:
    kind = filetype.guess(head)
    return SniffResult(mime_type=kind.mime if kind else None)


_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WHITESPACE = re.compile(r"\s+")
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
MAX_NAME_BYTES = 255


def sanitize_filename(raw: str, *, fallback_extension: str) -> str:
    """A display- and storage-safe file name: no path parts, no control characters, at most 255 bytes.

    The extension is kept (lowercased) when it is short and alphanumeric; otherwise the MIME type's
    default extension is appended, so the name always says what the bytes are.
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]  # drop any path, POSIX or Windows
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format, private
    name = _RESERVED.sub("_", name)
    name = _WHITESPACE.sub(" ", name).strip(" .")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    extension = extension.lower()
    if not _EXTENSION.match(extension):
        stem, extension = (name if dot else stem), fallback_extension
    stem = stem.strip(" .") or "upload"
    budget = MAX_NAME_BYTES - len(extension) - 1
    stem = stem.encode()[:budget].decode(errors="ignore").rstrip(" .") or "upload"
    return f"{stem}.{extension}"


def printable_name(raw: str, *, limit: int = 1024) -> str:
    """The client's name as given, minus control characters (PostgreSQL text cannot even hold NUL)."""
    return "".join(ch for ch in unicodedata.normalize("NFC", raw) if unicodedata.category(ch)[0] != "C")[:limit]


def extension_of(filename: str) -> str:
    return filename.rsplit(".", 1)[-1]
