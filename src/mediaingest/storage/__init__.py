"""Object storage: one interface (`Storage`), two backends, chosen by `STORAGE_BACKEND`.

    build_storage(settings) -> Storage
        local (default)  LocalStorage: files under DATA_DIR/storage; its signed URLs point at
                         PUBLIC_URL/storage/… and are served by `local_endpoints.router`
                         (mount it with `app.include_router(router)` and put the instance on
                         `app.state.storage`; call `ensure_buckets` at start-up).
        s3               S3Storage: boto3, SigV4 presigned URLs, any S3_ENDPOINT_URL
                         (S3_FORCE_PATH_STYLE=true for MinIO and most self-hosted stores).

Both speak the same upload protocol to clients: PUT the bytes to `PresignedRequest.url` with exactly
`PresignedRequest.headers`, read the `ETag` response header; multipart adds one such URL per part and
a completion with the part ETags. User metadata values may be any text: both backends store
non-ASCII values as RFC 2047 encoded words (see `encoding`) and `head()` returns them decoded.

Errors: only `StorageError` and its subclasses leave a backend — `ObjectNotFoundError` (absent key,
bucket or upload), `InvalidPartError` (a part list S3 refuses: wrong ETag, order, too small; also an
`IntegrityCheckError`), `InvalidKeyError` (a key the local store refuses: traversal, control chars).
"""

from __future__ import annotations

from mediaingest.config import Settings, StorageBackendName
from mediaingest.storage.base import CompletedPart, ObjectInfo, PresignedRequest, Storage
from mediaingest.storage.errors import InvalidKeyError, InvalidPartError
from mediaingest.storage.local import LocalStorage

__all__ = [
    "CompletedPart",
    "InvalidKeyError",
    "InvalidPartError",
    "LocalStorage",
    "ObjectInfo",
    "PresignedRequest",
    "Storage",
    "build_storage",
]


def build_storage(settings: Settings) -> Storage:
    """The configured backend. Builds clients and folders now, so call it at start-up, not import."""
    if settings.storage_backend == StorageBackendName.S3:
        # Imported here so the embedded default never pays for importing boto3.
        from mediaingest.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    return LocalStorage.from_settings(settings)
