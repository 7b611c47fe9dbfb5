"""One engine, two executors: the same behaviour whether a worker's stage processes run the stages
(`local`) or the operator runs each attempt as a Kubernetes Job (`kubernetes`: the real operator against
the fake API server, the simulated kubelet running real `run-stage` pods that report to the real API).

Each test states one rule — READY once and announced once, a silent video's plan, a photo's, a
transient failure retried by the stage policy, a permanent one failing at once, cancel on delete — and
runs it on both; only how to watch Kubernetes' side differs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fixtures.kube import ApiServer
from fixtures.kubelet import Kubelet, kubelet_running
from fixtures.live_server import LiveServer, LiveServerFactory
from fixtures.media import make_video
from fixtures.operator import Operator, eventually, running
from fixtures.uploads import upload
from mediaingest.catalog import embedded_worker
from mediaingest.models import IngestionJob, MediaAsset, Task, WebhookDelivery
from mediaingest.operator import naming
from mediaingest.operator.settings import OperatorSettings

pytestmark = pytest.mark.slow


@dataclass
class Executor:
    kind: str
    server: LiveServer
    apiserver: ApiServer
    scratch: Path
    operator: Operator | None = None
    kubelet: Kubelet | None = None

    @contextlib.asynccontextmanager
    async def running(self, **kubelet: Any) -> AsyncIterator[Executor]:
        """The stages' runner: a worker, or the operator with the kubelet beside it."""
        if self.kind == "local":
            worker = embedded_worker(self.server.settings)
            await asyncio.to_thread(worker.__enter__)
            try:
                yield self
            finally:
                await asyncio.to_thread(worker.__exit__, None, None, None)
            return
        settings = OperatorSettings(
            _env_file=None, K8S_NAMESPACE="default", K8S_RELEASE="media-release", stage_api_url=self.server.url,
            poll_interval_seconds=0.1, lease_seconds=10, projection_interval_seconds=0.3, progress_interval_seconds=0,
            job_missing_seconds=5,
        )  # type: ignore[call-arg]  # fmt: skip
        self.kubelet = Kubelet(self.apiserver, self.server.url, self.scratch / "pods", **kubelet)
        async with running(self.apiserver, settings, self.server) as operator, kubelet_running(self.kubelet):
            self.operator = operator
            yield self

    # --- what users see ---------------------------------------------------------------------------
    async def status(self, headers: dict[str, str], asset_id: str) -> dict[str, Any]:
        url = f"{self.server.url}/api/assets/{asset_id}/status"
        answer = await asyncio.to_thread(httpx.get, url, headers=headers, timeout=10)
        return dict(answer.json()["data"]) if answer.status_code == 200 else {"processingStatus": "GONE"}

    async def until(self, headers: dict[str, str], asset_id: str, wanted: str, within: float = 120) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def reached() -> bool:
            nonlocal found
            found = await self.status(headers, asset_id)
            return found["processingStatus"] == wanted

        async def reached_or_failed() -> bool:
            done = await reached()
            assert done or wanted == "FAILED" or found["processingStatus"] != "FAILED", found
            return done

        await poll(reached_or_failed, f"{asset_id} {wanted}", within)
        return found

    async def kubernetes_agrees(self, asset_id: str, phase: str) -> dict[str, Any] | None:
        """Under Kubernetes, the MediaAsset says the same as the database (no-op on one machine)."""
        if self.operator is None:
            return None
        name = naming.asset_resource_name(asset_id)
        operator = self.operator
        await eventually(lambda: operator.phase(name) == phase, f"{phase} on the MediaAsset")
        return operator.obj("mediaassets", name)

    def rows(self, model: Any, *where: Any) -> list[Any]:
        with self.server.app.state.read_session_factory() as session:
            return list(session.scalars(sa.select(model).where(*where)).all())


@pytest.fixture(params=["local", "kubernetes"])
def start(
    request: pytest.FixtureRequest, live_server_factory: LiveServerFactory, apiserver: ApiServer, tmp_path: Path
) -> Callable[..., Executor]:
    def make(**overrides: Any) -> Executor:
        executor = {"executor": request.param, "proxy_heights": [240], **overrides}
        server = live_server_factory(worker=False, **executor)
        return Executor(request.param, server, apiserver, tmp_path)

    return make


async def poll(check: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    try:
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110 - polling the API as a client does
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def _upload(server: LiveServer, path: Path, mime_type: str) -> tuple[str, dict[str, str]]:
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        subscribed = client.put("/api/webhook", json={"url": "http://127.0.0.1:9/hooks"}, headers=headers)
        assert subscribed.status_code == 200, subscribed.text
        return str(upload(client, headers, path, mime_type=mime_type)["assetId"]), headers


def _jobs(status: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {job["type"]: (job["status"], job["attempts"]) for job in status["jobs"]}


def _announced(executor: Executor, asset_id: str) -> list[str]:
    return [row.event for row in executor.rows(WebhookDelivery, WebhookDelivery.asset_id == asset_id)]


async def test_a_video_is_ready_once_and_announced_once(start: Callable[..., Executor], small_video: Path) -> None:
    executor = start()
    asset_id, headers = _upload(executor.server, small_video, "video/mp4")
    async with executor.running():
        status = await executor.until(headers, asset_id, "READY")
        await executor.kubernetes_agrees(asset_id, "Ready")
        await asyncio.sleep(1)  # whatever could announce it twice has had its chance
    assert _jobs(status) == {"METADATA_EXTRACTION": ("COMPLETED", 1), "PROXY_GENERATION": ("COMPLETED", 1),
                             "THUMBNAIL_GENERATION": ("COMPLETED", 1), "AUDIO_ANALYSIS": ("COMPLETED", 1),
                             "TRANSCRIPTION": ("COMPLETED", 1)}  # fmt: skip
    assert _announced(executor, asset_id) == ["asset.ready"]
    tasks = executor.rows(Task, Task.name == "stages.run")
    assert sorted((task.status.value, task.attempts) for task in tasks) == [("SUCCEEDED", 1)] * 5


async def test_a_silent_video_has_no_audio_stage(start: Callable[..., Executor], silent_video: Path) -> None:
    """The plan after the probe is the metadata-aware one, for both: no audio, no audio visuals."""
    executor = start()
    asset_id, headers = _upload(executor.server, silent_video, "video/mp4")
    async with executor.running():
        status = await executor.until(headers, asset_id, "READY")
        resource = await executor.kubernetes_agrees(asset_id, "Ready")
    assert set(_jobs(status)) == {"METADATA_EXTRACTION", "PROXY_GENERATION", "THUMBNAIL_GENERATION"}
    if resource is not None:
        assert set(resource["status"]["stages"]) == {"probe", "proxies", "thumbnails"}
        assert executor.kubelet is not None and not [job for job in executor.kubelet.started if "audio" in job]


async def test_a_photo_runs_the_probe_and_thumbnails_only(start: Callable[..., Executor], small_jpeg: Path) -> None:
    executor = start()
    asset_id, headers = _upload(executor.server, small_jpeg, "image/jpeg")
    async with executor.running():
        status = await executor.until(headers, asset_id, "READY")
        await executor.kubernetes_agrees(asset_id, "Ready")
    assert _jobs(status) == {"METADATA_EXTRACTION": ("COMPLETED", 1), "THUMBNAIL_GENERATION": ("COMPLETED", 1)}
    if executor.kubelet is not None:
        assert len(executor.kubelet.started) == 2


def _stored(executor: Executor, asset_id: str) -> tuple[str, str]:
    [asset] = executor.rows(MediaAsset, MediaAsset.id == asset_id)
    return asset.storage_bucket, asset.storage_key


async def test_a_transient_failure_is_retried_by_the_stage_policy(
    start: Callable[..., Executor], small_video: Path, tmp_path: Path
) -> None:
    """The source is away for a moment: the probe's first attempt fails, the policy's backoff later the
    second succeeds. The same attempt count and the same task for both executors."""
    executor = start(job_backoff_base_seconds=3, job_backoff_max_seconds=3)
    asset_id, headers = _upload(executor.server, small_video, "video/mp4")
    bucket, key = _stored(executor, asset_id)
    kept = tmp_path / "kept.mp4"
    executor.server.storage.download_file(bucket, key, kept)
    executor.server.storage.delete(bucket, key)
    async with executor.running():

        async def probe_retrying() -> bool:
            jobs = _jobs(await executor.status(headers, asset_id))
            return jobs.get("METADATA_EXTRACTION", ("", 0))[0] == "RETRYING"

        await poll(probe_retrying, "the probe's first attempt to fail")
        # Put back exactly what was verified at confirm (the same bytes, so the same ETag).
        executor.server.storage.upload_file(bucket, key, kept, content_type="video/mp4")
        status = await executor.until(headers, asset_id, "READY")
        await executor.kubernetes_agrees(asset_id, "Ready")
    assert _jobs(status)["METADATA_EXTRACTION"] == ("COMPLETED", 2)
    [probe_task] = executor.rows(Task, Task.dedupe_key == f"stage:{asset_id}:probe")
    assert (probe_task.status.value, probe_task.attempts) == ("SUCCEEDED", 2)
    assert _announced(executor, asset_id) == ["asset.ready"]


async def test_a_permanent_failure_fails_at_once_and_is_announced_once(
    start: Callable[..., Executor], small_video: Path, tmp_path: Path
) -> None:
    """Other bytes under the key after confirm: no attempt can cure that, so none is retried."""
    executor = start()
    asset_id, headers = _upload(executor.server, small_video, "video/mp4")
    bucket, key = _stored(executor, asset_id)
    other = tmp_path / "other.mp4"
    original = await asyncio.to_thread(small_video.read_bytes)
    await asyncio.to_thread(other.write_bytes, original[:-1] + b"\0")
    executor.server.storage.upload_file(bucket, key, other, content_type="video/mp4")
    async with executor.running():
        status = await executor.until(headers, asset_id, "FAILED")
        resource = await executor.kubernetes_agrees(asset_id, "Failed")
        await asyncio.sleep(1)
    assert _jobs(status)["METADATA_EXTRACTION"] == ("FAILED", 1)
    assert "not the one verified at confirm" in status["error"]
    assert _announced(executor, asset_id) == ["asset.failed"]
    if resource is not None:
        assert resource["status"]["stage"] == "probe" and resource["status"]["conditions"][0]["status"] == "False"


async def test_deleting_an_asset_cancels_its_work_and_leaves_nothing(
    start: Callable[..., Executor], media_dir: Path
) -> None:
    source = make_video(media_dir / "long-for-cancel.mp4", duration=20, size="1280x720", fps=25)
    executor = start(proxy_heights=[720])
    asset_id, headers = _upload(executor.server, source, "video/mp4")
    owner = executor.rows(MediaAsset, MediaAsset.id == asset_id)[0].owner_id
    async with executor.running():

        async def proxies_running() -> bool:
            jobs = _jobs(await executor.status(headers, asset_id))
            return jobs.get("PROXY_GENERATION", ("", 0))[0] == "RUNNING"

        await poll(proxies_running, "the proxies to run")
        deleted = await asyncio.to_thread(
            httpx.delete, f"{executor.server.url}/api/assets/{asset_id}", headers=headers, timeout=10
        )
        assert deleted.status_code == 200
        operator = executor.operator
        if operator is not None:
            name = naming.asset_resource_name(asset_id)
            await eventually(lambda: operator.obj("mediaassets", name) is None, "the MediaAsset deleted")
            job = naming.job_name(name, "proxies", 1)  # type: ignore[arg-type]
            await eventually(lambda: operator.obj("jobs", job) is None, "the proxies Job deleted")

        async def nothing_left() -> bool:
            storage = executor.server.storage
            return not any(storage.list_keys(b, f"assets/{owner}/{asset_id}/") for b in ("processed", "proxies"))

        await poll(nothing_left, "the asset's objects to go")
    tasks = executor.rows(Task, Task.dedupe_key == f"stage:{asset_id}:proxies")
    assert [task.status.value for task in tasks] == ["CANCELLED"]
    assert executor.rows(IngestionJob, IngestionJob.asset_id == asset_id) == []
