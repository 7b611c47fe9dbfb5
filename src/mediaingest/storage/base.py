"""The storage interface: what the upload service, the worker and the operator need from object storage.

Two implementations speak it: `s3.S3Storage` (boto3, any S3-compatible endpoint) and
`local.LocalStorage` (files under DATA_DIR, with signed URLs the service itself serves through
`local_endpoints.router`, speaking the same PUT/ETag protocol as S3 so one client works against both).

Every method raises only `mediaingest.exceptions.StorageError` (or its `ObjectNotFoundError`):
foreign errors are translated inside the implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class PresignedRequest:
    """One HTTP request a client may make without credentials until `expires_at`."""

    url: str
    method: str
    # Headers the client must send exactly as given (they are part of the signature).
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str  # without quotes; "<md5>" for a single PUT, "<md5-of-part-md5s>-N" for multipart
    content_type: str | None = None
    sha256: str | None = None  # lowercase hex, when the store knows it (local always; S3 when checksummed)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CompletedPart:
    part_number: int
    etag: str


@dataclass(frozen=True)
class PartInfo:
    """One part a multipart upload holds, as the store reports it."""

    part_number: int
    size: int
    etag: str  # without quotes
    last_modified: datetime
    sha256: str | None = None  # lowercase hex, when the part was sent with its checksum


class Storage(ABC):
    """Object storage with presigned direct-upload support."""

    # --- direct uploads -------------------------------------------------------------------------
    @abstractmethod
    def presign_put(
        self,
        bucket: str,
        key: str,
        *,
        size: int,
        content_type: str,
        metadata: dict[str, str],
        expires_in: int,
        sha256: str | None = None,
        replace: bool = False,
    ) -> PresignedRequest:
        """A single PUT of exactly `size` bytes of `content_type`; with `sha256`, the store verifies it.

        Single-write: the request carries `If-None-Match: *` (signed), so once the object exists the
        URL cannot replace it, whatever is left of its lifetime. `replace=True` drops that condition, for
        derived files a later attempt rewrites under the same name (never for uploads).
        """

    @abstractmethod
    def create_multipart_upload(self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        """Starts a multipart upload whose parts may carry SHA-256 checksums; returns its upload id."""

    @abstractmethod
    def presign_upload_part(
        self,
        bucket: str,
        key: str,
        *,
        upload_id: str,
        part_number: int,
        size: int,
        expires_in: int,
        sha256: str | None = None,
    ) -> PresignedRequest:
        """One part of exactly `size` bytes; with `sha256` (hex) signed in, the store refuses other bytes."""

    @abstractmethod
    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]:
        """Every part the upload holds, by part number (all pages). ObjectNotFoundError when the upload
        is unknown, aborted or completed."""

    @abstractmethod
    def complete_multipart_upload(
        self, bucket: str, key: str, *, upload_id: str, parts: list[CompletedPart]
    ) -> ObjectInfo:
        """Single-write like `presign_put`: PreconditionFailedError when the object already exists."""

    @abstractmethod
    def abort_multipart_upload(self, bucket: str, key: str, *, upload_id: str) -> None:
        """Idempotent: aborting an unknown or finished upload is not an error."""

    # --- objects --------------------------------------------------------------------------------
    @abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Raises ObjectNotFoundError when absent."""

    @abstractmethod
    def read_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        """Up to `length` bytes from `start` (fewer at the end of the object), without reading the rest."""

    @abstractmethod
    def sha256_of(self, bucket: str, key: str, *, etag: str) -> str:
        """The object's SHA-256 (hex): what the store recorded, else computed by streaming the bytes
        pinned to `etag` (bounded memory; one read of the object)."""

    @abstractmethod
    def download_file(self, bucket: str, key: str, destination: Path, *, etag: str | None = None) -> None:
        """Streams the object to `destination`; never holds it in memory.

        With `etag`, the read is pinned to those bytes (S3 `If-Match`): PreconditionFailedError when
        the object is not the one that was verified.
        """

    @abstractmethod
    def upload_file(self, bucket: str, key: str, source: Path, *, content_type: str) -> ObjectInfo: ...

    @abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """Idempotent: deleting an absent object is not an error."""

    @abstractmethod
    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Deletes every object under `prefix`; returns how many. Implementations may batch."""
        keys = self.list_keys(bucket, prefix)
        for key in keys:
            self.delete(bucket, key)
        return len(keys)

    @abstractmethod
    def presign_get(self, bucket: str, key: str, *, expires_in: int, download_name: str | None = None) -> str:
        """A GET URL (Range supported) valid for `expires_in` seconds."""

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The object's own file when the store keeps it on this machine (ffmpeg reads it in place); None
        when it must be downloaded first. ObjectNotFoundError when absent."""
        return None

    # --- lifecycle ------------------------------------------------------------------------------
    @abstractmethod
    def ensure_buckets(self, buckets: Iterable[str]) -> None:
        """Creates the buckets that are missing (for the embedded default and tests)."""

    @abstractmethod
    def check_ready(self, buckets: Iterable[str]) -> None:
        """Raises StorageError unless every bucket is reachable; used by /readyz."""
