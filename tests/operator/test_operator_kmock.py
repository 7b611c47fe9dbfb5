"""The whole operator (kopf, its indices, the timer, the Kubernetes client, the database mirror)
running against a fake Kubernetes API server; the test plays the Job controller and the kubelet."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import kmock
import kopf
import pytest
import sqlalchemy as sa
from kopf._core.engines.peering import Identity
from pydantic import SecretStr

from fixtures.uploads import upload
from mediaingest.db import create_db_engine, create_session_factory
from mediaingest.models import IngestionJob, MediaAsset
from mediaingest.models.enums import (
    AssetProcessingStatus,
    IngestionJobStatus,
    IngestionJobType,
    JobPriority,
    MediaType,
    Stage,
)
from mediaingest.operator import naming
from mediaingest.operator.dispatcher import KubernetesDispatcher
from mediaingest.operator.kube import load_api_client
from mediaingest.operator.main import build_memo, build_registry
from mediaingest.operator.mirror import InMemoryMirror, SqlAlchemyMirror, StatusMirror
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline.registry import job_type_for

JOBS = "/apis/batch/v1/namespaces/default/jobs"
ASSETS = "/apis/mediaingest.io/v1alpha1/namespaces/default/mediaassets"
PEERINGS = "/apis/kopf.dev/v1/namespaces/default/kopfpeerings"
TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], what: str) -> Any:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not (result := check()):  # noqa: ASYNC110 - polling the fake server's object store
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    return result


class Operator:
    def __init__(self, apiserver: Any, settings: OperatorSettings, mirror: StatusMirror) -> None:
        self.apiserver = apiserver
        self.settings = settings
        self.mirror = mirror
        self.liveness_port = free_port()
        self.metrics_port = free_port()

    def obj(self, plural: str, name: str) -> dict[str, Any] | None:
        group = {
            "jobs": "batch/v1",
            "mediaassets": "mediaingest.io/v1alpha1",
            "pods": "v1",
            "kopfpeerings": "kopf.dev/v1",
            "secrets": "v1",
        }[plural]
        key = (kmock.resource(f"{group}/{plural}"), "default", name)
        if key not in self.apiserver.objects or self.apiserver.objects[key].deleted:
            return None
        return dict(self.apiserver.objects[key].raw)

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every version of the MediaAsset the fake API server stored, oldest first."""
        key = (kmock.resource("mediaingest.io/v1alpha1/mediaassets"), "default", name)
        return [dict(version.raw) for version in self.apiserver.objects[key].history if version is not None]

    def asset(self, name: str) -> dict[str, Any]:
        body = self.obj("mediaassets", name)
        assert body is not None, name
        return body

    def phase(self, name: str) -> str | None:
        return (self.asset(name).get("status") or {}).get("phase")

    async def job_created(self, name: str) -> dict[str, Any]:
        return await eventually(lambda: self.obj("jobs", name), f"Job {name}")

    async def succeed(self, name: str) -> None:
        """What the Job controller writes when the pod exited 0."""
        await self.job_created(name)
        status = {
            "succeeded": 1,
            "active": 0,
            "startTime": "2030-01-01T00:00:00Z",
            "completionTime": "2030-01-01T00:01:00Z",
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T00:01:00Z"}],
        }
        await self._patch_status(name, status)

    async def fail(self, name: str, *, exit_code: int, message: str) -> None:
        """A failed pod (with the kubelet's terminated state) and the Job controller's Failed condition."""
        await self.job_created(name)
        reason = "PodFailurePolicy" if exit_code == 3 else "BackoffLimitExceeded"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{name}-x7k2p", "namespace": "default", "labels": {"job-name": name}},
            "spec": {"containers": [{"name": "stage", "image": "mediaingest"}]},
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "stage",
                        "image": "mediaingest",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": exit_code,
                                "reason": "Error",
                                "message": message,
                                "finishedAt": "2030-01-01T00:01:00Z",
                                "startedAt": "2030-01-01T00:00:00Z",
                            }
                        },
                    }
                ],
            },
        }
        async with self.apiserver.post("/api/v1/namespaces/default/pods", json=pod) as response:
            assert response.status == 200, await response.text()
        status = {
            "failed": 1,
            "active": 0,
            "startTime": "2030-01-01T00:00:00Z",
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": reason,
                    "message": "Job failed",
                    "lastTransitionTime": "2030-01-01T00:01:00Z",
                }
            ],
        }
        await self._patch_status(name, status)

    async def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.apiserver.patch(f"{JOBS}/{name}/status", json={"status": status}, headers=headers) as response:
            assert response.status == 200, await response.text()


@contextlib.asynccontextmanager
async def running(apiserver: Any, settings: OperatorSettings, mirror: StatusMirror) -> AsyncIterator[Operator]:
    """The operator in its own thread and event loop, as in production: kopf treats every task of its
    loop as its own, so it must not share one with the fake API server's request handlers."""
    operator = Operator(apiserver, settings, mirror)
    stop, ready = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    if settings.peering_name and operator.obj("kopfpeerings", settings.peering_name) is None:
        body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": settings.peering_name}}
        async with apiserver.post(PEERINGS, json=body) as response:  # as the chart does
            assert response.status in (200, 201), await response.text()

    def serve() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=build_registry(settings),
                    memo=build_memo(settings, metrics_port=operator.metrics_port, mirror=mirror),
                    standalone=settings.peering_name is None,
                    peering_name=settings.peering_name,
                    priority=settings.peering_priority,
                    # kopf's own id is user@host/start-second: two operators started together in one
                    # process would share it (pods have their own hostnames).
                    identity=Identity(f"operator-{uuid.uuid4().hex[:8]}"),
                    clusterwide=False,
                    namespaces=["default"],
                    liveness_endpoint=f"http://127.0.0.1:{operator.liveness_port}/healthz",
                    stop_flag=stop,
                    ready_flag=ready,
                )
            )
        except BaseException as exc:  # reported to the test below
            failures.append(exc)

    thread = threading.Thread(target=serve, name="operator", daemon=True)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, TIMEOUT), "the operator did not start"
        yield operator
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, TIMEOUT)
    assert not thread.is_alive(), "the operator did not stop"
    assert not failures, failures


@pytest.fixture
def settings(operator_settings: OperatorSettings) -> OperatorSettings:
    return operator_settings.model_copy(
        update={
            "backoff_base_seconds": 0.3,
            "backoff_max_seconds": 1.0,
            "max_running_jobs_per_tenant": 4,
            "peering_name": "media-release-mediaingest-operator",  # as the chart names it
        }
    )


def dispatcher() -> KubernetesDispatcher:
    return KubernetesDispatcher(namespace="default", api_client=load_api_client())


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a loopback URL built here
        return response.status, response.read().decode()


# Grants the happy path does not exercise, each with where it is used.
USED_ELSEWHERE = {
    ("mediaingest.io", "mediaassets", "delete"): "the retention sweep (test_retention.py)",
    ("mediaingest.io", "mediaassets/finalizers", "update"): "admission of blockOwnerDeletion on Jobs (OpenShift)",
    ("", "pods", "list"): "a failed stage's exit code and message (the failure test below)",
    ("", "events", "create"): "kopf's Events for handler warnings and errors (settings.posting.level)",
}
_VERB = {("GET", "LIST"): "list", ("GET", "WATCH"): "watch", ("GET", "FETCH"): "get", ("POST", "CREATE"): "create",
         ("PATCH", "UPDATE"): "patch", ("PUT", "UPDATE"): "update", ("DELETE", "DELETE"): "delete"}  # fmt: skip


def assert_every_grant_is_used(helm: Any, tmp_path: Any, recorded: list[tuple[str, ...]]) -> None:
    """The operator's Role grants exactly what it uses: every request it made is granted, and every grant
    is either seen here or named in USED_ELSEWHERE. (The API's own request, creating the MediaAsset, and
    the test's stand-in for the Job controller are left out; discovery needs no grant.)"""
    from fixtures.chart import by_kind, render

    roles = {role["metadata"]["name"]: role["rules"] for role in by_kind(render(helm, tmp_path), "Role")}
    granted = {
        (group, resource, verb)
        for rule in roles["media-release-mediaingest-operator"]
        for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
    }  # fmt: skip
    used = {
        (group, f"{plural}/{sub}" if sub else plural, _VERB[(method, action)])
        for agent, method, action, group, plural, sub in recorded
        if plural and agent.startswith(("kopf/", "OpenAPI-Generator/"))
        and not (method == "POST" and plural == "mediaassets")  # the API's, not the operator's
    }  # fmt: skip
    assert used <= granted, used - granted
    assert granted - used == set(USED_ELSEWHERE), granted - used


async def test_video_goes_from_pending_to_ready_and_the_database_agrees(
    apiserver, settings, sqlite_url, db_asset, validate_resource, kube_validate, helm, tmp_path
) -> None:
    asset_id = db_asset(sqlite_url)
    engine = create_db_engine(sqlite_url, pool_size=1)
    mirror = SqlAlchemyMirror(create_session_factory(engine))
    name = naming.asset_resource_name(asset_id)
    api = dispatcher()
    plan = [Stage("probe"), Stage("proxies"), Stage("thumbnails"), Stage("audio_visuals")]

    async with running(apiserver, settings, mirror) as operator:
        await asyncio.to_thread(
            api.dispatch,
            asset_id=asset_id,
            owner_id="user-1",
            media_type=MediaType.VIDEO,
            bucket="incoming",
            key="uploads/clip.mp4",
            size=1234,
            priority=JobPriority.HIGH,
            stages=plan,
        )
        # Confirming twice is harmless: the resource exists, nothing changes.
        await asyncio.to_thread(
            api.dispatch,
            asset_id=asset_id,
            owner_id="user-1",
            media_type=MediaType.VIDEO,
            bucket="incoming",
            key="uploads/clip.mp4",
            size=1234,
            priority=JobPriority.HIGH,
            stages=plan,
        )
        probe = await operator.job_created(f"{name}-probe-1")
        kube_validate(probe)
        assert probe["metadata"]["ownerReferences"][0]["uid"] == operator.asset(name)["metadata"]["uid"]

        # Its token's Secret is the Job's: it goes with the Job's TTL.
        def token_owners() -> list[tuple[str, str]]:
            secret = operator.obj("secrets", f"{name}-probe-1") or {}
            return [(ref["kind"], ref["uid"]) for ref in secret.get("metadata", {}).get("ownerReferences", [])]

        await eventually(lambda: token_owners() == [("Job", probe["metadata"]["uid"])], "the token Secret is the Job's")
        assert operator.asset(name)["metadata"]["finalizers"] == ["mediaingest.io/operator"]
        await eventually(lambda: operator.phase(name) == "Running", "Running")
        validate_resource(operator.asset(name))
        assert operator.obj("jobs", f"{name}-proxies-1") is None  # nothing before the probe succeeds

        status, text = await asyncio.to_thread(http_get, f"http://127.0.0.1:{operator.metrics_port}/metrics")
        assert status == 200
        assert 'mediaingest_operator_stage_assets{stage="probe",state="running"} 1.0' in text
        assert 'mediaingest_operator_stage_assets{stage="proxies",state="pending"} 1.0' in text
        status, text = await asyncio.to_thread(http_get, f"http://127.0.0.1:{operator.liveness_port}/healthz")
        assert status == 200 and '"running_jobs"' in text

        await operator.succeed(f"{name}-probe-1")
        for stage in ("proxies", "thumbnails", "audio-visuals"):
            kube_validate(await operator.job_created(f"{name}-{stage}-1"))
        await eventually(lambda: operator.asset(name)["status"].get("progress") == 25, "progress 25")
        validate_resource(operator.asset(name))
        for stage in ("proxies", "thumbnails", "audio-visuals"):
            await operator.succeed(f"{name}-{stage}-1")

        await eventually(lambda: operator.phase(name) == "Ready", "Ready")
        ready = operator.asset(name)
        validate_resource(ready)
        assert ready["status"]["progress"] == 100
        assert ready["status"]["conditions"][0]["status"] == "True"
        for version in operator.history(name):  # every status the operator ever wrote
            validate_resource(version)
        # Finished: the timer stops, and kopf drops the finalizer it needed.
        await eventually(lambda: not operator.asset(name)["metadata"].get("finalizers"), "finalizer removed")
        assert_every_grant_is_used(helm, tmp_path, apiserver.recorded)

        with create_session_factory(engine)() as session:
            asset = session.get(MediaAsset, asset_id)
            assert asset is not None and asset.processing_status == AssetProcessingStatus.READY
            jobs = {
                job.type: job
                for job in session.scalars(sa.select(IngestionJob).where(IngestionJob.asset_id == asset_id))
            }
        assert set(jobs) == {job_type_for(stage) for stage in plan}
        assert all(job.status == IngestionJobStatus.COMPLETED and job.attempts == 1 for job in jobs.values())

        await asyncio.to_thread(api.cancel, asset_id=asset_id)
        await asyncio.to_thread(api.cancel, asset_id=asset_id)  # already gone: still fine
        assert operator.obj("mediaassets", name) is None
    engine.dispose()


async def test_transient_failure_is_retried_then_exit_3_fails_the_asset(
    apiserver, settings, asset_factory, validate_resource
) -> None:
    mirror = InMemoryMirror()
    asset = asset_factory(media_type=MediaType.AUDIO, stages=(Stage("probe"), Stage("audio_visuals")))
    name = naming.asset_resource_name(asset.asset_id)

    async with running(apiserver, settings, mirror) as operator:
        await asyncio.to_thread(
            dispatcher().dispatch,
            asset_id=asset.asset_id,
            owner_id=asset.owner,
            media_type=asset.media_type,
            bucket=asset.bucket,
            key=asset.key,
            size=asset.size,
            priority=asset.priority,
            stages=list(asset.stages),
        )
        await operator.fail(f"{name}-probe-1", exit_code=1, message="connection reset by peer")
        await operator.job_created(f"{name}-probe-2")  # after the backoff
        retrying = [
            version
            for version in operator.history(name)
            if version.get("status", {}).get("stages", {}).get("probe", {}).get("phase") == "Retrying"
        ]
        assert retrying, "the probe never showed as Retrying"
        assert retrying[0]["status"]["stages"]["probe"]["message"] == "exit code 1, Error: connection reset by peer"
        assert retrying[0]["status"]["stages"]["probe"]["attempts"] == 1

        await operator.fail(f"{name}-probe-2", exit_code=3, message="Invalid data found when processing input")
        await eventually(lambda: operator.phase(name) == "Failed", "Failed")
        failed = operator.asset(name)
        validate_resource(failed)
        assert failed["status"]["message"] == (
            "probe: exit code 3, PodFailurePolicy: Invalid data found when processing input"
        )
        assert failed["status"]["stages"]["audio_visuals"]["phase"] == "Cancelled"
        for version in operator.history(name):
            validate_resource(version)
        await asyncio.sleep(3 * settings.reconcile_interval_seconds)
        assert operator.obj("jobs", f"{name}-probe-3") is None  # permanent: no third attempt

    assert [call for call, args in mirror.calls if call == "stage_failed"] == ["stage_failed", "stage_failed"]
    record = mirror.stages[(asset.asset_id, Stage("probe"))]
    assert (record.status, record.attempts, record.retries) == (IngestionJobStatus.FAILED, 2, 1)
    assert mirror.assets[asset.asset_id][0] == AssetProcessingStatus.FAILED
    assert job_type_for(Stage("audio_visuals")) == IngestionJobType("AUDIO_ANALYSIS")


async def test_operators_of_one_release_agree_that_one_works_and_another_takes_over(
    apiserver, settings, asset_factory
) -> None:
    """Two operators of the release (a second replica, a stray Deployment, a laptop) on one KopfPeering:
    only the higher priority handles MediaAssets; when it stops, the other takes over within seconds."""
    first, second = InMemoryMirror(), InMemoryMirror()
    # A short lifetime: should the fake API server drop the leader's goodbye (it drops events sent between
    # a watcher's listing and its stream; a real one replays them), its entry expires within seconds.
    leader = settings.model_copy(update={"peering_priority": 200, "peering_lifetime_seconds": 3})
    standby = settings.model_copy(update={"peering_priority": 100, "peering_lifetime_seconds": 3})

    peering = str(settings.peering_name)

    async def dispatch() -> tuple[str, str]:
        asset = asset_factory(media_type=MediaType.AUDIO, stages=(Stage("probe"),))
        await asyncio.to_thread(
            dispatcher().dispatch, asset_id=asset.asset_id, owner_id=asset.owner, media_type=asset.media_type,
            bucket=asset.bucket, key=asset.key, size=asset.size, priority=asset.priority, stages=[Stage("probe")],
        )  # fmt: skip
        return asset.asset_id, naming.asset_resource_name(asset.asset_id)

    def handled(mirror: InMemoryMirror, asset_id: str) -> bool:
        return any(args.get("asset_id") == asset_id for _, args in mirror.calls)

    async with contextlib.AsyncExitStack() as leading, contextlib.AsyncExitStack() as standing_by:
        operator = await leading.enter_async_context(running(apiserver, leader, first))
        await eventually(lambda: len((operator.obj("kopfpeerings", peering) or {}).get("status") or {}) == 1, "leader")
        # A second operator of the release joins: it finds a live peer above it and never starts working.
        standby_operator = await standing_by.enter_async_context(running(apiserver, standby, second))
        await eventually(lambda: len((operator.obj("kopfpeerings", peering) or {}).get("status") or {}) == 2, "peers")
        asset_id, name = await dispatch()
        await operator.job_created(f"{name}-probe-1")
        await operator.succeed(f"{name}-probe-1")
        await eventually(lambda: operator.phase(name) == "Ready", "Ready")
        assert first.assets[asset_id][0] == AssetProcessingStatus.READY
        assert not handled(second, asset_id)  # the standby saw it and did nothing
        # The leader leaves (taking itself out of the peering, or expiring): the standby works now.
        await leading.aclose()
        asset_id, name = await dispatch()
        await standby_operator.job_created(f"{name}-probe-1")
        await standby_operator.succeed(f"{name}-probe-1")
        await eventually(lambda: standby_operator.phase(name) == "Ready", "Ready (by the standby)")
        assert second.assets[asset_id][0] == AssetProcessingStatus.READY and not handled(first, asset_id)


async def test_the_whole_chain_with_pods_that_hold_only_their_token(
    apiserver, settings, live_server_factory, small_video, tmp_path
) -> None:
    """Upload → the API's MediaAsset → the operator's Secret and Job → a pod run as the kubelet would, with
    the Job's command and environment and the token from its Secret, its database and storage pointed at
    closed ports → the API records what it reports → the operator sees the Job end → Ready, everywhere."""
    secret = "chain-url-signing-secret"
    server = await asyncio.to_thread(
        live_server_factory, worker=False, executor="kubernetes", k8s_namespace="default", url_signing_secret=secret
    )
    config = settings.model_copy(update={"stage_api_url": server.url, "url_signing_secret": SecretStr(secret)})
    engine = create_db_engine(server.settings.resolved_database_url, pool_size=1)
    mirror = SqlAlchemyMirror(create_session_factory(engine))
    _, headers = server.create_user()

    def confirm() -> str:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return str(upload(client, headers, small_video, mime_type="video/mp4")["assetId"])

    def kubelet(job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {"PATH": os.environ["PATH"], "PROXY_HEIGHTS": "[240]", "LOG_JSON": "true"}
        for item in container["env"]:
            if "value" in item:
                env[item["name"]] = item["value"]
            else:  # the token, from the Secret the reference names
                ref = item["valueFrom"]["secretKeyRef"]
                token_secret = operator.obj("secrets", ref["name"])
                assert token_secret is not None, ref
                env[item["name"]] = token_secret["stringData"][ref["key"]]
        scratch = tmp_path / job["metadata"]["name"]
        scratch.mkdir()
        env |= {"WORK_DIR": str(scratch), "TMPDIR": str(scratch), "HOME": str(scratch), "DATA_DIR": str(scratch)}
        env |= {"DATABASE_URL": "postgresql+psycopg://nobody:nothing@127.0.0.1:9/none", "STORAGE_BACKEND": "s3"}
        env["TERMINATION_MESSAGE_PATH"] = str(scratch / "termination-log")
        command = [str(Path(sys.executable).parent / container["command"][0]), *container["args"]]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)

    async with running(apiserver, config, mirror) as operator:
        asset_id = await asyncio.to_thread(confirm)
        name = naming.asset_resource_name(asset_id)
        for stages in (["probe"], ["proxies", "thumbnails", "audio-visuals"]):
            for stage in stages:
                job = await operator.job_created(f"{name}-{stage}-1")
                finished = await asyncio.to_thread(kubelet, job)
                assert finished.returncode == 0, finished.stderr[-3000:]
                await operator.succeed(job["metadata"]["name"])
        await eventually(lambda: operator.phase(name) == "Ready", "Ready")

    status = await asyncio.to_thread(
        lambda: httpx.get(f"{server.url}/api/assets/{asset_id}/status", headers=headers, timeout=10).json()["data"]
    )
    assert status["processingStatus"] == "READY"
    assert {job["status"] for job in status["jobs"]} == {"COMPLETED"} and len(status["jobs"]) == 4
    detail = await asyncio.to_thread(
        lambda: httpx.get(f"{server.url}/api/assets/{asset_id}", headers=headers, timeout=10).json()["data"]
    )
    assert {"VIDEO", "HLS", "POSTER", "WAVEFORM"} <= {proxy["type"] for proxy in detail["proxies"]}
    engine.dispose()
