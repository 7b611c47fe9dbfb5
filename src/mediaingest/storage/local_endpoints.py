"""The HTTP side of the local backend: serves the URLs `LocalStorage` signs, speaking S3's protocol.

    PUT  /storage/{bucket}/{key}                          a whole object (presign_put)
    PUT  /storage/{bucket}/{key}?uploadId=…&partNumber=…  one part of a multipart upload
    GET  /storage/{bucket}/{key}                          a download (presign_get), Range supported
    HEAD /storage/{bucket}/{key}                          the same URL as GET, headers only
    OPTIONS                                               CORS preflight for browser uploads

Like S3: a PUT answers 200 with `ETag: "<md5>"`, errors are `<Error><Code>…</Code><Message>…</Message>`
XML (SignatureDoesNotMatch, AccessDenied, BadDigest, IncompleteBody, NoSuchKey, …), and the client
needs nothing but the URL and the headers it was given. The signature and expiry are checked before
any byte of the body is read; the body is streamed to a temp file in the store (never held in
memory), hashed on the way, and moved into place only once its size and checksum are right.

Mount with `app.include_router(router)` and set `app.state.storage` to the app's `LocalStorage`.
Responses carry permissive CORS headers (`*`, no credentials): a signed URL is itself the credential,
as with S3 buckets configured for direct browser uploads.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import replace
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mediaingest.exceptions import MediaIngestError, ObjectNotFoundError, SignatureError, StorageError
from mediaingest.logging import get_logger
from mediaingest.storage import signing
from mediaingest.storage.base import ObjectInfo
from mediaingest.storage.encoding import decode_metadata, encode_metadata
from mediaingest.storage.errors import InvalidKeyError, InvalidPartError, PreconditionFailedError
from mediaingest.storage.local import LocalStorage, ObjectWriter

log = get_logger(__name__)

router = APIRouter(prefix="/storage", tags=["storage"], include_in_schema=False)

# Received chunks are small (uvicorn hands over ~64 KiB); writing and hashing them in batches of
# this size, off the event loop, keeps the loop free without a thread hop per chunk. Each upload
# stream holds one such buffer for its whole life, so memory follows the number of concurrent
# uploads, never their size.
WRITE_BATCH = 256 * 1024
META_PREFIX = "x-amz-meta-"
CHECKSUM_HEADER = "x-amz-checksum-sha256"
_DECIMAL = re.compile(r"[0-9]{1,19}")  # ASCII digits only, and few enough to fit a signed 64-bit int

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag, Content-Range, Accept-Ranges, x-amz-checksum-sha256",
}


class S3Error(Exception):
    """An error answered the way S3 answers it."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def _error_response(error: S3Error) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message></Error>"
    )
    return Response(body, status_code=error.status_code, media_type="application/xml", headers=CORS_HEADERS)


# Our error tree to S3's codes, the first class that matches answering; an error that names S3's
# code itself (`details["s3_code"]`: NoSuchUpload, NoSuchBucket…) is answered with that code.
_S3_ANSWERS: tuple[tuple[type[MediaIngestError], int, str], ...] = (
    (SignatureError, 403, "SignatureDoesNotMatch"),
    (ObjectNotFoundError, 404, "NoSuchKey"),
    (InvalidKeyError, 400, "InvalidArgument"),
    (InvalidPartError, 400, "InvalidPart"),
    (PreconditionFailedError, 412, "PreconditionFailed"),
)


def _translate(exc: MediaIngestError) -> S3Error:
    """Our error tree to S3's codes. Messages are ours, written for clients: no paths, no secrets."""
    if isinstance(exc, SignatureError) and exc.details.get("reason") == "expired":
        return S3Error(403, "AccessDenied", "Request has expired")
    for error_class, status_code, code in _S3_ANSWERS:
        if isinstance(exc, error_class):
            return S3Error(status_code, str(exc.details.get("s3_code", code)), exc.message)
    return S3Error(500, "InternalError", "We encountered an internal error. Please try again.")


def _local_storage(request: Request) -> LocalStorage:
    storage = getattr(request.app.state, "storage", None)
    if not isinstance(storage, LocalStorage):
        # Mounted while STORAGE_BACKEND=s3: there is nothing here to serve.
        raise S3Error(404, "NoSuchBucket", "The local storage backend is not enabled.")
    return storage


def _int_param(value: str | None) -> int | None:
    """Query integers; anything unparsable becomes None, which then fails signature verification."""
    if value is None or not _DECIMAL.fullmatch(value):
        return None
    return int(value)


def _signature(request: Request) -> str:
    return request.query_params.get(signing.SIGNATURE_PARAM, "")


async def _check_upload_open(request: Request, bucket: str, key: str) -> None:
    """Refuses bytes for an upload that is no longer waiting for them (confirmed, failed, expired or
    deleted), before any byte is read. `app.state.upload_gate(bucket, key) -> bool` is the app's
    answer (the asset service's); without one, as in a bare storage app, every signed PUT is open."""
    gate = getattr(request.app.state, "upload_gate", None)
    if gate is not None and not await run_in_threadpool(gate, bucket, key):
        raise S3Error(403, "AccessDenied", "This upload is closed: the asset no longer accepts bytes.")


class _WriteBatch:
    """Received chunks, copied into one buffer allocated up front and reused, written off the event loop
    whenever it is full.

    Growing and dropping a fresh buffer per batch leaves freed megabytes scattered over malloc's
    per-thread arenas, which is how a service's RSS creeps up under many concurrent uploads.
    """

    def __init__(self, writer: ObjectWriter) -> None:
        self.writer = writer
        self.view = memoryview(bytearray(WRITE_BATCH))
        self.filled = 0

    async def add(self, chunk: bytes) -> None:
        offset = 0
        while offset < len(chunk):
            taken = min(len(chunk) - offset, WRITE_BATCH - self.filled)
            self.view[self.filled : self.filled + taken] = chunk[offset : offset + taken]
            self.filled += taken
            offset += taken
            if self.filled == WRITE_BATCH:
                await self.flush()

    async def flush(self) -> None:
        if self.filled:
            await run_in_threadpool(self.writer.write, self.view[: self.filled])
            self.filled = 0


async def _receive_body(request: Request, writer: ObjectWriter, *, limit: int) -> None:
    """Streams the body into `writer`, stopping as soon as it exceeds `limit` bytes."""
    batch = _WriteBatch(writer)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise S3Error(400, "EntityTooLarge", "The body is longer than the signed size.")
        await batch.add(chunk)
    await batch.flush()


def _signed_put(request: Request, bucket: str, key: str) -> tuple[signing.SignedRequest, dict[str, str]]:
    """What the PUT's URL signs, read from its query and headers, and the object metadata it carries."""
    query, headers = request.query_params, request.headers
    metadata = {name[len(META_PREFIX) :]: value for name, value in headers.items() if name.startswith(META_PREFIX)}
    signed = signing.SignedRequest(
        method="PUT",
        bucket=bucket,
        key=key,
        expires=_int_param(query.get(signing.EXPIRES_PARAM)),
        size=_int_param(query.get(signing.SIZE_PARAM)),
        checksum_sha256=headers.get(CHECKSUM_HEADER),
        upload_id=query.get(signing.UPLOAD_ID_PARAM),
        part_number=_int_param(query.get(signing.PART_NUMBER_PARAM)),
    )
    if signing.UPLOAD_ID_PARAM in query or signing.PART_NUMBER_PARAM in query:
        return signed, metadata  # a part signs neither type nor metadata (S3 takes them at create time)
    whole = replace(
        signed, content_type=headers.get("content-type"), metadata=metadata, if_none_match=headers.get("if-none-match")
    )
    return whole, metadata


def _declared_size(request: Request, signed: signing.SignedRequest) -> int:
    """The body's size: the signed one, which Content-Length must state."""
    if signed.size is None:  # only signed URLs get here, and every signed PUT carries its size
        raise S3Error(400, "InvalidArgument", "The signed URL carries no size.")
    declared = request.headers.get("content-length")
    if declared is None:
        raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
    if _int_param(declared) != signed.size:
        raise S3Error(400, "IncompleteBody", "Content-Length differs from the signed size.")
    return signed.size


async def _commit(
    storage: LocalStorage, writer: ObjectWriter, signed: signing.SignedRequest, metadata: dict[str, str]
) -> str:
    """Stores what was received as the part or the object the URL names; returns its ETag."""
    if signed.upload_id is not None and signed.part_number is not None:
        return await run_in_threadpool(
            storage.commit_part,
            writer,
            signed.bucket,
            signed.key,
            upload_id=signed.upload_id,
            part_number=signed.part_number,
        )
    info = await run_in_threadpool(
        lambda: storage.commit_object(
            writer,
            signed.bucket,
            signed.key,
            content_type=signed.content_type,
            metadata=decode_metadata(metadata),
            if_none_match=signed.if_none_match == "*",
        )
    )
    return info.etag


@router.put("/{bucket}/{key:path}")
async def put_object(bucket: str, key: str, request: Request) -> Response:
    try:
        return await _put(request, bucket, key)
    except S3Error as exc:
        return _error_response(exc)
    except ClientDisconnect:
        # The client went away mid-body: nothing is stored, and nobody is left to answer.
        log.info("storage.local_put_disconnected", bucket=bucket, key=key)
        return _error_response(S3Error(400, "IncompleteBody", "The client disconnected."))
    except MediaIngestError as exc:
        error = _translate(exc)
        if error.status_code >= 500:
            log.warning("storage.local_put_failed", bucket=bucket, key=key, error=exc.message)
        return _error_response(error)
    except Exception:
        # Still an S3-shaped answer for the client; the traceback goes to our log only.
        log.exception("storage.local_put_crashed", bucket=bucket, key=key)
        return _error_response(S3Error(500, "InternalError", "We encountered an internal error."))


async def _put(request: Request, bucket: str, key: str) -> Response:
    """A signed PUT of an object or a part, as S3 answers it; errors are raised for `put_object` to render."""
    storage = _local_storage(request)
    signed, metadata = _signed_put(request, bucket, key)
    storage.verify(signed, _signature(request))
    await _check_upload_open(request, bucket, key)
    if metadata and signed.upload_id is not None:
        raise S3Error(400, "InvalidArgument", "Parts take no metadata; give it when the upload starts.")
    size = _declared_size(request, signed)
    writer = await run_in_threadpool(storage.new_writer)
    try:
        await _receive_body(request, writer, limit=size)
        if writer.size != size:
            raise S3Error(400, "IncompleteBody", "The body is shorter than the signed size.")
        checksum_headers = _checked_checksum(writer, signed)
        etag = await _commit(storage, writer, signed, metadata)
    finally:
        writer.discard()  # a no-op once committed
    log.info("storage.local_put", bucket=bucket, key=key, size=size, part=signed.part_number)
    return Response(status_code=200, headers={**CORS_HEADERS, **checksum_headers, "ETag": f'"{etag}"'})


def _checked_checksum(writer: ObjectWriter, signed: signing.SignedRequest) -> dict[str, str]:
    """The signed SHA-256 checked against the bytes received; S3 echoes it in its answer."""
    if signed.checksum_sha256 is None:
        return {}
    if not hmac.compare_digest(writer.checksum_sha256_b64, signed.checksum_sha256):
        raise S3Error(400, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")
    return {CHECKSUM_HEADER: signed.checksum_sha256}


@router.api_route("/{bucket}/{key:path}", methods=["GET", "HEAD"])
async def get_object(bucket: str, key: str, request: Request) -> Response:
    """Serves a signed GET URL; HEAD is accepted with the same URL (it reveals less than GET)."""
    try:
        return await _get(request, bucket, key)
    except S3Error as exc:
        return _error_response(exc)
    except MediaIngestError as exc:
        if isinstance(exc, StorageError) and not isinstance(exc, ObjectNotFoundError | InvalidKeyError):
            log.warning("storage.local_get_failed", bucket=bucket, key=key, error=exc.message)
        return _error_response(_translate(exc))


async def _get(request: Request, bucket: str, key: str) -> Response:
    """A signed GET or HEAD, as S3 answers it; errors are raised for `get_object` to render."""
    storage = _local_storage(request)
    disposition = request.query_params.get(signing.DISPOSITION_PARAM)
    signed = signing.SignedRequest(
        method="GET",
        bucket=bucket,
        key=key,
        expires=_int_param(request.query_params.get(signing.EXPIRES_PARAM)),
        content_disposition=disposition,
    )
    storage.verify(signed, _signature(request))
    path, stat, info = await run_in_threadpool(storage.open_for_read, bucket, key)
    if not _matches(request.headers.get("if-match"), info.etag):
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    # FileResponse streams in chunks and answers Range (206, Content-Range, 416) and HEAD itself; it
    # keeps our ETag (its own is only a default) and takes the stat that matches the sidecar.
    return FileResponse(
        path,
        media_type=info.content_type or "application/octet-stream",
        headers=_download_headers(info, disposition),
        stat_result=stat,
    )


def _download_headers(info: ObjectInfo, disposition: str | None) -> dict[str, str]:
    # The type recorded at upload (signed, and checked against the bytes at confirm), never a sniffed
    # one: nosniff stops a browser from rendering a polyglot (a JPEG with HTML appended) as a page.
    headers = {**CORS_HEADERS, "ETag": f'"{info.etag}"', "X-Content-Type-Options": "nosniff"}
    headers.update({f"{META_PREFIX}{name}": value for name, value in encode_metadata(info.metadata).items()})
    if disposition:
        headers["Content-Disposition"] = disposition
    return headers


def _matches(expected: str | None, etag: str) -> bool:
    """If-Match, as S3 answers it: a reader pinned to the bytes it verified gets 412 for any others."""
    if not expected or expected.strip() == "*":
        return True
    return expected.strip().strip('"').lower() == etag.lower()


@router.options("/{bucket}/{key:path}")
async def preflight(bucket: str, key: str, request: Request) -> Response:
    """CORS preflight: any origin may send the signed request; the signature decides the rest."""
    requested = request.headers.get("access-control-request-headers")
    headers = {
        **CORS_HEADERS,
        "Access-Control-Allow-Methods": "GET, HEAD, PUT",
        "Access-Control-Max-Age": "3600",
    }
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    return Response(status_code=200, headers=headers)
