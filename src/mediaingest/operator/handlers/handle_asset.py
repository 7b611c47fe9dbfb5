"""The MediaAsset handler: the only writer of a MediaAsset's status (and so of `status.phase`).

Each run is one level-based reconciliation: read the spec, the status and the asset's Jobs from the
kopf index; let the pure `reconcile` decide; then carry the decision out in an order that keeps the
three records consistent if any step fails:

1. create the Jobs it asks for (an existing one counts as created),
2. mirror the stage transitions into the database (idempotent),
3. write the status (kopf applies the patch when the handler returns or raises).

A failure in 1 or 2 raises TemporaryError before the status is touched, so the next run makes the
same decision again. A launch refused by a concurrency cap also ends in TemporaryError: the status
says why the asset waits, and kopf calls again after a delay that is shorter for higher priorities.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog
from kubernetes.client.exceptions import ApiException

from mediaingest.models.enums import JobPriority
from mediaingest.operator import metrics, naming
from mediaingest.operator.handlers.capacity import CapacityLedger
from mediaingest.operator.handlers.reconcile import (
    TERMINAL_ASSET_PHASES,
    AssetFinished,
    AssetPhase,
    StageFailed,
    StagePhase,
    Transition,
    format_time,
    parse_time,
    reconcile,
    status_patch,
    unsettled_failures,
)
from mediaingest.operator.jobs import build_stage_job, build_token_secret
from mediaingest.operator.kube import KubeApi
from mediaingest.operator.mirror import StatusMirror, apply_transitions
from mediaingest.operator.model import AssetSpec, JobObservation
from mediaingest.operator.settings import OperatorSettings
from mediaingest.operator.watch_health import WatchHealth
from mediaingest.retry import RetryPolicy

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class OperatorContext:
    """Everything the handlers share, built once at start-up and kept in kopf's memo."""

    settings: OperatorSettings
    kube: KubeApi
    mirror: StatusMirror
    ledger: CapacityLedger
    watch_health: WatchHealth = dataclasses.field(default_factory=WatchHealth)
    clock: Callable[[], datetime] = utcnow

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.settings.max_attempts,
            base_seconds=self.settings.backoff_base_seconds,
            max_seconds=self.settings.backoff_max_seconds,
            jitter=0.0,  # the reconcile is a pure decision: the same input, the same retry time
        )

    def capacity_delay(self, priority: JobPriority) -> float:
        # Higher priorities look for a free slot more often, so they tend to get it first; the
        # jitter keeps waiting assets from retrying in lockstep.
        return self.settings.capacity_retry_seconds / (1 + priority.rank) * random.uniform(0.8, 1.2)


def is_active(status: Mapping[str, Any], **_: Any) -> bool:
    """The timer runs until the asset is Ready or Failed (kopf stops it, and drops its finalizer)."""
    return status.get("phase") not in {phase.value for phase in TERMINAL_ASSET_PHASES}


def index_finished_assets(
    name: str, namespace: str | None, status: Mapping[str, Any], **_: Any
) -> dict[tuple[str | None, str], str]:
    """(namespace, name) → finishedAt of the Ready and Failed MediaAssets, for the retention sweep."""
    finished = status.get("finishedAt")
    if is_active(status) or not finished:
        return {}
    return {(namespace, name): str(finished)}


async def sweep_finished_assets(ctx: OperatorContext, finished_assets: Mapping[Any, Any]) -> int:
    """Retention: deletes the MediaAssets that finished more than `retention_seconds` ago, so etcd does
    not grow with every upload ever made (like Argo's ttlStrategy). The database keeps the record and
    the API keeps answering. Run by a loop the operator starts (no timer: a timer would make kopf keep
    a finalizer on every finished resource). Returns how many were deleted."""
    if not ctx.settings.retention_seconds:
        return 0
    now = ctx.clock()
    deleted = 0
    for (namespace, name), stamps in list(finished_assets.items()):
        finished = max((parse_time(stamp) for stamp in stamps), default=None)
        if namespace is None or finished is None:
            continue
        age = (now - finished).total_seconds()
        if age >= ctx.settings.retention_seconds and await ctx.kube.delete_media_asset(namespace, name):
            deleted += 1
            metrics.assets_expired_total.inc()
            log.info("operator.asset_expired", asset=name, age_seconds=round(age))
    return deleted


def index_asset_states(spec: Mapping[str, Any], status: Mapping[str, Any], name: str, **_: Any) -> dict[Any, str]:
    """For the metrics: ("phase", phase) and ("stage", stage, pending|running) → MediaAsset name."""
    phase = status.get("phase") or AssetPhase.PENDING.value
    if phase in {p.value for p in TERMINAL_ASSET_PHASES}:
        return {}
    keys: dict[Any, str] = {("phase", phase): name}
    recorded = status.get("stages") or {}
    for stage in spec.get("stages") or []:
        stage_phase = (recorded.get(stage) or {}).get("phase", StagePhase.PENDING.value)
        if stage_phase in (StagePhase.PENDING, StagePhase.RETRYING):
            keys[("stage", stage, "pending")] = name
        elif stage_phase == StagePhase.RUNNING:
            keys[("stage", stage, "running")] = name
    return keys


async def _with_pod_details(
    ctx: OperatorContext, namespace: str, status: Mapping[str, Any], jobs: list[JobObservation]
) -> list[JobObservation]:
    """Adds exit code and termination message to failed Jobs the status has not recorded yet."""
    unsettled = {job.name for job in unsettled_failures(status, jobs)}
    enriched = []
    for job in jobs:
        if job.name in unsettled:
            try:
                ended = await ctx.kube.pod_termination(namespace, job.name)
            except ApiException as exc:
                log.warning("operator.pod_read_failed", job=job.name, status=exc.status)
                ended = None
            if ended is not None:
                reason = job.reason if job.reason == "PodFailurePolicy" else (ended.reason or job.reason)
                message = ended.message or job.message
                job = dataclasses.replace(job, exit_code=ended.exit_code, reason=reason, message=message)
        enriched.append(job)
    return enriched


async def _hand_token_to_job(ctx: OperatorContext, namespace: str, job_name: str, job_uid: str) -> None:
    """The token's Secret goes with its Job (the Job's TTL), not with the MediaAsset days later: one per
    attempt kept for the retention period would weigh on etcd more than the MediaAssets themselves."""
    try:
        await ctx.kube.hand_secret_to_job(namespace, job_name, job_name=job_name, job_uid=job_uid)
    except ApiException as exc:  # it then goes with the MediaAsset: later, but it goes
        log.warning("operator.token_secret_kept_by_asset", job=job_name, status=exc.status)


async def _mirror(ctx: OperatorContext, asset_id: str, transitions: Sequence[Transition]) -> None:
    """Records the transitions in the database; a failure there is retried after the error backoff."""
    try:
        await asyncio.to_thread(apply_transitions, ctx.mirror, asset_id, transitions)
    except Exception as exc:
        raise kopf.TemporaryError(
            f"mirroring into the database failed: {exc!r}", delay=ctx.settings.error_backoff_seconds
        ) from exc


async def _check_watch(ctx: OperatorContext, namespace: str, name: str, watched_version: str) -> None:
    """Feeds `watch_health`: this run's body is what the stream delivered; now and then, the server's."""
    health, moment = ctx.watch_health, time.monotonic()
    health.delivered(name=name, watched_version=watched_version, now=moment)
    if not health.due(moment):
        return
    try:
        served = await ctx.kube.media_asset_version(namespace, name)
    except ApiException as exc:  # the API server's trouble, not the stream's: kopf reports it elsewhere
        log.info("operator.watch_check_failed", asset=name, status=exc.status)
        return
    health.compared(name=name, watched_version=watched_version, served_version=served, now=moment)


async def reconcile_asset(
    *,
    name: str,
    namespace: str,
    body: kopf.Body,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    patch: kopf.Patch,
    memo: kopf.Memo,
    stage_jobs: kopf.Index[tuple[str, str], JobObservation],
    active_jobs: kopf.Index[str, str],
    **_: Any,
) -> None:
    ctx: OperatorContext = memo.context
    now = ctx.clock()
    await _check_watch(ctx, namespace, name, str(meta.get("resourceVersion") or ""))
    try:
        asset = AssetSpec.from_spec(spec)
    except ValueError as exc:
        # The CRD schema refuses most of this; what it cannot know is a stage the API registered and this
        # operator did not (their STAGE_MODULES differ). Say so where kubectl shows it, and in the
        # database the API answers from, or the asset would look PROCESSING there for ever.
        message = str(exc)[:4096]
        asset_id = spec.get("assetId")
        if isinstance(asset_id, str) and status.get("phase") != AssetPhase.FAILED.value:
            await _mirror(ctx, asset_id, [AssetFinished(AssetPhase.FAILED, message, now)])
        patch.status["phase"] = AssetPhase.FAILED.value
        patch.status["message"] = message
        patch.status["finishedAt"] = format_time(now)
        raise kopf.PermanentError(message) from exc

    observed = list(stage_jobs.get((namespace, name), []))
    for job in observed:
        ctx.ledger.forget(job.name)  # on the watch now: the index counts it
    observed = await _with_pod_details(ctx, namespace, status, observed)
    tenant = naming.label_value(asset.owner)

    def admit(stage: Any, attempt: int, job_name: str) -> str | None:
        if ctx.settings.kueue_queue_name:
            return None  # Kueue admits the suspended Job: quotas, fair sharing, priorities are its
        reason = ctx.ledger.try_admit(job_name=job_name, tenant=tenant, active=active_jobs, rank=asset.priority.rank)
        if reason is not None:
            metrics.capacity_waits_total.labels(cap=reason.split(" ", 1)[0]).inc()
        return reason

    decision = reconcile(
        asset_name=name,
        spec=asset,
        status=status,
        jobs=observed,
        now=now,
        policy=ctx.policy,
        admit=admit,
        generation=meta.get("generation"),
    )

    # 1. Jobs first: the status must never claim a Job that could not be created.
    for index, launch in enumerate(decision.launches):
        secret = build_token_secret(asset=asset, asset_name=name, namespace=namespace, stage=launch.stage,
                                    attempt=launch.attempt, settings=ctx.settings)  # fmt: skip
        manifest = build_stage_job(asset=asset, asset_name=name, namespace=namespace, stage=launch.stage,
                                   attempt=launch.attempt, settings=ctx.settings)  # fmt: skip
        kopf.adopt(manifest, owner=body)  # ownerReference to the MediaAsset: deleted with it
        kopf.adopt(secret, owner=body)  # until the Job exists and takes it over (below)
        try:
            await ctx.kube.create_secret(namespace, secret)  # first: the pod reads its token from it
            created = await ctx.kube.create_job(namespace, manifest)
        except ApiException as exc:
            for pending in decision.launches[index:]:
                ctx.ledger.forget(pending.job_name)
            raise kopf.TemporaryError(
                f"creating Job {launch.job_name} failed: {exc.status} {exc.reason}",
                delay=ctx.settings.error_backoff_seconds,
            ) from exc
        if created:
            metrics.jobs_created_total.labels(stage=launch.stage).inc()
            log.info("operator.job_created", asset=name, job=launch.job_name, attempt=launch.attempt)
            await _hand_token_to_job(ctx, namespace, launch.job_name, created)

    # 2. The database, so the API and kubectl agree.
    await _mirror(ctx, asset.asset_id, decision.transitions)

    # 3. The status: only what changed, as a merge patch.
    for key, value in status_patch(status, decision.status).items():
        patch.status[key] = value
    for item in decision.transitions:
        if isinstance(item, StageFailed):
            kind = "transient" if item.will_retry else "permanent"
            metrics.stage_failures_total.labels(stage=item.stage, kind=kind).inc()
            log.warning("operator.stage_failed", asset=name, stage=item.stage, attempt=item.attempt, kind=kind)
        elif isinstance(item, AssetFinished):
            metrics.assets_finished_total.labels(phase=item.phase.value).inc()
            log.info("operator.asset_finished", asset=name, phase=item.phase.value)

    if decision.waiting_for_capacity:
        # A TemporaryError, so kopf calls again after the priority's delay. Waiting is normal, not an
        # error: `QuietCapacityWaits` keeps kopf from logging it at ERROR (and posting an Event) each time.
        log.debug("operator.waiting_for_capacity", asset=name, reason=decision.waiting_for_capacity)
        raise kopf.TemporaryError(
            f"{CAPACITY_WAIT_PREFIX}{decision.waiting_for_capacity}", delay=ctx.capacity_delay(asset.priority)
        )


CAPACITY_WAIT_PREFIX = "waiting for capacity: "


class QuietCapacityWaits(logging.Filter):
    """Drops kopf's "failed temporarily: waiting for capacity" lines: with a thousand assets waiting they
    were about 130 ERROR lines a second. The status and `capacity_waits_total` still say who waits."""

    def filter(self, record: logging.LogRecord) -> bool:
        return CAPACITY_WAIT_PREFIX not in record.getMessage()
