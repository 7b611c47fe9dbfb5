"""GET /api/assets/{id}/frame and /filmstrip on an ingested video, on the local backend and on S3 (moto):
the frames are the source's, kept under the asset and deleted with it; bad requests get precise 4xx."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import SettingsFactory, Users
from fixtures.media import make_audio
from fixtures.s3 import MotoS3Server
from fixtures.timeline_media import h264_open_gop, reference_frames, rgb, ssim
from fixtures.uploads import upload
from mediaingest.assets.storage_keys import derived_prefix
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings

pytestmark = pytest.mark.slow

SECONDS = 8
RATE = Fraction(25)


@pytest.fixture(params=["local", "s3"])
def backend_settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, moto_s3_server: MotoS3Server
) -> Settings:
    # A 180p scrubbing rung under a 640×360 source: widths above 320 are decoded from the source.
    options: dict[str, Any] = {"proxy_heights": [180], "worker_lease_seconds": 5, "worker_heartbeat_seconds": 1}
    if request.param == "local":
        return make_settings(**options)
    return moto_s3_server.settings(make_settings, **options)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_open_gop(tmp_path_factory.mktemp("timeline") / "open-gop.mp4", seconds=SECONDS)


def _wait(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _picture(http: httpx.Client | TestClient, url: str) -> Image.Image:
    response = http.get(url)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def test_frames_and_filmstrips_of_an_ingested_video(
    api: TestClient,
    http: httpx.Client | TestClient,
    users: Users,
    backend_settings: Settings,
    source: Path,
    tmp_path: Path,
) -> None:
    user_id, headers = users.create()
    asset_id = upload(api, headers, source, mime_type="video/mp4", http=http)["assetId"]
    frame_url = f"/api/assets/{asset_id}/frame"

    # Uploaded but not probed: nothing to count frames by yet.
    assert "not been probed" in _error(api.get(frame_url, params={"t": 1}, headers=headers), 409)["message"]

    with embedded_worker(backend_settings):
        _wait(
            lambda: (
                api.get(f"/api/assets/{asset_id}/status", headers=headers).json()["data"]["processingStatus"] == "READY"
            ),
            timeout=120,
        )

    # --- precise errors
    assert _error(api.get(frame_url, params={"t": "soon"}, headers=headers), 422)["code"] == "validation_error"
    for t in ("nan", "inf", "-0.5", str(SECONDS), "9.5"):
        error = _error(api.get(frame_url, params={"t": t}, headers=headers), 422)
        assert "t must be a number of seconds from 0 to under 8.000" in error["message"], (t, error)
    error = _error(api.get(frame_url, params={"t": 1, "width": 641}, headers=headers), 422)
    assert error["details"] == {"width": 641, "sourceWidth": 640}
    _error(api.get(frame_url, params={"t": 1, "format": "gif"}, headers=headers), 422)
    _, stranger = users.create()
    assert _error(api.get(frame_url, params={"t": 1}, headers=stranger), 404)["code"] == "not_found"

    # --- 50 random frames from the scrubbing rung (320×180): each the source's frame at that time
    chooser = random.Random(29)
    times = [chooser.uniform(0, SECONDS) for _ in range(50)]
    answers = []
    for t in times:
        response = api.get(frame_url, params={"t": t}, headers=headers)
        assert response.status_code == 200, response.text
        answers.append(response.json()["data"])
    assert {(a["width"], a["height"], a["decodedFrom"], a["frameRate"]) for a in answers} == {
        (320, 180, "scrub_rung", "25/1")
    }
    assert [a["frame"] for a in answers] == [int(t * 25) for t in times]
    references = reference_frames(source, 320, 180)
    pictures = [rgb(_picture(http, a["url"])) for a in answers]
    scores = ssim(pictures, [references[a["frame"]] for a in answers], 320, 180, tmp_path)
    neighbours = ssim(pictures, [references[max(0, a["frame"] - 1)] for a in answers], 320, 180, tmp_path)
    assert min(scores) >= 0.98, scores
    assert all(score > other for score, other, a in zip(scores, neighbours, answers, strict=True) if a["frame"]), (
        scores,
        neighbours,
    )

    # --- asked again: kept in storage, the same picture
    again = api.get(frame_url, params={"t": times[0]}, headers=headers).json()["data"]
    assert again["cached"] is True and answers[0]["cached"] is False and again["frame"] == answers[0]["frame"]

    # --- wider than the rung: from the source, in WebP
    wide = api.get(frame_url, params={"t": 5.0, "width": 640, "format": "webp"}, headers=headers).json()["data"]
    assert (wide["decodedFrom"], wide["width"], wide["height"], wide["contentType"]) == (
        "source", 640, 360, "image/webp"
    )  # fmt: skip
    full = _picture(http, wide["url"])
    assert full.size == (640, 360)
    (score,) = ssim([rgb(full)], [reference_frames(source, 640, 360)[125]], 640, 360, tmp_path)
    assert score >= 0.98

    # --- filmstrips: the sprite sheets when dense enough, decoded frames otherwise
    strip_url = f"/api/assets/{asset_id}/filmstrip"
    coarse = api.get(strip_url, params={"count": 4}, headers=headers).json()["data"]
    assert (coarse["decodedFrom"], coarse["tileWidth"], coarse["tileHeight"], coarse["columns"]) == (
        "sprites", 160, 90, 4
    )  # fmt: skip
    assert [tile["time"] for tile in coarse["tiles"]] == [0, 2, 4, 6]
    assert _picture(http, coarse["url"]).size == (640, 90)

    fine = api.get(strip_url, params={"start": 1, "end": 3, "count": 20}, headers=headers).json()["data"]
    assert (fine["decodedFrom"], fine["columns"], fine["rows"]) == ("scrub_rung", 10, 2)
    assert [tile["frame"] for tile in fine["tiles"]] == [25 + int(2.5 * i + 1e-9) for i in range(20)]
    sheet = _picture(http, fine["url"])
    assert sheet.size == (1600, 180)
    tiles = [rgb(sheet.crop((t["x"], t["y"], t["x"] + 160, t["y"] + 90))) for t in fine["tiles"]]
    thumbs = reference_frames(source, 160, 90)
    assert min(ssim(tiles, [thumbs[t["frame"]] for t in fine["tiles"]], 160, 90, tmp_path)) >= 0.98

    vtt = api.get(strip_url, params={"start": 1, "end": 3, "count": 20, "format": "vtt"}, headers=headers)
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    lines = vtt.text.splitlines()
    assert lines[:3] == ["WEBVTT", "", "00:00:01.000 --> 00:00:01.100"]
    assert lines[3].endswith("#xywh=0,0,160,90")

    error = _error(api.get(strip_url, params={"start": 1, "end": 2, "count": 30}, headers=headers), 422)
    assert error["details"] == {"count": 30, "frames": 25}
    _error(api.get(strip_url, params={"start": 3, "end": 2}, headers=headers), 422)
    _error(api.get(strip_url, params={"height": 361}, headers=headers), 422)
    _error(api.get(strip_url, params={"count": 0}, headers=headers), 422)

    # --- deleted with the asset
    storage = api.app.state.storage  # type: ignore[attr-defined]
    prefix = derived_prefix(user_id=user_id, asset_id=asset_id) + "timeline/"
    kept = storage.list_keys(backend_settings.bucket_processed, prefix)
    assert len(kept) == len({a["frame"] for a in answers}) + 1 + 2  # the frames, the WebP, two filmstrips
    assert api.delete(f"/api/assets/{asset_id}", headers=headers).status_code == 200
    assert storage.list_keys(backend_settings.bucket_processed, prefix) == []


def test_only_videos_have_frames(
    api: TestClient, http: httpx.Client | TestClient, users: Users, tmp_path: Path
) -> None:
    _, headers = users.create()
    asset_id = upload(api, headers, make_audio(tmp_path / "tone.wav"), mime_type="audio/wav", http=http)["assetId"]
    error = _error(api.get(f"/api/assets/{asset_id}/frame", params={"t": 0}, headers=headers), 422)
    assert error["message"] == "this asset is audio: only videos have frames"
    _error(api.get(f"/api/assets/{asset_id}/filmstrip", headers=headers), 422)


def test_a_clip_plays_at_once_then_becomes_a_frame_exact_asset_deleted_with_its_parent(
    api: TestClient,
    http: httpx.Client | TestClient,
    users: Users,
    backend_settings: Settings,
    tmp_path: Path,
) -> None:
    source = h264_open_gop(tmp_path / "parent.mp4", seconds=SECONDS, noise=True)
    user_id, headers = users.create()
    parent_id = upload(api, headers, source, mime_type="video/mp4", http=http)["assetId"]
    clips_url = f"/api/assets/{parent_id}/clips"
    with embedded_worker(backend_settings):
        _wait(
            lambda: (
                api.get(f"/api/assets/{parent_id}/status", headers=headers).json()["data"]["processingStatus"]
                == "READY"
            ),
            timeout=120,
        )
        for body in ({"start": 3, "end": 2}, {"start": 1, "end": 8.5}, {"start": "1", "end": 2}):
            _error(api.post(clips_url, json=body, headers=headers), 422)
        _, stranger = users.create()
        _error(api.post(clips_url, json={"start": 1, "end": 2}, headers=stranger), 404)

        # In at frame 37, inside the first open GOP; out before frame 187.
        response = api.post(clips_url, json={"start": 1.48, "end": 7.48, "name": "answer"}, headers=headers)
        assert response.status_code == 202, response.text
        created = response.json()["data"]
        assert (created["inFrame"], created["outFrame"], created["frames"], created["frameRate"]) == (
            37,
            187,
            150,
            "25/1",
        )
        assert created["name"] == "answer.mp4" and created["uploadStatus"] == "PENDING"
        # At once: the parent's segments holding the range (2 s each: 0–8 s), in and out stated from their start.
        preview = created["preview"]
        assert (preview["inOffsetSeconds"], preview["outOffsetSeconds"]) == (pytest.approx(1.48), pytest.approx(7.48))
        playlist = api.get(preview["hlsUrl"]).text  # served by the API; its segments by storage
        assert "#EXT-X-START:TIME-OFFSET=1.480000,PRECISE=YES" in playlist and playlist.count("#EXTINF:") == 4
        segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        assert http.get(segments[-1]).status_code == 200

        clip_id = created["assetId"]
        _wait(
            lambda: (
                api.get(f"/api/assets/{clip_id}/status", headers=headers).json()["data"]["processingStatus"] == "READY"
            ),
            timeout=180,
        )
    detail = api.get(f"/api/assets/{clip_id}", headers=headers).json()["data"]
    assert detail["parentId"] == parent_id and detail["clip"]["inFrame"] == 37
    assert detail["metadata"]["frameCount"] == 150 and detail["type"] == "VIDEO"
    listed = api.get("/api/assets", params={"parentId": parent_id}, headers=headers).json()["data"]
    assert [item["id"] for item in listed["items"]] == [clip_id]  # listed under its parent
    original = tmp_path / "clip.mp4"
    original.write_bytes(http.get(detail["downloadUrl"]).content)
    ours = reference_frames(original, 160, 90)
    theirs = reference_frames(source, 160, 90)
    assert len(ours) == 150
    assert min(ssim([ours[0], ours[-1]], [theirs[37], theirs[186]], 160, 90, tmp_path)) >= 0.98

    assert api.delete(f"/api/assets/{parent_id}", headers=headers).status_code == 200
    assert api.get(f"/api/assets/{clip_id}", headers=headers).status_code == 404
    storage = api.app.state.storage  # type: ignore[attr-defined]
    for bucket in (backend_settings.bucket_processed, backend_settings.bucket_proxies):
        assert storage.list_keys(bucket, f"assets/{user_id}/{clip_id}/") == []
    assert storage.list_keys(backend_settings.bucket_incoming, f"uploads/{user_id}/") == []
