"""The whole operator — kopf, its indices, the runner, the projection, the Kubernetes client — against a
fake Kubernetes API server, with the real API (a live server on the test database) and real stage pods:
the test plays the Job controller and the kubelet (`fixtures.kubelet`), which run `mediaingest
run-stage` as each Job says, with a projected token the API reviews."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from fixtures.kube import ApiServer
from fixtures.kubelet import Kubelet, kubelet_running
from fixtures.live_server import LiveServer, LiveServerFactory
from fixtures.operator import eventually, running
from fixtures.uploads import upload
from mediaingest.models import IngestionJob, Task
from mediaingest.models.enums import Stage
from mediaingest.operator import naming
from mediaingest.operator.settings import OperatorSettings

SELECTED = ("jobs", "mediaassets")


@pytest.fixture
def k8s_server(live_server_factory: LiveServerFactory) -> LiveServer:
    """The API under EXECUTOR=kubernetes, with a worker for the default queue (deliveries, sweeps)."""
    return live_server_factory(worker=True, executor="kubernetes")


@pytest.fixture
def settings(operator_settings: OperatorSettings, k8s_server: LiveServer) -> OperatorSettings:
    return operator_settings.model_copy(update={"stage_api_url": k8s_server.url})


def _upload(server: LiveServer, path: Path, mime_type: str = "video/mp4") -> tuple[str, dict[str, str]]:
    _, headers = server.create_user()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return str(upload(client, headers, path, mime_type=mime_type)["assetId"]), headers


def _processing(server: LiveServer, headers: dict[str, str], asset_id: str) -> str:
    response = httpx.get(f"{server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10)
    return str(response.json()["data"]["processingStatus"]) if response.status_code == 200 else "GONE"


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a loopback URL built here
        return response.status, response.read().decode()


_VERB = {("GET", "LIST"): "list", ("GET", "WATCH"): "watch", ("GET", "FETCH"): "get", ("POST", "CREATE"): "create",
         ("PATCH", "UPDATE"): "patch", ("PUT", "UPDATE"): "update", ("DELETE", "DELETE"): "delete"}  # fmt: skip
# Grants the happy path does not exercise, each with where it is used.
USED_ELSEWHERE = {
    ("batch", "jobs", "delete"): "cancel on delete (test_deleting_an_asset…)",
    ("mediaingest.io", "mediaassets", "delete"): "retention (test_finished_media_assets_leave_etcd…)",
    ("", "pods", "list"): "why a Job failed: an OOM kill (test_an_attempt_killed_for_memory…)",
}


def assert_every_grant_is_used(helm: Any, tmp_path: Path, recorded: list[Any]) -> None:
    """The operator's Role grants exactly what it uses: every request it made is granted, and every grant
    is seen here or named in USED_ELSEWHERE. (The API's TokenReviews have their own binding; discovery needs
    no grant.)"""
    from fixtures.chart import by_kind, render

    roles = {role["metadata"]["name"]: role["rules"] for role in by_kind(render(helm, tmp_path), "Role")}
    granted = {
        (group, resource, verb)
        for rule in roles["media-release-mediaingest-operator"]
        for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
    }  # fmt: skip
    used = {
        (r.group, f"{r.plural}/{r.subresource}" if r.subresource else r.plural, _VERB[(r.method, r.action.upper())])
        for r in recorded
        if r.plural and r.plural != "tokenreviews" and r.agent.startswith(("kopf/", "mediaingest/"))
    }
    assert used <= granted, used - granted
    assert granted - used == set(USED_ELSEWHERE), granted - used


async def test_a_video_goes_to_ready_with_nine_objects_and_few_writes_and_every_watch_selects(
    apiserver: ApiServer, settings: OperatorSettings, k8s_server: LiveServer, small_video: Path, tmp_path: Path,
    validate_resource: Any, kube_validate: Any, helm: Any,
) -> None:  # fmt: skip
    # The production pace of status writes: progress alone at most every 30 s.
    settings = settings.model_copy(update={"progress_interval_seconds": 30, "projection_interval_seconds": 1})
    kubelet = Kubelet(apiserver, k8s_server.url, tmp_path / "pods")
    async with running(apiserver, settings, k8s_server) as operator, kubelet_running(kubelet):
        # The counters are the process's: other tests in this worker may have moved them already.
        _, before = await asyncio.to_thread(http_get, f"http://127.0.0.1:{operator.metrics_port}/metrics")
        asset_id, headers = _upload(k8s_server, small_video)
        name = naming.asset_resource_name(asset_id)
        await eventually(lambda: _processing(k8s_server, headers, asset_id) == "READY", "READY in the API")
        await eventually(lambda: operator.phase(name) == "Ready", "Ready on the MediaAsset")
        await eventually(kubelet.finished, "every pod to end")

        def finished_label() -> str | None:  # written by the patch that follows the Ready status
            labels = ((operator.obj("mediaassets", name) or {}).get("metadata") or {}).get("labels") or {}
            return labels.get(naming.LABEL_FINISHED)

        await eventually(lambda: finished_label() == "true", "the finished label")
        ready = operator.obj("mediaassets", name)
        assert ready is not None
        validate_resource(ready)
        for version in operator.history(name):  # every status the operator ever wrote
            validate_resource(version)
        assert ready["status"]["progress"] == 100 and ready["status"]["conditions"][0]["status"] == "True"
        assert set(ready["status"]["stages"]) == {"probe", "proxies", "thumbnails", "audio_visuals", "transcript"}
        assert ready["metadata"]["labels"][naming.LABEL_FINISHED] == "true"
        # One Job per stage, probe first, each valid; their pods ran with only their token.
        plan = ("probe", "proxies", "thumbnails", "audio_visuals", "transcript")
        assert kubelet.started[0] == f"{name}-probe-1"
        assert sorted(kubelet.started) == sorted(naming.job_name(name, Stage(stage), 1) for stage in plan)
        for job in kubelet.started:
            body = operator.obj("jobs", job)
            assert body is not None
            kube_validate(body)
        status, text = await asyncio.to_thread(http_get, f"http://127.0.0.1:{operator.metrics_port}/metrics")
        proxies_jobs = 'mediaingest_operator_jobs_created_total{stage="proxies"}'
        assert _sample(text, proxies_jobs) == _sample(before, proxies_jobs) + 1
        status, text = await asyncio.to_thread(http_get, f"http://127.0.0.1:{operator.liveness_port}/healthz")
        assert status == 200 and '"runner"' in text

    # What it cost Kubernetes: 1 MediaAsset + 5 Jobs + 5 Pods, no Secret; and mediaingest's own writes.
    assert operator.ever("secrets") == []
    objects = len(operator.ever("mediaassets")) + len(operator.ever("jobs")) + len(operator.ever("pods"))
    assert objects == 11, (operator.ever("mediaassets"), operator.ever("jobs"), operator.ever("pods"))
    writes = [r for r in apiserver.writes() if r.plural != "tokenreviews"]
    assert len(writes) <= 12, " ".join(f"{w.method}:{w.plural}/{w.subresource}" for w in writes)
    # Every list and watch of jobs and MediaAssets selected on the server: memory follows the work in flight.
    reads = [r for r in apiserver.recorded if r.plural in SELECTED and r.action.upper() in ("LIST", "WATCH")]
    assert reads and all(r.selector for r in reads), [r for r in reads if not r.selector]
    assert_every_grant_is_used(helm, tmp_path, apiserver.recorded)
    # The database agrees: every stage completed once, every task succeeded by its pod's report.
    with k8s_server.app.state.read_session_factory() as session:
        jobs = session.scalars(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id)).all()
        tasks = session.scalars(sa.select(Task).where(Task.name == "stages.run")).all()
    assert sorted((job.status.value, job.attempts) for job in jobs) == [("COMPLETED", 1)] * 5
    assert sorted(task.status.value for task in tasks) == ["SUCCEEDED"] * 5


async def test_an_attempt_killed_for_memory_is_retried_with_twice_the_memory(
    apiserver: ApiServer, settings: OperatorSettings, k8s_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    kubelet = Kubelet(apiserver, k8s_server.url, tmp_path / "pods", oom_kill={"thumbnails"})
    async with running(apiserver, settings, k8s_server) as operator, kubelet_running(kubelet):
        asset_id, headers = _upload(k8s_server, small_video)
        name = naming.asset_resource_name(asset_id)
        await eventually(lambda: _processing(k8s_server, headers, asset_id) == "READY", "READY")
        first, second = operator.obj("jobs", f"{name}-thumbnails-1"), operator.obj("jobs", f"{name}-thumbnails-2")
        assert first is not None and second is not None
        memory = [job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
                  for job in (first, second)]  # fmt: skip
        assert memory == ["2048Mi", "4096Mi"]
    answer = await asyncio.to_thread(
        httpx.get, f"{k8s_server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10
    )
    status = answer.json()["data"]
    [thumbnails] = [job for job in status["jobs"] if job["type"] == "THUMBNAIL_GENERATION"]
    assert (thumbnails["status"], thumbnails["attempts"]) == ("COMPLETED", 2)
    with k8s_server.app.state.read_session_factory() as session:
        row = session.scalar(
            sa.select(IngestionJob).where(
                IngestionJob.asset_id == asset_id, IngestionJob.type == "THUMBNAIL_GENERATION"
            )
        )
        assert row is not None
        causes = [entry["error"] for entry in row.logs if entry["event"] == "job.attempt_failed"]
    assert causes == [
        "the stage pod was killed for using more memory than its limit; the next attempt gets 2x the memory"
    ]


async def test_deleting_an_asset_deletes_its_running_job_and_its_media_asset(
    apiserver: ApiServer, settings: OperatorSettings, k8s_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    kubelet = Kubelet(apiserver, k8s_server.url, tmp_path / "pods", hold={"proxies"})
    async with running(apiserver, settings, k8s_server) as operator, kubelet_running(kubelet):
        asset_id, headers = _upload(k8s_server, small_video)
        name = naming.asset_resource_name(asset_id)
        await eventually(lambda: operator.obj("jobs", f"{name}-proxies-1"), "the proxies Job")
        await eventually(lambda: operator.phase(name) == "Running", "Running")
        deleted = await asyncio.to_thread(
            httpx.delete, f"{k8s_server.url}/api/assets/{asset_id}", headers=headers, timeout=10
        )
        assert deleted.status_code == 200
        await eventually(lambda: operator.obj("jobs", f"{name}-proxies-1") is None, "the Job deleted")
        await eventually(lambda: operator.obj("mediaassets", name) is None, "the MediaAsset deleted")
    with k8s_server.app.state.read_session_factory() as session:
        task = session.scalar(sa.select(Task).where(Task.dedupe_key == f"stage:{asset_id}:proxies"))
        assert task is not None and task.status.value == "CANCELLED"


async def test_a_job_that_ended_after_its_asset_was_deleted_goes_at_once_not_at_its_ttl(
    apiserver: ApiServer, settings: OperatorSettings, k8s_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    # A long lease: the next heartbeat comes long after the pod has told the API and ended.
    settings = settings.model_copy(update={"lease_seconds": 300})
    kubelet = Kubelet(apiserver, k8s_server.url, tmp_path / "pods", hold={"proxies"})
    async with running(apiserver, settings, k8s_server) as operator, kubelet_running(kubelet):
        asset_id, headers = _upload(k8s_server, small_video)
        name = naming.asset_resource_name(asset_id)
        job = f"{name}-proxies-1"
        await eventually(lambda: operator.obj("jobs", job), "the proxies Job")
        deleted = await asyncio.to_thread(
            httpx.delete, f"{k8s_server.url}/api/assets/{asset_id}", headers=headers, timeout=10
        )
        assert deleted.status_code == 200
        kubelet.hold.clear()  # its pod starts now, hears 410 and ends
        await eventually(lambda: job in kubelet.started, "the proxies pod to start")
        await eventually(lambda: operator.obj("jobs", job) is None, "the ended Job deleted")


async def test_a_restarted_operator_takes_up_the_attempts_it_held_without_a_second_job(
    apiserver: ApiServer, settings: OperatorSettings, k8s_server: LiveServer, small_video: Path, tmp_path: Path
) -> None:
    kubelet = Kubelet(apiserver, k8s_server.url, tmp_path / "pods", hold={"proxies"})
    async with kubelet_running(kubelet):
        async with running(apiserver, settings, k8s_server) as operator:
            asset_id, headers = _upload(k8s_server, small_video)
            name = naming.asset_resource_name(asset_id)
            await eventually(lambda: operator.obj("jobs", f"{name}-proxies-1"), "the proxies Job")
        kubelet.hold.clear()  # its pod starts while no operator runs
        async with running(apiserver, settings, k8s_server) as operator:
            await eventually(lambda: _processing(k8s_server, headers, asset_id) == "READY", "READY")
            await eventually(lambda: operator.phase(name) == "Ready", "Ready")
    assert [job for job in operator.ever("jobs") if "-proxies-" in job] == [f"{name}-proxies-1"]


async def test_finished_media_assets_leave_etcd_after_their_retention(
    apiserver: ApiServer, settings: OperatorSettings, k8s_server: LiveServer, small_jpeg: Path, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"retention_seconds": 1})
    kubelet = Kubelet(apiserver, k8s_server.url, tmp_path / "pods")
    async with running(apiserver, settings, k8s_server) as operator, kubelet_running(kubelet):
        asset_id, headers = _upload(k8s_server, small_jpeg, mime_type="image/jpeg")
        name = naming.asset_resource_name(asset_id)
        await eventually(lambda: operator.phase(name) == "Ready", "Ready")
        await eventually(lambda: operator.obj("mediaassets", name) is None, "deleted after its retention", 30)
    # The database keeps the record, and the API keeps answering.
    assert _processing(k8s_server, headers, asset_id) == "READY"


def _sample(exposition: str, series: str) -> float:
    """A series' value in a Prometheus text exposition; 0 before it was first counted."""
    line = next((line for line in exposition.splitlines() if line.startswith(series + " ")), None)
    return float(line.split()[-1]) if line else 0.0
