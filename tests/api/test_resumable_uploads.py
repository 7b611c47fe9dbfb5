"""Uploads that survive: the resume API, sessions that outlive their URLs, per-part checksums, abort.

On both backends: the local one checks every signature, expiry and checksum itself; moto checks none
of them (see fixtures.s3), so there the test shows the protocol end to end and that boto3 signs the
checksum header into the part URL.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.live_server import wait_until
from fixtures.s3 import MotoS3Server, settings_on
from fixtures.uploads import put_bytes, request_upload
from mediaingest.catalog import embedded_worker
from mediaingest.config import MIB, Settings
from mediaingest.db import utcnow
from mediaingest.exceptions import ObjectNotFoundError
from mediaingest.models import MediaAsset


@pytest.fixture(params=["local", "s3"])
def backend_settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, moto_s3_server: MotoS3Server
) -> Settings:
    # S3 (and moto) refuse parts under 5 MiB but the last. URLs live a minute, or as the test's url_ttl_seconds
    # marker says: a test that outlives them asks for two seconds (at least one: expiry is in whole seconds),
    # which the others must not get (on a busy machine a part's PUT can arrive two seconds after its URL).
    marker = request.node.get_closest_marker("url_ttl_seconds")
    options: dict[str, Any] = {
        "multipart_threshold": MIB,
        "multipart_part_size": 5 * MIB,
        "upload_url_ttl_seconds": marker.args[0] if marker else 60,
        "proxy_heights": [360],
    }
    return settings_on(request.param, make_settings, moto_s3_server, **options)


@pytest.fixture
def three_parts(small_video: Path) -> bytes:
    """A real video padded to three 5 MiB parts (the last one short)."""
    return small_video.read_bytes() + bytes(11 * MIB)


def _chunk(data: bytes, part: dict[str, Any], part_size: int) -> bytes:
    start = (part["partNumber"] - 1) * part_size
    return data[start : start + part["size"]]


def _put_part(http: httpx.Client | TestClient, part: dict[str, Any], content: bytes) -> httpx.Response:
    return http.put(part["url"], content=content, headers=part["headers"])


def _state(api: TestClient, headers: dict[str, str], asset_id: str) -> dict[str, Any]:
    response = api.get(f"/api/assets/{asset_id}/upload", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.url_ttl_seconds(2)
def test_an_upload_resumes_on_fresh_urls_after_its_urls_expired(
    api: TestClient, http: httpx.Client | TestClient, backend_settings: Settings, users: Users, three_parts: bytes
) -> None:
    _, headers = users.create()
    api.app.state.storage.list_parts_page_size = 2  # type: ignore[attr-defined]  # S3: ListParts paged
    ticket = request_upload(api, headers, size=len(three_parts), sha256=_sha256(three_parts)).json()["data"]
    multipart = ticket["multipart"]
    part_size = multipart["partSize"]
    first, second, third = multipart["parts"]
    for part in (first, second):
        assert _put_part(http, part, _chunk(three_parts, part, part_size)).status_code == 200

    time.sleep(3.05)  # every URL of the ticket is now expired
    if backend_settings.storage_backend == "local":
        refused = _put_part(http, third, _chunk(three_parts, third, part_size))
        assert refused.status_code == 403 and "expired" in refused.text

    state = _state(api, headers, ticket["assetId"])
    assert state["uploadId"] == multipart["uploadId"] and state["partSize"] == part_size
    assert [(p["partNumber"], p["size"]) for p in state["receivedParts"]] == [(1, 5 * MIB), (2, 5 * MIB)]
    assert [p["etag"] for p in state["receivedParts"]] == [
        hashlib.md5(_chunk(three_parts, part, part_size)).hexdigest()  # noqa: S324 (S3's ETag)
        for part in (first, second)
    ]
    assert [p["partNumber"] for p in state["parts"]] == [3] and not state["complete"]
    assert state["parts"][0]["url"] != third["url"]
    assert state["sessionExpiresAt"] > (utcnow() + timedelta(hours=23)).isoformat()

    # The last part on a URL that carries its checksum, then nothing is missing.
    chunk = _chunk(three_parts, third, part_size)
    signed = api.post(
        f"/api/assets/{ticket['assetId']}/upload/parts",
        json={"parts": [{"partNumber": 3, "sha256": _sha256(chunk)}]},
        headers=headers,
    )
    assert signed.status_code == 200, signed.text
    (fresh,) = signed.json()["data"]["parts"]
    assert _put_part(http, fresh, chunk).status_code == 200
    done = _state(api, headers, ticket["assetId"])
    assert done["complete"] and done["parts"] == [] and len(done["receivedParts"]) == 3

    parts = [{"partNumber": p["partNumber"], "etag": p["etag"]} for p in done["receivedParts"]]
    body = {"assetId": ticket["assetId"], "parts": parts}
    confirmed = api.post("/api/assets/confirm-upload", json=body, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    # The declared whole-file SHA-256 was checked at confirm, on S3 too (one streamed read).
    assert confirmed.json()["data"]["checksum"] == _sha256(three_parts)
    assert api.get(f"/api/assets/{ticket['assetId']}/upload", headers=headers).status_code == 409

    with embedded_worker(backend_settings):
        wait_until(
            lambda: (
                api.get(f"/api/assets/{ticket['assetId']}", headers=headers).json()["data"]["processingStatus"]
                == "READY"
            ),
            timeout=90,
            message="the resumed upload should be ingested",
        )


def test_a_corrupted_part_is_refused_on_its_own(
    api: TestClient, http: httpx.Client | TestClient, backend_settings: Settings, users: Users, three_parts: bytes
) -> None:
    _, headers = users.create()
    ticket = request_upload(api, headers, size=len(three_parts)).json()["data"]
    part_size = ticket["multipart"]["partSize"]
    chunk = three_parts[:part_size]
    signed = api.post(
        f"/api/assets/{ticket['assetId']}/upload/parts",
        json={"parts": [{"partNumber": 1, "sha256": _sha256(chunk)}]},
        headers=headers,
    ).json()["data"]["parts"][0]
    assert signed["headers"]["x-amz-checksum-sha256"]  # the client must send it, exactly
    if backend_settings.storage_backend == "s3":
        # moto verifies nothing; S3 does, because boto3 signed the header into the URL.
        assert "x-amz-checksum-sha256" in signed["url"].split("X-Amz-SignedHeaders=")[1].split("&")[0]
        return
    damaged = bytearray(chunk)
    damaged[1000] ^= 0xFF
    refused = _put_part(http, signed, bytes(damaged))
    assert refused.status_code == 400 and "BadDigest" in refused.text
    assert _state(api, headers, ticket["assetId"])["receivedParts"] == []
    # Another checksum than the signed one is a signature mismatch, not a way around it.
    forged = http.put(
        signed["url"],
        content=bytes(damaged),
        headers={**signed["headers"], "x-amz-checksum-sha256": hashlib.sha256(damaged).digest().hex()},
    )
    assert forged.status_code == 403
    assert _put_part(http, signed, chunk).status_code == 200
    assert [p["partNumber"] for p in _state(api, headers, ticket["assetId"])["receivedParts"]] == [1]


def test_abort_leaves_nothing_and_releases_the_quota(
    api: TestClient, http: httpx.Client | TestClient, backend_settings: Settings, users: Users, three_parts: bytes
) -> None:
    _, headers = users.create()
    ticket = request_upload(api, headers, size=len(three_parts)).json()["data"]
    part = ticket["multipart"]["parts"][0]
    assert _put_part(http, part, three_parts[: part["size"]]).status_code == 200
    assert api.get("/api/me", headers=headers).json()["data"]["quota"]["reservedBytes"] == len(three_parts)

    aborted = api.post(f"/api/assets/{ticket['assetId']}/upload/abort", headers=headers)
    assert aborted.status_code == 200, aborted.text
    assert api.get(f"/api/assets/{ticket['assetId']}", headers=headers).status_code == 404
    assert api.get("/api/me", headers=headers).json()["data"]["quota"]["reservedBytes"] == 0
    storage = api.app.state.storage  # type: ignore[attr-defined]
    with pytest.raises(ObjectNotFoundError):
        upload_id = ticket["multipart"]["uploadId"]
        storage.list_parts(backend_settings.bucket_incoming, ticket["storageKey"], upload_id=upload_id)
    assert storage.list_keys(backend_settings.bucket_incoming, "uploads/") == []
    assert api.post(f"/api/assets/{ticket['assetId']}/upload/abort", headers=headers).status_code == 404


def test_a_confirmed_upload_cannot_be_aborted_or_resumed(
    api: TestClient, http: httpx.Client | TestClient, users: Users, small_video: Path
) -> None:
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(api, headers, size=len(data)).json()["data"]
    state = _state(api, headers, ticket["assetId"])  # a single PUT: a fresh URL until the bytes are there
    assert state["uploadUrl"] and state["uploadId"] is None and not state["complete"]
    body = put_bytes(http, {**ticket, "uploadUrl": state["uploadUrl"], "headers": state["headers"]}, data)
    stored = _state(api, headers, ticket["assetId"])
    assert stored["complete"] and stored["uploadUrl"] is None and stored["etag"] == body["etag"].strip('"')
    assert api.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 200
    for response in (
        api.post(f"/api/assets/{ticket['assetId']}/upload/abort", headers=headers),
        api.get(f"/api/assets/{ticket['assetId']}/upload", headers=headers),
    ):
        assert response.status_code == 409, response.text
        assert "uploaded" in response.json()["error"]["message"]


def test_a_session_stays_open_while_parts_arrive_and_is_swept_once_idle(
    api: TestClient, http: httpx.Client | TestClient, backend_settings: Settings, users: Users, three_parts: bytes
) -> None:
    _, headers = users.create()
    ticket = request_upload(api, headers, size=len(three_parts)).json()["data"]
    sessions = api.app.state.session_factory  # type: ignore[attr-defined]
    signed = api.post(
        f"/api/assets/{ticket['assetId']}/upload/parts", json={"parts": [{"partNumber": 2}]}, headers=headers
    )
    assert signed.status_code == 200  # asking for URLs moves the deadline a day ahead
    assert signed.json()["data"]["sessionExpiresAt"] > (utcnow() + timedelta(hours=23)).isoformat()
    (part,) = signed.json()["data"]["parts"]
    assert _put_part(http, part, _chunk(three_parts, part, 5 * MIB)).status_code == 200
    with sessions.begin() as session:  # past the deadline again, but a part arrived just now
        session.get(MediaAsset, ticket["assetId"]).upload_expires_at = utcnow() - timedelta(hours=1)

    service = api.app.state.asset_service  # type: ignore[attr-defined]
    with sessions.begin() as session:
        assert service.sweep_expired_uploads(session) == 0  # a part arrived just now: still open
    with sessions.begin() as session:
        deadline = session.get(MediaAsset, ticket["assetId"]).upload_expires_at
    assert deadline > utcnow() + timedelta(hours=23)
    with sessions.begin() as session:
        assert service.sweep_expired_uploads(session, now=utcnow() + timedelta(hours=25)) == 1
    state = api.get(f"/api/assets/{ticket['assetId']}/upload", headers=headers)
    assert state.status_code == 409 and "expired" in state.json()["error"]["message"]
    assert api.get("/api/me", headers=headers).json()["data"]["quota"]["reservedBytes"] == 0
