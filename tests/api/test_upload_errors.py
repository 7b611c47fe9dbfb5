"""Bad input gets a precise status and error code, and leaves nothing behind: no row, no object, no quota."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.media import PDF_BYTES
from fixtures.uploads import put_bytes, request_upload
from mediaingest.assets import repository
from mediaingest.config import GIB
from mediaingest.db import utcnow
from mediaingest.models import MediaAsset
from mediaingest.models.enums import Plan, UploadStatus
from mediaingest.storage.local import LocalStorage

FIVE_GB = 5 * GIB


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    return body["error"]


def _asset_count(client: TestClient) -> int:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return session.scalar(sa.select(sa.func.count()).select_from(MediaAsset)) or 0


def _asset(client: TestClient, asset_id: str) -> MediaAsset | None:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return session.get(MediaAsset, asset_id)


def _usage(client: TestClient, user_id: str) -> tuple[int, int]:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return repository.bytes_used(session, owner_id=user_id)


def _object_exists(client: TestClient, asset: MediaAsset) -> bool:
    return client.app.state.storage.list_keys(asset.storage_bucket, asset.storage_key) != []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer mi_not-a-real-token"},
        {"Authorization": "Bearer eyJ.e30.x"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ],
    ids=["missing", "unknown-token", "jwt-when-disabled", "wrong-scheme"],
)
def test_requests_without_valid_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    for method, path in [("post", "/api/assets/upload-url"), ("get", "/api/assets"), ("get", "/api/assets/x/status")]:
        response = getattr(client, method)(path, headers=headers, **({"json": {}} if method == "post" else {}))
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert _asset_count(client) == 0


def test_another_tenants_asset_is_404_everywhere(client: TestClient, users: Users, small_video: Path) -> None:
    _, alice = users.create()
    _, mallory = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, alice, size=len(data)).json()["data"]
    body = put_bytes(client, ticket, data)
    asset_id = ticket["assetId"]

    _error(client.post("/api/assets/confirm-upload", json=body, headers=mallory), 404, "not_found")
    _error(client.get(f"/api/assets/{asset_id}", headers=mallory), 404, "not_found")
    _error(client.get(f"/api/assets/{asset_id}/status", headers=mallory), 404, "not_found")
    _error(client.delete(f"/api/assets/{asset_id}", headers=mallory), 404, "not_found")
    assert client.get("/api/assets", headers=mallory).json()["data"]["total"] == 0
    # The owner's asset is untouched by the attempts.
    assert client.post("/api/assets/confirm-upload", json=body, headers=alice).status_code == 200


@pytest.mark.parametrize(
    ("size", "mime", "status", "code"),
    [
        (100, "application/pdf", 415, "mime_type_not_allowed"),
        (100, "text/html", 415, "mime_type_not_allowed"),
        (100, "application/octet-stream", 415, "mime_type_not_allowed"),
        (0, "video/mp4", 422, "validation_error"),
        (-5, "video/mp4", 422, "validation_error"),
        (FIVE_GB + 1, "video/mp4", 413, "file_too_large"),
    ],
)
def test_upload_url_rejects_bad_declarations(
    client: TestClient, users: Users, size: int, mime: str, status: int, code: str
) -> None:
    _, headers = users.create(Plan.ENTERPRISE)
    _error(request_upload(client, headers, size=size, mime_type=mime), status, code)
    assert _asset_count(client) == 0


def test_malformed_request_bodies_are_422_with_field_names(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    error = _error(
        client.post("/api/assets/upload-url", json={"fileName": "a.mp4"}, headers=headers), 422, "validation_error"
    )
    assert "fileSize" in error["message"] and "mimeType" in error["message"]
    bad_sha = request_upload(client, headers, size=10, sha256="not-hex")
    assert "sha256" in _error(bad_sha, 422, "validation_error")["message"]
    _error(client.post("/api/assets/confirm-upload", json={"assetId": "x"}, headers=headers), 422, "validation_error")
    assert _asset_count(client) == 0


@pytest.mark.parametrize("plan", list(Plan))
def test_quota_counts_stored_and_reserved_bytes_per_plan(client: TestClient, users: Users, plan: Plan) -> None:
    user_id, headers = users.create(plan)
    limit = client.app.state.settings.quota_for(plan)  # type: ignore[attr-defined]
    assert limit == {Plan.USER: 5, Plan.PRO: 50, Plan.ENTERPRISE: 500}[plan] * GIB
    # Stored bytes: a verified upload just under the limit (declared sizes only; no gigabytes move).
    with client.app.state.session_factory.begin() as session:  # type: ignore[attr-defined]
        session.add(
            MediaAsset(
                owner_id=user_id, name="big.mov", original_name="big.mov", type="VIDEO", file_size=limit - 3 * GIB,
                mime_type="video/quicktime", upload_status=UploadStatus.UPLOADED, storage_bucket="incoming",
                storage_key=f"uploads/{user_id}/big.mov", upload_expires_at=utcnow(),
            )
        )  # fmt: skip
    # Reserved bytes: a pending upload's declared size counts until it is confirmed, fails or expires.
    assert request_upload(client, headers, size=2 * GIB).status_code == 201
    error = _error(request_upload(client, headers, size=GIB + 1), 413, "quota_exceeded")
    assert error["details"] == {
        "plan": plan.value, "limit": limit, "stored": limit - 3 * GIB, "reserved": 2 * GIB,
        "requested": GIB + 1, "available": GIB,
    }  # fmt: skip
    assert str(limit) in error["message"]
    assert request_upload(client, headers, size=GIB).status_code == 201  # exactly fills the quota
    assert _usage(client, user_id) == (limit - 3 * GIB, 3 * GIB)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("..\\..\\windows\\evil.mp4", "evil.mp4"),
        ("bad\x00na\x1bme\r\n.mp4", "badname.mp4"),
        ("a" * 600 + ".mp4", "a" * 251 + ".mp4"),
        ("no-extension", "no-extension.mp4"),
    ],
)
def test_file_names_are_sanitized(client: TestClient, users: Users, raw: str, expected: str) -> None:
    user_id, headers = users.create()
    ticket = request_upload(client, headers, file_name=raw, size=100).json()["data"]
    assert ticket["fileName"] == expected
    key = ticket["storageKey"]
    assert key.startswith(f"uploads/{user_id}/") and ".." not in key and "\x00" not in key
    assert key.count("/") == 2


def test_content_not_matching_the_declared_type_is_discarded(client: TestClient, users: Users) -> None:
    user_id, headers = users.create()
    ticket = request_upload(client, headers, file_name="movie.mp4", size=len(PDF_BYTES)).json()["data"]
    body = put_bytes(client, ticket, PDF_BYTES)
    assert _usage(client, user_id) == (0, len(PDF_BYTES))

    error = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 422, "integrity_check_failed")
    assert "declared video/mp4" in error["message"] and "application/pdf" in error["message"]
    # Which check failed, for advice that fits ("a PDF, not a video").
    assert error["details"] == {"check": "type", "declared": "video/mp4", "found": "application/pdf"}
    asset = _asset(client, ticket["assetId"])
    assert asset is not None and asset.upload_status == UploadStatus.FAILED
    assert asset.error is not None and "does not match the declared type" in asset.error
    assert not _object_exists(client, asset)
    assert _usage(client, user_id) == (0, 0)
    # The failure is final and explained on a retry, not silently re-run.
    again = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 409, "conflict")
    assert "failed" in again["message"]


def test_audio_declared_but_image_uploaded_is_rejected(client: TestClient, users: Users, small_jpeg: Path) -> None:
    _, headers = users.create()
    data = small_jpeg.read_bytes()
    ticket = request_upload(client, headers, file_name="song.mp3", size=len(data), mime_type="audio/mpeg").json()[
        "data"
    ]
    body = put_bytes(client, ticket, data)
    _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 422, "integrity_check_failed")


def test_wrong_etag_fails_the_upload(client: TestClient, users: Users, small_video: Path) -> None:
    user_id, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    put_bytes(client, ticket, data)
    body = {"assetId": ticket["assetId"], "etag": '"0123456789abcdef0123456789abcdef"'}
    error = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 422, "integrity_check_failed")
    assert "ETag" in error["message"] and error["details"] == {"check": "etag"}
    asset = _asset(client, ticket["assetId"])
    assert asset is not None and asset.upload_status == UploadStatus.FAILED and not _object_exists(client, asset)
    assert _usage(client, user_id) == (0, 0)


def test_size_mismatch_fails_the_upload(client: TestClient, users: Users, small_video: Path) -> None:
    """A store that does not enforce the signed length (or an object written behind our back)."""
    user_id, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data) + 10).json()["data"]
    storage = client.app.state.storage  # type: ignore[attr-defined]
    info = storage.upload_file("incoming", ticket["storageKey"], small_video, content_type="video/mp4")
    body = {"assetId": ticket["assetId"], "etag": info.etag}
    error = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 422, "integrity_check_failed")
    assert f"declared {len(data) + 10} bytes, stored {len(data)} bytes" in error["message"]
    assert error["details"] == {"check": "size", "declared": len(data) + 10, "found": len(data)}
    assert storage.list_keys("incoming", ticket["storageKey"]) == []
    assert _usage(client, user_id) == (0, 0)


def test_wrong_sha256_is_refused_by_the_store_and_by_confirm(
    client: TestClient, users: Users, small_video: Path
) -> None:
    user_id, headers = users.create()
    data = small_video.read_bytes()
    wrong = hashlib.sha256(b"something else").hexdigest()
    ticket = request_upload(client, headers, size=len(data), sha256=wrong).json()["data"]
    # The signed PUT carries the checksum: the store refuses bytes that do not match it.
    rejected = client.put(ticket["uploadUrl"], content=data, headers=ticket["headers"])
    assert rejected.status_code == 400
    # Bytes that reached the store another way are caught again at confirmation.
    storage = client.app.state.storage  # type: ignore[attr-defined]
    info = storage.upload_file("incoming", ticket["storageKey"], small_video, content_type="video/mp4")
    body = {"assetId": ticket["assetId"], "etag": info.etag}
    error = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 422, "integrity_check_failed")
    assert "SHA-256" in error["message"]
    assert _usage(client, user_id) == (0, 0)


def test_confirm_before_upload_is_409_and_keeps_the_reservation(
    client: TestClient, users: Users, small_video: Path
) -> None:
    user_id, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    body = {"assetId": ticket["assetId"], "etag": hashlib.md5(data).hexdigest()}  # noqa: S324
    error = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 409, "conflict")
    assert "PUT the file" in error["message"]
    asset = _asset(client, ticket["assetId"])
    assert asset is not None and asset.upload_status == UploadStatus.PENDING
    assert _usage(client, user_id) == (0, len(data))
    # The client can still upload and confirm.
    put_bytes(client, ticket, data)
    assert client.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 200


def test_unknown_asset_confirm_is_404(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    body = {"assetId": "00000000-0000-0000-0000-000000000000", "etag": "abc"}
    _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 404, "not_found")


def test_tampered_expired_and_other_key_urls_are_403(client: TestClient, users: Users, small_video: Path) -> None:
    _, headers = users.create()
    data = small_video.read_bytes()
    first = request_upload(client, headers, size=len(data)).json()["data"]
    second = request_upload(client, headers, size=len(data)).json()["data"]
    url = first["uploadUrl"]
    tampered = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
    assert client.put(tampered, content=data, headers=first["headers"]).status_code == 403
    # The first URL's query (signature) on the second asset's key.
    other_key = second["uploadUrl"].split("?")[0] + "?" + url.split("?")[1]
    assert client.put(other_key, content=data, headers=first["headers"]).status_code == 403
    storage = client.app.state.storage  # type: ignore[attr-defined]
    # Signed two hours ago for one hour: the same key and secret, a clock in the past.
    two_hours_ago = LocalStorage(
        storage.root, secret=client.app.state.settings.storage_secret(), public_url="http://testserver",  # type: ignore[attr-defined]
        clock=lambda: time.time() - 7200,
    )  # fmt: skip
    expired = two_hours_ago.presign_put(
        "incoming", first["storageKey"], size=len(data), content_type="video/mp4", metadata={}, expires_in=3600
    )
    assert client.put(expired.url, content=data, headers=expired.headers).status_code == 403
    assert storage.list_keys("incoming", first["storageKey"]) == []


def test_expired_uploads_are_swept_and_release_their_reservation(
    client: TestClient, users: Users, small_video: Path
) -> None:
    user_id, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    body = put_bytes(client, ticket, data)
    service = client.app.state.asset_service  # type: ignore[attr-defined]
    with client.app.state.session_factory.begin() as session:  # type: ignore[attr-defined]
        assert service.sweep_expired_uploads(session) == 0
        assert service.sweep_expired_uploads(session, now=utcnow() + timedelta(hours=25)) == 1
    asset = _asset(client, ticket["assetId"])
    assert asset is not None and asset.upload_status == UploadStatus.EXPIRED
    assert not _object_exists(client, asset)
    assert _usage(client, user_id) == (0, 0)
    _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 409, "conflict")


def test_confirm_after_the_session_lapsed_discards_the_upload(
    client: TestClient, users: Users, small_video: Path
) -> None:
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    body = put_bytes(client, ticket, data)
    with client.app.state.session_factory.begin() as session:  # type: ignore[attr-defined]
        asset = session.get(MediaAsset, ticket["assetId"])
        assert asset is not None
        asset.upload_expires_at = utcnow() - timedelta(seconds=1)
    error = _error(client.post("/api/assets/confirm-upload", json=body, headers=headers), 409, "conflict")
    assert "expired" in error["message"]
    asset = _asset(client, ticket["assetId"])
    assert asset is not None and asset.upload_status == UploadStatus.EXPIRED and not _object_exists(client, asset)
