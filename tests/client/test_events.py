"""GET /api/assets/{id}/events: Server-Sent Events over a real socket, from a live server."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fixtures.live_server import LiveServer, LiveServerFactory
from fixtures.uploads import request_upload, upload
from mediaingest.assets import events as events_module
from mediaingest.db import session_scope
from mediaingest.models import IngestionJob, MediaAsset, Task
from mediaingest.models.enums import AssetProcessingStatus
from mediaingest.models.task import TaskStatus


class EventReader:
    """Reads a stream in a thread, so the test can change the database while it is open."""

    def __init__(self, server: LiveServer, path: str, headers: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.response: httpx.Response | None = None
        self.opened = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server.url + path, headers or {}), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=30)) as response:
                self.response = response
                self.opened.set()
                for line in response.iter_lines():
                    self.lines.append(line)
        finally:
            self.opened.set()
            self.closed.set()

    def events(self) -> list[dict[str, Any]]:
        parsed, current = [], {}
        for line in list(self.lines):
            if not line:
                if current:
                    parsed.append(current)
                current = {}
            elif line.startswith(":"):
                parsed.append({"comment": line[1:].strip()})
            else:
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
        return parsed

    def wait_for(self, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events()
            if predicate(found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"stream never matched; got {self.events()}")


def _statuses(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event.get("event") == "status"]


@pytest.fixture
def idle_server(live_server_factory: LiveServerFactory) -> LiveServer:
    """No worker: the test moves the asset's state itself, deterministically."""
    return live_server_factory(worker=False)


def _uploaded(server: LiveServer, video: Path) -> tuple[str, dict[str, str]]:
    """A confirmed upload whose jobs wait for a worker that is not there."""
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return upload(http, headers, video, mime_type="video/mp4")["assetId"], headers


@pytest.fixture
def pending_asset(idle_server: LiveServer, small_video: Path) -> tuple[str, dict[str, str]]:
    return _uploaded(idle_server, small_video)


def _set_job(server: LiveServer, asset_id: str, *, status: TaskStatus | None = None, **values: Any) -> None:
    """Moves the asset's jobs as a runner would: the status on their tasks, the rest on the rows."""
    jobs = sa.select(IngestionJob.task_id).where(IngestionJob.asset_id == asset_id)
    with session_scope(server.app.state.session_factory) as session:
        if status is not None:
            session.execute(sa.update(Task).where(Task.id.in_(jobs)).values(status=status))
        if values:
            session.execute(sa.update(IngestionJob).where(IngestionJob.asset_id == asset_id).values(**values))


def _set_asset(server: LiveServer, asset_id: str, **values: Any) -> None:
    with session_scope(server.app.state.session_factory) as session:
        session.execute(sa.update(MediaAsset).where(MediaAsset.id == asset_id).values(**values))


def test_every_status_and_progress_change_is_an_event_until_ready(
    live_server_factory: LiveServerFactory, database_url: str, small_video: Path
) -> None:
    idle_server = live_server_factory(worker=False, database_url=database_url)
    asset_id, headers = _uploaded(idle_server, small_video)
    reader = EventReader(idle_server, f"/api/assets/{asset_id}/events", headers)
    assert reader.response is not None and reader.response.status_code == 200
    assert reader.response.headers["content-type"].startswith("text/event-stream")
    assert reader.response.headers["cache-control"] == "no-cache"
    reader.wait_for(lambda found: len(_statuses(found)) == 1)

    _set_asset(idle_server, asset_id, processing_status=AssetProcessingStatus.PROCESSING)
    _set_job(idle_server, asset_id, status=TaskStatus.RUNNING, progress=10.0, message="encoding")
    reader.wait_for(lambda found: any(s["currentJob"]["progress"] == 10.0 for s in _statuses(found)))
    _set_job(idle_server, asset_id, progress=55.5)
    reader.wait_for(lambda found: any(s["currentJob"]["progress"] == 55.5 for s in _statuses(found)))
    time.sleep(1.0)  # nothing changes: nothing is sent
    before = len(_statuses(reader.events()))
    _set_job(idle_server, asset_id, status=TaskStatus.SUCCEEDED, progress=100.0)
    _set_asset(idle_server, asset_id, processing_status=AssetProcessingStatus.READY)
    assert reader.closed.wait(10), "the stream must end after READY"

    events = reader.events()
    statuses = _statuses(events)
    assert len(statuses) <= before + 2  # the quiet second sent nothing
    assert statuses[0]["processingStatus"] == "PENDING"
    assert statuses[-1]["processingStatus"] == "READY" and statuses[-1]["assetId"] == asset_id
    progress = [s["currentJob"]["progress"] for s in statuses]
    assert progress == sorted(progress) and {10.0, 55.5} <= set(progress)
    assert all(a != b for a, b in itertools.pairwise(statuses))  # only changes are sent
    # The protocol: a retry hint first, increasing ids, and `end` last.
    assert reader.lines[0] == f"retry: {events_module.RETRY_MILLISECONDS}"
    ids = [int(event["id"]) for event in events if "id" in event]
    assert ids == list(range(1, len(ids) + 1))
    assert events[-1]["event"] == "end" and events[-1]["data"] == {"processingStatus": "READY"}
    # The same JSON as the status endpoint.
    polled = httpx.get(f"{idle_server.url}/api/assets/{asset_id}/status", headers=headers).json()["data"]
    assert statuses[-1] == polled


def test_keep_alive_comments_and_deletion_end_the_stream(
    idle_server: LiveServer, pending_asset: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "KEEPALIVE_SECONDS", 0.5)
    asset_id, headers = pending_asset
    reader = EventReader(idle_server, f"/api/assets/{asset_id}/events", headers)
    reader.wait_for(lambda found: sum(1 for event in found if event.get("comment") == "keep-alive") >= 2, timeout=5)
    assert httpx.delete(f"{idle_server.url}/api/assets/{asset_id}", headers=headers).status_code == 200
    assert reader.closed.wait(10)
    last = reader.events()[-1]
    assert last["event"] == "deleted" and last["data"] == {"assetId": asset_id}


def test_a_reconnect_continues_the_ids_and_a_finished_asset_ends_at_once(
    idle_server: LiveServer, pending_asset: tuple[str, dict[str, str]]
) -> None:
    asset_id, headers = pending_asset
    _set_asset(idle_server, asset_id, processing_status=AssetProcessingStatus.FAILED, error="probe stage failed: x")
    started = time.monotonic()
    response = httpx.get(
        f"{idle_server.url}/api/assets/{asset_id}/events", headers={**headers, "Last-Event-ID": "41"}, timeout=10
    )
    assert time.monotonic() - started < 3
    assert "id: 42\nevent: status\n" in response.text and "id: 43\nevent: end\n" in response.text
    assert '"processingStatus":"FAILED"' in response.text and "probe stage failed: x" in response.text


def test_auth_by_header_or_access_token_and_tenant_isolation(
    idle_server: LiveServer, pending_asset: tuple[str, dict[str, str]]
) -> None:
    asset_id, headers = pending_asset
    token = headers["Authorization"].removeprefix("Bearer ")
    _, stranger = idle_server.create_user()
    stranger_token = stranger["Authorization"].removeprefix("Bearer ")
    _set_asset(idle_server, asset_id, processing_status=AssetProcessingStatus.READY)  # streams end at once
    url = f"{idle_server.url}/api/assets/{asset_id}/events"
    with httpx.Client(timeout=10) as http:
        # EventSource cannot send headers, hence ?access_token=.
        by_query = http.get(url, params={"access_token": token})
        assert by_query.status_code == 200 and "event: end" in by_query.text
        assert http.get(url).status_code == 401
        assert http.get(url, params={"access_token": "mi_not-a-token"}).status_code == 401
        for denied in (http.get(url, headers=stranger), http.get(url, params={"access_token": stranger_token})):
            assert denied.status_code == 404
            assert denied.json()["error"]["code"] == "not_found"
            assert asset_id not in denied.text
        assert http.get(f"{idle_server.url}/api/assets/nope/events", headers=headers).status_code == 404


def test_an_open_stream_holds_no_transaction_between_polls(
    idle_server: LiveServer, pending_asset: tuple[str, dict[str, str]]
) -> None:
    """On SQLite every transaction here takes the write lock (BEGIN IMMEDIATE): a stream that kept its
    session between polls would lock the worker out. Writers must get in while streams are open."""
    asset_id, headers = pending_asset
    readers = [EventReader(idle_server, f"/api/assets/{asset_id}/events", headers) for _ in range(3)]
    for reader in readers:
        reader.wait_for(lambda found: len(_statuses(found)) == 1)
    database = idle_server.settings.resolved_database_url.removeprefix("sqlite:///")
    connection = sqlite3.connect(database, timeout=1.0, isolation_level=None)
    try:
        for _ in range(10):
            started = time.monotonic()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE ingestion_jobs SET message = 'poke' WHERE asset_id = ?", (asset_id,))
            connection.execute("COMMIT")
            assert time.monotonic() - started < 0.5
            time.sleep(0.15)
    finally:
        connection.close()
    assert all(not reader.closed.is_set() for reader in readers)  # still streaming, just not holding on
    _set_asset(idle_server, asset_id, processing_status=AssetProcessingStatus.READY)
    assert all(reader.closed.wait(10) for reader in readers)


def test_pending_upload_streams_too(idle_server: LiveServer) -> None:
    """An upload URL was issued but nothing confirmed yet: the stream shows PENDING and stays open."""
    _, headers = idle_server.create_user()
    with httpx.Client(base_url=idle_server.url, timeout=10) as http:
        ticket = request_upload(http, headers, size=1000).json()["data"]
    reader = EventReader(idle_server, f"/api/assets/{ticket['assetId']}/events", headers)
    [status] = _statuses(reader.wait_for(lambda found: len(_statuses(found)) == 1))
    assert (status["uploadStatus"], status["processingStatus"], status["currentJob"]) == ("PENDING", "PENDING", None)
    assert not reader.closed.is_set()
    _set_asset(idle_server, ticket["assetId"], processing_status=AssetProcessingStatus.FAILED)
    assert reader.closed.wait(10)


def test_the_library_stream_follows_every_asset_of_its_owner_only(idle_server: LiveServer, small_video: Path) -> None:
    """GET /api/assets/events: an upload made by another client appears, moves and finishes on it; a
    deletion changes the count; another tenant's assets never show."""
    _, headers = idle_server.create_user()
    _, stranger = idle_server.create_user()
    reader = EventReader(idle_server, "/api/assets/events", headers)
    assert reader.response is not None and reader.response.status_code == 200
    reader.wait_for(lambda found: {"event": "count", "id": "1", "data": {"total": 0}} in found)
    with httpx.Client(base_url=idle_server.url, timeout=30) as http:
        upload(http, stranger, small_video, mime_type="video/mp4")  # someone else's: never on this stream
        asset_id = upload(http, headers, small_video, mime_type="video/mp4")["assetId"]
    library = lambda found: [e["data"] for e in found if e.get("event") == "asset"]  # noqa: E731
    reader.wait_for(
        lambda found: any(s["assetId"] == asset_id and s["uploadStatus"] == "UPLOADED" for s in library(found))
    )
    _set_job(idle_server, asset_id, status=TaskStatus.RUNNING, progress=40.0)
    reader.wait_for(lambda found: any((s["currentJob"] or {}).get("progress") == 40.0 for s in library(found)))
    _set_asset(idle_server, asset_id, processing_status=AssetProcessingStatus.READY)
    found = reader.wait_for(lambda found: any(s["processingStatus"] == "READY" for s in library(found)))
    assert {s["assetId"] for s in library(found)} == {asset_id}
    ids = [int(e["id"]) for e in found if "id" in e]
    assert ids == sorted(ids) and len(ids) == len(set(ids))  # a reconnect's Last-Event-ID continues them
    httpx.delete(f"{idle_server.url}/api/assets/{asset_id}", headers=headers, timeout=30)
    reader.wait_for(lambda found: [e["data"] for e in found if e.get("event") == "count"][-1] == {"total": 0})
