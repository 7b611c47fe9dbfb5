"""Confirm holds no database lock while storage completes the upload, and settles races with delete
and with a second confirm without orphaned objects — on SQLite and PostgreSQL.

Completing a multipart upload on the local backend reads and writes every byte (seconds for a big
file); SQLite has a single writer for the whole service. The storage here is the real local
backend; a gate only holds its completion at a chosen moment so the other request can interleave.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.uploads import put_bytes, request_upload
from mediaingest.api import create_app
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.storage.local import LocalStorage

GATE_SECONDS = 20  # how long a held completion waits at most: a broken test fails, it does not hang


class Gate:
    """Holds LocalStorage.complete_multipart_upload before (or after) it runs, until released."""

    def __init__(self, storage: LocalStorage, monkeypatch: pytest.MonkeyPatch, *, after: bool = False) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        original = storage.complete_multipart_upload

        def held(*args: Any, **kwargs: Any) -> Any:
            if not after:
                self._hold()
            result = original(*args, **kwargs)
            if after:
                self._hold()
            return result

        monkeypatch.setattr(storage, "complete_multipart_upload", held)

    def _hold(self) -> None:
        if self.entered.is_set():
            return  # only the first completion is held
        self.entered.set()
        self.released.wait(GATE_SECONDS)


@pytest.fixture
def multipart_client(make_settings: SettingsFactory) -> Iterator[TestClient]:
    settings = make_settings(multipart_threshold=1024, multipart_part_size=64 * 1024)
    with TestClient(create_app(settings, configure_logs=False)) as client:
        yield client


@contextmanager
def confirming(client: TestClient, gate: Gate, body: dict[str, Any], headers: dict[str, str]) -> Iterator[Future]:
    """A confirm request running in the background, held at the gate while the block runs."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.post, "/api/assets/confirm-upload", json=body, headers=headers)
        try:
            assert gate.entered.wait(GATE_SECONDS), "the confirm never reached storage"
            yield future
        finally:
            gate.released.set()


def _prepare(client: TestClient, headers: dict[str, str], data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    assert ticket["multipart"] is not None
    return ticket, put_bytes(client, ticket, data)


def _incoming_files(client: TestClient, user_id: str) -> list[Path]:
    storage: LocalStorage = client.app.state.storage  # type: ignore[attr-defined]
    folder = storage.root / client.app.state.settings.bucket_incoming / "uploads" / user_id  # type: ignore[attr-defined]
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def _within(seconds: float, call: Callable[[], httpx.Response]) -> httpx.Response:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=seconds)


def test_other_writes_go_on_while_a_confirm_completes_its_upload(
    multipart_client: TestClient, users: Users, small_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = multipart_client
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket, body = _prepare(client, headers, data)
    gate = Gate(client.app.state.storage, monkeypatch)  # type: ignore[attr-defined]

    with confirming(client, gate, body, headers) as confirm:
        # A write by the same tenant (quota reservation) and a status read, while storage works.
        other = _within(10, lambda: request_upload(client, headers, file_name="other.mp4", size=10))
        assert other.status_code == 201, other.text
        status = _within(10, lambda: client.get(f"/api/assets/{ticket['assetId']}/status", headers=headers))
        assert status.json()["data"]["uploadStatus"] == "PENDING"

    confirmed = confirm.result(timeout=GATE_SECONDS)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["data"]["uploadStatus"] == "UPLOADED"


def test_deleting_an_asset_while_its_confirm_runs_leaves_nothing_behind(
    multipart_client: TestClient, users: Users, small_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = multipart_client
    user_id, headers = users.create()
    ticket, body = _prepare(client, headers, small_video.read_bytes())
    gate = Gate(client.app.state.storage, monkeypatch)  # type: ignore[attr-defined]

    with confirming(client, gate, body, headers) as confirm:
        deleted = _within(10, lambda: client.delete(f"/api/assets/{ticket['assetId']}", headers=headers))
        assert deleted.status_code == 200, deleted.text

    answer = confirm.result(timeout=GATE_SECONDS)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    assert _incoming_files(client, user_id) == []
    assert client.get(f"/api/assets/{ticket['assetId']}", headers=headers).status_code == 404


def test_an_object_completed_after_its_asset_was_deleted_is_removed(
    multipart_client: TestClient, users: Users, small_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deleter removed the objects before the completion wrote the assembled one."""
    client = multipart_client
    user_id, headers = users.create()
    ticket, body = _prepare(client, headers, small_video.read_bytes())
    gate = Gate(client.app.state.storage, monkeypatch, after=True)  # type: ignore[attr-defined]

    with confirming(client, gate, body, headers) as confirm:
        assert [path.name for path in _incoming_files(client, user_id)] == [ticket["storageKey"].rsplit("/", 1)[1]]
        with client.app.state.session_factory() as session, session.begin():  # type: ignore[attr-defined]
            session.execute(sa.delete(MediaAsset).where(MediaAsset.id == ticket["assetId"]))

    assert confirm.result(timeout=GATE_SECONDS).status_code == 404
    assert _incoming_files(client, user_id) == []


def test_a_second_confirm_during_the_first_is_told_to_retry_and_then_gets_the_same_answer(
    multipart_client: TestClient, users: Users, small_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = multipart_client
    _, headers = users.create()
    ticket, body = _prepare(client, headers, small_video.read_bytes())
    gate = Gate(client.app.state.storage, monkeypatch, after=True)  # type: ignore[attr-defined]

    with confirming(client, gate, body, headers) as first:
        # The first has claimed and assembled the upload but not recorded it yet.
        second = _within(10, lambda: client.post("/api/assets/confirm-upload", json=body, headers=headers))
        assert second.status_code == 409, second.text
        assert "another confirm of this asset is under way, retry" in second.json()["error"]["message"]

    assert first.result(timeout=GATE_SECONDS).status_code == 200
    again = client.post("/api/assets/confirm-upload", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["data"] == first.result().json()["data"]
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        jobs = session.scalars(sa.select(IngestionJob.type).where(IngestionJob.asset_id == ticket["assetId"])).all()
    assert len(jobs) == len(set(jobs)) > 0  # dispatched once: one job per stage of the plan
