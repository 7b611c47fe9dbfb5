"""The embedded default backend: objects as files under DATA_DIR/storage, signed URLs served by the app.

Layout under `root`:

    {bucket}/{key}                 the object's bytes, exactly
    .meta/{bucket}/{key}.json      its sidecar: size, etag, sha256, content type, user metadata
    .uploads/{upload_id}/          a multipart upload: upload.json, one file per part (00001, …) and
                                   its sidecar (00001.json: size, ETag, SHA-256)
    .tmp/                          bytes still arriving; same filesystem, so os.replace is atomic
    .locks/{bucket}.lock           flock that makes the (sidecar, object) pair change as one

Bucket names follow S3's rules, so they never collide with the dot-folders.

Crash safety: bytes are written to `.tmp`, fsynced, then moved into place with os.replace, sidecar
first and object second. The object file appearing is the commit point; a sidecar whose size differs
from the file (a crash between the two renames) makes the object read as absent rather than wrong.
Readers take the bucket lock shared and writers exclusive, so a live overwrite is never seen half-done.

Signed URLs point at `{public_url}/storage/{bucket}/{key}` and are checked by
`mediaingest.storage.local_endpoints` with `verify()` below (see `signing` for what they cover).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import quote, urlencode

from mediaingest.config import Settings
from mediaingest.exceptions import ObjectNotFoundError, StorageError
from mediaingest.logging import get_logger
from mediaingest.storage import signing
from mediaingest.storage.base import CompletedPart, ObjectInfo, PartInfo, PresignedRequest, Storage
from mediaingest.storage.encoding import content_disposition, encode_metadata, sha256_hex_to_b64
from mediaingest.storage.errors import InvalidKeyError, InvalidPartError, PreconditionFailedError

log = get_logger(__name__)

CHUNK_SIZE = 256 * 1024  # per concurrent copy; larger reads bought no throughput (measured)
MAX_KEY_BYTES = 1024  # S3's limit
MAX_PART_NUMBER = 10_000  # S3's limit
MAX_EXPIRES_IN = 7 * 24 * 3600  # S3's limit for SigV4 presigned URLs; kept for parity
STALE_TEMP_SECONDS = 24 * 3600  # longer than any upload URL lives

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_REFUSED_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters, and the Windows separator


def validate_bucket(bucket: str) -> None:
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise InvalidKeyError("Invalid bucket name.", details={"bucket": bucket[:64]})


def validate_key(key: str) -> None:
    """Keys are relative paths of plain names: no traversal, no absolute paths, no control characters.

    Empty segments (`a//b`, a trailing `/`) are refused as well: the filesystem would fold them
    into another key.
    """
    if (
        len(key.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES
        or _REFUSED_KEY_CHARS.search(key)
        # also refuses an empty key and an absolute path: both start with an empty segment
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise InvalidKeyError("Invalid object key.")


def _validate_upload_id(upload_id: str) -> None:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ObjectNotFoundError("No such multipart upload.", details={"s3_code": "NoSuchUpload"})


def _validate_expires_in(expires_in: int) -> None:
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds")


def _append_part(directory: Path, part: CompletedPart, writer: ObjectWriter, buffer: memoryview) -> bytes:
    """Appends an uploaded part to `writer`, checking it is the one the client named; returns its MD5."""
    part_md5 = hashlib.md5(usedforsecurity=False)
    try:
        handle = open(directory / f"{part.part_number:05d}", "rb", buffering=0)  # noqa: SIM115
    except FileNotFoundError:
        raise InvalidPartError(f"Part {part.part_number} was not uploaded.") from None
    with handle:
        for chunk in _chunks(handle, buffer):
            part_md5.update(chunk)
            writer.write(chunk)
    if part_md5.hexdigest() != _normalize_etag(part.etag):
        raise InvalidPartError(f"The ETag of part {part.part_number} does not match.")
    return part_md5.digest()


def _remove_empty_parents(path: Path, *, top: Path) -> None:
    """Removes the folders holding `path`, nearest first, while they are empty; never `top` or above it."""
    parent = path.parent
    while parent != top and parent.is_relative_to(top):
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _fsync_and_close(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _normalize_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _chunks(handle: io.FileIO, buffer: memoryview | None = None) -> Iterator[memoryview]:
    """The file's bytes as views of one reused buffer, each valid until the next is taken.

    No allocation per chunk: concurrent copies then cost a buffer each, whatever the size of the
    file, instead of leaving freed megabytes scattered over malloc's per-thread arenas.
    """
    buffer = buffer if buffer is not None else memoryview(bytearray(CHUNK_SIZE))
    while count := handle.readinto(buffer):
        yield buffer[:count]


class ObjectWriter:
    """A temp file in the store that hashes (MD5, SHA-256) and counts what is written to it.

    `LocalStorage.commit_object` / `commit_part` move it into place; `discard` (also on leaving the
    `with` block without a commit) removes it, so nothing half-written ever stays behind.
    """

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="incoming-")
        self.path = Path(name)
        self._handle: IO[bytes] | None = os.fdopen(fd, "wb")
        # Once handed over, the temp name is no longer ours: another writer may be given it.
        self._handed_over = False
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)  # the S3 ETag, not a security property
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._handle is None:
            raise StorageError("Write after the object was committed or discarded.")
        self._handle.write(data)
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)

    @property
    def checksum_sha256_b64(self) -> str:
        return base64.b64encode(self.sha256.digest()).decode("ascii")

    def _hand_over(self) -> Path:
        """Flushes to disk and gives the file to the caller, who renames it or deletes it."""
        if self._handle is None:
            raise StorageError("The object was already committed or discarded.")
        _fsync_and_close(self._handle)
        self._handle = None
        self._handed_over = True
        return self.path

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if not self._handed_over:
            self._handed_over = True
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.discard()


@dataclass(frozen=True)
class _Upload:
    """What create_multipart_upload recorded, read back from upload.json."""

    bucket: str
    key: str
    content_type: str
    metadata: dict[str, str]


class LocalStorage(Storage):
    """Files under `root`, signed URLs under `{public_url}/storage/`, HMAC-SHA256 with `secret`.

    `clock` returns unix seconds; tests pass their own to expire URLs without sleeping.
    """

    def __init__(self, root: Path, *, secret: bytes, public_url: str, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the local storage signing secret must not be empty")
        self.root = Path(root).resolve()
        self.public_url = public_url.rstrip("/")
        self._secret = secret
        self._clock = clock
        self._meta_root = self.root / ".meta"
        self._uploads_root = self.root / ".uploads"
        self._tmp_root = self.root / ".tmp"
        self._locks_root = self.root / ".locks"
        for directory in (self._meta_root, self._uploads_root, self._tmp_root, self._locks_root):
            directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        """Bytes left in .tmp by a crashed process. Only old ones: other processes share the folder."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in self._tmp_root.iterdir():
            with suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStorage:
        return cls(
            settings.data_dir / "storage",
            secret=settings.storage_secret(),
            public_url=settings.resolved_public_url,
        )

    # --- paths ----------------------------------------------------------------------------------
    def _bucket_dir(self, bucket: str) -> Path:
        validate_bucket(bucket)
        return self.root / bucket

    def _existing_bucket_dir(self, bucket: str) -> Path:
        directory = self._bucket_dir(bucket)
        if not directory.is_dir():
            raise ObjectNotFoundError("No such bucket.", details={"s3_code": "NoSuchBucket"})
        return directory

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        """(object path, sidecar path), refusing any key that would resolve outside its bucket."""
        bucket_dir = self._bucket_dir(bucket)
        validate_key(key)
        object_path = bucket_dir / key
        meta_dir = self._meta_root / bucket
        meta_path = meta_dir / f"{key}.json"
        # Symlinks planted inside the tree must not lead out of it either.
        for path, base in ((object_path, bucket_dir), (meta_path, meta_dir)):
            if not path.resolve().is_relative_to(base.resolve()):
                raise InvalidKeyError("Invalid object key.")
        return object_path, meta_path

    def _upload_dir(self, upload_id: str) -> Path:
        _validate_upload_id(upload_id)
        return self._uploads_root / upload_id

    @contextmanager
    def _bucket_lock(self, bucket: str, *, exclusive: bool) -> Iterator[None]:
        with open(self._locks_root / f"{bucket}.lock", "ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield  # closing the file releases the lock

    @contextmanager
    def _os_errors(self, operation: str) -> Iterator[None]:
        """OS errors become StorageError; the message names the operation, never a path or secret."""
        try:
            yield
        except OSError as exc:
            log.warning("storage.local_os_error", operation=operation, error=type(exc).__name__)
            raise StorageError(f"Local storage {operation} failed ({type(exc).__name__}).") from exc

    # --- signed URLs ----------------------------------------------------------------------------
    def _url(self, bucket: str, key: str, params: dict[str, str]) -> str:
        return f"{self.public_url}/storage/{quote(bucket)}/{quote(key, safe='/')}?{urlencode(params)}"

    def _expiry(self, expires_in: int) -> tuple[int, datetime]:
        _validate_expires_in(expires_in)
        expires = int(self._clock()) + expires_in
        return expires, datetime.fromtimestamp(expires, UTC)

    def verify(self, request: signing.SignedRequest, signature: str) -> None:
        """Raises SignatureError unless `signature` grants `request` now."""
        signing.verify(self._secret, request, signature, now=self._clock())

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
        self._paths(bucket, key)
        if size < 0:
            raise ValueError("size must not be negative")
        expires, expires_at = self._expiry(expires_in)
        encoded = encode_metadata(metadata)
        checksum = sha256_hex_to_b64(sha256) if sha256 else None
        request = signing.SignedRequest(
            method="PUT",
            bucket=bucket,
            key=key,
            expires=expires,
            size=size,
            content_type=content_type,
            checksum_sha256=checksum,
            metadata=encoded,
            if_none_match=None if replace else "*",
        )
        params = {signing.EXPIRES_PARAM: str(expires), signing.SIZE_PARAM: str(size)}
        params[signing.SIGNATURE_PARAM] = signing.sign(self._secret, request)
        return PresignedRequest(self._url(bucket, key, params), "PUT", signing.put_headers(request), expires_at)

    def presign_get(self, bucket: str, key: str, *, expires_in: int, download_name: str | None = None) -> str:
        self._paths(bucket, key)
        expires, _ = self._expiry(expires_in)
        disposition = content_disposition(download_name) if download_name else None
        request = signing.SignedRequest(
            method="GET", bucket=bucket, key=key, expires=expires, content_disposition=disposition
        )
        params = {signing.EXPIRES_PARAM: str(expires)}
        if disposition:
            params[signing.DISPOSITION_PARAM] = disposition
        params[signing.SIGNATURE_PARAM] = signing.sign(self._secret, request)
        return self._url(bucket, key, params)

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The object's own file: ffmpeg reads it in place."""
        object_path, _, _ = self._stat_and_sidecar(bucket, key)
        return object_path

    # --- writing --------------------------------------------------------------------------------
    def new_writer(self) -> ObjectWriter:
        with self._os_errors("write"):
            return ObjectWriter(self._tmp_root)

    def commit_object(
        self,
        writer: ObjectWriter,
        bucket: str,
        key: str,
        *,
        content_type: str | None,
        metadata: dict[str, str],
        etag: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo:
        """Makes the writer's bytes the object `bucket/key`, atomically. `etag` defaults to the MD5.

        `if_none_match`: only if no object is there yet (checked under the bucket lock, so two
        single-write uploads racing for one key cannot both win); else PreconditionFailedError.
        """
        object_path, meta_path = self._paths(bucket, key)
        self._existing_bucket_dir(bucket)
        info = ObjectInfo(
            bucket=bucket,
            key=key,
            size=writer.size,
            etag=etag or writer.md5.hexdigest(),
            content_type=content_type,
            sha256=writer.sha256.hexdigest(),
            metadata=dict(metadata),
        )
        sidecar = {
            "size": info.size,
            "etag": info.etag,
            "sha256": info.sha256,
            "content_type": info.content_type,
            "metadata": info.metadata,
            "created_at": datetime.now(UTC).isoformat(),
        }
        with self._os_errors("write"):
            data_path = writer._hand_over()
            meta_tmp = data_path.with_name(f"{data_path.name}.json")
            try:
                with open(meta_tmp, "wb") as handle:
                    handle.write(json.dumps(sidecar).encode())
                    handle.flush()
                    os.fsync(handle.fileno())
                with self._bucket_lock(bucket, exclusive=True):
                    object_path.parent.mkdir(parents=True, exist_ok=True)
                    meta_path.parent.mkdir(parents=True, exist_ok=True)
                    if object_path.is_dir():
                        raise IsADirectoryError("the key is a prefix of other keys")
                    if if_none_match and object_path.exists():
                        raise PreconditionFailedError(
                            "At least one of the pre-conditions you specified did not hold.",
                            details={"s3_code": "PreconditionFailed"},
                        )
                    os.replace(meta_tmp, meta_path)
                    os.replace(data_path, object_path)
            except BaseException:
                # Only on failure: after the renames these names may already belong to other writers.
                meta_tmp.unlink(missing_ok=True)
                data_path.unlink(missing_ok=True)
                raise
        return info

    def upload_file(self, bucket: str, key: str, source: Path, *, content_type: str) -> ObjectInfo:
        self._paths(bucket, key)
        with self._os_errors("upload"), self.new_writer() as writer, open(source, "rb", buffering=0) as handle:
            for chunk in _chunks(handle):
                writer.write(chunk)
            return self.commit_object(writer, bucket, key, content_type=content_type, metadata={})

    # --- multipart ------------------------------------------------------------------------------
    def create_multipart_upload(self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        self._paths(bucket, key)
        self._existing_bucket_dir(bucket)
        encode_metadata(metadata)  # same name rules as S3 and presign_put, checked now
        upload_id = uuid.uuid4().hex
        manifest = {"bucket": bucket, "key": key, "content_type": content_type, "metadata": metadata}
        with self._os_errors("create multipart upload"):
            # Built aside and renamed in, so an upload id never names a folder without its manifest.
            staging = Path(tempfile.mkdtemp(dir=self._tmp_root, prefix="upload-"))
            try:
                (staging / "upload.json").write_text(json.dumps(manifest))
                os.replace(staging, self._upload_dir(upload_id))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return upload_id

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
        self._paths(bucket, key)
        _validate_upload_id(upload_id)
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise ValueError(f"part_number must be between 1 and {MAX_PART_NUMBER}")
        if size < 0:
            raise ValueError("size must not be negative")
        expires, expires_at = self._expiry(expires_in)
        checksum = sha256_hex_to_b64(sha256) if sha256 else None
        request = signing.SignedRequest(
            method="PUT",
            bucket=bucket,
            key=key,
            expires=expires,
            size=size,
            checksum_sha256=checksum,
            upload_id=upload_id,
            part_number=part_number,
        )
        params = {
            signing.UPLOAD_ID_PARAM: upload_id,
            signing.PART_NUMBER_PARAM: str(part_number),
            signing.EXPIRES_PARAM: str(expires),
            signing.SIZE_PARAM: str(size),
            signing.SIGNATURE_PARAM: signing.sign(self._secret, request),
        }
        return PresignedRequest(self._url(bucket, key, params), "PUT", signing.put_headers(request), expires_at)

    def _read_upload(self, directory: Path, bucket: str, key: str) -> _Upload:
        try:
            manifest = json.loads((directory / "upload.json").read_text())
        except FileNotFoundError:
            manifest = None
        if not manifest or manifest["bucket"] != bucket or manifest["key"] != key:
            raise ObjectNotFoundError("No such multipart upload.", details={"s3_code": "NoSuchUpload"})
        return _Upload(bucket, key, manifest["content_type"], manifest["metadata"])

    def commit_part(self, writer: ObjectWriter, bucket: str, key: str, *, upload_id: str, part_number: int) -> str:
        """Stores the writer's bytes as one part (replacing an earlier upload of it); returns its ETag."""
        directory = self._upload_dir(upload_id)
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise InvalidPartError("Part number out of range.")
        etag = writer.md5.hexdigest()
        sidecar = {"size": writer.size, "etag": etag, "sha256": writer.sha256.hexdigest()}
        with self._os_errors("write part"):
            self._read_upload(directory, bucket, key)
            data_path = writer._hand_over()
            sidecar_tmp = data_path.with_name(f"{data_path.name}.json")
            try:
                sidecar_tmp.write_text(json.dumps(sidecar))
                # Bytes first, sidecar second: a crash between them leaves a part whose sidecar
                # disagrees on the size (or is missing), which list_parts reports as not received.
                os.replace(data_path, directory / f"{part_number:05d}")
                os.replace(sidecar_tmp, directory / f"{part_number:05d}.json")
            except BaseException as exc:
                data_path.unlink(missing_ok=True)
                sidecar_tmp.unlink(missing_ok=True)
                if isinstance(exc, FileNotFoundError):  # aborted or completed meanwhile
                    raise ObjectNotFoundError(
                        "No such multipart upload.", details={"s3_code": "NoSuchUpload"}
                    ) from None
                raise
        return etag

    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]:
        self._paths(bucket, key)
        directory = self._upload_dir(upload_id)
        parts: list[PartInfo] = []
        with self._os_errors("list parts"):
            self._read_upload(directory, bucket, key)
            for entry in sorted(directory.glob("[0-9]" * 5)):
                try:
                    stat = entry.stat()
                    sidecar = json.loads(entry.with_name(f"{entry.name}.json").read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    continue  # replaced or written just now, or torn by a crash: not received
                if sidecar.get("size") != stat.st_size:
                    continue
                parts.append(
                    PartInfo(
                        part_number=int(entry.name),
                        size=stat.st_size,
                        etag=sidecar["etag"],
                        last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                        sha256=sidecar["sha256"],
                    )
                )
        return parts

    def complete_multipart_upload(
        self, bucket: str, key: str, *, upload_id: str, parts: list[CompletedPart]
    ) -> ObjectInfo:
        """Assembles the named parts in order, checking each part's ETag, into the object.

        The upload folder is first renamed aside, so concurrent completes cannot both assemble it
        and part PUTs arriving meanwhile are refused; on a bad part list it is renamed back and the
        upload stays open, as on S3.
        """
        directory = self._upload_dir(upload_id)
        self._paths(bucket, key)
        claimed = directory.with_name(f"{upload_id}.completing")
        try:
            os.rename(directory, claimed)
        except FileNotFoundError:
            raise ObjectNotFoundError("No such multipart upload.", details={"s3_code": "NoSuchUpload"}) from None
        try:
            upload = self._read_upload(claimed, bucket, key)
            info = self._assemble(claimed, upload, parts)
        except BaseException:
            with suppress(OSError):
                os.rename(claimed, directory)
            raise
        shutil.rmtree(claimed, ignore_errors=True)
        return info

    def _assemble(self, directory: Path, upload: _Upload, parts: list[CompletedPart]) -> ObjectInfo:
        numbers = [part.part_number for part in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise InvalidPartError("Parts must be listed once each, in ascending order.")
        with self._os_errors("complete multipart upload"), self.new_writer() as writer:
            part_md5s = hashlib.md5(usedforsecurity=False)
            buffer = memoryview(bytearray(CHUNK_SIZE))  # one for every part of the assembly
            for part in parts:
                part_md5s.update(_append_part(directory, part, writer, buffer))
            etag = f"{part_md5s.hexdigest()}-{len(parts)}"
            return self.commit_object(
                writer,
                upload.bucket,
                upload.key,
                content_type=upload.content_type,
                metadata=upload.metadata,
                etag=etag,
                if_none_match=True,
            )

    def abort_multipart_upload(self, bucket: str, key: str, *, upload_id: str) -> None:
        self._paths(bucket, key)
        if not _UPLOAD_ID.fullmatch(upload_id):
            return  # never issued by this store, so there is nothing to abort
        directory = self._upload_dir(upload_id)
        for candidate in (directory, directory.with_name(f"{upload_id}.completing")):
            try:
                self._read_upload(candidate, bucket, key)
            except ObjectNotFoundError:
                continue  # unknown, finished, or another key's upload: nothing of ours to remove
            with self._os_errors("abort multipart upload"):
                shutil.rmtree(candidate, ignore_errors=True)

    # --- reading --------------------------------------------------------------------------------
    def sha256_of(self, bucket: str, key: str, *, etag: str) -> str:
        info = self.head(bucket, key)  # every object here is hashed as it is written
        if _normalize_etag(info.etag) != _normalize_etag(etag):
            raise PreconditionFailedError(
                "At least one of the pre-conditions you specified did not hold.",
                details={"s3_code": "PreconditionFailed"},
            )
        assert info.sha256 is not None
        return info.sha256

    def _stat_and_sidecar(self, bucket: str, key: str) -> tuple[Path, os.stat_result, dict[str, Any]]:
        self._paths(bucket, key)  # validated before the bucket name names a lock file
        with self._os_errors("read"), self._bucket_lock(bucket, exclusive=False):
            return self._stat_and_sidecar_unlocked(bucket, key)

    def _stat_and_sidecar_unlocked(self, bucket: str, key: str) -> tuple[Path, os.stat_result, dict[str, Any]]:
        """The caller holds the bucket lock (shared at least)."""
        object_path, meta_path = self._paths(bucket, key)
        self._existing_bucket_dir(bucket)
        with self._os_errors("read"):
            try:
                stat = object_path.stat()
                sidecar = json.loads(meta_path.read_text())
            except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
                raise ObjectNotFoundError("No such key.", details={"s3_code": "NoSuchKey"}) from None
        if not object_path.is_file() or sidecar.get("size") != stat.st_size:
            # A directory (the key is only a prefix) or a write torn by a crash: not an object.
            raise ObjectNotFoundError("No such key.", details={"s3_code": "NoSuchKey"})
        return object_path, stat, sidecar

    def open_for_read(self, bucket: str, key: str) -> tuple[Path, os.stat_result, ObjectInfo]:
        """Path, stat and info of an object, consistent with each other, for serving it."""
        object_path, stat, sidecar = self._stat_and_sidecar(bucket, key)
        return object_path, stat, self._info(bucket, key, sidecar)

    @staticmethod
    def _info(bucket: str, key: str, sidecar: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=sidecar["size"],
            etag=sidecar["etag"],
            content_type=sidecar.get("content_type"),
            sha256=sidecar.get("sha256"),
            metadata=dict(sidecar.get("metadata") or {}),
        )

    def head(self, bucket: str, key: str) -> ObjectInfo:
        _, _, sidecar = self._stat_and_sidecar(bucket, key)
        return self._info(bucket, key, sidecar)

    def read_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        object_path, _, _ = self._stat_and_sidecar(bucket, key)
        with self._os_errors("read"), open(object_path, "rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def download_file(self, bucket: str, key: str, destination: Path, *, etag: str | None = None) -> None:
        self._paths(bucket, key)
        with self._os_errors("download"), self._bucket_lock(bucket, exclusive=False):
            object_path, _, sidecar = self._stat_and_sidecar_unlocked(bucket, key)
            if etag is not None and _normalize_etag(str(sidecar["etag"])) != _normalize_etag(etag):
                raise PreconditionFailedError(
                    "The object is not the one the read was pinned to (If-Match).",
                    details={"s3_code": "PreconditionFailed"},
                )
            # Opened under the lock, so the bytes are those the sidecar describes even if replaced
            # later; copyfileobj streams them without holding the object in memory.
            with open(object_path, "rb") as source, open(destination, "wb") as target:
                shutil.copyfileobj(source, target, CHUNK_SIZE)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        bucket_dir = self._existing_bucket_dir(bucket)
        # Walk only below the deepest folder the prefix names (the bucket's own when it names none).
        start = bucket_dir.joinpath(*prefix.split("/")[:-1])
        if not start.resolve().is_relative_to(bucket_dir.resolve()):
            raise InvalidKeyError("Invalid prefix.")
        keys: list[str] = []
        with self._os_errors("list"):
            for directory, _, files in os.walk(start):
                relative = Path(directory).relative_to(bucket_dir)
                for name in files:
                    key = (relative / name).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        # S3 lists in UTF-8 byte order.
        return sorted(keys, key=lambda item: item.encode("utf-8", errors="surrogateescape"))

    # --- deleting -------------------------------------------------------------------------------
    def delete(self, bucket: str, key: str) -> None:
        object_path, meta_path = self._paths(bucket, key)
        bucket_dir = self._existing_bucket_dir(bucket)
        with self._os_errors("delete"), self._bucket_lock(bucket, exclusive=True):
            if object_path.is_dir():
                return  # a prefix, not an object: absent, and deleting absent objects is fine
            object_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            # Prune emptied folders (under the lock, so a writer's fresh folder is never pulled away).
            _remove_empty_parents(object_path, top=bucket_dir)
            _remove_empty_parents(meta_path, top=self._meta_root / bucket)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        if not prefix:
            raise ValueError("delete_prefix needs a non-empty prefix; it would empty the bucket")
        return super().delete_prefix(bucket, prefix)

    # --- lifecycle ------------------------------------------------------------------------------
    def ensure_buckets(self, buckets: Iterable[str]) -> None:
        with self._os_errors("create bucket"):
            for bucket in buckets:
                self._bucket_dir(bucket).mkdir(parents=True, exist_ok=True)
                (self._meta_root / bucket).mkdir(parents=True, exist_ok=True)

    def check_ready(self, buckets: Iterable[str]) -> None:
        for bucket in buckets:
            directory = self._existing_bucket_dir(bucket)
            if not os.access(directory, os.W_OK) or not os.access(self._tmp_root, os.W_OK):
                raise StorageError("Local storage is not writable.")
