"""The Kubernetes executor at load, with no cluster: `make bench-k8s` (python -m bench.kubernetes).

Assets go through the real path — the upload protocol against the real API (EXECUTOR=kubernetes, on
PostgreSQL), the real operator in a process of its own (`python -m mediaingest.operator`), a fake
Kubernetes API server (kmock's emulator, with server-side label selectors and TokenReview) — and a
simulated kubelet whose pods report to the API as real stage pods do (their projected token, reviewed
by the API), but record a synthetic result instead of running ffmpeg: what is measured here is what
Kubernetes and the operator pay per asset, not media work.

Two profiles: every stage as a Job (the chart's default), and the scale profile (values-scale.yaml: the
light stages on the API's worker, which runs them for real on a tiny clip; only the proxies as Jobs).
It prints, per video asset, the Kubernetes objects created and the API writes mediaingest made (API
and operator), the lists and watches made without a server-side selector, the operator's peak RSS, and
its RSS with 2,000 and with 20,000 finished assets in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx
import kmock
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake API server and the live server are the tests' fixtures

from bench.service import free_port, fresh_postgres_database  # noqa: E402
from bench.sources import CACHE  # noqa: E402
from fixtures.kube import ApiServer, declare_resources, write_kubeconfig  # noqa: E402
from fixtures.live_server import run_live_server  # noqa: E402
from fixtures.uploads import upload  # noqa: E402
from mediaingest.resident import status_kib  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
SCALE_PLACEMENT = {"probe": "worker", "thumbnails": "worker", "audio_visuals": "worker"}
TENANTS = 20


@attrs.define(kw_only=True)
class LoadApiServer(ApiServer):
    """Hands every Job the operator creates to the simulated kubelet."""

    created_jobs: asyncio.Queue[dict[str, Any]] = attrs.field(factory=asyncio.Queue)

    async def _handle(self, request: kmock.Request) -> Any:
        # kmock finds each request's reaction by materializing every request it has recorded, 0.4 ms each
        # per request: with 50,000 requests the emulator, not mediaingest, would be what is measured. It
        # keeps the recent ones only (the request in hand among them: it is matched before another comes
        # in); `recorded` keeps what the measurement needs of every request.
        if len(self._requests) > 40:  # matching a request runs before any other arrives: 20 is plenty
            del self._requests[:-20]
        response = await super()._handle(request)
        resource = request.resource
        created = request.method is not None and request.method.value == "POST" and isinstance(request.data, dict)
        if resource is not None and resource.plural == "jobs" and created and getattr(response, "status", 200) < 300:
            self.created_jobs.put_nowait(request.data)
        return response


def tiny_clip() -> Path:
    path = CACHE / "k8s-tiny.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x90:rate=15:duration=1",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                str(path),
            ],
            check=True,
        )
    return path


def probed_metadata(path: Path) -> dict[str, Any]:
    """A real probe's result for the synthetic probe pods to report."""
    from mediaingest.models.enums import MediaType
    from mediaingest.pipeline.options import PipelineOptions
    from mediaingest.pipeline.stages.probe import probe

    return probe(path, MediaType.VIDEO, options=PipelineOptions()).to_dict()


class Kubelet:
    """Pods for the operator's Jobs: a pod object, a minted token, the API's /start and /record, then the
    pod's and the Job's final status — what a real kubelet and Job controller write."""

    def __init__(self, apiserver: LoadApiServer, api_url: str, metadata: dict[str, Any], parallel: int = 32) -> None:
        self.apiserver, self.api_url, self.metadata = apiserver, api_url, metadata
        self.limit = asyncio.Semaphore(parallel)
        self.http = httpx.AsyncClient(timeout=60)
        self.running = 0
        self.peak = 0
        self.failures: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            job = await self.apiserver.created_jobs.get()
            task = asyncio.create_task(self._pod(job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pod(self, job: dict[str, Any]) -> None:
        async with self.limit:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await self._run(job)
            except Exception as exc:  # counted and shown: a bench that hides failures measures nothing
                self.failures.append(f"{job['metadata']['name']}: {exc!r}")
            finally:
                self.running -= 1

    async def _run(self, job: dict[str, Any]) -> None:
        name, labels = job["metadata"]["name"], job["metadata"]["labels"]
        pod = f"{name}-{uuid.uuid4().hex[:5]}"
        spec = job["spec"]["template"]["spec"]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "status": {"phase": "Running"},
            "metadata": {"name": pod, "namespace": "default", "labels": {"job-name": name}},
            "spec": {"containers": [{"name": "stage", "image": "mediaingest"}]},
        }
        async with self.apiserver.post("/api/v1/namespaces/default/pods", json=body) as response:
            response.raise_for_status()
        audience = spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]["audience"]
        token = self.apiserver.mint_token(
            namespace="default", service_account=spec["serviceAccountName"], pod_name=pod, audience=audience
        )
        stage = labels["mediaingest.io/stage"]
        attempt = labels["mediaingest.io/attempt"]
        asset_id = job["spec"]["template"]["spec"]["containers"][0]["args"][2]
        headers = {"Authorization": f"Bearer {token}", "X-Stage-Attempt": f"{asset_id}/{stage}/{attempt}"}
        base = f"{self.api_url}/internal/stage-run"
        await self._report(f"{base}/start", headers, None)
        record: dict[str, Any] = {"message": "synthetic", "outputs": []}
        if stage == "probe":
            record["metadata"] = self.metadata
        await self._report(f"{base}/record", headers, record)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"Content-Type": "application/merge-patch+json"}
        pod_status = {
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "stage",
                        "image": "m",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
            }
        }
        async with self.apiserver.patch(f"/api/v1/namespaces/default/pods/{pod}", json=pod_status, headers=patch):
            pass
        job_status = {
            "status": {
                "succeeded": 1,
                "active": 0,
                "completionTime": now,
                "conditions": [{"type": "Complete", "status": "True"}],
            }
        }
        url = f"/apis/batch/v1/namespaces/default/jobs/{name}/status"
        async with self.apiserver.patch(url, json=job_status, headers=patch):
            pass

    async def _report(self, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        """As a real pod reports (`stage_reports.client`): a dropped connection or a 5xx is tried again."""
        for attempt in range(1, 6):
            try:
                answer = await self.http.post(url, headers=headers, json=body)
                if answer.status_code < 500:
                    answer.raise_for_status()
                    return
            except httpx.TransportError:
                if attempt == 5:
                    raise
            await asyncio.sleep(0.2 * 2**attempt)
        answer.raise_for_status()


class OperatorProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.rss_samples: list[int] = []

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.rss_samples = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mediaingest.operator", "--liveness-port", str(free_port()), "--metrics-port", "0"],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def sample(self) -> None:
        if self.process is not None and (rss := status_kib("VmRSS", self.process.pid)):
            self.rss_samples.append(rss)

    def peak_kib(self) -> int:
        assert self.process is not None
        return status_kib("VmHWM", self.process.pid) or 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


def add_finished_history(database_url: str, count: int) -> None:
    """`count` finished assets (READY, four COMPLETED jobs, four SUCCEEDED tasks each), as years of use leave."""
    from mediaingest.db import create_db_engine
    from mediaingest.models import IngestionJob, MediaAsset, Task, User

    engine = create_db_engine(database_url, pool_size=1)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        owner = connection.execute(sa.select(User.id).limit(1)).scalar_one()
        for start in range(0, count, 2000):
            assets, jobs, tasks = [], [], []
            for _ in range(min(2000, count - start)):
                asset_id = str(uuid.uuid4())
                assets.append(
                    {
                        "id": asset_id,
                        "owner_id": owner,
                        "name": "old.mp4",
                        "original_name": "old.mp4",
                        "type": "VIDEO",
                        "file_size": 1,
                        "mime_type": "video/mp4",
                        "upload_status": "UPLOADED",
                        "processing_status": "READY",
                        "storage_bucket": "incoming",
                        "storage_key": f"uploads/{owner}/{asset_id}.mp4",
                        "upload_expires_at": now,
                        "uploaded_at": now,
                        "processed_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                for job_type, stage in (
                    ("METADATA_EXTRACTION", "probe"),
                    ("PROXY_GENERATION", "proxies"),
                    ("THUMBNAIL_GENERATION", "thumbnails"),
                    ("AUDIO_ANALYSIS", "audio_visuals"),
                ):
                    job_id = str(uuid.uuid4())
                    jobs.append(
                        {
                            "id": job_id,
                            "asset_id": asset_id,
                            "type": job_type,
                            "status": "COMPLETED",
                            "attempts": 1,
                            "progress": 100.0,
                            "logs": [],
                            "created_at": now,
                            "updated_at": now,
                            "available_at": now,
                            "finished_at": now,
                        }
                    )
                    tasks.append(
                        {
                            "id": str(uuid.uuid4()),
                            "name": "stages.run",
                            "queue": "stage-jobs",
                            "payload": {"assetId": asset_id, "stage": stage, "jobId": job_id},
                            "dedupe_key": f"stage:{asset_id}:{stage}",
                            "status": "SUCCEEDED",
                            "attempts": 1,
                            "tenant": owner,
                            "run_after": now,
                            "created_at": now,
                            "updated_at": now,
                            "finished_at": now,
                        }
                    )
            connection.execute(sa.insert(MediaAsset), assets)
            connection.execute(sa.insert(IngestionJob), jobs)
            connection.execute(sa.insert(Task), tasks)
    engine.dispose()


def count(engine: sa.Engine, statement: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


async def run_profile(
    name: str, assets: int, placement: dict[str, str], *, history: bool, log: Any, pace: float = 0.0
) -> dict[str, Any]:
    """`pace`: seconds between uploads (0: all at once, a burst); a steady arrival the runners keep up with."""
    from mediaingest.config import Settings
    from mediaingest.models import MediaAsset
    from mediaingest.models.enums import AssetProcessingStatus

    clip = tiny_clip()
    metadata = probed_metadata(clip)
    scratch = CACHE / "k8s" / f"{name}-{uuid.uuid4().hex[:6]}"
    scratch.mkdir(parents=True)
    async with LoadApiServer() as apiserver, kmock.Server(apiserver):
        declare_resources(apiserver)
        kubeconfig = write_kubeconfig(scratch / "kubeconfig", str(apiserver.url))
        os.environ["KUBECONFIG"] = str(kubeconfig)  # the API reviews stage tokens through it
        with fresh_postgres_database() as database_url:

            def settings_for(public_url: str) -> Settings:
                return Settings(
                    _env_file=None,
                    DATABASE_URL=database_url,
                    PUBLIC_URL=public_url,  # type: ignore[call-arg]
                    DATA_DIR=scratch / "data",
                    EXECUTOR="kubernetes",
                    STAGE_PLACEMENT=placement,
                    LOCAL_STORAGE_SECRET="bench",
                    WORKER_CONCURRENCY=2,
                    PROXY_HEIGHTS=[90],
                    LOG_LEVEL="WARNING",
                    WORKER_POLL_INTERVAL_SECONDS=0.2,
                    TENANT_MAX_RUNNING_STAGES=20,
                )

            with run_live_server(settings_for) as server:
                env = {
                    **os.environ,
                    "DATABASE_URL": database_url,
                    "KUBECONFIG": str(kubeconfig),
                    "K8S_NAMESPACE": "default",
                    "K8S_RELEASE": "bench",
                    "STAGE_PLACEMENT": json.dumps(placement),
                    "OPERATOR_STAGE_API_URL": server.url,
                    "OPERATOR_POLL_INTERVAL_SECONDS": "0.2",
                    "OPERATOR_RETENTION_SECONDS": "60",
                    "LOG_LEVEL": "WARNING",
                    "LOG_JSON": "true",
                    "TENANT_MAX_RUNNING_STAGES": "20",
                }
                operator = OperatorProcess(env, scratch / "operator.log")
                operator.start()
                kubelet = Kubelet(apiserver, server.url, metadata)
                kubelet_task = asyncio.create_task(kubelet.run())
                tenants = [server.create_user()[1] for _ in range(TENANTS)]

                def upload_one(index: int) -> None:
                    # As a client does: a dropped connection or a 5xx is tried again (the upload URL, the PUT and
                    # the confirm are each idempotent enough for a new asset to stand in for the lost one).
                    for attempt in range(1, 6):
                        try:
                            with httpx.Client(base_url=server.url, timeout=60) as client:
                                upload(client, tenants[index % TENANTS], clip, mime_type="video/mp4")
                            return
                        except (httpx.TransportError, AssertionError):
                            if attempt == 5:
                                raise
                            time.sleep(0.2 * 2**attempt)

                started = time.monotonic()
                pool = ThreadPoolExecutor(8)
                uploads = []
                for n in range(assets):
                    uploads.append(asyncio.get_running_loop().run_in_executor(pool, upload_one, n))
                    if pace:
                        await asyncio.sleep(pace)
                ready_statement = sa.select(sa.func.count()).where(
                    MediaAsset.processing_status == AssetProcessingStatus.READY
                )
                confirmed_statement = sa.select(sa.func.count()).where(MediaAsset.upload_status == "UPLOADED")
                from mediaingest.db import create_db_engine

                counting = create_db_engine(database_url, pool_size=1)
                while True:
                    operator.sample()
                    done = await asyncio.to_thread(count, counting, ready_statement)
                    # Every confirmed upload READY (an upload that failed five times is not counted).
                    if all(u.done() for u in uploads) and done >= await asyncio.to_thread(
                        count, counting, confirmed_statement
                    ):
                        break
                    if time.monotonic() - started > 3600 or kubelet.failures:
                        raise RuntimeError(f"{done}/{assets} READY; pod failures: {kubelet.failures[:3]}")
                    await asyncio.sleep(1)
                took = time.monotonic() - started
                counting.dispose()
                log(f"  {name}: {assets} assets READY in {took:.0f} s; waiting for their MediaAssets to expire")

                def media_assets_left() -> int:
                    return sum(
                        1
                        for (resource, _, _), obj in list(apiserver.objects.items())
                        if resource.plural == "mediaassets" and not obj.deleted
                    )

                while media_assets_left():
                    operator.sample()
                    await asyncio.sleep(1)
                peak_kib = operator.peak_kib()
                operator.stop()
                recorded = list(apiserver.recorded)
                rss_history: dict[str, float] = {}
                if history:
                    for total in (assets, 20_000):
                        if total > assets:
                            await asyncio.to_thread(add_finished_history, database_url, total - assets)
                        operator.start()
                        await asyncio.sleep(25)  # started, lists done, idle rounds over the history
                        for _ in range(5):
                            operator.sample()
                            await asyncio.sleep(1)
                        rss_history[str(total)] = round(sum(operator.rss_samples[-5:]) / 5 / 1024, 1)
                        operator.stop()
                kubelet_task.cancel()
                await kubelet.http.aclose()
                pool.shutdown()

    created = collections.Counter(
        plural for (resource, _, _) in apiserver.objects for plural in [resource.plural]
    )  # every object ever created, deleted or not
    ours = [r for r in recorded if r.agent.startswith(("mediaingest/", "kopf/")) and r.method in WRITE_METHODS]
    writes = collections.Counter(
        f"{r.method.lower()} {r.plural}{'/' + r.subresource if r.subresource else ''}"
        for r in ours
        if r.plural != "tokenreviews"
    )
    reviews = sum(1 for r in ours if r.plural == "tokenreviews")
    unselected = [
        r
        for r in recorded
        if r.plural in ("jobs", "mediaassets", "pods")
        and r.action.upper() in ("LIST", "WATCH")
        and not r.selector
        and r.agent.startswith("kopf/")
    ]
    objects = {kind: created[kind] for kind in ("mediaassets", "jobs", "pods", "secrets")}
    return {
        "profile": name if not pace else f"{name}, one upload every {pace:g} s",
        "assets": assets,
        "placement": placement,
        "seconds": round(took, 1),
        "assets_per_minute": round(assets / took * 60, 1),
        "objects_per_asset": {kind: round(n / assets, 2) for kind, n in objects.items()},
        "objects_per_asset_total": round(sum(objects.values()) / assets, 2),
        "writes_per_asset": {kind: round(n / assets, 2) for kind, n in sorted(writes.items())},
        "writes_per_asset_total": round(sum(writes.values()) / assets, 2),
        "token_reviews_per_asset": round(reviews / assets, 2),
        "unselected_lists_or_watches": len(unselected),
        "operator_peak_rss_mib": round(peak_kib / 1024, 1),
        "operator_idle_rss_mib_by_finished_assets": rss_history,
        "peak_jobs_at_once": kubelet.peak,
    }


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Kubernetes executor at load (kmock, simulated kubelet, real API and operator)",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')}, {os.cpu_count()} cores",
        "",
        "| profile | assets | s | assets/min | objects/asset | writes/asset | TokenReviews/asset | "
        "unselected lists+watches | operator peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result['profile']} | {result['assets']} | {result['seconds']} | {result['assets_per_minute']} | "
            f"{result['objects_per_asset_total']} | {result['writes_per_asset_total']} | "
            f"{result['token_reviews_per_asset']} | {result['unselected_lists_or_watches']} | "
            f"{result['operator_peak_rss_mib']} |"
        )
    for result in results:
        lines += [
            "",
            f"## {result['profile']}",
            "",
            f"- objects per asset: {result['objects_per_asset']}",
            f"- writes per asset: {result['writes_per_asset']}",
        ]
        if result["operator_idle_rss_mib_by_finished_assets"]:
            lines.append(
                f"- operator RSS (MiB) by finished assets in the database: "
                f"{result['operator_idle_rss_mib_by_finished_assets']}"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kubernetes", description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=2000, help="video assets through every-stage-a-Job")
    parser.add_argument("--scale-assets", type=int, default=100, help="through the scale profile (real ffmpeg)")
    parser.add_argument(
        "--scale-pace",
        type=float,
        default=2.0,
        help="seconds between the scale profile's uploads: a steady rate its one 2-slot worker keeps up with",
    )
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    from mediaingest.logging import configure_logging

    configure_logging("WARNING", json=False)  # the API runs in this process: its request lines would drown the report
    results: list[dict[str, Any]] = []
    if args.assets:
        results.append(asyncio.run(run_profile("every stage a Job", args.assets, {}, history=True, log=log)))
    elif (RESULTS / "k8s.json").exists():  # --assets 0: the scale profile again, beside the last Job profile
        results += [r for r in json.loads((RESULTS / "k8s.json").read_text()) if r["placement"] == {}]
    if args.scale_assets:
        results.append(
            asyncio.run(
                run_profile(
                    "scale (values-scale.yaml)",
                    args.scale_assets,
                    SCALE_PLACEMENT,
                    history=False,
                    log=log,
                    pace=args.scale_pace,
                )
            )
        )
    text = render(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "k8s.md").write_text(text)
    (RESULTS / "k8s.json").write_text(json.dumps(results, indent=2) + "\n")
    log(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
