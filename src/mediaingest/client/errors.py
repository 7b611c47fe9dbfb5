"""The client's errors, and the sentences a person reads for them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class ClientError(Exception):
    """Anything the client raises on purpose."""


class ApiError(ClientError):
    def __init__(self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.status_code} {self.code})"


class AmbiguousIdError(ClientError):
    """A short id that names more than one asset."""

    def __init__(self, prefix: str, shown: list[str], total: int) -> None:
        listed = ", ".join(shown) + (", …" if total > len(shown) else "")
        super().__init__(f"{prefix} is the start of {total} asset ids ({listed}); type more of it.")


_ID_CHARACTERS = re.compile(r"[0-9a-fA-F-]+")


class InvalidIdError(ClientError):
    """Not an asset id, nor the start of one that `assets list` could show."""

    def __init__(self, given: str) -> None:
        if len(given) < 4 and _ID_CHARACTERS.fullmatch(given):
            reason = f"{given} is too short: give at least the first 4 characters of the id, as `assets list` shows it."
        else:
            reason = (
                f"{given} is not an asset id: ids are hexadecimal, like 4ed1c2d0 (`assets list` shows them; "
                "`assets list --json` has the names)."
            )
        super().__init__(reason)


class TransferError(ClientError):
    """Storage refused a PUT (not retried) or kept failing it (after the retries)."""

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


def format_bytes(size: float | None) -> str:
    """Binary units, named as such (plans are 5 GiB, 50 GiB…), as the page and the README write them."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return _in_unit(value, unit)
        value /= 1024
    return _in_unit(value, "TiB")


def _in_unit(value: float, unit: str) -> str:
    """Whole bytes; in larger units one decimal below 100, dropped when it is 0."""
    shown = f"{value:.0f}" if unit == "B" or value >= 100 else f"{value:.1f}".removesuffix(".0")
    return f"{shown} {unit}"


def describe_error(error: BaseException, file_name: str | None = None, *, asset_id: str | None = None) -> str:
    """A sentence for a person: the numbers of a quota error, what a rejected type was, what to do next."""
    subject = f"“{file_name}”" if file_name else "The file"
    if isinstance(error, TransferError):
        return f"Uploading {subject} failed: {error}"
    if isinstance(error, ApiError):
        return _describe_api_error(error, file_name, subject, asset_id)
    return str(error)


def _describe_api_error(error: ApiError, file_name: str | None, subject: str, asset_id: str | None) -> str:
    explain = _EXPLAINED_CODES.get(error.code) or _EXPLAINED_STATUSES.get(error.status_code)
    if explain is not None:
        return explain(error, subject, asset_id)
    # Several files go up at once: say which one the server refused.
    return f"{subject} was refused: {error.message}" if file_name else error.message


def _type_not_accepted(error: ApiError, subject: str, _asset_id: str | None) -> str:
    kind = error.details.get("mimeType") or "of an unknown type"
    return f"{subject} can't be uploaded: only video, audio and image files are accepted (this one is {kind})."


def _not_enough_storage(error: ApiError, subject: str, _asset_id: str | None) -> str:
    d = error.details
    return (
        f"Not enough storage for {subject}: it needs {format_bytes(d.get('requested'))}, but only "
        f"{format_bytes(d.get('available'))} of your {d.get('plan')} plan's {format_bytes(d.get('limit'))} "
        f"is free ({format_bytes(d.get('stored'))} stored, {format_bytes(d.get('reserved'))} reserved by "
        "unfinished uploads)."
    )


def _too_large(error: ApiError, subject: str, _asset_id: str | None) -> str:
    d = error.details
    return (
        f"{subject} is {format_bytes(d.get('fileSize'))}; the largest file you can upload is "
        f"{format_bytes(d.get('maxFileSize'))}."
    )


def _token_refused(error: ApiError, _subject: str, _asset_id: str | None) -> str:
    return f"The server did not accept the token ({error.message}). Check --token or MEDIAINGEST_TOKEN."


def _no_such_asset(_error: ApiError, _subject: str, asset_id: str | None) -> str:
    named = f"No asset {asset_id}" if asset_id else "No such asset"
    return f"{named} (or it belongs to someone else)."


# The API errors that get a sentence of their own: by error code first, else by HTTP status.
_Explain = Callable[[ApiError, str, str | None], str]  # (error, the file as the subject, the id given)
_EXPLAINED_CODES: dict[str, _Explain] = {
    "mime_type_not_allowed": _type_not_accepted,
    "quota_exceeded": _not_enough_storage,
    "file_too_large": _too_large,
}
_EXPLAINED_STATUSES: dict[int, _Explain] = {401: _token_refused, 404: _no_such_asset}
