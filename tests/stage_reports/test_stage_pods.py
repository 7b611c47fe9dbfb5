"""A Kubernetes stage pod runs its stage with nothing but the API's address and its attempt's token.

Each stage runs as `mediaingest run-stage` in a subprocess whose environment points DATABASE_URL and
S3 at closed ports and carries no storage keys: if the pod touched the database or storage directly,
it would fail. The API (a live server on either backend) records what the pod reports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fixtures.live_server import LiveServer, LiveServerFactory
from fixtures.s3 import MotoS3Server
from fixtures.stage_pods import asset_detail, run_pod, run_stages, token_for, uploaded_video
from mediaingest.models import AssetProxy, MediaAsset
from mediaingest.models.enums import Stage
from mediaingest.stage_reports import tokens
from mediaingest.storage import build_storage


@pytest.fixture(params=["local", "s3"])
def pod_server(
    request: pytest.FixtureRequest, live_server_factory: LiveServerFactory, moto_s3_server: MotoS3Server
) -> LiveServer:
    # No worker: nothing but the pods runs stages.
    if request.param == "local":
        return live_server_factory(worker=False)
    server = live_server_factory(worker=False, **moto_s3_server.settings_overrides())
    build_storage(server.settings).ensure_buckets(
        [server.settings.bucket_incoming, server.settings.bucket_processed, server.settings.bucket_proxies]
    )
    return server


def test_stage_pods_with_only_a_token_take_a_video_to_ready(
    pod_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, owner_id, headers = uploaded_video(pod_server, small_video)
    stages = [Stage("probe"), Stage("proxies"), Stage("thumbnails"), Stage("audio_visuals")]
    run_stages(pod_server, tmp_path, asset_id=asset_id, owner_id=owner_id, stages=stages)

    detail = asset_detail(pod_server, headers, asset_id)
    assert detail["processingStatus"] == "READY"
    assert detail["metadata"]["durationSeconds"] == pytest.approx(2.0, abs=0.1)
    status = httpx.get(f"{pod_server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10).json()["data"]
    jobs = {job["type"]: job for job in status["jobs"]}
    assert len(jobs) == 4
    assert all(job["status"] == "COMPLETED" and job["attempts"] == 1 for job in jobs.values()), jobs
    kinds = {proxy["type"] for proxy in detail["proxies"]}
    assert {"VIDEO", "HLS", "POSTER", "SPRITE_SHEET", "STORYBOARD", "WAVEFORM"} <= kinds
    # Every output the pods stored is in storage under its stage's folder, as the rows say.
    with pod_server.app.state.read_session_factory() as session:
        rows = session.scalars(sa.select(AssetProxy).where(AssetProxy.asset_id == asset_id)).all()
    assert len(rows) == len(detail["proxies"])
    for row in rows:
        assert row.storage_key.startswith(f"assets/{owner_id}/{asset_id}/"), row.storage_key
        assert pod_server.storage.head(row.storage_bucket, row.storage_key).size == row.size_bytes
    # The proxy plays: the signed URL serves what the pod stored.
    [video] = [proxy for proxy in detail["proxies"] if proxy["type"] == "VIDEO"]
    served = httpx.get(video["url"], timeout=30)
    assert served.status_code == 200 and served.content[4:8] == b"ftyp"


@pytest.fixture
def local_server(live_server_factory: LiveServerFactory) -> LiveServer:
    return live_server_factory(worker=False)


def _call(server: LiveServer, token: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/internal/stage-run/{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_only_a_valid_unexpired_stage_token_is_heard(
    local_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, owner_id, headers = uploaded_video(local_server, small_video)
    # A user's own API token, a token signed with another key, an expired one: 401, saying why.
    user_token = headers["Authorization"].removeprefix("Bearer ")
    assert _call(local_server, user_token, "start").status_code == 401
    claims = tokens.StageClaims(asset_id=asset_id, owner_id=owner_id, stage=Stage("probe"), attempt=1)
    forged = tokens.issue(b"another-secret", claims, ttl_seconds=600)
    assert _call(local_server, forged, "start").json()["error"]["message"] == "not a valid stage token"
    expired = tokens.issue(local_server.settings.url_secret(), claims, ttl_seconds=60, now=time.time() - 120)
    refused = _call(local_server, expired, "start")
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "the stage token has expired"
    assert httpx.post(f"{local_server.url}/internal/stage-run/start", timeout=10).status_code == 401
    # A token for the asset under another owner (a MediaAsset whose spec lies) writes nothing anywhere.
    stranger = token_for(local_server, asset_id=asset_id, owner_id="someone-else", stage=Stage("probe"))
    assert _call(local_server, stranger, "start").status_code == 403
    assert _call(local_server, stranger, "record", {"message": "done"}).status_code == 410
    # Its pod gives up for good (exit 3): no later attempt can own someone else's asset.
    refused = run_pod(local_server, tmp_path, asset_id=asset_id, stage=Stage("probe"), token=stranger)
    assert refused.returncode == 3, refused.stderr[-2000:]
    # Nothing was started by any of them.
    status = httpx.get(f"{local_server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10).json()
    assert [(job["status"], job["attempts"]) for job in status["data"]["jobs"]] == [("PENDING", 0)]


def test_a_later_attempt_fences_out_the_earlier_one(local_server: LiveServer, small_video: Path) -> None:
    asset_id, owner_id, _ = uploaded_video(local_server, small_video)
    first = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("probe"), attempt=1)
    second = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("probe"), attempt=2)
    assert _call(local_server, first, "start").status_code == 200
    progress = {"fraction": 0.5, "message": "half"}
    assert _call(local_server, first, "progress", progress).json()["data"] == {"current": True}
    assert _call(local_server, second, "start").status_code == 200
    # The first pod (say, thought lost) hears it is no longer current, and cannot start again.
    assert _call(local_server, first, "progress", progress).json()["data"] == {"current": False}
    assert _call(local_server, first, "start").status_code == 409
    recorded = _call(local_server, first, "record", {"message": "done", "outputs": []})
    assert recorded.json()["data"] == {"completed": False, "outputs": 0}


def test_a_pod_writes_only_inside_its_stage_folder(local_server: LiveServer, small_video: Path) -> None:
    asset_id, owner_id, _ = uploaded_video(local_server, small_video)
    token = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("thumbnails"))
    assert _call(local_server, token, "start").status_code == 200
    file = {"role": "proxies", "size": 3, "contentType": "image/jpeg", "sha256": "0" * 64}
    for name in ("../probe/poster.jpg", "/etc/passwd", "a/../../b", "..", "x/" * 6 + "y"):
        answer = _call(local_server, token, "outputs", {"files": [{**file, "name": name}]})
        assert answer.status_code == 422, (name, answer.text)
    signed = _call(local_server, token, "outputs", {"files": [{**file, "name": "poster.jpg"}]}).json()["data"]
    assert signed["files"][0]["key"] == f"assets/{owner_id}/{asset_id}/thumbnails/poster.jpg"
    # An output it says it stored but did not is refused, and nothing is recorded.
    output = {"kind": "POSTER", "name": "poster.jpg", "role": "proxies", "format": "jpeg", "contentType": "image/jpeg"}
    refused = _call(local_server, token, "record", {"message": "done", "outputs": [output]})
    assert refused.status_code == 422 and "was not stored" in refused.json()["error"]["message"]


def test_a_pod_refuses_a_source_that_is_not_the_verified_upload(
    local_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, owner_id, headers = uploaded_video(local_server, small_video)
    with local_server.app.state.read_session_factory() as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None
        bucket, key = asset.storage_bucket, asset.storage_key
    other = tmp_path / "other.mp4"
    other.write_bytes(small_video.read_bytes()[:-1] + b"\0")
    local_server.storage.upload_file(bucket, key, other, content_type="video/mp4")
    token = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("probe"))
    # The signed source URL answers 412 to a reader pinned to the verified bytes, before sending others.
    start = _call(local_server, token, "start").json()["data"]
    pinned = httpx.get(start["sourceUrl"], headers={"If-Match": f'"{start["sourceEtag"]}"'}, timeout=10)
    assert pinned.status_code == 412 and not pinned.content.startswith(small_video.read_bytes()[:16])
    finished = run_pod(local_server, tmp_path, asset_id=asset_id, stage=Stage("probe"), token=token)
    assert finished.returncode == 3, finished.stderr[-2000:]
    # The reason in one line where Kubernetes keeps it, for the MediaAsset's status.
    reason = (tmp_path / "scratch-probe-1" / "termination-log").read_text()
    assert reason.startswith("the stored upload is not the one verified at confirm")
    detail = asset_detail(local_server, headers, asset_id)
    assert detail["processingStatus"] == "FAILED"
    assert "not the one verified at confirm" in detail["error"]


def test_a_pod_for_a_deleted_asset_ends_quietly(local_server: LiveServer, small_video: Path, tmp_path: Path) -> None:
    asset_id, owner_id, headers = uploaded_video(local_server, small_video)
    assert httpx.delete(f"{local_server.url}/api/assets/{asset_id}", headers=headers, timeout=10).status_code == 200
    token = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("probe"))
    finished = run_pod(local_server, tmp_path, asset_id=asset_id, stage=Stage("probe"), token=token)
    assert finished.returncode == 0, finished.stderr[-2000:]
    for bucket in (local_server.settings.bucket_processed, local_server.settings.bucket_proxies):
        assert local_server.storage.list_keys(bucket, f"assets/{owner_id}/{asset_id}/") == []


def test_a_long_videos_result_is_heard_and_only_from_its_pod(local_server: LiveServer, small_video: Path) -> None:
    """A result names every HLS file the pod published (tens of thousands for a long video): over the
    API's 1 MiB body limit, so the token is checked before the body is read."""
    asset_id, owner_id, _ = uploaded_video(local_server, small_video)
    big = {"message": "done", "published": [f"hls/720p/seg_{n:06d}.m4s" for n in range(60_000)]}
    anonymous = httpx.post(f"{local_server.url}/internal/stage-run/record", json=big, timeout=30)
    assert anonymous.status_code == 401
    token = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("proxies"))
    assert _call(local_server, token, "start").status_code == 200
    answer = _call(local_server, token, "record", big)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"completed": True, "outputs": 0}


def test_what_a_cancelled_pod_published_goes_only_if_its_asset_is_gone(
    local_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    """An S3 URL signed before a delete still works after it: the pod's cancellation sweeps up behind it."""
    asset_id, owner_id, headers = uploaded_video(local_server, small_video)
    token = token_for(local_server, asset_id=asset_id, owner_id=owner_id, stage=Stage("proxies"))
    assert _call(local_server, token, "start").status_code == 200
    bucket = local_server.settings.bucket_proxies
    key = f"assets/{owner_id}/{asset_id}/proxies/hls/240p/seg_00001.m4s"
    segment = tmp_path / "seg.m4s"
    segment.write_bytes(b"\0" * 64)
    local_server.storage.upload_file(bucket, key, segment, content_type="video/iso.segment")
    published = {"published": ["hls/240p/seg_00001.m4s"]}
    # The asset is still there: a successor attempt publishes the same names, so nothing is removed.
    assert _call(local_server, token, "discard", published).status_code == 204
    assert local_server.storage.list_keys(bucket, f"assets/{owner_id}/{asset_id}/") == [key]
    assert httpx.delete(f"{local_server.url}/api/assets/{asset_id}", headers=headers, timeout=10).status_code == 200
    local_server.storage.upload_file(bucket, key, segment, content_type="video/iso.segment")  # a late PUT lands
    assert _call(local_server, token, "discard", published).status_code == 204
    assert local_server.storage.list_keys(bucket, f"assets/{owner_id}/{asset_id}/") == []
    assert _call(local_server, token, "discard", {"published": ["../probe/x"]}).status_code == 422
