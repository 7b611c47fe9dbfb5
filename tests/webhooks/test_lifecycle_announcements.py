"""Every path that ends an asset queues its completion webhook: the worker (tested in test_webhooks),
the operator's database mirror, and the upload service's integrity check."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.media import PDF_BYTES
from fixtures.uploads import put_bytes, request_upload
from mediaingest.db import utcnow
from mediaingest.models import MediaAsset, WebhookDelivery
from mediaingest.models.enums import AssetProcessingStatus, UploadStatus
from mediaingest.operator.handlers.reconcile import AssetPhase
from mediaingest.operator.mirror import SqlAlchemyMirror


def _subscribe(client: TestClient, headers: dict[str, str]) -> None:
    response = client.put("/api/webhook", json={"url": "https://hooks.example.test/media"}, headers=headers)
    assert response.status_code == 200, response.text


def _deliveries(client: TestClient, asset_id: str) -> list[str]:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return list(session.scalars(sa.select(WebhookDelivery.event).where(WebhookDelivery.asset_id == asset_id)))


def test_an_upload_failing_its_integrity_check_is_announced(client: TestClient, users: Users) -> None:
    _, headers = users.create()
    _subscribe(client, headers)
    ticket = request_upload(client, headers, size=len(PDF_BYTES)).json()["data"]
    body = put_bytes(client, ticket, PDF_BYTES)
    assert client.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 422
    assert _deliveries(client, ticket["assetId"]) == ["asset.failed"]


def test_the_operators_final_phase_is_announced_once(client: TestClient, users: Users) -> None:
    user_id, headers = users.create()
    _subscribe(client, headers)
    session_factory = client.app.state.session_factory  # type: ignore[attr-defined]
    ids = []
    with session_factory.begin() as session:
        for name in ("ready.mp4", "failed.mp4"):
            asset = MediaAsset(
                owner_id=user_id, name=name, original_name=name, type="VIDEO", file_size=1, mime_type="video/mp4",
                upload_status=UploadStatus.UPLOADED, storage_bucket="incoming", storage_key=f"uploads/{user_id}/{name}",
                upload_expires_at=utcnow(), checksum="0" * 64,
            )  # fmt: skip
            session.add(asset)
            session.flush()
            ids.append(asset.id)
    mirror = SqlAlchemyMirror(session_factory)
    mirror.asset_finished(asset_id=ids[0], phase=AssetPhase.READY, message=None, at=utcnow())
    mirror.asset_finished(asset_id=ids[0], phase=AssetPhase.READY, message=None, at=utcnow())  # re-observed
    mirror.asset_finished(asset_id=ids[1], phase=AssetPhase.FAILED, message="proxies: exit 3", at=utcnow())
    assert _deliveries(client, ids[0]) == ["asset.ready"]
    assert _deliveries(client, ids[1]) == ["asset.failed"]
    with session_factory() as session:
        failed = session.get(MediaAsset, ids[1])
        assert failed is not None
        assert (failed.processing_status, failed.error) == (AssetProcessingStatus.FAILED, "proxies: exit 3")
