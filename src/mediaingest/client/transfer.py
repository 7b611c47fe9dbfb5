"""Sending a file's bytes to the signed URLs of an upload: one PUT, or the missing parts in parallel.

A `TransferPlan` says what is left to send: a fresh ticket (everything), or the answer of the resume
API (the parts storage does not hold yet). With a `sign` callback, each part is hashed before each
attempt and sent on a URL that carries its SHA-256 (the store refuses other bytes), signed just then,
so a part never fails because the URLs of an hour ago expired.

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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mediaingest.assets.schemas import (
    ConfirmedPart,
    ConfirmUploadRequest,
    PresignedPart,
    UploadState,
    UploadUrlResponse,
)
from mediaingest.client.errors import TransferError
from mediaingest.retry import RetryPolicy

ProgressCallback = Callable[[int], None]  # called with the number of bytes newly sent (negative on a retry)

CHUNK = 256 * 1024
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")


# Part PUTs: 4 attempts, 0.5 s, 1 s, 2 s apart (± 25 %).
PART_RETRY = RetryPolicy(max_attempts=4, base_seconds=0.5, max_seconds=8.0)


class _Counted:
    """One attempt's bytes, passed on to the progress callback as they go."""

    def __init__(self, report: ProgressCallback) -> None:
        self.report = report
        self.sent = 0

    def __call__(self, count: int) -> None:
        self.sent += count
        self.report(count)


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


def _digest_of(path: Path, start: int, size: int, algorithm: str) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    for chunk in _file_chunks(path, start, size, lambda _n: None):
        digest.update(chunk)
    return digest.hexdigest()


def md5_of(path: Path, start: int, size: int) -> str:
    """What S3 answers as the ETag of these bytes sent in one PUT."""
    return _digest_of(path, start, size, "md5")


def _confirmed(part_number: int, etag: str) -> ConfirmedPart:
    """A part as the confirmation names it: its number and the ETag storage gave it."""
    return ConfirmedPart.model_validate({"part_number": part_number, "etag": etag}, by_name=True)


SignPart = Callable[[int, str], PresignedPart]  # (part number, SHA-256 hex) → a URL with it signed in


@dataclass(frozen=True)
class TransferPlan:
    """What is left to send of one upload, and what storage already holds."""

    asset_id: str
    upload_url: str | None = None  # a single PUT still to make
    headers: dict[str, str] = field(default_factory=dict)
    single_stored: bool = False  # the single PUT already landed: nothing to send
    part_size: int = 0
    part_count: int = 0
    missing: list[PresignedPart] = field(default_factory=list)
    received: list[ConfirmedPart] = field(default_factory=list)
    received_bytes: int = 0  # of the file, already in storage
    sign: SignPart | None = None

    @property
    def multipart(self) -> bool:
        return self.part_count > 0

    @classmethod
    def from_ticket(cls, ticket: UploadUrlResponse, sign: SignPart | None = None) -> TransferPlan:
        if ticket.multipart is None:
            return cls(asset_id=ticket.asset_id, upload_url=ticket.upload_url, headers=ticket.headers)
        multipart = ticket.multipart
        return cls(
            asset_id=ticket.asset_id,
            part_size=multipart.part_size,
            part_count=len(multipart.parts),
            missing=list(multipart.parts),
            sign=sign,
        )

    @classmethod
    def from_state(cls, state: UploadState, sign: SignPart | None = None) -> TransferPlan:
        if state.upload_id is None:
            return cls(
                asset_id=state.asset_id,
                upload_url=state.upload_url,
                headers=state.headers,
                single_stored=state.complete,
                received_bytes=state.file_size if state.complete else 0,
            )
        received = [_confirmed(p.part_number, p.etag) for p in state.received_parts]
        return cls(
            asset_id=state.asset_id,
            part_size=state.part_size or 0,
            part_count=len(state.received_parts) + len(state.parts),
            missing=list(state.parts),
            received=received,
            received_bytes=sum(p.size for p in state.received_parts),
            sign=sign,
        )


def _refusal(response: httpx.Response) -> TransferError:
    match = _S3_CODE.search(response.text[:2000])
    code = match.group(1) if match else None
    if code in ("AccessDenied", "SignatureDoesNotMatch"):
        message = "the upload URL expired or was refused; upload the file again"
    elif code in ("BadDigest", "XAmzContentChecksumMismatch"):
        # The part's bytes arrived different from the checksum signed for them (damaged on the way,
        # or the file changed meanwhile): this part alone is sent again, hashed afresh.
        return TransferError("storage refused a part whose bytes did not match its checksum", retryable=True)
    else:
        message = f"storage answered {response.status_code}" + (f" ({code})" if code else "")
    return TransferError(message, status_code=response.status_code, retryable=response.status_code in _RETRYABLE_STATUS)


def _results(futures: list[Future[ConfirmedPart]]) -> list[ConfirmedPart]:
    """Every part's result, once all have finished; the first failure among them if one failed."""
    results: list[ConfirmedPart] = []
    first_error: TransferError | None = None
    for future in futures:
        try:
            results.append(future.result())
        except TransferError as error:
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    return results


def _earlier_attempt_landed(response: httpx.Response, *, retried: bool, headers: dict[str, str]) -> bool:
    """A single-write URL refusing our retry: the earlier attempt did land (its answer was lost)."""
    return response.status_code == 412 and retried and headers.get("If-None-Match") == "*"


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
        self, path: Path, plan: TransferPlan | UploadUrlResponse, on_progress: ProgressCallback | None = None
    ) -> ConfirmUploadRequest:
        """PUTs what the plan says is missing; returns the body that confirms the whole upload.

        Ctrl-C stops it cleanly: no new part starts, the parts in flight finish (they are kept and
        count for a resume), then KeyboardInterrupt goes on up.
        """
        if isinstance(plan, UploadUrlResponse):
            plan = TransferPlan.from_ticket(plan)
        progress = on_progress or (lambda _n: None)

        def report(count: int) -> None:
            with self._lock:  # parts report from several threads; the callback need not be thread-safe
                progress(count)

        if plan.multipart:
            return self._send_parts(path, plan, report)
        return self._send_single(path, plan, report)

    def _send_single(self, path: Path, plan: TransferPlan, report: ProgressCallback) -> ConfirmUploadRequest:
        size = path.stat().st_size
        if plan.single_stored:
            etag = md5_of(path, 0, size)
        else:
            assert plan.upload_url is not None
            url, headers = plan.upload_url, plan.headers
            etag = self._put(lambda: (url, headers), path, 0, size, 1, report)
        return ConfirmUploadRequest.model_validate({"asset_id": plan.asset_id, "etag": etag}, by_name=True)

    def _send_parts(self, path: Path, plan: TransferPlan, report: ProgressCallback) -> ConfirmUploadRequest:
        """The missing parts, `concurrency` at once; a part that fails for good stops those not started."""
        stop = threading.Event()
        sign = plan.sign

        def one(part: PresignedPart) -> ConfirmedPart:
            if stop.is_set():  # another part failed for good, or Ctrl-C: don't start more
                raise TransferError("upload abandoned")
            start = (part.part_number - 1) * plan.part_size

            def request() -> tuple[str, dict[str, str]]:
                if sign is None:
                    return part.url, part.headers
                # Hashed now (the bytes this attempt sends) and signed now (a URL that has not expired).
                signed = sign(part.part_number, _digest_of(path, start, part.size, "sha256"))
                return signed.url, signed.headers

            try:
                etag = self._put(request, path, start, part.size, part.part_number, report)
                return _confirmed(part.part_number, etag)
            except BaseException:
                stop.set()
                raise

        pool = ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(plan.missing))))
        try:
            sent = _results([pool.submit(one, part) for part in plan.missing])
        except BaseException:
            stop.set()  # Ctrl-C lands here, in the main thread
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        parts = sorted([*plan.received, *sent], key=lambda part: part.part_number)
        return ConfirmUploadRequest.model_validate({"asset_id": plan.asset_id, "parts": parts}, by_name=True)

    def _put(
        self,
        request: Callable[[], tuple[str, dict[str, str]]],
        path: Path,
        start: int,
        size: int,
        part_number: int,
        report: ProgressCallback,
    ) -> str:
        for attempt in range(1, self.retry.max_attempts + 1):
            counted = _Counted(report)
            try:
                return self._put_once(request, path, start, size, retried=attempt > 1, counted=counted)
            except TransferError as error:
                report(-counted.sent)  # what this attempt sent does not count any more
                if not error.retryable or attempt == self.retry.max_attempts:
                    if error.retryable:
                        raise TransferError(
                            f"{error} (gave up after {attempt} attempts)", status_code=error.status_code
                        ) from None
                    raise
                if self.on_retry is not None:
                    self.on_retry(part_number, attempt, str(error))
            time.sleep(self.retry.backoff(attempt))
        raise AssertionError("unreachable")

    def _put_once(
        self,
        request: Callable[[], tuple[str, dict[str, str]]],
        path: Path,
        start: int,
        size: int,
        *,
        retried: bool,
        counted: _Counted,
    ) -> str:
        """One PUT of the bytes; their ETag, or a TransferError that says whether to try again."""
        try:
            url, headers = request()
            # Content-Length given explicitly: httpx then streams without chunked encoding, as storage needs.
            request_headers = {**headers, "Content-Length": str(size)}
            response = self.http.put(url, content=_file_chunks(path, start, size, counted), headers=request_headers)
        except httpx.TransportError as exc:
            raise TransferError(f"{type(exc).__name__}: {exc or 'connection failed'}", retryable=True) from exc
        if 200 <= response.status_code < 300:
            etag = response.headers.get("etag")
            if not etag:
                raise TransferError("storage answered without an ETag header")
            return etag
        if _earlier_attempt_landed(response, retried=retried, headers=headers):
            # A single PUT's ETag is the MD5 of its bytes; confirm checks it.
            counted(size - counted.sent)
            return md5_of(path, start, size)
        raise _refusal(response)
