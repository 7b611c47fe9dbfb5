"""The S3 backend: boto3 against AWS or any S3-compatible endpoint (MinIO, R2, Ceph, …).

Clients upload straight to S3 with presigned SigV4 URLs; the service never carries the bytes. A
presigned PUT signs Content-Type, Content-Length, the `x-amz-meta-*` headers, `If-None-Match: *` (S3's
conditional write: the URL can create the object once and never replace it) and, when the client
declared one, `x-amz-checksum-sha256`: S3 then refuses other bytes, stores the checksum, and `head()`
reads it back (ChecksumMode=ENABLED) as the asset's SHA-256. Completing a multipart upload is
conditional the same way, and the worker's reads are pinned to the verified ETag (`If-Match`).

Every botocore/boto3/OS error is translated in `_translate` into the storage error tree; messages
name the operation, bucket, key and S3 error code, never credentials or signed URLs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mediaingest.config import Settings
from mediaingest.exceptions import ObjectNotFoundError, StorageError
from mediaingest.logging import get_logger
from mediaingest.storage.base import CompletedPart, ObjectInfo, PartInfo, PresignedRequest, Storage
from mediaingest.storage.encoding import content_disposition, decode_metadata, encode_metadata, sha256_hex_to_b64
from mediaingest.storage.errors import InvalidPartError, PreconditionFailedError

log = get_logger(__name__)

MAX_EXPIRES_IN = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week
_FAILED = "S3 {operation} failed for {where} ({code})."
# S3 error codes that say more than "failed": the storage error each one is, and its message.
_CODE_ERRORS: dict[str, tuple[type[StorageError], str]] = {
    **dict.fromkeys(
        ("404", "NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"),
        (ObjectNotFoundError, "Not found in storage: {where} ({code})."),
    ),
    **dict.fromkeys(
        ("PreconditionFailed", "412", "ConditionalRequestConflict"),
        (PreconditionFailedError, "S3 {operation} refused for {where}: a condition did not hold ({code})."),
    ),
    **dict.fromkeys(
        ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"),
        (InvalidPartError, "S3 refused the part list for {where} ({code})."),
    ),
}
_DOWNLOAD_CHUNK = 1024 * 1024


@contextmanager
def _translate(operation: str, bucket: str, key: str | None = None) -> Iterator[None]:
    where = f"{bucket}/{key}" if key is not None else bucket
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "Unknown")
        error_class, message = _CODE_ERRORS.get(code, (StorageError, _FAILED))
        if error_class is StorageError:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            log.warning("storage.s3_error", operation=operation, bucket=bucket, key=key, code=code, status=status)
        details = {"s3_code": code, "operation": operation}
        raise error_class(message.format(operation=operation, where=where, code=code), details=details) from exc
    except (BotoCoreError, Boto3Error, OSError) as exc:
        # Connection, timeout and transfer errors; their text can carry endpoint URLs, so only the type.
        log.warning("storage.s3_error", operation=operation, bucket=bucket, key=key, error=type(exc).__name__)
        raise StorageError(
            f"S3 {operation} failed for {where} ({type(exc).__name__}).", details={"operation": operation}
        ) from exc


def _validate_expires_in(expires_in: int) -> None:
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds")


def _quoted_etag(etag: str) -> str:
    """S3 wants ETags quoted, as its PUT answered them; clients often strip the quotes."""
    return f'"{etag.strip().strip(chr(34))}"'


def _sha256_hex(checksum: str | None, checksum_type: str | None) -> str | None:
    """S3's base64 ChecksumSHA256 as hex, unless it is a composite (checksum of part checksums)."""
    if not checksum or "-" in checksum or checksum_type == "COMPOSITE":
        return None
    try:
        digest = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


class S3Storage(Storage):
    """One boto3 client, built here (never at import), shared by threads (boto3 clients are thread-safe).

    Credentials: the given keys, else boto3's default chain (environment, IRSA, instance profile).
    """

    # Objects per DeleteObjects call; S3's maximum. An attribute so tests can exercise batching.
    delete_batch_size = 1000
    # Parts per ListParts page; S3's maximum. An attribute so tests can exercise paging.
    list_parts_page_size = 1000

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        force_path_style: bool = False,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
    ) -> None:
        self.region = region
        config = Config(
            region_name=region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if force_path_style else "auto"},
            # "standard" retries throttling, 5xx and connection errors with capped, jittered backoff.
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # botocore >= 1.36 adds CRC checksums to every upload by default; several S3-compatible
            # stores reject them. We send checksums ourselves where we want them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A session of our own: the default session is shared mutable state and not thread-safe.
        session = boto3.session.Session()
        self.client: Any = session.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url or None,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        self._transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        secret = settings.aws_secret_access_key
        return cls(
            region=settings.aws_region,
            endpoint_url=settings.s3_endpoint_url,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            force_path_style=settings.s3_force_path_style,
        )

    # --- direct uploads -------------------------------------------------------------------------
    def _presign(self, operation: str, params: dict[str, Any], expires_in: int, method: str, bucket: str) -> str:
        _validate_expires_in(expires_in)
        with _translate(f"presign {operation}", bucket, params.get("Key")):
            return str(
                self.client.generate_presigned_url(operation, Params=params, ExpiresIn=expires_in, HttpMethod=method)
            )

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
        encoded = encode_metadata(metadata)
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": size,
            "Metadata": encoded,
        }
        # Signed as headers, so the client must send exactly these values and S3 enforces them.
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        if not replace:
            params["IfNoneMatch"] = headers["If-None-Match"] = "*"
        if sha256:
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = sha256_hex_to_b64(sha256)
            # Redundant for AWS (the checksum header alone suffices) but some S3-compatible stores,
            # moto among them, only keep the checksum when the algorithm is named too.
            params["ChecksumAlgorithm"] = headers["x-amz-sdk-checksum-algorithm"] = "SHA256"
        headers.update({f"x-amz-meta-{name}": value for name, value in encoded.items()})
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        url = self._presign("put_object", params, expires_in, "PUT", bucket)
        return PresignedRequest(url=url, method="PUT", headers=headers, expires_at=expires_at)

    def create_multipart_upload(self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        with _translate("create multipart upload", bucket, key):
            # SHA256 declared up front: S3 then keeps each part's checksum (sent by the client, or
            # computed when a part came without one), lists it, and wants it back at completion.
            response = self.client.create_multipart_upload(
                Bucket=bucket,
                Key=key,
                ContentType=content_type,
                Metadata=encode_metadata(metadata),
                ChecksumAlgorithm="SHA256",
            )
        return str(response["UploadId"])

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
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part_number,
            "ContentLength": size,
        }
        headers = {"Content-Length": str(size)}
        if sha256:
            # A signed header: the client must send it, and S3 refuses a part whose bytes differ.
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = sha256_hex_to_b64(sha256)
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        url = self._presign("upload_part", params, expires_in, "PUT", bucket)
        return PresignedRequest(url=url, method="PUT", headers=headers, expires_at=expires_at)

    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        with _translate("list parts", bucket, key):
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PaginationConfig={"PageSize": self.list_parts_page_size},
            )
            for page in pages:
                parts.extend(
                    PartInfo(
                        part_number=int(item["PartNumber"]),
                        size=int(item["Size"]),
                        etag=str(item["ETag"]).strip('"'),
                        last_modified=item["LastModified"],
                        sha256=_sha256_hex(item.get("ChecksumSHA256"), None),
                    )
                    for item in page.get("Parts", [])
                )
        return sorted(parts, key=lambda part: part.part_number)

    def complete_multipart_upload(
        self, bucket: str, key: str, *, upload_id: str, parts: list[CompletedPart]
    ) -> ObjectInfo:
        # An upload created with a checksum algorithm must name each part's checksum again: S3 lists them.
        checksums = {
            part.part_number: part.sha256 for part in self.list_parts(bucket, key, upload_id=upload_id) if part.sha256
        }
        listed: list[dict[str, Any]] = []
        for part in parts:
            entry = {"PartNumber": part.part_number, "ETag": _quoted_etag(part.etag)}
            if checksum := checksums.get(part.part_number):
                entry["ChecksumSHA256"] = sha256_hex_to_b64(checksum)
            listed.append(entry)
        with _translate("complete multipart upload", bucket, key):
            self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}, IfNoneMatch="*"
            )
        return self.head(bucket, key)

    def abort_multipart_upload(self, bucket: str, key: str, *, upload_id: str) -> None:
        try:
            with _translate("abort multipart upload", bucket, key):
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ObjectNotFoundError:
            pass  # unknown or already finished: nothing to abort

    # --- objects --------------------------------------------------------------------------------
    def head(self, bucket: str, key: str) -> ObjectInfo:
        with _translate("head", bucket, key):
            response = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(response["ContentLength"]),
            etag=str(response["ETag"]).strip('"'),
            content_type=response.get("ContentType"),
            sha256=_sha256_hex(
                response.get("ChecksumSHA256"),
                # A multipart object's SHA256 is a checksum of its parts' unless S3 says FULL_OBJECT
                # (some S3-compatible stores leave out the "-N" that marks it).
                response.get("ChecksumType") or ("COMPOSITE" if "-" in str(response["ETag"]) else None),
            ),
            metadata=decode_metadata(response.get("Metadata") or {}),
        )

    def read_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        if length == 0:
            return b""
        with _translate("read range", bucket, key):
            try:
                response = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # start at or past the end
                    return b""
                raise
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def sha256_of(self, bucket: str, key: str, *, etag: str) -> str:
        info = self.head(bucket, key)
        if info.sha256 is not None:
            return info.sha256
        digest = hashlib.sha256()
        with _translate("checksum", bucket, key):
            response = self.client.get_object(Bucket=bucket, Key=key, IfMatch=_quoted_etag(etag))
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(_DOWNLOAD_CHUNK):
                    digest.update(chunk)
            finally:
                body.close()
        return digest.hexdigest()

    def download_file(self, bucket: str, key: str, destination: Path, *, etag: str | None = None) -> None:
        if etag is None:
            # s3transfer streams (ranged GETs in parallel for big objects) into a temp file it renames.
            with _translate("download", bucket, key):
                self.client.download_file(bucket, key, str(destination), Config=self._transfer)
            return
        # Pinned: one GET with If-Match (s3transfer takes no If-Match), streamed in chunks.
        with _translate("download", bucket, key):
            response = self.client.get_object(Bucket=bucket, Key=key, IfMatch=_quoted_etag(etag))
            body = response["Body"]
            try:
                with destination.open("wb") as target:
                    for chunk in body.iter_chunks(_DOWNLOAD_CHUNK):
                        target.write(chunk)
            finally:
                body.close()

    def upload_file(self, bucket: str, key: str, source: Path, *, content_type: str) -> ObjectInfo:
        with _translate("upload", bucket, key):
            self.client.upload_file(
                str(source), bucket, key, ExtraArgs={"ContentType": content_type}, Config=self._transfer
            )
        return self.head(bucket, key)

    def delete(self, bucket: str, key: str) -> None:
        with _translate("delete", bucket, key):
            self.client.delete_object(Bucket=bucket, Key=key)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        with _translate("list", bucket, prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        if not prefix:
            raise ValueError("delete_prefix needs a non-empty prefix; it would empty the bucket")
        keys = self.list_keys(bucket, prefix)
        for offset in range(0, len(keys), self.delete_batch_size):
            batch = keys[offset : offset + self.delete_batch_size]
            with _translate("delete prefix", bucket, prefix):
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            if errors := response.get("Errors"):
                code = errors[0].get("Code", "Unknown")
                raise StorageError(
                    f"S3 delete prefix failed for {bucket}/{prefix}: {len(errors)} objects not deleted ({code}).",
                    details={"s3_code": code, "operation": "delete prefix"},
                )
        return len(keys)

    def presign_get(self, bucket: str, key: str, *, expires_in: int, download_name: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if download_name:
            params["ResponseContentDisposition"] = content_disposition(download_name)
        return self._presign("get_object", params, expires_in, "GET", bucket)

    # --- lifecycle ------------------------------------------------------------------------------
    def ensure_buckets(self, buckets: Iterable[str]) -> None:
        for bucket in buckets:
            if not self._bucket_exists(bucket):
                self._create_bucket(bucket)

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            with _translate("head bucket", bucket):
                self.client.head_bucket(Bucket=bucket)
        except ObjectNotFoundError:
            return False
        return True

    def _create_bucket(self, bucket: str) -> None:
        # us-east-1 is the one region that refuses an explicit LocationConstraint.
        location = (
            {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        try:
            with _translate("create bucket", bucket):
                self.client.create_bucket(Bucket=bucket, **location)
        except StorageError as exc:
            # Lost a race with another replica; an existing bucket of someone else's stays an error.
            if exc.details.get("s3_code") != "BucketAlreadyOwnedByYou":
                raise

    def check_ready(self, buckets: Iterable[str]) -> None:
        for bucket in buckets:
            with _translate("head bucket", bucket):
                self.client.head_bucket(Bucket=bucket)
