"""Every error mediaingest raises on purpose, each carrying the HTTP status and code it renders as.

    MediaIngestError                      500 internal_error
    ├── AuthenticationError               401 unauthorized
    ├── PermissionDeniedError             403 forbidden
    ├── NotFoundError                     404 not_found
    ├── ConflictError                     409 conflict
    ├── ValidationFailedError             422 validation_error
    │   ├── MimeTypeNotAllowedError       415 mime_type_not_allowed
    │   ├── FileTooLargeError             413 file_too_large
    │   └── IntegrityCheckError           422 integrity_check_failed (size, ETag, SHA-256, sniffed type)
    ├── QuotaExceededError                413 quota_exceeded
    ├── SignatureError                    403 invalid_signature (local storage URLs: tampered/expired/other key)
    ├── StorageError                      502 storage_error        — transient: retried by the worker
    │   └── ObjectNotFoundError           404 object_not_found
    └── ProcessingError                   500 processing_error     — raised by pipeline stages
        ├── TransientProcessingError      — retried with backoff (ffmpeg killed, I/O hiccup)
        └── PermanentProcessingError      — never retried (carries the Permanent marker)
            ├── MediaUnreadableError      — ffprobe/ffmpeg/Pillow cannot read the media
            └── MediaTooLargeError        — over a processing bound (decoded pixels, memory)

Foreign errors (botocore ClientError, ffmpeg exit codes) are translated at the boundary that meets them,
so callers only ever handle this tree. Messages are written for clients: they never carry secrets,
signed URLs or stack traces.
"""

from __future__ import annotations

from typing import Any


class Permanent:
    """Marks an error no later attempt can cure (the media is unreadable, a destination is refused):
    every retry policy fails it at once."""


class MediaIngestError(Exception):
    """Every error raised on purpose derives from this (raised itself: an unexpected failure)."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class AuthenticationError(MediaIngestError):
    """Missing, invalid, revoked or expired credentials."""

    status_code = 401
    code = "unauthorized"


class PermissionDeniedError(MediaIngestError):
    """The credentials are valid but may not do this."""

    status_code = 403
    code = "forbidden"


class NotFoundError(MediaIngestError):
    """No such resource for this user (another tenant's assets are not found either)."""

    status_code = 404
    code = "not_found"


class ConflictError(MediaIngestError):
    """The resource is not in a state that allows this (not uploaded yet, expired, already failed)."""

    status_code = 409
    code = "conflict"


class ValidationFailedError(MediaIngestError):
    """The request does not match its schema; `details.errors` names each field."""

    status_code = 422
    code = "validation_error"


class MimeTypeNotAllowedError(ValidationFailedError):
    """Not a video, audio or image type this service ingests."""

    status_code = 415
    code = "mime_type_not_allowed"


class FileTooLargeError(ValidationFailedError):
    """Over the 5 GiB a file."""

    status_code = 413
    code = "file_too_large"


class IntegrityCheckError(ValidationFailedError):
    """The bytes do not match what was declared (size, ETag, SHA-256, real type, or the parts named)."""

    status_code = 422
    code = "integrity_check_failed"


class QuotaExceededError(MediaIngestError):
    """The upload would take the user over the plan's storage quota."""

    status_code = 413
    code = "quota_exceeded"


class SignatureError(MediaIngestError):
    """A signed storage URL was altered, has expired, or names another object."""

    status_code = 403
    code = "invalid_signature"


class StorageError(MediaIngestError):
    """Object storage failed or could not be reached; try again shortly."""

    status_code = 502
    code = "storage_error"


class ObjectNotFoundError(StorageError):
    """The object is not in storage (not uploaded, or already removed)."""

    status_code = 404
    code = "object_not_found"


class ProcessingError(MediaIngestError):
    code = "processing_error"


class TransientProcessingError(ProcessingError):
    code = "processing_transient"


class PermanentProcessingError(ProcessingError, Permanent):
    code = "processing_failed"


class MediaUnreadableError(PermanentProcessingError):
    code = "media_unreadable"


class MediaTooLargeError(PermanentProcessingError):
    """The media would need more than a processing bound allows (decoded pixels, the stage memory limit)."""

    code = "media_too_large"


def error_message(error: BaseException) -> str:
    """What a failure says to users: a MediaIngestError's own message, else the exception's type and text."""
    return error.message if isinstance(error, MediaIngestError) else f"{type(error).__name__}: {error}"
