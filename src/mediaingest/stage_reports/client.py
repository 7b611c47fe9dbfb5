"""The stage pod's host: everything `execute_stage` needs, over HTTP to the API, as the pod of one attempt.

The pod holds no database or storage credentials. Its source comes from a signed GET URL (and must
carry the ETag verified at confirm), each output goes to a signed PUT URL with its SHA-256 signed in,
and progress and the result are reported to the API, which records them. Each request carries the
pod's projected ServiceAccount token (read from its file every time: the kubelet rotates it) and names
the attempt (`identity.ATTEMPT_HEADER`). Calls that fail on the network or with a 5xx are retried with
the one retry policy; what is left is a transient failure of the attempt, which the stage's task retries.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import structlog
from pydantic import BaseModel

from mediaingest.exceptions import PermanentProcessingError, TransientProcessingError
from mediaingest.models.enums import Stage
from mediaingest.pipeline.ffmpeg import StageCancelledError
from mediaingest.pipeline.types import MediaMetadata, StageOutput, StageResult
from mediaingest.retry import RetryPolicy
from mediaingest.stage_reports.identity import ATTEMPT_HEADER, StageClaims
from mediaingest.stage_reports.schemas import (
    PREFIX,
    DiscardReport,
    FailureReport,
    OutputFile,
    OutputFiles,
    OutputRecord,
    PlayableReport,
    ProgressAnswer,
    ProgressReport,
    Role,
    SignedPut,
    SignedPuts,
    StageRecord,
    StageRecorded,
    StageStart,
)
from mediaingest.worker.stage_host import SOURCE_CHANGED, StageAsset, StageOutcome, StoredOutput, live_content_type
from mediaingest.worker.stage_runner import sha256_of

log = structlog.stdlib.get_logger(__name__)

REPORT_RETRY = RetryPolicy(max_attempts=5, base_seconds=0.5, max_seconds=8.0)
_CHUNK = 1024 * 1024
_PROGRESS_INTERVAL = 0.5
T = TypeVar("T", bound=BaseModel)


class _Gone(Exception):
    """The asset was deleted (410)."""


class _Superseded(Exception):
    """Another attempt owns the stage now (409)."""


class _Retryable(Exception):
    """A network error or a 5xx: worth another try."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiStageHost:
    """A `StageHost` over HTTP: every call is a request to the API with the attempt's token."""

    def __init__(
        self,
        api_url: str,
        token_file: Path,
        *,
        claims: StageClaims,
        http: httpx.Client | None = None,
        retry: RetryPolicy = REPORT_RETRY,
    ) -> None:
        self.stage: Stage = claims.stage
        self.retry = retry
        self.http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
        self._api = api_url.rstrip("/") + PREFIX
        self._token_file = token_file
        self._attempt = claims.header()
        self._start: StageStart | None = None
        self._last_progress = 0.0
        self._last_playable = 0.0

    def close(self) -> None:
        self.http.close()

    # --- the wire ---------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        try:
            token = self._token_file.read_text().strip()
        except OSError as exc:  # the kubelet mounts it before the container starts: this pod is not set up
            raise PermanentProcessingError(f"the stage token cannot be read ({exc.strerror})") from exc
        return {"Authorization": f"Bearer {token}", ATTEMPT_HEADER: self._attempt}

    def _with_retries(self, what: str, call: Callable[[], T | None]) -> T | None:
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except _Retryable as error:
                decision = self.retry.decide(error, attempts=attempt)
                if not decision.retry:
                    raise TransientProcessingError(f"{what} failed {attempt} times: {error.message}") from error
                log.warning("stage.report_retrying", what=what, attempt=attempt, error=error.message)
                time.sleep(decision.delay_seconds)

    @overload
    def _post(self, path: str, body: BaseModel | None, answer: type[T]) -> T: ...
    @overload
    def _post(self, path: str, body: BaseModel | None, answer: None) -> None: ...
    def _post(self, path: str, body: BaseModel | None, answer: type[T] | None) -> T | None:
        def call() -> T | None:
            try:
                response = self.http.post(
                    f"{self._api}/{path}",
                    headers=self._headers(),
                    json=body.model_dump(mode="json", by_alias=True) if body is not None else None,
                )
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code == 410:
                raise _Gone()
            if response.status_code == 409:
                raise _Superseded()
            if response.status_code >= 500:
                raise _Retryable(f"{response.status_code} {_message(response)}")
            if response.status_code == 403:  # the token's pod does not run this attempt: never ours
                raise PermanentProcessingError(f"the API refused {path}: {_message(response)}")
            if response.status_code >= 400:
                # 401 (a token refused) or 422: this attempt cannot go on; the task's retry starts another.
                raise TransientProcessingError(f"the API refused {path}: {response.status_code} {_message(response)}")
            if answer is None:
                return None
            return answer.model_validate(response.json()["data"])

        return self._with_retries(f"reporting {path}", call)

    # --- StageHost --------------------------------------------------------------------------------
    def begin(self) -> StageAsset | None:
        try:
            start = self._post("start", None, StageStart)
        except _Gone:
            return None
        except _Superseded as exc:
            raise StageCancelledError(f"{self.stage}: a later attempt started") from exc
        self._start = start
        return StageAsset(
            media_type=start.media_type,
            source_suffix=start.source_suffix,
            checksum=start.checksum,
            declared_sha256=start.declared_sha256,
            metadata=MediaMetadata.from_dict(start.metadata) if start.metadata is not None else None,
        )

    def download_source(self, destination: Path) -> None:
        if self._start is None:
            raise RuntimeError("begin() first")
        start = self._start

        def call() -> None:
            try:
                # Pinned like S3's If-Match: other bytes under the key are refused before they are sent.
                pinned = {"If-Match": f'"{_etag(start.source_etag)}"'} if start.source_etag else {}
                with self.http.stream("GET", start.source_url, headers=pinned) as response:
                    if response.status_code == 412:
                        raise PermanentProcessingError(SOURCE_CHANGED)
                    if response.status_code >= 500:
                        raise _Retryable(f"source GET answered {response.status_code}")
                    if response.status_code != 200:
                        raise TransientProcessingError(f"source GET answered {response.status_code}")
                    etag = _etag(response.headers.get("etag"))
                    if start.source_etag is not None and etag != _etag(start.source_etag):
                        raise PermanentProcessingError(SOURCE_CHANGED)
                    with destination.open("wb") as handle:
                        for chunk in response.iter_bytes(_CHUNK):
                            handle.write(chunk)
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

        self._with_retries("downloading the source", call)

    def report_progress(self, fraction: float, message: str) -> bool:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < _PROGRESS_INTERVAL:
            return True
        self._last_progress = now
        report = ProgressReport(fraction=max(0.0, min(1.0, fraction)), message=message[:1024])
        try:
            answer = self._post("progress", report, ProgressAnswer)
        except (_Gone, _Superseded):
            return False
        return answer.current

    def report_playable(self, seconds: float) -> None:
        now = time.monotonic()
        if self._last_playable and now - self._last_playable < _PROGRESS_INTERVAL:
            return
        self._last_playable = now
        try:
            self._post("playable", PlayableReport(seconds=round(seconds, 3)), None)
        except (_Gone, _Superseded) as exc:
            raise StageCancelledError(f"{self.stage}: no longer this attempt's") from exc

    def _put(self, path: Path, name: str, role: Role, content_type: str) -> SignedPut:
        size = path.stat().st_size
        request = OutputFiles(
            files=[OutputFile(name=name, role=role, size=size, content_type=content_type, sha256=sha256_of(path))]
        )
        try:
            signed = self._post("outputs", request, SignedPuts)
        except (_Gone, _Superseded) as exc:
            raise StageCancelledError(f"{self.stage}: no longer this attempt's") from exc
        put = signed.files[0]

        def call() -> None:
            try:
                with path.open("rb") as handle:
                    response = self.http.put(put.url, content=_chunks(handle), headers=put.headers)
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code >= 500:
                raise _Retryable(f"PUT {name} answered {response.status_code}")
            if response.status_code >= 300:
                raise TransientProcessingError(f"storing {name} was refused: {response.status_code}")

        self._with_retries(f"storing {name}", call)
        return put

    def publish(self, path: Path, name: str) -> None:
        self._put(path, name, "proxies", live_content_type(name))

    def store(self, output: StageOutput) -> StoredOutput:
        put = self._put(output.path, output.key_name, output.bucket, output.content_type)
        return StoredOutput(output=output, bucket=put.bucket, key=put.key, size=output.path.stat().st_size)

    def record(
        self, result: StageResult, stored: list[StoredOutput], *, checksum: str | None, published: Iterable[str]
    ) -> StageOutcome:
        report = StageRecord(
            message=result.message,
            metadata=result.metadata.to_dict() if result.metadata is not None else None,
            measurements=result.measurements,
            outputs=[OutputRecord.of(item.output) for item in stored],
            checksum=checksum,
            published=sorted(published),
        )
        try:
            answer = self._post("record", report, StageRecorded)
        except (_Gone, _Superseded):
            return StageOutcome(completed=False, outputs=0, message="asset deleted or job taken over")
        return StageOutcome(completed=answer.completed, outputs=answer.outputs, message=result.message)

    def discard(self, published: Iterable[str]) -> None:
        names = sorted(published)
        if names:
            self._post("discard", DiscardReport(published=names), None)

    def fail(self, message: str, *, permanent: bool) -> None:
        """The attempt failed: the API decides with the stage retry policy, as a worker would."""
        with contextlib.suppress(_Gone, _Superseded):  # nothing left to record it on
            self._post("fail", FailureReport(message=message[:4000], permanent=permanent), None)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase


def _etag(value: str | None) -> str | None:
    return value.strip().strip('"').lower() if value else None


def _chunks(handle: Any) -> Iterable[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk
