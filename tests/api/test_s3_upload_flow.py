"""The same upload protocol with STORAGE_BACKEND=s3, against moto's S3 server on loopback.

moto checks no presigned signature, expiry or checksum (those are covered on the local backend and by
tests/storage on the URLs boto3 signs); here it is the wire peer that proves the protocol end to end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.s3 import MotoS3Server
from fixtures.uploads import put_bytes, request_upload, upload
from mediaingest.api import create_app
from mediaingest.config import MIB, Settings
from mediaingest.storage import build_storage


@pytest.fixture
def s3_settings(make_settings: SettingsFactory, moto_s3_server: MotoS3Server) -> Settings:
    return moto_s3_server.settings(make_settings)


@pytest.fixture
def s3_client(s3_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(s3_settings, configure_logs=False)) as client:
        yield client


def test_single_part_upload_against_s3(
    s3_client: TestClient, s3_settings: Settings, users: Users, small_video: Path, wire: httpx.Client
) -> None:
    user_id, headers = users.create()
    data = small_video.read_bytes()
    ticket = request_upload(s3_client, headers, size=len(data), file_name="Été clip.mp4").json()["data"]
    assert ticket["uploadUrl"].startswith(s3_settings.s3_endpoint_url)
    assert "X-Amz-Expires=3600" in ticket["uploadUrl"]
    body = put_bytes(wire, ticket, data)
    confirmed = s3_client.post("/api/assets/confirm-upload", json=body, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    answer = confirmed.json()["data"]
    assert answer["etag"] == hashlib.md5(data).hexdigest()  # noqa: S324
    # No checksum declared: S3 holds none, so the worker's first read computes it.
    assert answer["checksum"] is None
    storage = s3_client.app.state.storage  # type: ignore[attr-defined]
    info = storage.head(s3_settings.bucket_incoming, ticket["storageKey"])
    assert info.metadata["asset-id"] == ticket["assetId"] and info.metadata["user-id"] == user_id
    detail = s3_client.get(f"/api/assets/{ticket['assetId']}", headers=headers).json()["data"]
    assert wire.get(detail["downloadUrl"]).content == data


def test_declared_sha256_travels_with_the_upload_to_s3(
    s3_client: TestClient, users: Users, small_audio: Path, wire: httpx.Client
) -> None:
    _, headers = users.create()
    confirmed = upload(s3_client, headers, small_audio, mime_type="audio/wav", http=wire, declare_sha256=True)
    assert confirmed["checksum"] == hashlib.sha256(small_audio.read_bytes()).hexdigest()


def test_multipart_upload_against_s3(
    make_settings: SettingsFactory, moto_s3_server: MotoS3Server, users: Users, small_video: Path, wire: httpx.Client
) -> None:
    # S3 (and moto) insist on 5 MiB parts but the last: a real header padded to three parts.
    data = small_video.read_bytes() + bytes(11 * MIB)
    settings = make_settings(
        **moto_s3_server.settings_overrides(), multipart_threshold=MIB, multipart_part_size=5 * MIB
    )
    build_storage(settings).ensure_buckets([settings.bucket_incoming])
    with TestClient(create_app(settings, configure_logs=False)) as client:
        _, headers = users.create()
        ticket = request_upload(client, headers, size=len(data)).json()["data"]
        assert len(ticket["multipart"]["parts"]) == 3
        body = put_bytes(wire, ticket, data)
        confirmed = client.post("/api/assets/confirm-upload", json=body, headers=headers)
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["data"]["etag"].endswith("-3")
        # A wrong part ETag is refused by name; the upload itself is not lost.
        ticket2 = request_upload(client, headers, size=len(data)).json()["data"]
        body2 = put_bytes(wire, ticket2, data)
        body2["parts"][1]["etag"] = "0" * 32
        refused = client.post("/api/assets/confirm-upload", json=body2, headers=headers)
        assert refused.status_code == 422, refused.text
        fixed = put_bytes(wire, ticket2, data)
        assert client.post("/api/assets/confirm-upload", json=fixed, headers=headers).status_code == 200


def test_abandoned_multipart_upload_is_aborted_by_the_sweeper(
    make_settings: SettingsFactory, moto_s3_server: MotoS3Server, users: Users, wire: httpx.Client
) -> None:
    from datetime import timedelta

    from mediaingest.db import utcnow

    settings = make_settings(
        **moto_s3_server.settings_overrides(), multipart_threshold=MIB, multipart_part_size=5 * MIB
    )
    storage = build_storage(settings)
    storage.ensure_buckets([settings.bucket_incoming])
    with TestClient(create_app(settings, configure_logs=False)) as client:
        _, headers = users.create()
        ticket = request_upload(client, headers, size=6 * MIB).json()["data"]
        first = ticket["multipart"]["parts"][0]
        assert wire.put(first["url"], content=bytes(first["size"]), headers=first["headers"]).status_code == 200
        service = client.app.state.asset_service  # type: ignore[attr-defined]
        with client.app.state.session_factory.begin() as session:  # type: ignore[attr-defined]
            assert service.sweep_expired_uploads(session, now=utcnow() + timedelta(hours=25)) == 1
        uploads = storage.client.list_multipart_uploads(Bucket=settings.bucket_incoming).get("Uploads", [])
        assert [u for u in uploads if u["UploadId"] == ticket["multipart"]["uploadId"]] == []
