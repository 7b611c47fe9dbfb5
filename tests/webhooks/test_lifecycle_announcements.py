"""Every path that ends an asset queues its completion webhook: `progression`, for both executors (tested in
test_webhooks and tests/test_executors.py), and the upload service's integrity check."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import Users
from fixtures.media import PDF_BYTES
from fixtures.uploads import put_bytes, request_upload
from mediaingest.models import WebhookDelivery


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
