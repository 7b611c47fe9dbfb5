"""Sending a file's bytes to the signed URLs of an upload ticket: one PUT, or parts in parallel.

Storage requests use their own HTTP client that never carries the API token: a signed URL is its own
credential, and the store (S3, or whoever runs it) has no business seeing our bearer token. Each PUT is
retried with exponential backoff and jitter on connection errors, timeouts, 5xx, 408 and 429; any other
4xx (an expired or tampered signature, a wrong size) is final. Memory stays bounded: a part is read
when its turn comes (concurrency × part size at most), a single PUT streams from disk.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from mediaingest.assets.schemas import ConfirmedPart, ConfirmUploadRequest, UploadUrlResponse
from mediaingest.client.errors import TransferError
from mediaingest.retry import RetryPolicy

ProgressCallback = Callable[[int], None]  # called with the number of bytes newly sent (negative on a retry)

CHUNK = 256 * 1024
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")


# Part PUTs: 4 attempts, 0.5 s, 1 s, 2 s apart (± 25 %).
PART_RETRY = RetryPolicy(max_attempts=4, base_seconds=0.5, max_seconds=8.0)


def _file_chunks(path: Path, start: int, length: int, sent: ProgressCallback) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                raise TransferError(f"{path.name} is shorter than announced; was it changed during the upload?")
            remaining -= len(chunk)
            yield chunk
            sent(len(chunk))  # after the chunk went to the socket, so progress never runs ahead


def _md5_of(path: Path, start: int, size: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in _file_chunks(path, start, size, lambda _n: None):
        digest.update(chunk)
    return digest.hexdigest()


def _refusal(response: httpx.Response) -> TransferError:
    match = _S3_CODE.search(response.text[:2000])
    code = match.group(1) if match else None
    if code in ("AccessDenied", "SignatureDoesNotMatch"):
        message = "the upload URL expired or was refused; upload the file again"
    else:
        message = f"storage answered {response.status_code}" + (f" ({code})" if code else "")
    return TransferError(message, status_code=response.status_code, retryable=response.status_code in _RETRYABLE_STATUS)


class Transfer:
    def __init__(
        self,
        http: httpx.Client,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.http = http
        self.concurrency = max(1, concurrency)
        self.retry = retry or PART_RETRY
        self.on_retry = on_retry  # (part number, attempt that failed, why)
        self._lock = threading.Lock()

    def send(
        self, path: Path, ticket: UploadUrlResponse, on_progress: ProgressCallback | None = None
    ) -> ConfirmUploadRequest:
        """PUTs the file per the ticket; returns the body that confirms it."""
        progress = on_progress or (lambda _n: None)

        def report(count: int) -> None:
            with self._lock:  # parts report from several threads; the callback need not be thread-safe
                progress(count)

        if ticket.multipart is None:
            assert ticket.upload_url is not None
            size = path.stat().st_size
            etag = self._put(ticket.upload_url, ticket.headers, path, 0, size, 1, report)
            return ConfirmUploadRequest.model_validate({"asset_id": ticket.asset_id, "etag": etag}, by_name=True)

        multipart = ticket.multipart
        stop = threading.Event()

        def one(part_number: int, url: str, headers: dict[str, str], size: int) -> ConfirmedPart:
            if stop.is_set():  # another part failed for good: don't start more
                raise TransferError("upload abandoned")
            try:
                start = (part_number - 1) * multipart.part_size
                etag = self._put(url, headers, path, start, size, part_number, report)
                return ConfirmedPart.model_validate({"part_number": part_number, "etag": etag}, by_name=True)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(multipart.parts))) as pool:
            futures = [pool.submit(one, p.part_number, p.url, p.headers, p.size) for p in multipart.parts]
            results, first_error = [], None
            for future in futures:
                try:
                    results.append(future.result())
                except BaseException as error:
                    first_error = first_error or error
        if first_error is not None:
            raise first_error
        return ConfirmUploadRequest.model_validate({"asset_id": ticket.asset_id, "parts": results}, by_name=True)

    def _put(
        self,
        url: str,
        headers: dict[str, str],
        path: Path,
        start: int,
        size: int,
        part_number: int,
        report: ProgressCallback,
    ) -> str:
        for attempt in range(1, self.retry.max_attempts + 1):
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                report(n)

            # Content-Length given explicitly: httpx then streams without chunked encoding, as storage needs.
            request_headers = {**headers, "Content-Length": str(size)}
            try:
                response = self.http.put(url, content=_file_chunks(path, start, size, count), headers=request_headers)
                if 200 <= response.status_code < 300:
                    etag = response.headers.get("etag")
                    if not etag:
                        raise TransferError("storage answered without an ETag header")
                    return etag
                if response.status_code == 412 and attempt > 1 and headers.get("If-None-Match") == "*":
                    # A single-write URL refusing our retry: the earlier attempt did land (its answer
                    # was lost). A single PUT's ETag is the MD5 of its bytes; confirm checks it.
                    report(size - sent)
                    return _md5_of(path, start, size)
                error = _refusal(response)
            except httpx.TransportError as exc:
                error = TransferError(f"{type(exc).__name__}: {exc or 'connection failed'}", retryable=True)
            report(-sent)  # what this attempt sent does not count any more
            if not error.retryable or attempt == self.retry.max_attempts:
                if error.retryable:
                    raise TransferError(f"{error} (gave up after {attempt} attempts)", status_code=error.status_code)
                raise error
            if self.on_retry is not None:
                self.on_retry(part_number, attempt, str(error))
            time.sleep(self.retry.backoff(attempt))
        raise AssertionError("unreachable")
