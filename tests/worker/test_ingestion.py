"""Upload → confirm → worker → READY, with the real pipeline, storage and database."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from conftest import SettingsFactory, Users
from fixtures.live_server import wait_until
from fixtures.media import make_video
from fixtures.storage import hls_files
from fixtures.uploads import put_bytes, request_upload, status_of, upload
from mediaingest.api import create_app
from mediaingest.catalog import embedded_worker
from mediaingest.config import Settings
from mediaingest.models import AssetProxy, IngestionJob
from mediaingest.models.enums import IngestionJobStatus, IngestionJobType

pytestmark = pytest.mark.slow


def test_video_is_ingested_to_ready_with_visible_progress(
    api: TestClient, ingest_settings: Settings, users: Users, media_dir: Path
) -> None:
    # MPEG-4 Part 2 is not web-playable: every rung is encoded, long enough to watch progress.
    source = make_video(media_dir / "progress.mp4", duration=10, size="1280x720", fps=25, video_codec="mpeg4")
    user_id, headers = users.create()
    asset_id = upload(api, headers, source, mime_type="video/mp4")["assetId"]
    observed: list[dict[str, Any]] = []

    with embedded_worker(ingest_settings):

        def ready() -> bool:
            status = status_of(api, headers, asset_id)
            observed.append(status)
            assert status["processingStatus"] != "FAILED", status
            return status["processingStatus"] == "READY"

        wait_until(ready, timeout=120, interval=0.05)

    running = [s["currentJob"] for s in observed if s["currentJob"] and s["currentJob"]["status"] == "RUNNING"]
    assert any(0 < job["progress"] < 100 for job in running), running
    assert {s["processingStatus"] for s in observed} >= {"PROCESSING", "READY"}
    final = observed[-1]
    assert final["currentJob"]["progress"] == 100
    assert {job["type"]: job["status"] for job in final["jobs"]} == {
        "METADATA_EXTRACTION": "COMPLETED", "PROXY_GENERATION": "COMPLETED",
        "THUMBNAIL_GENERATION": "COMPLETED", "AUDIO_ANALYSIS": "COMPLETED", "TRANSCRIPTION": "COMPLETED",
    }  # fmt: skip
    assert all(job["attempts"] == 1 and job["retries"] == 0 for job in final["jobs"])

    detail = api.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    assert detail["checksum"] == hashlib.sha256(source.read_bytes()).hexdigest()
    metadata = detail["metadata"]
    assert (metadata["width"], metadata["height"], metadata["videoCodec"]) == (1280, 720, "mpeg4")
    assert metadata["audioCodec"] == "aac" and metadata["hasAudio"] is True
    assert metadata["durationSeconds"] == pytest.approx(10, abs=0.2)
    # What an editing timeline reads (#14), in the API's names: measured by the probe, then by the later
    # stages (loudness in the audio pass, shots in the proxies pass) over the same record.
    assert (metadata["frameRate"], metadata["isVariableFrameRate"], metadata["frameCount"]) == ("25/1", False, 250)
    assert metadata["timecode"] is None and isinstance(metadata["shots"], list)
    assert [(t["index"], t["codec"], t["channels"]) for t in metadata["audioTracks"]] == [(0, "aac", 2)]
    assert metadata["loudness"] == metadata["audioTracks"][0]["loudness"]
    assert metadata["loudness"]["integratedLufs"] < -10
    # Each stage's measurements as its StageSpec declares them; the names above are read from them.
    measured = metadata["measurements"]
    assert measured["audio_visuals"] == {"loudness": metadata["loudness"]}
    assert measured["proxies"] == {"shots": metadata["shots"]}
    renditions = sorted((p["resolution"], p["width"], p["height"]) for p in detail["proxies"] if p["type"] == "VIDEO")
    assert renditions == [("360p", 640, 360), ("720p", 1280, 720)]
    by_type = {p["type"] for p in detail["proxies"]}
    assert by_type >= {
        "VIDEO", "AUDIO", "POSTER", "SPRITE_SHEET", "STORYBOARD", "WAVEFORM", "SPECTROGRAM", "WAVEFORM_PEAKS"
    }  # fmt: skip
    for proxy in detail["proxies"]:
        fetched = api.get(proxy["url"])
        assert fetched.status_code == 200, proxy
        assert len(fetched.content) == proxy["sizeBytes"]
    poster = next(p for p in detail["proxies"] if p["type"] == "POSTER")
    assert api.get(poster["url"]).content[:3] == b"\xff\xd8\xff"
    # Every derived object in storage has its row, and no row points at a missing object; the HLS tree
    # (media playlists, init segments, segments) is the one HLS row's, each file listed by a playlist.
    storage = api.app.state.storage  # type: ignore[attr-defined]
    stored = {
        (bucket, key)
        for bucket in (ingest_settings.bucket_processed, ingest_settings.bucket_proxies)
        for key in storage.list_keys(bucket, f"assets/{user_id}/{asset_id}/")
    }
    hls_tree = {(bucket, key) for bucket, key in stored if "/proxies/hls/" in key and not key.endswith("master.m3u8")}
    assert stored - hls_tree == _rows(api, asset_id)
    assert hls_tree == hls_files(storage, ingest_settings.bucket_proxies, f"assets/{user_id}/{asset_id}/proxies/hls/")


def _rows(api: TestClient, asset_id: str) -> set[tuple[str, str]]:
    with api.app.state.session_factory() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            sa.select(AssetProxy.storage_bucket, AssetProxy.storage_key).where(AssetProxy.asset_id == asset_id)
        ).all()
    return {(bucket, key) for bucket, key in rows}


@pytest.mark.parametrize(
    ("fixture", "mime", "expected_types", "expected_jobs"),
    [
        (
            "small_audio",
            "audio/wav",
            {"AUDIO", "WAVEFORM", "SPECTROGRAM", "WAVEFORM_PEAKS", "TRANSCRIPT"},  # a tone: no captions
            {"METADATA_EXTRACTION", "AUDIO_ANALYSIS", "TRANSCRIPTION"},
        ),
        ("small_jpeg", "image/jpeg", {"THUMBNAIL"}, {"METADATA_EXTRACTION", "THUMBNAIL_GENERATION"}),
        (
            "silent_video",
            "video/mp4",
            {"VIDEO", "HLS", "POSTER", "SPRITE_SHEET", "STORYBOARD"},
            {"METADATA_EXTRACTION", "PROXY_GENERATION", "THUMBNAIL_GENERATION"},
        ),
    ],
)
def test_each_media_type_runs_its_plan(
    api: TestClient, ingest_settings: Settings, users: Users, request: pytest.FixtureRequest,
    fixture: str, mime: str, expected_types: set[str], expected_jobs: set[str],
) -> None:  # fmt: skip
    source: Path = request.getfixturevalue(fixture)
    _, headers = users.create()
    asset_id = upload(api, headers, source, mime_type=mime)["assetId"]
    with embedded_worker(ingest_settings):
        wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] in ("READY", "FAILED"), timeout=90)
    status = status_of(api, headers, asset_id)
    assert status["processingStatus"] == "READY", status
    assert {job["type"] for job in status["jobs"]} == expected_jobs
    detail = api.get(f"/api/assets/{asset_id}", headers=headers).json()["data"]
    assert {p["type"] for p in detail["proxies"]} == expected_types
    for proxy in detail["proxies"]:
        if proxy["format"] in ("png", "jpeg", "jpg", "webp"):
            image = Image.open(io.BytesIO(api.get(proxy["url"]).content))
            assert image.size == (proxy["width"], proxy["height"])


def test_transcribe_off_runs_no_transcript_stage(
    api: TestClient, ingest_settings: Settings, users: Users, small_audio: Path
) -> None:
    # Off, the stage is left out of the plan: no job that only says "off", no stage process for it.
    _, headers = users.create()
    asset_id = upload(api, headers, small_audio, mime_type="audio/wav")["assetId"]
    with embedded_worker(ingest_settings.model_copy(update={"transcribe": False})):
        wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] in ("READY", "FAILED"), timeout=90)
    status = status_of(api, headers, asset_id)
    assert status["processingStatus"] == "READY", status
    assert {job["type"] for job in status["jobs"]} == {"METADATA_EXTRACTION", "AUDIO_ANALYSIS"}


def test_a_stills_thumbnails_start_beside_the_probe_and_find_a_truncated_file(
    api: TestClient, ingest_settings: Settings, users: Users, small_jpeg: Path, small_video: Path, tmp_path: Path
) -> None:
    # The thumbnails read nothing the probe records: both are queued at confirm. A video's wait for it.
    _, headers = users.create()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(small_jpeg.read_bytes()[: small_jpeg.stat().st_size // 2])
    still = upload(api, headers, truncated, mime_type="image/jpeg")["assetId"]
    video = upload(api, headers, small_video, mime_type="video/mp4")["assetId"]
    assert {job["type"] for job in status_of(api, headers, still)["jobs"]} == {
        "METADATA_EXTRACTION", "THUMBNAIL_GENERATION"
    }  # fmt: skip
    assert {job["type"] for job in status_of(api, headers, video)["jobs"]} == {"METADATA_EXTRACTION"}
    # The header describes the still; decoding it, the thumbnails find it cut short: FAILED, once, saying so.
    with embedded_worker(ingest_settings):
        wait_until(lambda: status_of(api, headers, still)["processingStatus"] == "FAILED", timeout=60)
    status = status_of(api, headers, still)
    assert status["error"].startswith("thumbnails stage failed: ") and "truncated" in status["error"], status
    thumbnails = next(job for job in status["jobs"] if job["type"] == "THUMBNAIL_GENERATION")
    assert (thumbnails["status"], thumbnails["attempts"]) == ("FAILED", 1)


def test_corrupt_media_fails_permanently_after_one_attempt(
    api: TestClient, ingest_settings: Settings, users: Users, small_video: Path, tmp_path: Path
) -> None:
    # A real MP4 header (so the type sniffing accepts it) followed by garbage: ffprobe cannot read it.
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(small_video.read_bytes()[:64] + bytes(range(256)) * 64)
    _, headers = users.create()
    asset_id = upload(api, headers, corrupt, mime_type="video/mp4")["assetId"]
    with embedded_worker(ingest_settings):
        wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] == "FAILED", timeout=60)
    status = status_of(api, headers, asset_id)
    [probe] = status["jobs"]
    assert (probe["type"], probe["status"], probe["attempts"], probe["retries"]) == (
        "METADATA_EXTRACTION", "FAILED", 1, 0,
    )  # fmt: skip
    assert status["error"].startswith("probe stage failed: ")
    assert probe["error"] and "Traceback" not in probe["error"]


def test_deleting_an_asset_while_it_is_processed_stops_the_work(
    api: TestClient, ingest_settings: Settings, users: Users, media_dir: Path
) -> None:
    source = make_video(media_dir / "long.mp4", duration=20, size="1280x720", fps=25)
    user_id, headers = users.create()
    asset_id = upload(api, headers, source, mime_type="video/mp4")["assetId"]
    session_factory = api.app.state.session_factory  # type: ignore[attr-defined]

    def proxies_running() -> bool:
        with session_factory() as session:
            job = session.scalar(
                sa.select(IngestionJob).where(
                    IngestionJob.asset_id == asset_id, IngestionJob.type == IngestionJobType("PROXY_GENERATION")
                )
            )
            return job is not None and job.status == IngestionJobStatus.RUNNING and job.progress > 0

    with embedded_worker(ingest_settings) as worker:
        wait_until(proxies_running, timeout=60)
        assert api.delete(f"/api/assets/{asset_id}", headers=headers).status_code == 200
        wait_until(lambda: not worker._running, timeout=30)  # the heartbeat noticed and ffmpeg was stopped
    storage = api.app.state.storage  # type: ignore[attr-defined]
    for bucket in ("incoming", "processed", "proxies"):
        assert storage.list_keys(bucket, f"assets/{user_id}/{asset_id}/") == []
    assert storage.list_keys("incoming", f"uploads/{user_id}/") == []
    with session_factory() as session:
        assert session.scalars(sa.select(AssetProxy).where(AssetProxy.asset_id == asset_id)).all() == []


def test_a_second_confirm_after_ready_changes_nothing(
    api: TestClient, ingest_settings: Settings, users: Users, small_jpeg: Path
) -> None:
    _, headers = users.create()
    data = small_jpeg.read_bytes()
    ticket = request_upload(api, headers, file_name="p.jpg", size=len(data), mime_type="image/jpeg").json()["data"]
    body = put_bytes(api, ticket, data)
    assert api.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 200
    with embedded_worker(ingest_settings):
        wait_until(lambda: status_of(api, headers, ticket["assetId"])["processingStatus"] == "READY", timeout=60)
        before = _rows(api, ticket["assetId"])
        assert api.post("/api/assets/confirm-upload", json=body, headers=headers).status_code == 200
        time.sleep(0.5)
    assert status_of(api, headers, ticket["assetId"])["processingStatus"] == "READY"
    assert _rows(api, ticket["assetId"]) == before


def test_work_starts_when_committed_not_at_the_next_poll(
    make_settings: SettingsFactory, users: Users, small_jpeg: Path
) -> None:
    """The API wakes an in-process worker after the confirm commits, and a finished stage wakes it for
    the next one: with a 60 s poll interval, an image still goes through probe and thumbnails at once."""
    settings = make_settings(worker_poll_interval_seconds=60)
    with embedded_worker(settings) as worker:
        time.sleep(0.3)  # let the worker's first, empty claim pass, so it is asleep for 60 s
        with TestClient(create_app(settings, configure_logs=False, on_work=worker.wake)) as api:
            _, headers = users.create()
            asset_id = upload(api, headers, small_jpeg, mime_type="image/jpeg")["assetId"]
            started = time.monotonic()
            wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] == "READY", timeout=20)
            assert time.monotonic() - started < 10


def test_next_stage_starts_before_the_last_one_is_booked(
    make_settings: SettingsFactory, users: Users, small_jpeg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage that committed its successors wakes the worker at once: the next stage takes a free slot
    while the runner of the last one still records what its process used (slowed here to 3 s)."""
    from mediaingest.worker import stage_tasks

    observe = stage_tasks._observe

    def slow_observe(*args: Any, **kwargs: Any) -> None:
        time.sleep(3)
        observe(*args, **kwargs)

    monkeypatch.setattr(stage_tasks, "_observe", slow_observe)
    settings = make_settings(worker_poll_interval_seconds=60, worker_concurrency=2)  # a slot stays free
    with embedded_worker(settings) as worker:
        time.sleep(0.3)  # the worker's first, empty claim passes: it sleeps for 60 s unless woken
        with TestClient(create_app(settings, configure_logs=False, on_work=worker.wake)) as api:
            _, headers = users.create()
            asset_id = upload(api, headers, small_jpeg, mime_type="image/jpeg")["assetId"]
            wait_until(lambda: status_of(api, headers, asset_id)["processingStatus"] == "READY", timeout=30)
            with api.app.state.session_factory() as session:  # type: ignore[attr-defined]
                jobs = {job.type: job for job in session.scalars(sa.select(IngestionJob).filter_by(asset_id=asset_id))}
                probed = jobs["METADATA_EXTRACTION"].finished_at
                thumbnailed = jobs["THUMBNAIL_GENERATION"].started_at
    assert probed is not None and thumbnailed is not None
    assert (thumbnailed - probed).total_seconds() < 2
