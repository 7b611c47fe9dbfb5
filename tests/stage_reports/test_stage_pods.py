"""A Kubernetes stage pod runs its stage with nothing but the API's address and its projected token.

Each stage runs as `mediaingest run-stage` in a subprocess whose environment points DATABASE_URL and
S3 at closed ports and carries no storage keys: if the pod touched the database or storage directly,
it would fail. Attempts start as the operator starts them; the fake Kubernetes API server mints and
reviews the pods' tokens. The API (a live server) records what the pods report — and only what the
pod of the current attempt reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fixtures.kube import ThreadedApiServer
from fixtures.live_server import LiveServer, LiveServerFactory
from fixtures.s3 import MotoS3Server
from fixtures.stage_pods import pod_name, pod_token, run_pod, start_attempts, termination_message
from fixtures.uploads import upload
from mediaingest.models import AssetProxy, IngestionJob, MediaAsset, Task
from mediaingest.models.enums import Stage
from mediaingest.operator.jobs import StageAttempt

KUBERNETES = {"executor": "kubernetes"}


@pytest.fixture(params=["local", "s3"])
def pod_server(
    request: pytest.FixtureRequest,
    live_server_factory: LiveServerFactory,
    moto_s3_server: MotoS3Server,
    threaded_apiserver: ThreadedApiServer,
) -> LiveServer:
    # No worker for stages: nothing but the pods runs them.
    if request.param == "local":
        return live_server_factory(worker=False, **KUBERNETES)
    return moto_s3_server.live_server(live_server_factory, worker=False, **KUBERNETES)


@pytest.fixture
def local_server(live_server_factory: LiveServerFactory, threaded_apiserver: ThreadedApiServer) -> LiveServer:
    return live_server_factory(worker=False, **KUBERNETES)


def _uploaded(server: LiveServer, video: Path) -> tuple[str, str, dict[str, str]]:
    owner_id, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        confirmed = upload(client, headers, video, mime_type="video/mp4")
    return str(confirmed["assetId"]), owner_id, headers


def _detail(server: LiveServer, headers: dict[str, str], asset_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/assets/{asset_id}", headers=headers, timeout=10)
    response.raise_for_status()
    return dict(response.json()["data"])


def _started(server: LiveServer, asset_id: str, stage: str) -> StageAttempt:
    return start_attempts(server)[(asset_id, Stage(stage))]


def _after_the_probe(
    server: LiveServer, kube: ThreadedApiServer, tmp_path: Path, asset_id: str, stage: str
) -> StageAttempt:
    """The probe's pod runs (its result enqueues the rest of the plan); then `stage`'s attempt starts."""
    probe = _started(server, asset_id, "probe")
    finished = run_pod(server, tmp_path, attempt=probe, token=pod_token(kube, server, probe))
    assert finished.returncode == 0, finished.stderr[-2000:]
    return _started(server, asset_id, stage)


def _call(
    server: LiveServer, token: str, attempt: StageAttempt | str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    claim = attempt if isinstance(attempt, str) else f"{attempt.asset_id}/{attempt.stage}/{attempt.attempt}"
    headers = {"Authorization": f"Bearer {token}", "X-Stage-Attempt": claim}
    return httpx.post(f"{server.url}/internal/stage-run/{path}", json=body, headers=headers, timeout=30)


def test_stage_pods_with_only_a_token_take_a_video_to_ready(
    pod_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, owner_id, headers = _uploaded(pod_server, small_video)
    ran = []
    # The probe first; its result enqueues the rest of the plan, which the operator then starts together.
    while attempts := [a for (asset, _), a in start_attempts(pod_server).items() if asset == asset_id]:
        for attempt in attempts:
            finished = run_pod(
                pod_server, tmp_path, attempt=attempt, token=pod_token(threaded_apiserver, pod_server, attempt)
            )
            assert finished.returncode == 0, finished.stderr[-3000:]
            ran.append(attempt.stage)
    assert ran[0] == "probe" and sorted(ran[1:]) == ["audio_visuals", "proxies", "thumbnails", "transcript"]

    detail = _detail(pod_server, headers, asset_id)
    assert detail["processingStatus"] == "READY"
    assert detail["metadata"]["durationSeconds"] == pytest.approx(2.0, abs=0.1)
    status = httpx.get(f"{pod_server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10).json()["data"]
    jobs = {job["type"]: job for job in status["jobs"]}
    assert len(jobs) == 5
    assert all(job["status"] == "COMPLETED" and job["attempts"] == 1 for job in jobs.values()), jobs
    with pod_server.app.state.read_session_factory() as session:
        tasks = session.scalars(sa.select(Task).where(Task.payload["assetId"].as_string() == asset_id)).all()
        rows = session.scalars(sa.select(AssetProxy).where(AssetProxy.asset_id == asset_id)).all()
    # Each pod's report finished its own task: one record of how each attempt ended.
    assert (
        sorted((t.name, t.status.value) for t in tasks if t.name == "stages.run") == [("stages.run", "SUCCEEDED")] * 5
    )
    kinds = {proxy["type"] for proxy in detail["proxies"]}
    assert {"VIDEO", "HLS", "POSTER", "SPRITE_SHEET", "STORYBOARD", "WAVEFORM", "TRANSCRIPT"} <= kinds
    assert len(rows) == len(detail["proxies"])
    for row in rows:
        assert row.storage_key.startswith(f"assets/{owner_id}/{asset_id}/"), row.storage_key
        assert pod_server.storage.head(row.storage_bucket, row.storage_key).size == row.size_bytes
    [video] = [proxy for proxy in detail["proxies"] if proxy["type"] == "VIDEO"]
    served = httpx.get(video["url"], timeout=30)
    assert served.status_code == 200 and served.content[4:8] == b"ftyp"


def _snapshot(server: LiveServer, asset_id: str) -> tuple[Any, ...]:
    """Everything a report could change: the asset, its jobs, its tasks, its outputs in storage."""
    with server.app.state.read_session_factory() as session:
        asset = session.get(MediaAsset, asset_id)
        jobs = session.scalars(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id)).all()
        tasks = session.scalars(sa.select(Task).where(Task.payload["assetId"].as_string() == asset_id)).all()
        state = (
            (asset.processing_status, asset.error, asset.playable_seconds) if asset else None,
            sorted((j.type, j.status, j.attempts, j.progress, j.message, j.error) for j in jobs),
            sorted((t.dedupe_key or "", t.status, t.attempts, t.last_error or "") for t in tasks),
        )
    owner = asset.owner_id if asset else ""
    stored = tuple(
        sorted(
            server.storage.list_keys(bucket, f"assets/{owner}/{asset_id}/")
            for bucket in (server.settings.bucket_processed, server.settings.bucket_proxies)
        )
    )
    return (*state, stored)


REPORTS: list[tuple[str, dict[str, Any] | None]] = [
    ("start", None),
    ("progress", {"fraction": 0.5, "message": "half"}),
    ("playable", {"seconds": 1.0}),
    (
        "outputs",
        {
            "files": [
                {"name": "poster.jpg", "role": "proxies", "size": 3, "contentType": "image/jpeg", "sha256": "0" * 64}
            ]
        },
    ),
    ("record", {"message": "done", "outputs": []}),
    ("fail", {"message": "it broke", "permanent": True}),
]


def test_every_report_from_a_credential_that_is_not_the_current_attempts_is_refused_with_nothing_written(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    """A finished attempt's token, a superseded attempt's, another asset's pod's and a forged one: every
    call answers 401, 403 or 409, and the asset, its jobs, its tasks and its storage stay as they were."""
    asset_id, _, headers = _uploaded(local_server, small_video)
    other_id, _, _ = _uploaded(local_server, small_video)
    probes = start_attempts(local_server)
    probe, other = probes[(asset_id, Stage("probe"))], probes[(other_id, Stage("probe"))]
    finished = run_pod(local_server, tmp_path, attempt=probe, token=pod_token(threaded_apiserver, local_server, probe))
    assert finished.returncode == 0, finished.stderr[-2000:]
    thumbnails = _started(local_server, asset_id, "thumbnails")
    kube = threaded_apiserver
    superseded = StageAttempt(**{**thumbnails.__dict__, "attempt": thumbnails.attempt - 1 or 2})
    credentials = {
        "finished attempt (the probe)": (pod_token(kube, local_server, probe), probe, 409),
        "another attempt of the stage": (pod_token(kube, local_server, superseded), superseded, 409),
        # Another asset's pod claiming this asset's attempt: its token is not this Job's pod's.
        "another asset's pod": (pod_token(kube, local_server, other), thumbnails, 403),
        "a forged token": ("not-a-token", thumbnails, 401),
        "another audience": (
            kube.mint_token(
                namespace="default",
                service_account="mediaingest-stage",
                pod_name=pod_name(thumbnails),
                audience="vault",
            ),
            thumbnails,
            401,
        ),
        "another account": (
            kube.mint_token(
                namespace="default",
                service_account="default",
                pod_name=pod_name(thumbnails),
                audience="mediaingest-stage-report",
            ),
            thumbnails,
            401,
        ),
        "a user's API token": (headers["Authorization"].removeprefix("Bearer "), thumbnails, 401),
    }
    before = _snapshot(local_server, asset_id)
    for what, (token, attempt, refused) in credentials.items():
        for path, body in REPORTS:
            answer = _call(local_server, token, attempt, path, body)
            assert answer.status_code == refused, (what, path, answer.status_code, answer.text)
            assert "Traceback" not in answer.text
    assert _call(local_server, "x", f"{asset_id}/thumbnails", "start").status_code == 401  # a malformed claim
    assert httpx.post(f"{local_server.url}/internal/stage-run/start", timeout=10).status_code == 401
    assert _snapshot(local_server, asset_id) == before
    # The current attempt's own pod is heard.
    current = pod_token(kube, local_server, thumbnails)
    heard = _call(local_server, current, thumbnails, "progress", {"fraction": 0.5, "message": "half"})
    assert heard.json()["data"] == {"current": True}


def test_a_pod_refused_as_another_attempts_gives_up_for_good(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, _, headers = _uploaded(local_server, small_video)
    other_id, _, _ = _uploaded(local_server, small_video)
    attempts = start_attempts(local_server)
    probe, other = attempts[(asset_id, Stage("probe"))], attempts[(other_id, Stage("probe"))]
    refused = run_pod(local_server, tmp_path, attempt=probe, token=pod_token(threaded_apiserver, local_server, other))
    assert refused.returncode == 3, refused.stderr[-2000:]  # exit 3: no later attempt can make it another pod
    status = httpx.get(f"{local_server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10).json()
    assert [(job["status"], job["attempts"]) for job in status["data"]["jobs"]] == [("RUNNING", 1)]


def test_a_failure_report_is_decided_by_the_stage_retry_policy(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path
) -> None:
    asset_id, _, headers = _uploaded(local_server, small_video)
    probe = _started(local_server, asset_id, "probe")
    token = pod_token(threaded_apiserver, local_server, probe)
    assert _call(local_server, token, probe, "fail", {"message": "network blip", "permanent": False}).status_code == 204
    with local_server.app.state.read_session_factory() as session:
        task = session.scalar(sa.select(Task).where(Task.dedupe_key == f"stage:{asset_id}:probe"))
        assert task is not None and task.status.value == "QUEUED" and task.last_error == "network blip"
    # The next attempt fails for good: the asset fails, saying why.
    import time

    time.sleep(1.2)  # the backoff (JOB_BACKOFF_BASE_SECONDS 0.2, jittered, capped at 1 s)
    second = _started(local_server, asset_id, "probe")
    assert second.attempt == 2
    token = pod_token(threaded_apiserver, local_server, second)
    assert _call(local_server, token, second, "fail", {"message": "unreadable", "permanent": True}).status_code == 204
    detail = _detail(local_server, headers, asset_id)
    assert detail["processingStatus"] == "FAILED" and "unreadable" in detail["error"]


def test_a_pod_writes_only_inside_its_stage_folder(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, owner_id, _ = _uploaded(local_server, small_video)
    attempt = _after_the_probe(local_server, threaded_apiserver, tmp_path, asset_id, "thumbnails")
    token = pod_token(threaded_apiserver, local_server, attempt)
    assert _call(local_server, token, attempt, "start").status_code == 200
    file = {"role": "proxies", "size": 3, "contentType": "image/jpeg", "sha256": "0" * 64}
    for name in ("../probe/poster.jpg", "/etc/passwd", "a/../../b", "..", "x/" * 6 + "y"):
        answer = _call(local_server, token, attempt, "outputs", {"files": [{**file, "name": name}]})
        assert answer.status_code == 422, (name, answer.text)
    signed = _call(local_server, token, attempt, "outputs", {"files": [{**file, "name": "poster.jpg"}]}).json()["data"]
    assert signed["files"][0]["key"] == f"assets/{owner_id}/{asset_id}/thumbnails/poster.jpg"
    # An output it says it stored but did not is refused, and nothing is recorded.
    output = {"kind": "POSTER", "name": "poster.jpg", "role": "proxies", "format": "jpeg", "contentType": "image/jpeg"}
    refused = _call(local_server, token, attempt, "record", {"message": "done", "outputs": [output]})
    assert refused.status_code == 422 and "was not stored" in refused.json()["error"]["message"]
    # Measurements its StageSpec does not declare are refused the same way.
    refused = _call(local_server, token, attempt, "record", {"message": "done", "measurements": {"shots": [1.0]}})
    assert refused.status_code == 422 and "declares no measurements" in refused.json()["error"]["message"]


def test_a_pod_refuses_a_source_that_is_not_the_verified_upload(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, _, headers = _uploaded(local_server, small_video)
    with local_server.app.state.read_session_factory() as session:
        asset = session.get(MediaAsset, asset_id)
        assert asset is not None
        bucket, key = asset.storage_bucket, asset.storage_key
    other = tmp_path / "other.mp4"
    other.write_bytes(small_video.read_bytes()[:-1] + b"\0")
    local_server.storage.upload_file(bucket, key, other, content_type="video/mp4")
    probe = _started(local_server, asset_id, "probe")
    token = pod_token(threaded_apiserver, local_server, probe)
    # The signed source URL answers 412 to a reader pinned to the verified bytes, before sending others.
    start = _call(local_server, token, probe, "start").json()["data"]
    pinned = httpx.get(start["sourceUrl"], headers={"If-Match": f'"{start["sourceEtag"]}"'}, timeout=10)
    assert pinned.status_code == 412 and not pinned.content.startswith(small_video.read_bytes()[:16])
    finished = run_pod(local_server, tmp_path, attempt=probe, token=token)
    assert finished.returncode == 3, finished.stderr[-2000:]
    # The reason in one line where Kubernetes keeps it, for the MediaAsset's status.
    assert termination_message(tmp_path, probe).startswith("the stored upload is not the one verified at confirm")
    detail = _detail(local_server, headers, asset_id)
    assert detail["processingStatus"] == "FAILED"
    assert "not the one verified at confirm" in detail["error"]


def test_a_pod_for_a_deleted_asset_ends_quietly(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    asset_id, owner_id, headers = _uploaded(local_server, small_video)
    probe = _started(local_server, asset_id, "probe")
    assert httpx.delete(f"{local_server.url}/api/assets/{asset_id}", headers=headers, timeout=10).status_code == 200
    finished = run_pod(local_server, tmp_path, attempt=probe, token=pod_token(threaded_apiserver, local_server, probe))
    assert finished.returncode == 0, finished.stderr[-2000:]
    for bucket in (local_server.settings.bucket_processed, local_server.settings.bucket_proxies):
        assert local_server.storage.list_keys(bucket, f"assets/{owner_id}/{asset_id}/") == []


def test_a_long_videos_result_is_heard_and_only_from_its_pod(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    """A result names every HLS file the pod published (tens of thousands for a long video): over the
    API's 1 MiB body limit, so the token is checked before the body is read."""
    asset_id, _, _ = _uploaded(local_server, small_video)
    probe = _started(local_server, asset_id, "probe")
    assert (
        run_pod(
            local_server, tmp_path, attempt=probe, token=pod_token(threaded_apiserver, local_server, probe)
        ).returncode
        == 0
    )
    big = {"message": "done", "published": [f"hls/720p/seg_{n:06d}.m4s" for n in range(60_000)]}
    anonymous = httpx.post(f"{local_server.url}/internal/stage-run/record", json=big, timeout=30)
    assert anonymous.status_code == 401
    attempt = _started(local_server, asset_id, "proxies")
    token = pod_token(threaded_apiserver, local_server, attempt)
    assert _call(local_server, token, attempt, "start").status_code == 200
    answer = _call(local_server, token, attempt, "record", big)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"completed": True, "outputs": 0}


def test_what_a_cancelled_pod_published_goes_only_if_its_asset_is_gone(
    local_server: LiveServer, threaded_apiserver: ThreadedApiServer, small_video: Path, tmp_path: Path
) -> None:
    """An S3 URL signed before a delete still works after it: the pod's cancellation sweeps up behind it."""
    asset_id, owner_id, headers = _uploaded(local_server, small_video)
    attempt = _after_the_probe(local_server, threaded_apiserver, tmp_path, asset_id, "proxies")
    token = pod_token(threaded_apiserver, local_server, attempt)
    assert _call(local_server, token, attempt, "start").status_code == 200
    bucket = local_server.settings.bucket_proxies
    key = f"assets/{owner_id}/{asset_id}/proxies/hls/240p/seg_00001.m4s"
    segment = tmp_path / "seg.m4s"
    segment.write_bytes(b"\0" * 64)
    local_server.storage.upload_file(bucket, key, segment, content_type="video/iso.segment")
    published = {"published": ["hls/240p/seg_00001.m4s"]}
    # The asset is still there: a successor attempt publishes the same names, so nothing is removed.
    assert _call(local_server, token, attempt, "discard", published).status_code == 204
    assert key in local_server.storage.list_keys(bucket, f"assets/{owner_id}/{asset_id}/")
    assert httpx.delete(f"{local_server.url}/api/assets/{asset_id}", headers=headers, timeout=10).status_code == 200
    local_server.storage.upload_file(bucket, key, segment, content_type="video/iso.segment")  # a late PUT lands
    assert _call(local_server, token, attempt, "discard", published).status_code == 204
    assert local_server.storage.list_keys(bucket, f"assets/{owner_id}/{asset_id}/") == []
    assert _call(local_server, token, attempt, "discard", {"published": ["../probe/x"]}).status_code == 422
