"""EXECUTOR=kubernetes end to end on the API side: confirm creates the MediaAsset, delete removes it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
from fastapi.testclient import TestClient

from conftest import SettingsFactory, Users
from fixtures.uploads import put_bytes, request_upload, upload
from mediaingest.api import create_app
from mediaingest.db import utcnow
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


async def test_kubernetes_mode_delivers_webhooks_and_sweeps_with_no_stage_run_twice(
    apiserver: Any, make_settings: SettingsFactory, users: Users, small_video: Path
) -> None:
    """EXECUTOR=kubernetes with the chart's worker (`--queues default`): the operator's READY is announced,
    an abandoned upload is swept, and the worker never runs a stage (the Jobs do)."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import sqlalchemy as sa

    from fixtures.live_server import wait_until
    from mediaingest.models import IngestionJob, MediaAsset, Task
    from mediaingest.models.enums import UploadStatus
    from mediaingest.operator.handlers.reconcile import AssetPhase
    from mediaingest.operator.mirror import SqlAlchemyMirror
    from mediaingest.worker.loop import Worker

    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = make_settings(
        executor="kubernetes", k8s_namespace="default", upload_session_idle_seconds=2, sweep_interval_seconds=1,
        worker_poll_interval_seconds=0.1,
    )  # fmt: skip
    _, headers = users.create()

    def scenario() -> tuple[str, str]:
        with TestClient(create_app(settings, configure_logs=False)) as client:
            url = f"http://127.0.0.1:{server.server_address[1]}/hook"
            assert client.put("/api/webhook", json={"url": url}, headers=headers).status_code == 200
            ready = upload(client, headers, small_video, mime_type="video/mp4")["assetId"]
            abandoned = request_upload(client, headers, size=1000).json()["data"]["assetId"]
            # The operator reconciles the MediaAsset to Ready and mirrors it into the database.
            SqlAlchemyMirror(client.app.state.session_factory).asset_finished(  # type: ignore[attr-defined]
                asset_id=ready, phase=AssetPhase.READY, message=None, at=utcnow()
            )
            runner = Worker.from_settings(settings, queues=["default"])
            thread = threading.Thread(target=runner.run, daemon=True)
            thread.start()
            try:
                wait_until(lambda: received, timeout=30, message="the READY webhook")
                factory = client.app.state.session_factory  # type: ignore[attr-defined]

                def swept() -> bool:
                    with factory() as session:
                        asset = session.get(MediaAsset, abandoned)
                        return asset is not None and asset.upload_status == UploadStatus.EXPIRED

                wait_until(swept, timeout=30, message="the abandoned upload swept")
                time.sleep(0.5)
            finally:
                runner.stop()
                thread.join(timeout=30)
            with factory() as session:
                names = set(session.scalars(sa.select(Task.name)))
                assert "stages.run" not in names and {"webhooks.deliver", "uploads.sweep"} <= names
                assert session.scalar(sa.select(sa.func.count()).select_from(IngestionJob)) == 0
            return ready, abandoned

    ready, abandoned = await asyncio.to_thread(scenario)
    server.shutdown()
    server.server_close()
    events = [(json.loads(body)["type"], json.loads(body)["data"]["asset"]["id"]) for body in received]
    assert sorted(events) == sorted([("asset.ready", ready), ("asset.failed", abandoned)])  # each once
