"""The upload protocol end to end on the embedded default: upload-url → PUT → confirm, on both databases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.uploads import put_bytes, request_upload, upload
from mediaingest.api import create_app
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import IngestionJobType


def test_single_part_upload_is_verified_and_queued_for_ingestion(
    client: TestClient, users: Users, small_video: Path
) -> None:
    user_id, headers = users.create()
    data = small_video.read_bytes()

    ticket_response = request_upload(client, headers, file_name="My Clip.MP4", size=len(data), project_id="p1")
    assert ticket_response.status_code == 201, ticket_response.text
    ticket = ticket_response.json()["data"]
    assert ticket["multipart"] is None
    assert ticket["fileName"] == "My Clip.mp4"
    assert ticket["storageKey"].startswith(f"uploads/{user_id}/")
    assert ticket["storageKey"].endswith(f"-{ticket['assetId']}.mp4")
    assert ticket["headers"]["Content-Type"] == "video/mp4"

    confirm_body = put_bytes(client, ticket, data)
    confirmed = client.post("/api/assets/confirm-upload", json=confirm_body, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    answer = confirmed.json()
    assert answer["success"] is True
    assert answer["data"]["assetId"] == ticket["assetId"]
    assert answer["data"]["checksum"] == hashlib.sha256(data).hexdigest()
    assert answer["data"]["etag"] == hashlib.md5(data).hexdigest()  # noqa: S324  (S3's ETag is an MD5)
    assert answer["data"]["uploadStatus"] == "UPLOADED"

    detail = client.get(f"/api/assets/{ticket['assetId']}", headers=headers).json()["data"]
    assert detail["fileSize"] == len(data)
    assert detail["type"] == "VIDEO"
    assert detail["projectId"] == "p1"
    downloaded = client.get(detail["downloadUrl"])
    assert downloaded.status_code == 200
    assert downloaded.content == data

    status = client.get(f"/api/assets/{ticket['assetId']}/status", headers=headers).json()["data"]
    assert status["uploadStatus"] == "UPLOADED"
    assert status["processingStatus"] == "PENDING"
    assert status["currentJob"]["type"] == "METADATA_EXTRACTION"
    assert status["currentJob"]["status"] == "PENDING"
    assert status["currentJob"]["progress"] == 0


def test_multipart_upload_completes_with_s3_style_etag(
    make_settings: SettingsFactory, users: Users, small_video: Path
) -> None:
    data = small_video.read_bytes()
    part_size = len(data) // 3 + 1
    settings = make_settings(multipart_threshold=1024, multipart_part_size=part_size)
    with TestClient(create_app(settings, configure_logs=False)) as client:
        _, headers = users.create()
        ticket = request_upload(client, headers, size=len(data)).json()["data"]
        multipart = ticket["multipart"]
        assert ticket["uploadUrl"] is None
        assert multipart["partSize"] == part_size
        assert [part["partNumber"] for part in multipart["parts"]] == [1, 2, 3]
        assert sum(part["size"] for part in multipart["parts"]) == len(data)

        confirm_body = put_bytes(client, ticket, data)
        confirmed = client.post("/api/assets/confirm-upload", json=confirm_body, headers=headers)
        assert confirmed.status_code == 200, confirmed.text
        part_md5s = b"".join(
            hashlib.md5(data[i : i + part_size]).digest()  # noqa: S324
            for i in range(0, len(data), part_size)
        )
        expected_etag = f"{hashlib.md5(part_md5s).hexdigest()}-3"  # noqa: S324
        assert confirmed.json()["data"]["etag"] == expected_etag
        assert confirmed.json()["data"]["checksum"] == hashlib.sha256(data).hexdigest()
        downloaded = client.get(
            client.get(f"/api/assets/{ticket['assetId']}", headers=headers).json()["data"]["downloadUrl"]
        )
        assert downloaded.content == data


def test_confirm_is_idempotent_and_dispatches_once(client: TestClient, users: Users, small_video: Path) -> None:
    _, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(client, headers, size=len(data)).json()["data"]
    body = put_bytes(client, ticket, data)
    first = client.post("/api/assets/confirm-upload", json=body, headers=headers)
    second = client.post("/api/assets/confirm-upload", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["data"] == second.json()["data"]
    session_factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with session_factory() as session:
        jobs = session.scalars(sa.select(IngestionJob).where(IngestionJob.asset_id == ticket["assetId"])).all()
    assert [job.type for job in jobs] == [IngestionJobType("METADATA_EXTRACTION")]


def test_declared_sha256_is_checked_on_the_stored_bytes(client: TestClient, users: Users, small_audio: Path) -> None:
    _, headers = users.create()
    confirmed = upload(client, headers, small_audio, mime_type="audio/wav", declare_sha256=True)
    assert confirmed["checksum"] == hashlib.sha256(small_audio.read_bytes()).hexdigest()


def test_list_filters_and_paginates_only_the_callers_assets(
    client: TestClient, users: Users, small_video: Path, small_jpeg: Path
) -> None:
    _, alice = users.create()
    _, bob = users.create()
    upload(client, alice, small_video, mime_type="video/mp4")
    upload(client, alice, small_jpeg, mime_type="image/jpeg")
    request_upload(client, alice, size=10, file_name="pending.mov", mime_type="video/quicktime", project_id="x")
    upload(client, bob, small_video, mime_type="video/mp4")

    everything = client.get("/api/assets", headers=alice).json()["data"]
    assert everything["total"] == 3
    images = client.get("/api/assets", params={"type": "IMAGE"}, headers=alice).json()["data"]
    assert [item["name"] for item in images["items"]] == ["photo.jpg"]
    pending = client.get("/api/assets", params={"status": "PENDING"}, headers=alice).json()["data"]
    assert [item["name"] for item in pending["items"]] == ["pending.mov"]
    by_project = client.get("/api/assets", params={"projectId": "x"}, headers=alice).json()["data"]
    assert by_project["total"] == 1
    page = client.get("/api/assets", params={"page": 2, "pageSize": 2}, headers=alice).json()["data"]
    assert (page["total"], len(page["items"]), page["page"]) == (3, 1, 2)
    assert client.get("/api/assets", headers=bob).json()["data"]["total"] == 1
    # Short ids, as the CLI's table shows them: the caller's asset only, and never fewer than 4 characters.
    bobs = client.get("/api/assets", headers=bob).json()["data"]["items"][0]["id"]
    mine = everything["items"][0]["id"]
    by_prefix = client.get("/api/assets", params={"idPrefix": mine[:8].upper()}, headers=alice).json()["data"]
    assert [item["id"] for item in by_prefix["items"]] == [mine]
    assert client.get("/api/assets", params={"idPrefix": bobs[:8]}, headers=alice).json()["data"]["total"] == 0
    for bad in ("abc", "ab%_", "../x"):
        assert client.get("/api/assets", params={"idPrefix": bad}, headers=alice).status_code == 422


def test_delete_removes_objects_rows_and_quota(client: TestClient, users: Users, small_video: Path) -> None:
    _, headers = users.create()
    confirmed = upload(client, headers, small_video, mime_type="video/mp4")
    asset_id = confirmed["assetId"]
    storage = client.app.state.storage  # type: ignore[attr-defined]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    session_factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with session_factory() as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None
        bucket, key, owner = asset.storage_bucket, asset.storage_key, asset.owner_id
    derived = f"assets/{owner}/{asset_id}/thumbnails/poster.jpg"
    storage.upload_file(settings.bucket_processed, derived, small_video, content_type="image/jpeg")

    deleted = client.delete(f"/api/assets/{asset_id}", headers=headers)
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"assetId": asset_id, "deleted": True}
    assert client.get(f"/api/assets/{asset_id}", headers=headers).status_code == 404
    assert client.delete(f"/api/assets/{asset_id}", headers=headers).status_code == 404
    assert storage.list_keys(bucket, key) == []
    assert storage.list_keys(settings.bucket_processed, f"assets/{owner}/{asset_id}/") == []
    with session_factory() as session:
        assert session.get(MediaAsset, asset_id) is None
        assert session.scalars(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id)).all() == []


def test_me_tells_the_plan_and_the_quota_upload_url_checks(client: TestClient, users: Users, small_video: Path) -> None:
    _, headers = users.create()
    before = client.get("/api/me", headers=headers).json()["data"]
    assert before["plan"] == "USER" and before["email"]
    assert before["quota"] == {
        "limitBytes": 5 * 1024**3, "storedBytes": 0, "reservedBytes": 0, "availableBytes": 5 * 1024**3
    }  # fmt: skip
    upload(client, headers, small_video, mime_type="video/mp4")
    request_upload(client, headers, size=1000, file_name="later.mov", mime_type="video/quicktime")
    after = client.get("/api/me", headers=headers).json()["data"]["quota"]
    size = small_video.stat().st_size
    assert (after["storedBytes"], after["reservedBytes"]) == (size, 1000)
    assert after["availableBytes"] == 5 * 1024**3 - size - 1000
    assert client.get("/api/me").status_code == 401
