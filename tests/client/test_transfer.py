"""The client's transfer against a flaky store on loopback: parts in parallel, each retried, ETags kept."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mediaingest.assets.schemas import MultipartUpload, PresignedPart, UploadUrlResponse
from mediaingest.client.errors import TransferError
from mediaingest.client.transfer import Transfer
from mediaingest.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.05)
NOW = datetime.now(UTC)


@dataclass
class FlakyStore:
    """Stores PUT bodies by part; fails the first `fail_first[part]` attempts of a part with `status`."""

    url: str = ""
    fail_first: dict[int, int] = field(default_factory=dict)
    status: int = 503
    delay_seconds: float = 0.05
    bodies: dict[int, bytes] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Like S3 with If-None-Match: *: a failed attempt still stored its body (the answer was lost), and
    # a later PUT of the same key answers 412.
    single_write: bool = False


@pytest.fixture
def store() -> Iterator[FlakyStore]:
    state = FlakyStore()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            part = int(parse_qs(urlsplit(self.path).query).get("partNumber", ["1"])[0])
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.attempts[part] = state.attempts.get(part, 0) + 1
                attempt = state.attempts[part]
                state.headers_seen.append(dict(self.headers.items()))
            time.sleep(state.delay_seconds)  # long enough for the parts to overlap
            with state.lock:
                state.in_flight -= 1
            if state.single_write and part in state.bodies and self.headers.get("If-None-Match") == "*":
                self.send_response(412)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if state.single_write:
                state.bodies[part] = body
            if attempt <= state.fail_first.get(part, 0):
                payload = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
                if state.status == 403:
                    payload = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                self.send_response(state.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            state.bodies[part] = body
            self.send_response(200)
            self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')  # noqa: S324 (S3's ETag is MD5)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/bucket/key"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def _ticket(store: FlakyStore, size: int, part_size: int) -> UploadUrlResponse:
    count = -(-size // part_size)
    parts = [
        PresignedPart(
            part_number=n,
            url=f"{store.url}?uploadId=u1&partNumber={n}",
            size=min(part_size, size - (n - 1) * part_size),
            headers={},
        )
        for n in range(1, count + 1)
    ]
    return UploadUrlResponse(
        asset_id="a1", storage_key="key", file_name="f.bin", expires_at=NOW, session_expires_at=NOW,
        multipart=MultipartUpload(upload_id="u1", part_size=part_size, parts=parts),
    )  # fmt: skip


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(bytes(range(256)) * 4000 + b"tail")  # 1 024 004 bytes: 8 parts of 128 KiB, the last short
    return path


def test_parts_go_in_parallel_and_each_failed_part_is_retried(store: FlakyStore, payload: Path) -> None:
    store.fail_first = {2: 1, 5: 2}
    retries: list[tuple[int, int]] = []
    sent: list[int] = []
    with httpx.Client() as http:
        transfer = Transfer(
            http, concurrency=4, retry=FAST, on_retry=lambda part, attempt, _why: retries.append((part, attempt))
        )
        confirm = transfer.send(payload, _ticket(store, payload.stat().st_size, 128 * 1024), sent.append)

    data = payload.read_bytes()
    assert b"".join(store.bodies[n] for n in sorted(store.bodies)) == data
    assert confirm.parts is not None
    assert [p.part_number for p in confirm.parts] == list(range(1, 9))
    for part in confirm.parts:
        assert part.etag == f'"{hashlib.md5(store.bodies[part.part_number]).hexdigest()}"'  # noqa: S324
    assert sorted(retries) == [(2, 1), (5, 1), (5, 2)]
    assert store.attempts == {1: 1, 2: 2, 3: 1, 4: 1, 5: 3, 6: 1, 7: 1, 8: 1}
    assert 2 <= store.max_in_flight <= 4  # parallel, and never more than asked
    assert sum(sent) == len(data)  # bytes of failed attempts are taken back, so progress ends exact
    assert all("authorization" not in {k.lower() for k in h} for h in store.headers_seen)


def test_a_part_failing_every_attempt_fails_the_upload(store: FlakyStore, payload: Path) -> None:
    store.fail_first = {3: 99}
    with httpx.Client() as http, pytest.raises(TransferError, match="gave up after 3 attempts"):
        Transfer(http, concurrency=2, retry=FAST).send(payload, _ticket(store, payload.stat().st_size, 128 * 1024))
    assert store.attempts[3] == 3


def test_an_expired_url_is_not_retried(store: FlakyStore, payload: Path) -> None:
    store.fail_first, store.status = {1: 99}, 403
    size = payload.stat().st_size
    ticket = UploadUrlResponse(
        asset_id="a1", storage_key="key", file_name="f.bin", expires_at=NOW, session_expires_at=NOW,
        upload_url=store.url, headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    with httpx.Client() as http, pytest.raises(TransferError, match="expired or was refused") as caught:
        Transfer(http, retry=FAST).send(payload, ticket)
    assert caught.value.status_code == 403 and store.attempts == {1: 1}
    assert store.headers_seen[0]["Content-Length"] == str(size)
    assert "Transfer-Encoding" not in store.headers_seen[0]  # storage needs a declared length


def test_a_single_write_url_refusing_a_retry_means_the_first_attempt_landed(store: FlakyStore, payload: Path) -> None:
    """The first PUT was stored but its answer lost; the retry gets 412. The upload is done, and the
    ETag to confirm with is the MD5 of the bytes (confirm checks it against the store's)."""
    store.single_write = True
    store.fail_first = {1: 1}
    size = payload.stat().st_size
    ticket = UploadUrlResponse(
        asset_id="a1", storage_key="key", file_name="f.bin", expires_at=NOW, session_expires_at=NOW,
        upload_url=store.url, headers={"If-None-Match": "*"},
    )  # fmt: skip
    sent: list[int] = []
    with httpx.Client(timeout=10) as http:
        body = Transfer(http, retry=FAST).send(payload, ticket, on_progress=sent.append)
    assert store.attempts[1] == 2
    assert body.etag == hashlib.md5(payload.read_bytes()).hexdigest()  # noqa: S324
    assert sum(sent) == size
