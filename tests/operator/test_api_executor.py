"""EXECUTOR=kubernetes end to end on the API side: confirm creates the MediaAsset, delete removes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.uploads import put_bytes, request_upload, upload
from mediaingest.api import create_app
from mediaingest.operator import naming
from mediaingest.operator.kube import load_api_client


def _media_assets() -> list[dict[str, Any]]:
    api = kubernetes.client.CustomObjectsApi(load_api_client())
    listed = api.list_namespaced_custom_object(naming.GROUP, naming.VERSION, "default", naming.PLURAL)
    return list(listed["items"])


async def test_confirm_creates_the_media_asset_and_delete_removes_it(
    apiserver: Any, make_settings: SettingsFactory, users: Users, small_video: Path
) -> None:
    settings = make_settings(executor="kubernetes", k8s_namespace="default")
    _, headers = users.create()

    def confirm_twice() -> str:
        with TestClient(create_app(settings, configure_logs=False)) as client:
            confirmed = upload(client, headers, small_video, mime_type="video/mp4")
            body = {"assetId": confirmed["assetId"], "etag": confirmed["etag"]}
            # A repeated confirm re-dispatches; the existing resource makes it a no-op.
            assert client.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 200
            status = client.get(f"/api/assets/{confirmed['assetId']}/status", headers=headers).json()["data"]
            assert status["jobs"] == []  # no local job rows: the operator's Jobs will write them
            return str(confirmed["assetId"])

    # The API's client is synchronous and the fake API server runs on this loop: call from a thread.
    asset_id = await asyncio.to_thread(confirm_twice)
    [resource] = await asyncio.to_thread(_media_assets)
    assert resource["spec"]["assetId"] == asset_id
    assert resource["spec"]["mediaType"] == "VIDEO"
    assert resource["spec"]["stages"] == ["probe", "proxies", "thumbnails", "audio_visuals"]

    def delete() -> None:
        with TestClient(create_app(settings, configure_logs=False)) as client:
            assert client.delete(f"/api/assets/{asset_id}", headers=headers).status_code == 200

    await asyncio.to_thread(delete)
    assert await asyncio.to_thread(_media_assets) == []


def test_an_unreachable_kubernetes_api_is_a_503_and_the_upload_can_be_confirmed_later(
    make_settings: SettingsFactory, users: Users, small_video: Path, use_kube_api: Callable[[str], Path]
) -> None:
    use_kube_api("http://127.0.0.1:9")  # nothing listens there
    settings = make_settings(executor="kubernetes", k8s_namespace="default")
    _, headers = users.create()
    with TestClient(create_app(settings, configure_logs=False)) as client:
        data = small_video.read_bytes()
        ticket = request_upload(client, headers, size=len(data)).json()["data"]
        body = put_bytes(client, ticket, data)
        response = client.post("/api/assets/confirm-upload", json=body, headers=headers)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "executor_unavailable"
        status = client.get(f"/api/assets/{ticket['assetId']}/status", headers=headers).json()["data"]
        assert status["uploadStatus"] == "PENDING"  # rolled back: a later confirm can still succeed
