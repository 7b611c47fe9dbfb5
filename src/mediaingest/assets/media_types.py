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

# Other extensions a file of each type is commonly named with; anything else is replaced by the type's
# default extension, so the stored key and the download name always say what the verified bytes are.
_EXTRA_EXTENSIONS: dict[str, frozenset[str]] = {
    "video/mp4": frozenset({"m4v", "mp4v"}),
    "video/quicktime": frozenset({"qt"}),
    "video/mpeg": frozenset({"mpeg", "m2v", "mpe", "vob"}),
    "video/mp2t": frozenset({"m2ts", "mts"}),
    "video/3gpp": frozenset({"3gpp"}),
    "audio/mpeg": frozenset({"mpga", "mp2"}),
    "audio/mp4": frozenset({"mp4", "aac"}),
    "audio/aac": frozenset({"adts"}),
    "audio/wav": frozenset({"wave"}),
    "audio/x-wav": frozenset({"wave"}),
    "audio/wave": frozenset({"wav"}),
    "audio/ogg": frozenset({"oga", "opus"}),
    "audio/aiff": frozenset({"aif", "aifc"}),
    "audio/x-aiff": frozenset({"aif", "aifc"}),
    "image/jpeg": frozenset({"jpeg", "jpe", "jfif"}),
    "image/tiff": frozenset({"tiff"}),
    "image/heic": frozenset({"heif"}),
    "image/heif": frozenset({"heic"}),
}


def extensions_for(mime_type: str) -> frozenset[str]:
    """The extensions a file of this (allowed) MIME type may keep: its default and common aliases."""
    default = ALLOWED_MIME_TYPES[mime_type][1]
    return frozenset({default}) | _EXTRA_EXTENSIONS.get(mime_type, frozenset())


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


def sanitize_filename(raw: str, *, mime_type: str) -> str:
    """A display- and storage-safe file name: no path parts, no control characters, at most 255 bytes.

    The extension is kept (lowercased) only when it is one of the MIME type's (`clip.MOV` stays
    `clip.mov`); any other extension is replaced by the type's default (`a.php` declared as JPEG is
    `a.jpg`, and a name without one gets it), so the name always says what the verified bytes are.
    """
    allowed = extensions_for(mime_type)
    fallback_extension = ALLOWED_MIME_TYPES[mime_type][1]
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]  # drop any path, POSIX or Windows
    name = _without_control_characters(name)
    name = _RESERVED.sub("_", name)
    name = _WHITESPACE.sub(" ", name).strip(" .")
    stem, dot, extension = name.rpartition(".")
    extension = extension.lower()
    if not (dot and _EXTENSION.match(extension)):
        stem, extension = name, fallback_extension  # no extension, or nothing like one: all of it is the stem
    elif extension not in allowed:
        extension = fallback_extension
    stem = stem.strip(" .") or "upload"
    budget = MAX_NAME_BYTES - len(extension) - 1
    stem = stem.encode()[:budget].decode(errors="ignore").rstrip(" .") or "upload"
    return f"{stem}.{extension}"


def printable_name(raw: str, *, limit: int = 1024) -> str:
    """The client's name as given, minus control characters (PostgreSQL text cannot even hold NUL)."""
    return _without_control_characters(unicodedata.normalize("NFC", raw))[:limit]


def _without_control_characters(text: str) -> str:
    """`text` without Unicode's "other" characters: control, format, surrogate, private use, unassigned."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")


def extension_of(filename: str) -> str:
    return filename.rsplit(".", 1)[-1]
