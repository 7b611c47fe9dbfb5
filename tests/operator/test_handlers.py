"""The MediaAsset handler called directly, with an in-memory Kubernetes (fake client and indices)
and the in-memory mirror: Jobs created, statuses written, retries, caps and failure ordering."""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from mediaingest.models.enums import AssetProcessingStatus, IngestionJobStatus, JobPriority, Stage
from mediaingest.operator import naming
from mediaingest.operator.handlers.capacity import CapacityLedger
from mediaingest.operator.handlers.handle_asset import OperatorContext, index_asset_states, is_active, reconcile_asset
from mediaingest.operator.handlers.handle_job import index_active_jobs, index_stage_jobs
from mediaingest.operator.jobs import observe_job
from mediaingest.operator.kube import PodTermination
from mediaingest.operator.mirror import InMemoryMirror
from mediaingest.operator.model import AssetSpec
from mediaingest.operator.settings import OperatorSettings
from mediaingest.operator.watch_health import WatchHealth
from mediaingest.stage_reports import tokens

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class FakeKube:
    """Jobs by name; the test sets their status. Pod terminations by Job name."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, PodTermination] = field(default_factory=dict)
    fail_creates: int = 0
    creates: list[str] = field(default_factory=list)

    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    served_versions: dict[str, str] = field(default_factory=dict)  # what the API server holds, by MediaAsset
    version_reads: list[str] = field(default_factory=list)

    async def media_asset_version(self, namespace: str, name: str) -> str | None:
        self.version_reads.append(name)
        return self.served_versions.get(name)

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> str | None:
        name = body["metadata"]["name"]
        if name in self.secrets:
            return None
        self.secrets[name] = copy.deepcopy(body)
        return f"uid-secret-{name}"

    async def hand_secret_to_job(self, namespace: str, secret_name: str, *, job_name: str, job_uid: str) -> None:
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid}
        self.secrets[secret_name]["metadata"]["ownerReferences"] = [owner]

    async def create_job(self, namespace: str, body: dict[str, Any]) -> str | None:
        name = body["metadata"]["name"]
        self.creates.append(name)
        if self.fail_creates:
            self.fail_creates -= 1
            raise ApiException(status=500, reason="Internal Server Error")
        if name in self.jobs:
            return None
        self.jobs[name] = copy.deepcopy(body)
        return f"uid-job-{name}"

    async def pod_termination(self, namespace: str, job_name: str) -> PodTermination | None:
        return self.pods.get(job_name)

    def finish(self, name: str, *, succeeded: bool, reason: str = "BackoffLimitExceeded") -> None:
        condition = {
            "type": "Complete" if succeeded else "Failed",
            "status": "True",
            "reason": reason,
            "message": "",
            "lastTransitionTime": "2030-01-01T00:05:00Z",
        }
        self.jobs[name]["status"] = {"conditions": [condition], "succeeded" if succeeded else "failed": 1}


class BrokenMirror(InMemoryMirror):
    def stage_started(self, **kwargs: Any) -> None:
        raise RuntimeError("database is down")


@dataclass
class Cluster:
    """MediaAssets, their statuses, the fake client, and the indices kopf would keep from the watch."""

    settings: OperatorSettings
    kube: FakeKube = field(default_factory=FakeKube)
    mirror: InMemoryMirror = field(default_factory=InMemoryMirror)
    now: datetime = T0
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ledger = CapacityLedger(
            max_running=self.settings.max_running_jobs,
            max_running_per_tenant=self.settings.max_running_jobs_per_tenant,
        )
        self.memo = kopf.Memo(context=self.context())

    def context(self) -> OperatorContext:
        return OperatorContext(
            settings=self.settings, kube=self.kube, mirror=self.mirror, ledger=self.ledger, clock=lambda: self.now
        )

    def add(self, asset: AssetSpec) -> str:
        name = naming.asset_resource_name(asset.asset_id)
        self.assets[name] = {
            "apiVersion": naming.API_VERSION,
            "kind": naming.KIND,
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "generation": 1},
            "spec": asset.to_spec(),
            "status": {},
        }
        return name

    def indices(self) -> tuple[dict[Any, list[Any]], dict[str, list[str]]]:
        stage_jobs: dict[Any, list[Any]] = defaultdict(list)
        active: dict[str, list[str]] = defaultdict(list)
        for body in self.kube.jobs.values():
            for key, value in index_stage_jobs(body, namespace="default").items():
                stage_jobs[key].append(value)
            for key, value in index_active_jobs(body).items():
                active[key].append(value)
        return stage_jobs, active

    async def reconcile(self, name: str, validate_status) -> kopf.Patch:
        body = self.assets[name]
        patch = kopf.Patch()
        stage_jobs, active = self.indices()
        try:
            await reconcile_asset(
                name=name,
                namespace="default",
                body=body,
                spec=body["spec"],
                status=body["status"],
                meta=body["metadata"],
                patch=patch,
                memo=self.memo,
                stage_jobs=stage_jobs,
                active_jobs=active,
            )
        finally:
            self._apply(body, patch)
            validate_status(body["status"])
        return patch

    @staticmethod
    def _apply(body: dict[str, Any], patch: kopf.Patch) -> None:
        def merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                elif isinstance(value, dict) and isinstance(target.get(key), dict):
                    merge(target[key], value)
                else:
                    target[key] = copy.deepcopy(value)

        merge(body, dict(patch))


@pytest.fixture
def cluster(operator_settings: OperatorSettings) -> Cluster:
    # Caps high enough not to matter; the caps test sets its own.
    return Cluster(
        settings=operator_settings.model_copy(update={"max_running_jobs": 50, "max_running_jobs_per_tenant": 10})
    )


async def test_new_media_asset_gets_its_probe_job(
    cluster: Cluster, asset_factory, validate_status, kube_validate
) -> None:
    asset = asset_factory(owner="auth0|42")
    name = cluster.add(asset)
    patch = await cluster.reconcile(name, validate_status)

    (job_name,) = cluster.kube.jobs
    assert job_name == f"{name}-probe-1"
    job = cluster.kube.jobs[job_name]
    kube_validate(job)
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": naming.API_VERSION,
            "kind": naming.KIND,
            "name": name,
            "uid": f"uid-{name}",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:5] == [
        "run-stage",
        "--asset",
        asset.asset_id,
        "--stage",
        "probe",
    ]
    # The pod's only credential: a token the API accepts for this asset's probe, attempt 1, and nothing else,
    # in a Secret of the Job's name that goes with the Job (its TTL), not days later with the MediaAsset.
    secret = cluster.kube.secrets[job_name]
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": f"uid-job-{job_name}"}
    ]
    claims = tokens.verify(cluster.settings.stage_token_secret(), secret["stringData"]["STAGE_TOKEN"])
    assert claims == tokens.StageClaims(asset_id=asset.asset_id, owner_id=asset.owner, stage=Stage("probe"), attempt=1)
    assert patch["status"]["phase"] == "Running"
    assert cluster.assets[name]["status"]["stages"]["probe"]["jobName"] == job_name
    assert cluster.mirror.stages[(asset.asset_id, Stage("probe"))].status == IngestionJobStatus.RUNNING
    assert cluster.mirror.assets[asset.asset_id][0] == AssetProcessingStatus.PROCESSING
    # The next run sees the Job on the watch and records that once; after that nothing changes, so a run
    # creates nothing and patches nothing.
    seen = await cluster.reconcile(name, validate_status)
    assert seen["status"] == {"stages": {"probe": {"jobSeenAt": "2030-01-01T00:00:00Z"}}}
    again = await cluster.reconcile(name, validate_status)
    assert "status" not in again and len(cluster.kube.creates) == 1


async def test_probe_success_launches_the_rest_then_ready(cluster: Cluster, asset_factory, validate_status) -> None:
    asset = asset_factory()
    name = cluster.add(asset)
    await cluster.reconcile(name, validate_status)
    cluster.kube.finish(f"{name}-probe-1", succeeded=True)
    await cluster.reconcile(name, validate_status)
    assert sorted(cluster.kube.jobs) == sorted(
        [f"{name}-probe-1", f"{name}-proxies-1", f"{name}-thumbnails-1", f"{name}-audio-visuals-1"]
    )
    status = cluster.assets[name]["status"]
    assert status["progress"] == 25 and status["stage"] == "proxies,thumbnails,audio_visuals"
    assert index_asset_states(cluster.assets[name]["spec"], status, name) == {
        ("phase", "Running"): name,
        ("stage", "proxies", "running"): name,
        ("stage", "thumbnails", "running"): name,
        ("stage", "audio_visuals", "running"): name,
    }
    for stage in ("proxies", "thumbnails", "audio-visuals"):
        cluster.kube.finish(f"{name}-{stage}-1", succeeded=True)
    await cluster.reconcile(name, validate_status)
    assert status["phase"] == "Ready" and status["progress"] == 100
    assert not is_active(status)
    assert index_asset_states(cluster.assets[name]["spec"], status, name) == {}
    assert cluster.mirror.assets[asset.asset_id] == (AssetProcessingStatus.READY, None)
    assert all(record.status == IngestionJobStatus.COMPLETED for record in cluster.mirror.stages.values())


async def test_failed_job_is_retried_with_backoff_then_fails(cluster: Cluster, asset_factory, validate_status) -> None:
    asset = asset_factory(stages=(Stage("probe"), Stage("thumbnails")))
    name = cluster.add(asset)
    await cluster.reconcile(name, validate_status)
    cluster.kube.finish(f"{name}-probe-1", succeeded=False)
    cluster.kube.pods[f"{name}-probe-1"] = PodTermination(exit_code=1, reason="Error", message="connection reset")
    await cluster.reconcile(name, validate_status)
    entry = cluster.assets[name]["status"]["stages"]["probe"]
    assert entry["phase"] == "Retrying" and entry["message"] == "exit code 1, Error: connection reset"
    assert entry["nextAttemptAt"] == "2030-01-01T00:00:10Z"  # backoff base 10 s
    assert cluster.mirror.stages[(asset.asset_id, Stage("probe"))].status == IngestionJobStatus.RETRYING

    cluster.now = T0 + timedelta(seconds=9)
    await cluster.reconcile(name, validate_status)
    assert f"{name}-probe-2" not in cluster.kube.jobs
    cluster.now = T0 + timedelta(seconds=10)
    await cluster.reconcile(name, validate_status)
    assert f"{name}-probe-2" in cluster.kube.jobs

    # The second attempt exits 3 (unreadable media): permanent, no third attempt despite max_attempts=3.
    cluster.kube.finish(f"{name}-probe-2", succeeded=False, reason="PodFailurePolicy")
    cluster.kube.pods[f"{name}-probe-2"] = PodTermination(exit_code=3, reason="Error", message="moov atom not found")
    await cluster.reconcile(name, validate_status)
    status = cluster.assets[name]["status"]
    assert status["phase"] == "Failed"
    assert status["message"] == "probe: exit code 3, PodFailurePolicy: moov atom not found"
    assert status["stages"]["thumbnails"]["phase"] == "Cancelled"
    assert f"{name}-probe-3" not in cluster.kube.jobs
    record = cluster.mirror.stages[(asset.asset_id, Stage("probe"))]
    assert (record.status, record.attempts, record.retries) == (IngestionJobStatus.FAILED, 2, 1)
    assert cluster.mirror.assets[asset.asset_id][0] == AssetProcessingStatus.FAILED


async def test_retries_run_out(cluster: Cluster, asset_factory, validate_status) -> None:
    name = cluster.add(asset_factory(stages=(Stage("probe"),)))
    for attempt in (1, 2, 3):
        await cluster.reconcile(name, validate_status)
        cluster.kube.finish(f"{name}-probe-{attempt}", succeeded=False, reason="DeadlineExceeded")
        await cluster.reconcile(name, validate_status)
        cluster.now += timedelta(seconds=60)
    status = cluster.assets[name]["status"]
    assert status["phase"] == "Failed" and "gave up after 3 attempts: DeadlineExceeded" in status["message"]
    assert len(cluster.kube.jobs) == 3


async def test_caps_hold_back_one_tenant_without_starving_another(
    asset_factory, validate_status, operator_settings
) -> None:
    cluster = Cluster(
        settings=operator_settings.model_copy(update={"max_running_jobs": 3, "max_running_jobs_per_tenant": 2})
    )
    greedy = [cluster.add(asset_factory(owner="greedy")) for _ in range(3)]
    modest = cluster.add(asset_factory(owner="modest", priority=JobPriority.URGENT))

    await cluster.reconcile(greedy[0], validate_status)
    await cluster.reconcile(greedy[1], validate_status)
    with pytest.raises(kopf.TemporaryError, match="tenant cap: 2/2") as waiting:
        await cluster.reconcile(greedy[2], validate_status)
    assert 5 / 2 * 0.8 <= waiting.value.delay <= 5 / 2 * 1.2  # NORMAL: base / (1 + rank 1), ±20 % jitter
    status = cluster.assets[greedy[2]]["status"]
    assert status["phase"] == "Pending" and status["message"].startswith("waiting for capacity (tenant cap")

    await cluster.reconcile(modest, validate_status)  # the other tenant still gets a slot
    assert f"{modest}-probe-1" in cluster.kube.jobs
    delays = {}
    for priority in (JobPriority.LOW, JobPriority.URGENT):
        late = cluster.add(asset_factory(owner=f"third-{priority}", priority=priority))
        with pytest.raises(kopf.TemporaryError, match="global cap: 3/3") as full:
            await cluster.reconcile(late, validate_status)
        delays[priority] = full.value.delay
    # Higher priorities look for a free slot more often.
    assert delays[JobPriority.URGENT] <= 5 / 4 * 1.2 < 5 * 0.8 <= delays[JobPriority.LOW]

    cluster.kube.finish(f"{greedy[0]}-probe-1", succeeded=True)  # frees a greedy slot… but adds 3 wanted jobs
    cluster.kube.jobs[f"{greedy[0]}-probe-1"]["status"]["active"] = 0
    with pytest.raises(kopf.TemporaryError):
        await cluster.reconcile(greedy[0], validate_status)
    running = [body for body in cluster.kube.jobs.values() if observe_job(body).state == "active"]  # type: ignore[union-attr]
    assert len(running) <= 3
    greedy_running = [body for body in running if body["metadata"]["labels"][naming.LABEL_TENANT] == "greedy"]
    assert len(greedy_running) <= 2


async def test_job_create_error_leaves_status_untouched_and_releases_the_slot(
    cluster: Cluster, asset_factory, validate_status
) -> None:
    name = cluster.add(asset_factory())
    cluster.kube.fail_creates = 1
    with pytest.raises(kopf.TemporaryError, match=r"creating Job .*probe-1 failed: 500"):
        await cluster.reconcile(name, validate_status)
    assert cluster.assets[name]["status"] == {} and not cluster.mirror.calls
    assert cluster.ledger.running({}) == {}
    await cluster.reconcile(name, validate_status)
    assert cluster.assets[name]["status"]["stages"]["probe"]["phase"] == "Running"


async def test_mirror_error_leaves_status_untouched_until_the_database_is_back(
    cluster: Cluster, asset_factory, validate_status
) -> None:
    name = cluster.add(asset_factory())
    cluster.memo.context.mirror = BrokenMirror()
    with pytest.raises(kopf.TemporaryError, match="database is down"):
        await cluster.reconcile(name, validate_status)
    assert cluster.assets[name]["status"] == {} and f"{name}-probe-1" in cluster.kube.jobs
    cluster.memo.context.mirror = cluster.mirror
    await cluster.reconcile(name, validate_status)  # the Job exists already: same decision, now recorded
    assert cluster.assets[name]["status"]["stages"]["probe"]["attempts"] == 1
    assert len(cluster.kube.jobs) == 1


async def test_a_spec_the_schema_should_have_refused_fails_permanently(
    cluster: Cluster, asset_factory, validate_status
) -> None:
    name = cluster.add(asset_factory())
    cluster.assets[name]["spec"]["stages"] = ["probe", "probe"]
    with pytest.raises(kopf.PermanentError, match="invalid MediaAsset spec"):
        await cluster.reconcile(name, validate_status)
    assert cluster.assets[name]["status"]["phase"] == "Failed" and not cluster.kube.jobs


async def test_a_stage_this_operator_does_not_know_fails_the_asset_in_kubernetes_and_the_database(
    cluster: Cluster, asset_factory, validate_status
) -> None:
    """The API planned a stage of its STAGE_MODULES that the operator's settings lack."""
    name = cluster.add(asset_factory())
    asset_id = cluster.assets[name]["spec"]["assetId"]
    cluster.assets[name]["spec"]["stages"] = ["probe", "loudness"]
    with pytest.raises(kopf.PermanentError, match="unknown stage 'loudness'"):
        await cluster.reconcile(name, validate_status)
    status = cluster.assets[name]["status"]
    assert status["phase"] == "Failed" and "unknown stage 'loudness'" in status["message"] and not cluster.kube.jobs
    processing, message = cluster.mirror.assets[asset_id]
    assert processing == AssetProcessingStatus.FAILED and message == status["message"]
    # Seen again (kopf retries nothing permanent, but a restart re-lists): the database is told once.
    with pytest.raises(kopf.PermanentError):
        await cluster.reconcile(name, validate_status)
    assert [call for call, _ in cluster.mirror.calls].count("asset_finished") == 1


def test_capacity_ledger_counts_reservations_until_seen_and_expires_them() -> None:
    clock = [0.0]
    ledger = CapacityLedger(max_running=2, max_running_per_tenant=1, reservation_ttl_seconds=30, clock=lambda: clock[0])
    assert ledger.try_admit(job_name="a-1", tenant="a", active={}) is None
    assert ledger.try_admit(job_name="a-1", tenant="a", active={}) is None  # the same Job: no new slot
    assert ledger.try_admit(job_name="a-2", tenant="a", active={}) == "tenant cap: 1/1 Jobs of this owner running"
    assert ledger.try_admit(job_name="b-1", tenant="b", active={"a": ["a-1"]}) is None
    assert ledger.try_admit(job_name="c-1", tenant="c", active={"a": ["a-1"]}) == "global cap: 2/2 stage Jobs running"
    ledger.forget("b-1")
    assert ledger.try_admit(job_name="c-1", tenant="c", active={"a": ["a-1"]}) is None
    clock[0] = 31.0  # reservations of Jobs never seen (a create that failed silently) expire
    assert ledger.running({}) == {}


async def test_with_kueue_jobs_are_created_suspended_and_kueue_admits_them(
    asset_factory, validate_status, operator_settings, kube_validate
) -> None:
    """Kueue's quotas, fair sharing and priorities replace the operator's own caps: three assets against a
    cap of one all get their Job, suspended and labelled for the queue; the status says it waits for
    admission until Kueue lets the Job start."""
    settings = operator_settings.model_copy(
        update={"kueue_queue_name": "media-stages", "max_running_jobs": 1, "max_running_jobs_per_tenant": 1}
    )
    cluster = Cluster(settings=settings)
    names = [cluster.add(asset_factory(owner="one-tenant")) for _ in range(3)]
    for name in names:
        await cluster.reconcile(name, validate_status)  # never waits on a cap
    assert len(cluster.kube.jobs) == 3
    job = cluster.kube.jobs[f"{names[0]}-probe-1"]
    kube_validate(job)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "media-stages"

    await cluster.reconcile(names[0], validate_status)  # on the watch now, still suspended
    probe = cluster.assets[names[0]]["status"]["stages"]["probe"]
    assert probe["phase"] == "Running" and probe["message"] == "waiting for admission by the Kueue queue"
    job["spec"]["suspend"] = False  # Kueue admitted it; the Job controller starts its pod
    job["status"] = {"active": 1, "startTime": "2030-01-01T00:00:10Z"}
    await cluster.reconcile(names[0], validate_status)
    assert "message" not in cluster.assets[names[0]]["status"]["stages"]["probe"]


async def test_capacity_waits_do_not_log_at_error(asset_factory, validate_status, operator_settings) -> None:
    """kopf logs a TemporaryError as ERROR ("… failed temporarily: …") and posts it as an Event; a wait for
    capacity is normal, so the operator's filter drops exactly those lines and keeps real errors."""
    import logging

    from mediaingest.operator.handlers.handle_asset import QuietCapacityWaits

    cluster = Cluster(settings=operator_settings.model_copy(update={"max_running_jobs": 1}))
    first, second = (cluster.add(asset_factory(owner=owner)) for owner in ("a", "b"))
    await cluster.reconcile(first, validate_status)
    with pytest.raises(kopf.TemporaryError) as waiting:
        await cluster.reconcile(second, validate_status)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1, message, None, None)

    quiet = QuietCapacityWaits()
    assert not quiet.filter(record(f"Timer 'reconcile' failed temporarily: {waiting.value}"))
    assert quiet.filter(record("Timer 'reconcile' failed temporarily: creating Job x failed: 500 Internal"))


def test_freed_slots_go_to_the_longest_and_most_urgent_waiters_and_nobody_starves() -> None:
    clock = [0.0]
    ledger = CapacityLedger(max_running=1, max_running_per_tenant=1, aging_seconds=300, clock=lambda: clock[0])
    busy = {"x": ["x-1"]}  # the one slot is taken
    assert ledger.try_admit(job_name="low-1", tenant="low", active=busy, rank=0) == "global cap: 1/1 stage Jobs running"
    clock[0] = 100.0
    assert ledger.try_admit(job_name="high-1", tenant="high", active=busy, rank=3) is not None
    # The slot frees: the urgent one (3 + 0.0) outranks the low one (0 + 0.33) even though it came later…
    assert ledger.try_admit(job_name="low-1", tenant="low", active={}, rank=0).startswith("queued behind 1")  # type: ignore[union-attr]
    assert ledger.try_admit(job_name="high-1", tenant="high", active={}, rank=3) is None
    # …but waiting ages: after 20 minutes the low one (0 + 4) outranks a fresh urgent one (3 + 0).
    ledger.forget("high-1")
    full = {"high": ["high-1"]}
    while clock[0] < 1200.0:  # the waiting asset retries every 15 s, as its reconcile does
        clock[0] += 15.0
        assert ledger.try_admit(job_name="low-1", tenant="low", active=full, rank=0) is not None
    assert ledger.try_admit(job_name="urgent-2", tenant="other", active=full, rank=3) is not None
    assert ledger.try_admit(job_name="urgent-2", tenant="other", active={}, rank=3).startswith("queued behind 1")  # type: ignore[union-attr]
    assert ledger.try_admit(job_name="low-1", tenant="low", active={}, rank=0) is None


def test_a_waiter_whose_tenant_is_at_its_cap_holds_nobody_back() -> None:
    ledger = CapacityLedger(max_running=3, max_running_per_tenant=1, clock=lambda: 0.0)
    running = {"greedy": ["greedy-1"]}
    assert ledger.try_admit(job_name="greedy-2", tenant="greedy", active=running, rank=3).startswith("tenant cap")  # type: ignore[union-attr]
    assert ledger.try_admit(job_name="modest-1", tenant="modest", active=running, rank=0) is None


async def test_liveness_fails_when_the_watch_stops_delivering_what_the_server_holds(
    asset_factory, validate_status, operator_settings
) -> None:
    """kopf issue 585: a stream that stays open and delivers nothing. The timer keeps running on the last
    body it got; compared with the API server's now and then, a version never delivered fails liveness."""
    from mediaingest.operator.handlers.lifecycle import probe_watch

    cluster = Cluster(settings=operator_settings)
    cluster.memo.context.watch_health = WatchHealth(check_interval=0.01, stall_after=1.0, forget_after=30)
    name = cluster.add(asset_factory())
    cluster.assets[name]["metadata"]["resourceVersion"] = "7"
    # In step: the server holds what the stream delivered.
    cluster.kube.served_versions[name] = "7"
    await cluster.reconcile(name, validate_status)
    assert cluster.kube.version_reads == [name] and await probe_watch(cluster.memo) == "ok"
    # The server moves on (someone patched it); a live stream delivers it before the next run.
    cluster.kube.served_versions[name] = "8"
    await asyncio.sleep(0.02)
    await cluster.reconcile(name, validate_status)
    cluster.assets[name]["metadata"]["resourceVersion"] = "8"
    await asyncio.sleep(1.2)
    await cluster.reconcile(name, validate_status)
    assert await probe_watch(cluster.memo) == "ok"
    # It moves on again and the stream never says so: once that lasts, liveness fails.
    cluster.kube.served_versions[name] = "9"
    await asyncio.sleep(0.02)
    await cluster.reconcile(name, validate_status)
    assert await probe_watch(cluster.memo) == "ok"  # behind for a moment is normal
    await asyncio.sleep(1.2)
    await cluster.reconcile(name, validate_status)
    with pytest.raises(kopf.PermanentError, match="lagged the API server"):
        await probe_watch(cluster.memo)
