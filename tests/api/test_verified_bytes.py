"""Verified bytes stay verified: an upload URL writes at most once and only while its asset waits for
bytes; the pipeline reads exactly the bytes confirm verified; no object outlives its asset."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.live_server import wait_until
from fixtures.media import PDF_BYTES
from fixtures.s3 import MotoS3Server, settings_on
from fixtures.uploads import put_bytes, request_upload
from mediaingest.api import create_app
from mediaingest.assets import repository
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings
from mediaingest.exceptions import PermanentProcessingError
from mediaingest.worker.stage_runner import _verify_checksum


@pytest.fixture(params=["local", "s3"])
def backend_settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, moto_s3_server: MotoS3Server
) -> Settings:
    return settings_on(request.param, make_settings, moto_s3_server, proxy_heights=[360])


def _put(http: httpx.Client | TestClient, ticket: dict, data: bytes) -> httpx.Response:  # type: ignore[type-arg]
    return http.put(ticket["uploadUrl"], content=data, headers=ticket["headers"])


def _keys(api: TestClient, settings: Settings) -> list[str]:
    return api.app.state.storage.list_keys(settings.bucket_incoming, "uploads/")  # type: ignore[attr-defined]


def test_an_upload_url_writes_once(
    api: TestClient, http: httpx.Client | TestClient, users: Users, small_video: Path
) -> None:
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(api, headers, size=len(data)).json()["data"]
    assert ticket["headers"]["If-None-Match"] == "*"
    first = _put(http, ticket, data)
    assert first.status_code == 200, first.text
    other = bytes(reversed(data))
    second = _put(http, ticket, other)
    assert second.status_code == 412, second.text
    assert "PreconditionFailed" in second.text

    confirmed = api.post("/api/assets/confirm-upload", json={"assetId": ticket["assetId"],
                         "etag": first.headers["etag"]}, headers=headers)  # fmt: skip
    assert confirmed.status_code == 200, confirmed.text
    after = _put(http, ticket, other)
    assert after.status_code in (403, 412), after.text
    detail = api.get(f"/api/assets/{ticket['assetId']}", headers=headers).json()["data"]
    assert http.get(detail["downloadUrl"]).content == data


def test_local_upload_urls_die_with_their_pending_state(client: TestClient, users: Users, settings: Settings) -> None:
    """Deleted, or failed its integrity check: the URL writes nothing, so no object escapes the quota."""
    user_id, headers = users.create()
    deleted = request_upload(client, headers, size=len(PDF_BYTES)).json()["data"]
    assert client.delete(f"/api/assets/{deleted['assetId']}", headers=headers).status_code == 200
    refused = _put(client, deleted, PDF_BYTES)
    assert refused.status_code == 403 and "AccessDenied" in refused.text

    failed = request_upload(client, headers, size=len(PDF_BYTES)).json()["data"]
    body = put_bytes(client, failed, PDF_BYTES)
    assert client.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 422
    assert _put(client, failed, PDF_BYTES).status_code == 403

    assert _keys(client, settings) == []
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert repository.bytes_used(session, owner_id=user_id) == (0, 0)


def test_local_part_urls_die_with_their_pending_state(make_settings: SettingsFactory, users: Users) -> None:
    settings = make_settings(multipart_threshold=1024, multipart_part_size=1024)
    with TestClient(create_app(settings, configure_logs=False)) as client:
        _, headers = users.create()
        ticket = request_upload(client, headers, size=3000).json()["data"]
        part = ticket["multipart"]["parts"][0]
        assert client.delete(f"/api/assets/{ticket['assetId']}", headers=headers).status_code == 200
        response = client.put(part["url"], content=b"\0" * part["size"], headers=part["headers"])
        assert response.status_code in (403, 404), response.text


def test_strays_under_the_upload_prefix_are_reaped(
    api: TestClient, http: httpx.Client | TestClient, backend_settings: Settings, users: Users, tmp_path: Path
) -> None:
    """An S3 URL cannot be revoked: bytes PUT after DELETE land with no row. The sweep removes them,
    and every object a live asset owns stays."""
    user_id, headers = users.create()
    live = request_upload(api, headers, size=4).json()["data"]
    assert _put(http, live, b"live").status_code == 200
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"stray bytes")
    storage = api.app.state.storage  # type: ignore[attr-defined]
    stray_key = f"uploads/{user_id}/0-crashed-between-storage-and-database.mp4"
    storage.upload_file(backend_settings.bucket_incoming, stray_key, orphan, content_type="video/mp4")
    deleted = request_upload(api, headers, size=4).json()["data"]
    assert api.delete(f"/api/assets/{deleted['assetId']}", headers=headers).status_code == 200
    late = _put(http, deleted, b"late")
    if backend_settings.storage_backend == "local":
        assert late.status_code == 403
    assert stray_key in _keys(api, backend_settings)

    service = api.app.state.asset_service  # type: ignore[attr-defined]
    with api.app.state.session_factory() as session:  # type: ignore[attr-defined]
        removed = service.reap_stray_uploads(session, batch=1)
    assert removed == (1 if backend_settings.storage_backend == "local" else 2)
    assert _keys(api, backend_settings) == [live["storageKey"]]


@pytest.mark.slow
def test_bytes_swapped_after_confirm_are_never_processed(
    api: TestClient, backend_settings: Settings, users: Users, small_video: Path, tmp_path: Path
) -> None:
    """Same size, other bytes, written straight into the store after confirm: the worker's pinned read
    refuses them, the asset fails with a clear reason, and nothing is made from them."""
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(api, headers, size=len(data)).json()["data"]
    if backend_settings.storage_backend == "local":
        body = put_bytes(api, ticket, data)
    else:
        with httpx.Client(timeout=30) as wire:
            body = put_bytes(wire, ticket, data)
    assert api.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 200

    swapped = tmp_path / "swapped.mp4"
    swapped.write_bytes(data[:4096] + bytes(len(data) - 4096))
    storage = api.app.state.storage  # type: ignore[attr-defined]
    storage.upload_file(backend_settings.bucket_incoming, ticket["storageKey"], swapped, content_type="video/mp4")

    def status() -> dict:  # type: ignore[type-arg]
        return api.get(f"/api/assets/{ticket['assetId']}", headers=headers).json()["data"]

    with embedded_worker(backend_settings):
        wait_until(lambda: status()["processingStatus"] == "FAILED", timeout=60, message="asset should fail")
    detail = status()
    assert "not the one verified at confirm" in detail["error"]
    assert detail["proxies"] == [] and (detail["metadata"] or {}).get("durationSeconds") is None


def test_the_probe_rehashes_even_when_the_checksum_is_known(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"other bytes of the same size")
    with pytest.raises(PermanentProcessingError, match="changed after they were verified"):
        _verify_checksum(source, known="0" * 64, declared=None)


def test_a_store_no_upload_has_reached_is_swept_as_empty(backend_settings: Settings) -> None:
    """A fresh install: the incoming bucket does not exist yet (the local backend makes it at the first
    upload; an S3 one may be created later by its owner). The sweep finds nothing to do instead of failing."""
    from mediaingest.assets.service import AssetService
    from mediaingest.db import create_db_engine, create_session_factory
    from mediaingest.dispatch import build_dispatcher
    from mediaingest.storage import build_storage

    settings = backend_settings.model_copy(update={"bucket_incoming": f"never-made-{uuid.uuid4().hex[:8]}"})
    service = AssetService(settings=settings, storage=build_storage(settings), dispatcher=build_dispatcher(settings))
    engine = create_db_engine(settings.resolved_database_url, pool_size=1)
    try:
        with create_session_factory(engine)() as session:
            assert service.sweep_expired_uploads(session) == 0
            assert service.reap_stray_uploads(session) == 0
    finally:
        engine.dispose()
