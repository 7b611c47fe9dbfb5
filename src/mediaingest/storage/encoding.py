"""Header encodings both backends share: user-metadata values and Content-Disposition.

S3 user metadata travels as `x-amz-meta-*` HTTP headers, so values must be printable ASCII. Values
that are not (an original file name like `été.mp4`, or one with control characters or edge spaces)
are stored as one RFC 2047 encoded word, `=?UTF-8?B?<base64 of the UTF-8 bytes>?=` — the form S3 itself
answers with for non-ASCII metadata, so objects written by other tools decode the same way. ASCII
values that merely look like an encoded word are encoded too, which keeps decoding unambiguous.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from urllib.parse import quote

_ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/]*={0,2})\?=", re.IGNORECASE)
_METADATA_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\]')  # what a quoted-string's ASCII fallback name cannot hold


def encode_metadata_value(value: str) -> str:
    if _PRINTABLE_ASCII.fullmatch(value) and value == value.strip() and not _ENCODED_WORD.fullmatch(value):
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode()).decode('ascii')}?="


def decode_metadata_value(value: str) -> str:
    match = _ENCODED_WORD.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return value


def encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Names as S3 stores them (lowercase, no `x-amz-meta-` prefix) to header-safe values."""
    encoded: dict[str, str] = {}
    for name, value in metadata.items():
        lowered = name.lower()
        if not _METADATA_NAME.fullmatch(lowered):
            raise ValueError(f"metadata name {name!r} must be ASCII letters, digits and dashes")
        encoded[lowered] = encode_metadata_value(value)
    return encoded


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): decode_metadata_value(value) for name, value in metadata.items()}


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / RFC 5987)."""
    fallback = _UNQUOTABLE.sub("_", filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def sha256_hex_to_b64(sha256: str) -> str:
    """A hex SHA-256 (as the API takes it) in the base64 form of the x-amz-checksum-sha256 header."""
    try:
        digest = bytes.fromhex(sha256)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ValueError("sha256 must be 64 hexadecimal characters")
    return base64.b64encode(digest).decode("ascii")
