"""A request's database transaction never waits for a thread-pool slot while it holds a lock.

On SQLite a read-write transaction holds the only write lock from its first statement. Had it
spanned the request (authenticate in one thread, endpoint in another, commit in a third), a busy
thread pool would deadlock: the holder waits for a free thread, every thread waits for the lock,
until SQLite's 30 s busy timeout turns them all into 500s. A two-thread pool makes that certain.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio.to_thread
import httpx
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.uploads import put_bytes, request_upload

CLIENTS = 12


def _shrink_thread_pool(client: TestClient, tokens: int) -> None:
    def shrink() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = tokens

    assert client.portal is not None
    client.portal.call(shrink)


def test_concurrent_uploads_complete_with_two_threads_for_the_whole_service(
    client: TestClient, users: Users, small_video: Path
) -> None:
    _shrink_thread_pool(client, 2)
    data = small_video.read_bytes()
    tenants = [users.create() for _ in range(CLIENTS)]

    def one_upload(headers: dict[str, str]) -> list[int]:
        ticket = request_upload(client, headers, size=len(data))
        body = put_bytes(client, ticket.json()["data"], data) if ticket.status_code == 201 else {}
        confirmed = client.post("/api/assets/confirm-upload", json=body, headers=headers)
        listed = client.get("/api/assets", headers=headers)
        return [ticket.status_code, confirmed.status_code, listed.status_code]

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(one_upload, headers) for _, headers in tenants]
        # Far below SQLite's 30 s busy timeout: a deadlock shows as a timeout here, not as a slow pass.
        outcomes = [future.result(timeout=20) for future in futures]

    assert outcomes == [[201, 200, 200]] * CLIENTS
    statuses = {
        tuple(item["uploadStatus"] for item in client.get("/api/assets", headers=headers).json()["data"]["items"])
        for _, headers in tenants
    }
    assert statuses == {("UPLOADED",)}


def test_reads_never_wait_for_a_writer(client: TestClient, users: Users, small_video: Path) -> None:
    """A GET is answered while another connection holds SQLite's write lock (reads begin deferred)."""
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    engine = client.app.state.session_factory.kw["bind"]  # type: ignore[attr-defined]
    with engine.connect() as holder:
        holder.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE on SQLite; an ordinary transaction on PostgreSQL
        with ThreadPoolExecutor(2) as pool:
            status = pool.submit(client.get, f"/api/assets/{ticket['assetId']}/status", headers=headers)
            listed = pool.submit(client.get, "/api/assets", headers=headers)
            answers: list[httpx.Response] = [status.result(timeout=10), listed.result(timeout=10)]
        holder.rollback()
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json()["data"]["uploadStatus"] == "PENDING"
