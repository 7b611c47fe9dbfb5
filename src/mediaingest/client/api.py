"""`MediaIngestClient`: the API's routes as typed methods (the server's own response schemas)."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filetype
import httpx

from mediaingest.assets.schemas import (
    AssetDetail,
    AssetPage,
    AssetStatus,
    ConfirmUploadRequest,
    ConfirmUploadResponse,
    PresignedPart,
    SignedParts,
    UploadState,
    UploadUrlRequest,
    UploadUrlResponse,
)
from mediaingest.assets.timeline_schemas import ClipCreated
from mediaingest.client.errors import AmbiguousIdError, ApiError, ClientError, InvalidIdError
from mediaingest.client.resume import ResumeStore
from mediaingest.client.transfer import ProgressCallback, Transfer, TransferPlan, md5_of
from mediaingest.retry import RetryPolicy

TERMINAL = ("READY", "FAILED")
_FULL_ID_LENGTH = 36  # a UUID
# A whole id, or at least its first 4 characters (of the 1 to 36 that the API's idPrefix takes).
_ID_PATTERN = re.compile(r"[0-9a-fA-F-]{4,36}")
# Longer than the server's keep-alive comments (15 s), so a quiet stream is not mistaken for a dead one.
EVENTS_READ_TIMEOUT = 60.0
CONFIRM_READ_TIMEOUT = 30 * 60.0


def guess_mime_type(path: Path) -> str:
    """From the name first (what a browser would declare), else from the first bytes."""
    guessed, _ = mimetypes.guess_type(path.name)
    if guessed:
        return guessed
    kind = filetype.guess(str(path))
    return kind.mime if kind is not None else "application/octet-stream"


@dataclass(frozen=True)
class UploadResult:
    plan: TransferPlan  # what had to be sent: everything, or what a resumed upload still missed
    confirmed: ConfirmUploadResponse

    @property
    def asset_id(self) -> str:
        return self.confirmed.asset_id

    @property
    def resumed(self) -> bool:
        return bool(self.plan.received) or self.plan.single_stored


class MediaIngestClient:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 30.0,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.api = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )
        # No token here: storage URLs are signed, and the token must never leave for the store.
        self.storage_http = httpx.Client(timeout=httpx.Timeout(timeout, write=max(timeout, 120.0)))
        self.transfer = Transfer(self.storage_http, concurrency=concurrency, retry=retry, on_retry=on_retry)

    def __enter__(self) -> MediaIngestClient:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()
        self.storage_http.close()

    # --- plumbing -------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.api.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach {self.server}: {exc}") from exc
        return _unwrap(response)

    # --- uploads --------------------------------------------------------------------------------
    def request_upload(self, request: UploadUrlRequest) -> UploadUrlResponse:
        body = request.model_dump(by_alias=True, exclude_none=True)
        return UploadUrlResponse.model_validate(self._call("POST", "/api/assets/upload-url", json=body))

    def send(
        self, path: Path, plan: TransferPlan | UploadUrlResponse, on_progress: ProgressCallback | None = None
    ) -> ConfirmUploadRequest:
        return self.transfer.send(path, plan, on_progress)

    def confirm(self, request: ConfirmUploadRequest) -> ConfirmUploadResponse:
        body = request.model_dump(by_alias=True, exclude_none=True)
        # Confirming completes a multipart upload server-side: minutes for a 5 GiB file (the local backend
        # reads and writes every byte; S3 assembles the parts). Giving up early would fail an upload that
        # succeeds, and confirming again meanwhile is refused.
        timeout = httpx.Timeout(self.api.timeout.connect, read=CONFIRM_READ_TIMEOUT)
        answer = self._call("POST", "/api/assets/confirm-upload", json=body, timeout=timeout)
        return ConfirmUploadResponse.model_validate(answer)

    def upload_state(self, asset_id: str) -> UploadState:
        """The resume API: what storage holds of the upload, fresh URLs for the rest."""
        return UploadState.model_validate(self._call("GET", f"/api/assets/{asset_id}/upload"))

    def sign_part(self, asset_id: str, part_number: int, sha256: str) -> PresignedPart:
        body = {"parts": [{"partNumber": part_number, "sha256": sha256}]}
        signed = SignedParts.model_validate(self._call("POST", f"/api/assets/{asset_id}/upload/parts", json=body))
        return signed.parts[0]

    def upload(
        self,
        path: Path,
        *,
        mime_type: str | None = None,
        project_id: str | None = None,
        declare_sha256: bool = False,
        resume: ResumeStore | None = None,
        asset_id: str | None = None,
        on_plan: Callable[[TransferPlan], None] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadResult:
        """Asks for the URL(s), sends the bytes (each part with its SHA-256 signed in), confirms.

        With `resume`, an interrupted upload of the same file (same path, size and modification time)
        is picked up where it stopped: only the parts storage does not hold are sent. `asset_id`
        resumes that asset's upload explicitly; its stored parts are checked against the file first.
        `declare_sha256` hashes the whole file first so the store verifies it end to end.
        """
        size = path.stat().st_size
        key = ResumeStore.key(self.server, path) if resume is not None else None
        plan = self._unfinished_plan(path, size, asset_id=asset_id, resume=resume, key=key)
        if plan is None:
            plan = self._new_plan(_upload_request(path, size, mime_type, project_id, declare_sha256), resume, key)
        if on_plan is not None:
            on_plan(plan)  # plan.received_bytes: what storage holds already; on_progress counts what goes now
        confirm = self.send(path, plan, on_progress)
        confirmed = self.confirm(confirm)
        if resume is not None and key is not None:
            resume.forget(key)
        return UploadResult(plan=plan, confirmed=confirmed)

    def _unfinished_plan(
        self, path: Path, size: int, *, asset_id: str | None, resume: ResumeStore | None, key: str | None
    ) -> TransferPlan | None:
        """What is left of the named asset's upload, or of this file's last one; None to start afresh."""
        if asset_id is not None:
            return self._named_plan(path, asset_id, size)
        if resume is None or key is None or not (known := resume.get(key)):
            return None
        plan = self._remembered_plan(asset_id=known, size=size)
        if plan is None:
            resume.forget(key)  # that upload is gone: start afresh
        return plan

    def _new_plan(self, request: UploadUrlRequest, resume: ResumeStore | None, key: str | None) -> TransferPlan:
        """A new upload, everything to send."""
        ticket = self.request_upload(request)
        if resume is not None and key is not None:
            resume.remember(key, ticket.asset_id)  # before any byte goes: a kill from here on resumes
        return TransferPlan.from_ticket(ticket, sign=self._signer(ticket.asset_id))

    def _signer(self, asset_id: str) -> Callable[[int, str], PresignedPart]:
        return lambda part_number, sha256: self.sign_part(asset_id, part_number, sha256)

    def _named_plan(self, path: Path, asset_id: str, size: int) -> TransferPlan:
        """The plan that finishes the upload of the asset named by hand; a ClientError when it cannot (a
        different size, stored parts that are not this file's bytes)."""
        state = self.upload_state(asset_id)
        if state.file_size != size:
            raise ClientError(f"asset {asset_id} expects {state.file_size} bytes; {path.name} has {size}")
        plan = TransferPlan.from_state(state, sign=self._signer(asset_id))
        _check_stored_parts(path, asset_id, plan, size)
        return plan

    def _remembered_plan(self, *, asset_id: str, size: int) -> TransferPlan | None:
        """The plan that finishes the upload the resume store remembers for the file; None when that upload
        is gone or expects another size: then a new upload starts."""
        try:
            state = self.upload_state(asset_id)
        except ApiError as error:
            if error.status_code not in (404, 409):
                raise
            return None
        if state.file_size != size:
            return None
        return TransferPlan.from_state(state, sign=self._signer(asset_id))

    # --- reading --------------------------------------------------------------------------------
    def status(self, asset_id: str) -> AssetStatus:
        return AssetStatus.model_validate(self._call("GET", f"/api/assets/{asset_id}/status"))

    def resolve_id(self, asset_id: str) -> str:
        """A whole id as it is; a short one (≥ 4 characters, as `assets list` shows them) → the one asset
        whose id starts with it. ApiError 404 when none does, AmbiguousIdError when several do, and
        InvalidIdError (before asking the server) for a name or fewer than 4 characters."""
        if not _ID_PATTERN.fullmatch(asset_id):
            raise InvalidIdError(asset_id)
        if len(asset_id) >= _FULL_ID_LENGTH:
            return asset_id
        page = self.list(page_size=3, id_prefix=asset_id)
        if page.total == 1:
            return page.items[0].id
        if page.total == 0:
            raise ApiError(404, "not_found", f"no asset starts with {asset_id}")
        raise AmbiguousIdError(asset_id, [item.id for item in page.items], page.total)

    def get(self, asset_id: str) -> AssetDetail:
        return AssetDetail.model_validate(self._call("GET", f"/api/assets/{asset_id}"))

    def list(
        self,
        *,
        page: int = 1,
        page_size: int = 20,
        status: str | None = None,
        processing_status: str | None = None,
        media_type: str | None = None,
        project_id: str | None = None,
        id_prefix: str | None = None,
    ) -> AssetPage:
        params = {
            "page": page,
            "pageSize": page_size,
            "status": status,
            "processingStatus": processing_status,
            "type": media_type,
            "projectId": project_id,
            "idPrefix": id_prefix,
        }
        query = {name: value for name, value in params.items() if value is not None}
        return AssetPage.model_validate(self._call("GET", "/api/assets", params=query))

    def delete(self, asset_id: str) -> None:
        self._call("DELETE", f"/api/assets/{asset_id}")

    def create_clip(self, asset_id: str, *, start: float, end: float, name: str | None = None) -> ClipCreated:
        body: dict[str, Any] = {"start": start, "end": end} | ({"name": name} if name else {})
        return ClipCreated.model_validate(self._call("POST", f"/api/assets/{asset_id}/clips", json=body))

    # --- following ingestion ----------------------------------------------------------------------
    def events(self, asset_id: str) -> Iterator[AssetStatus]:
        """Each status change from the Server-Sent Events stream, until READY/FAILED (reconnecting
        with Last-Event-ID if the stream drops). Ends quietly if the asset is deleted."""
        last_id: str | None = None
        retry_seconds = 2.0
        failures = 0
        while True:
            try:
                with self._event_stream(asset_id, last_id) as lines:
                    parser = _EventParser(last_id)
                    for event in filter(None, map(parser.feed, lines)):
                        failures, last_id = 0, event.id
                        if event.retry is not None:
                            retry_seconds = event.retry / 1000
                        if event.name == "status":
                            yield AssetStatus.model_validate(json.loads(event.data))
                        elif event.name in ("end", "deleted"):
                            return
            except httpx.TransportError:
                failures += 1
                if failures >= 5:
                    raise
            time.sleep(retry_seconds)

    @contextmanager
    def _event_stream(self, asset_id: str, last_id: str | None) -> Iterator[Iterator[str]]:
        """The lines of the asset's event stream, after `last_id` if given; the API's error if it refuses."""
        headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id is not None else {})
        timeout = httpx.Timeout(self.api.timeout.connect, read=EVENTS_READ_TIMEOUT)
        with self.api.stream("GET", f"/api/assets/{asset_id}/events", headers=headers, timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                _unwrap(response)
            yield response.iter_lines()

    def wait(
        self,
        asset_id: str,
        *,
        timeout: float | None = None,
        on_status: Callable[[AssetStatus], None] | None = None,
        use_events: bool = True,
        poll_interval: float = 1.0,
    ) -> AssetStatus:
        """Follows the asset until READY or FAILED; returns the final status. Polls /status when asked
        to, or when the event stream is unavailable (a proxy that buffers it, an older server)."""
        deadline = _Deadline(asset_id, timeout)
        report = on_status or _ignore
        if use_events:
            final = self._wait_on_events(asset_id, deadline, report)
            if final is not None:
                return final
        return self._wait_by_polling(asset_id, deadline, report, poll_interval)

    def _wait_by_polling(
        self, asset_id: str, deadline: _Deadline, report: Callable[[AssetStatus], None], interval: float
    ) -> AssetStatus:
        while True:
            status = self.status(asset_id)
            report(status)
            if status.processing_status.value in TERMINAL:
                return status
            deadline.check()
            time.sleep(interval)

    def _wait_on_events(
        self, asset_id: str, deadline: _Deadline, report: Callable[[AssetStatus], None]
    ) -> AssetStatus | None:
        """The final status as the event stream tells it; None when the stream ended or broke first (then
        `wait` polls). Refusals (401, 403, 404) are raised: polling would meet them too."""
        last: AssetStatus | None = None
        try:
            for status in self.events(asset_id):
                last = status
                report(status)
                deadline.check()
        except (httpx.TransportError, ApiError) as error:
            if isinstance(error, ApiError) and error.status_code in (401, 403, 404):
                raise
            return None
        return last if last is not None and last.processing_status.value in TERMINAL else None


def _ignore(_status: AssetStatus) -> None:
    return None


class _Deadline:
    """When waiting for an asset gives up: never without a timeout."""

    def __init__(self, asset_id: str, timeout: float | None) -> None:
        self.asset_id = asset_id
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def check(self) -> None:
        if self.at is not None and time.monotonic() > self.at:
            raise ClientError(f"asset {self.asset_id} did not finish within {self.timeout:g} s")


@dataclass(frozen=True)
class _Event:
    name: str
    data: str
    id: str | None
    retry: int | None


@dataclass
class _EventParser:
    """Server-Sent Events per the HTML standard, a line at a time: fields until a blank line; comments
    ignored. The last event id holds for the events after it, from `last_id` (the connection before) on."""

    last_id: str | None = None
    name: str = "message"
    data: list[str] = field(default_factory=list)
    retry: int | None = None

    def feed(self, line: str) -> _Event | None:
        """The event a blank line completes; None after any other line."""
        if not line:
            return self._dispatch()
        name, _, value = line.partition(":")  # a comment (":…") names no field
        self._set(name, value.removeprefix(" "))
        return None

    def _set(self, name: str, value: str) -> None:
        match name:
            case "event":
                self.name = value
            case "data":
                self.data.append(value)
            case "id":
                self.last_id = value
            case "retry" if value.isdigit():
                self.retry = int(value)

    def _dispatch(self) -> _Event | None:
        """The event of the fields so far, if they make one, and a fresh start for the next."""
        event = _Event(self.name, "\n".join(self.data), self.last_id, self.retry)
        pending = bool(self.data) or self.name != "message" or self.retry is not None
        self.name, self.data, self.retry = "message", [], None
        return event if pending else None


def _unwrap(response: httpx.Response) -> Any:
    payload = _json_object(response)
    if response.is_success and payload.get("success", False):
        return payload.get("data")
    error = payload.get("error")
    if isinstance(error, dict):
        raise ApiError(response.status_code, str(error.get("code")), str(error.get("message")), error.get("details"))
    raise ApiError(response.status_code, "http_error", f"the server answered {response.status_code}")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object; empty when it is none (not JSON, or another JSON value)."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _upload_request(
    path: Path, size: int, mime_type: str | None, project_id: str | None, declare_sha256: bool
) -> UploadUrlRequest:
    return UploadUrlRequest.model_validate(
        {
            "file_name": path.name,
            "file_size": size,
            "mime_type": mime_type or guess_mime_type(path),
            "project_id": project_id,
            "sha256": _sha256(path) if declare_sha256 else None,
        },
        by_name=True,
    )


def _check_stored_parts(path: Path, asset_id: str, plan: TransferPlan, size: int) -> None:
    """Named by hand: make sure the parts storage holds are this file's bytes (a part's ETag is its MD5)."""
    for part in plan.received:
        start = (part.part_number - 1) * plan.part_size
        length = min(plan.part_size, size - start)
        if md5_of(path, start, length) != part.etag.strip('"'):
            raise ClientError(
                f"part {part.part_number} of asset {asset_id} is not the same bytes as {path.name}: not the same file"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
