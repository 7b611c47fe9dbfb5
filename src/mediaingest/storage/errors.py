"""Storage errors that say more than "storage failed", so callers can answer the client precisely.

Both stay inside the `StorageError` branch the interface promises, and also sit where the API renders
them: a wrong part ETag is an integrity failure (422), a malformed key is a bad request (400).
"""

from __future__ import annotations

from mediaingest.exceptions import IntegrityCheckError, StorageError, ValidationFailedError


class InvalidPartError(IntegrityCheckError, StorageError):
    """Completing a multipart upload failed because of the parts the client named (S3 InvalidPart,
    InvalidPartOrder, EntityTooSmall): a part is missing, its ETag differs, or the order is wrong.
    The upload stays open, as on S3, so the client may retry with the right list."""

    status_code = 422
    code = "integrity_check_failed"


class PreconditionFailedError(StorageError):
    """A conditional request's condition did not hold (S3 PreconditionFailed, 412): a single-write
    upload found the object already there, or a read pinned to an ETag found other bytes."""

    status_code = 412
    code = "precondition_failed"


class InvalidKeyError(ValidationFailedError, StorageError):
    """A bucket name or object key the store refuses (path traversal, control characters, empty parts)."""

    status_code = 400
    code = "invalid_key"
